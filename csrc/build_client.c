/* build_client.c — what cprof's compiler shims run: hands one compiler call to the build server
 * (cprof/building/server.py, which documents the protocol) and exits with its status.
 *
 * Usage: cprof-build-client N FALLBACK_ARGV[N] ARGS...
 * A build calls the compiler once per unit, and starting Python for each call cost a cold Lua build a sixth of its
 * CPU time: this client starts in about a millisecond. Without a server to talk to (CPROF_BUILD_SERVER unset, or
 * nothing listening there) it execs FALLBACK_ARGV followed by ARGS: the Python wrapper, which does the same work.
 *
 * Not part of the runtime: it never links into a profiled program. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

struct buffer {
    char *data;
    size_t length, capacity;
};

static void append(struct buffer *buffer, const char *text, size_t length)
{
    if (buffer->length + length > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 4096;
        while (capacity < buffer->length + length)
            capacity *= 2;
        buffer->data = realloc(buffer->data, capacity);
        if (!buffer->data) {
            fputs("cprof: error: out of memory\n", stderr);
            exit(70);
        }
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, text, length);
    buffer->length += length;
}

static void append_string(struct buffer *buffer, const char *text)
{
    append(buffer, text, strlen(text) + 1);
}

static int connect_to_server(void)
{
    const char *path = getenv("CPROF_BUILD_SERVER");
    struct sockaddr_un address;
    int fd;
    if (!path || !*path || strlen(path) >= sizeof address.sun_path)
        return -1;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The whole request in as few writes as the socket takes; the descriptors ride on the first. */
static int send_request(int fd, const struct buffer *request)
{
    int descriptors[3] = {0, 1, 2};
    char control[CMSG_SPACE(sizeof descriptors)];
    struct iovec vector = {request->data, request->length};
    struct msghdr message;
    struct cmsghdr *header;
    size_t sent = 0;
    ssize_t written;
    memset(&message, 0, sizeof message);
    memset(control, 0, sizeof control);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof descriptors);
    memcpy(CMSG_DATA(header), descriptors, sizeof descriptors);
    do
        written = sendmsg(fd, &message, MSG_NOSIGNAL);
    while (written < 0 && errno == EINTR);
    if (written < 0)
        return -1;
    sent = (size_t)written;
    while (sent < request->length) {
        written = send(fd, request->data + sent, request->length - sent, MSG_NOSIGNAL);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        sent += (size_t)written;
    }
    return 0;
}

static int receive_status(int fd, int32_t *status)
{
    size_t got = 0;
    while (got < sizeof *status) {
        ssize_t count = read(fd, (char *)status + got, sizeof *status - got);
        if (count < 0 && errno == EINTR)
            continue;
        if (count <= 0)
            return -1;
        got += (size_t)count;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int fallback_count, fd, i;
    char **args, **fallback, **exec_argv;
    if (argc < 2 || (fallback_count = atoi(argv[1])) < 1 || fallback_count > argc - 2) {
        fputs("usage: cprof-build-client N FALLBACK_ARGV[N] ARGS...\n", stderr);
        return 2;
    }
    fallback = argv + 2;
    args = fallback + fallback_count;
    fd = connect_to_server();
    if (fd >= 0) {
        struct buffer request = {0, 0, 0};
        char number[32], cwd[8192];
        uint32_t length = 0;
        int32_t status;
        int nargs = argc - 2 - fallback_count;
        if (!getcwd(cwd, sizeof cwd)) {
            perror("cprof: error: getcwd");
            return 70;
        }
        append(&request, (char *)&length, sizeof length);
        append_string(&request, cwd);
        snprintf(number, sizeof number, "%d", nargs);
        append_string(&request, number);
        for (i = 0; i < nargs; i++)
            append_string(&request, args[i]);
        for (i = 0; environ[i]; i++)
            append_string(&request, environ[i]);
        length = (uint32_t)(request.length - sizeof length);
        memcpy(request.data, &length, sizeof length);
        if (send_request(fd, &request) == 0) {
            if (receive_status(fd, &status) == 0)
                return status;
            /* The call was handed over but no status came back: the server stopped mid-call. */
            fputs("cprof: error: the build server stopped during this compiler call\n", stderr);
            return 70;
        }
        close(fd); /* not handed over: do it ourselves */
    }
    exec_argv = calloc((size_t)argc, sizeof *exec_argv);
    if (!exec_argv)
        return 70;
    for (i = 0; i < argc - 2; i++)
        exec_argv[i] = fallback[i];
    execv(exec_argv[0], exec_argv);
    fprintf(stderr, "cprof: error: cannot run %s: %s\n", exec_argv[0], strerror(errno));
    return 127;
}
