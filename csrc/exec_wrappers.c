/* exec_wrappers.c — stops the calling thread's sampling timer before it replaces its program.
 *
 * A sample signal generated while execve runs would stay pending into the new program, where SIGPROF has its
 * default action again: the new program would be killed. So every exec function of libc is wrapped (glibc's
 * execvp and execl reach execve internally, past any interposition, so each needs its own wrapper); a failed
 * exec starts the timer again. Linked into the shared runtime only, like waits.c; a -static link cannot
 * interpose, so its processes do not sample (sampling.c). */
#define _GNU_SOURCE
#include "interpose.h"
#include "sampling.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

const int cprof_exec_guarded = 1;

#define EXEC_WRAPPER(name, params, args)                                                                      \
    int name params                                                                                           \
    {                                                                                                         \
        static void *cache;                                                                                   \
        int (*real) params = (int (*) params)cprof_next_definition(&cache, #name);                            \
        int result, saved;                                                                                    \
        if (!real) {                                                                                          \
            errno = ENOSYS;                                                                                   \
            return -1;                                                                                        \
        }                                                                                                     \
        cprof_sampling_stop_thread();                                                                         \
        result = real args;                                                                                   \
        saved = errno;                                                                                        \
        cprof_sampling_start_thread();                                                                        \
        errno = saved;                                                                                        \
        return result;                                                                                        \
    }

EXEC_WRAPPER(execve, (const char *path, char *const argv[], char *const envp[]), (path, argv, envp))
EXEC_WRAPPER(execv, (const char *path, char *const argv[]), (path, argv))
EXEC_WRAPPER(execvp, (const char *file, char *const argv[]), (file, argv))
EXEC_WRAPPER(execvpe, (const char *file, char *const argv[], char *const envp[]), (file, argv, envp))
EXEC_WRAPPER(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))

/* The list forms gather their arguments and go through the wrappers above. */
#define GATHER_ARGUMENTS(first, argv)                                                                         \
    size_t count = 1;                                                                                         \
    va_list scan;                                                                                             \
    va_start(scan, first);                                                                                    \
    while (va_arg(scan, char *))                                                                              \
        count++;                                                                                              \
    va_end(scan);                                                                                             \
    char **argv = __builtin_alloca((count + 1) * sizeof *argv);                                               \
    va_list take;                                                                                             \
    va_start(take, first);                                                                                    \
    argv[0] = (char *)first;                                                                                  \
    for (size_t at = 1; at <= count; at++)                                                                    \
        argv[at] = va_arg(take, char *);

int execl(const char *path, const char *arg, ...)
{
    GATHER_ARGUMENTS(arg, argv)
    va_end(take);
    return execv(path, argv);
}

int execlp(const char *file, const char *arg, ...)
{
    GATHER_ARGUMENTS(arg, argv)
    va_end(take);
    return execvp(file, argv);
}

int execle(const char *path, const char *arg, ...)
{
    GATHER_ARGUMENTS(arg, argv)
    char *const *envp = va_arg(take, char *const *); /* after the terminating NULL */
    va_end(take);
    return execve(path, argv, envp);
}
