/* test_runtime.c — native tests of the runtime: instrumented functions (the real guard, as the splicer writes
 * it) run through counts, deep recursion, longjmp, threads, signals, fork and enable/disable, and each test reads
 * this process's own live run file back with the fast reader and checks exact counts and structure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reader.h"

void cprof_set_enabled(int enabled);

enum { S_A, S_B, S_RECURSE, S_F, S_G, S_H, S_K, S_WORKER, S_SIGNAL, S_BUSY, S_CHILD, S_CTOR, S_OFF, S_COUNT };
static struct __cprof_site __cprof_sites[S_COUNT] = {
    {"a", "test_runtime.c", 1, 0, 0, 0},       {"b", "test_runtime.c", 2, 0, 0, 0},
    {"recurse", "test_runtime.c", 3, 0, 0, 0}, {"f", "test_runtime.c", 4, 0, 0, 0},
    {"g", "test_runtime.c", 5, 0, 0, 0},       {"h", "test_runtime.c", 6, 0, 0, 0},
    {"k", "test_runtime.c", 7, 0, 0, 0},       {"worker_call", "test_runtime.c", 8, 0, 0, 0},
    {"on_signal", "test_runtime.c", 9, 0, 0, 0}, {"busy", "test_runtime.c", 10, 0, 0, 0},
    {"child_work", "test_runtime.c", 11, 0, 0, 0}, {"constructor_work", "test_runtime.c", 12, 0, 0, 0},
    {"while_off", "test_runtime.c", 13, 0, 0, 0},
};

/* exactly the declaration cprof/instrument/splice.py writes after an instrumented body's `{` */
#define GUARD(index)                                                                                           \
    int __cprof_guard __attribute__((cleanup(__cprof_leave), unused)) =                                       \
        __cprof_enter(&__cprof_sites[index], &__cprof_guard);

static int failures;
#define CHECK(condition, ...)                                                                                  \
    do {                                                                                                       \
        if (!(condition)) {                                                                                    \
            failures++;                                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #condition);                               \
            fprintf(stderr, __VA_ARGS__);                                                                      \
            fputc('\n', stderr);                                                                               \
        }                                                                                                      \
    } while (0)

static volatile int sink;

/* ---- reading our own run file ---- */

struct snapshot {
    unsigned char *data;
    struct cprof_read_result result;
};

static void take_snapshot(struct snapshot *snap, pid_t pid)
{
    char path[512];
    FILE *file;
    long size;
    snprintf(path, sizeof path, "%s/%d.cprof", getenv("CPROF_RUN_DIR"), (int)pid);
    file = fopen(path, "rb");
    if (!file) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(file, 0, SEEK_END);
    size = ftell(file);
    fseek(file, 0, SEEK_SET);
    snap->data = malloc((size_t)size);
    if (fread(snap->data, 1, (size_t)size, file) != (size_t)size)
        exit(2);
    fclose(file);
    if (cprof_read_run(snap->data, (size_t)size, &snap->result) != 0) {
        fprintf(stderr, "read failed: %s\n", snap->result.error);
        exit(2);
    }
}

static void drop_snapshot(struct snapshot *snap)
{
    cprof_read_free(&snap->result);
    free(snap->data);
}

static uint32_t function_id(const struct cprof_read_result *r, const char *name)
{
    size_t i;
    for (i = 0; i < r->function_count; i++)
        if (r->functions[i].name_len == strlen(name) && memcmp(r->functions[i].name, name, strlen(name)) == 0)
            return r->functions[i].id;
    return 0;
}

static const struct cprof_read_node *node_at(const struct cprof_read_result *r, int64_t offset)
{
    size_t i;
    for (i = 0; i < r->node_count; i++)
        if ((int64_t)r->nodes[i].offset == offset)
            return &r->nodes[i];
    return NULL;
}

/* calls of `name`, optionally only where its caller is `parent` ("" = the thread root) */
static uint64_t calls_of(const struct cprof_read_result *r, const char *name, const char *parent)
{
    uint32_t id = function_id(r, name), parent_id = parent && *parent ? function_id(r, parent) : 0;
    uint64_t calls = 0;
    size_t i;
    for (i = 0; i < r->node_count; i++) {
        const struct cprof_read_node *node = &r->nodes[i], *up;
        if (node->function_id != id || id == 0)
            continue;
        if (parent) {
            up = node_at(r, node->parent);
            if (!up || up->function_id != parent_id)
                continue;
        }
        calls += node->calls;
    }
    return calls;
}

/* ---- instrumented functions ---- */

__attribute__((noinline)) static void b(void) { GUARD(S_B) sink++; }
__attribute__((noinline)) static void a(void) { GUARD(S_A) b(); b(); b(); }

__attribute__((noinline)) static long recurse(long depth)
{
    GUARD(S_RECURSE)
    volatile char pad[16];
    pad[0] = (char)depth;
    return depth == 0 ? pad[0] : 1 + recurse(depth - 1);
}

static jmp_buf jump;
__attribute__((noinline)) static void h(void) { GUARD(S_H) longjmp(jump, 1); }
__attribute__((noinline)) static void g(void) { GUARD(S_G) h(); sink++; }
__attribute__((noinline)) static void k(void) { GUARD(S_K) sink++; }
__attribute__((noinline)) static void f(void)
{
    GUARD(S_F)
    if (setjmp(jump) == 0)
        g();
    k(); /* must hang under f, not under the frames the longjmp left */
}

__attribute__((noinline)) static void busy(void) { GUARD(S_BUSY) sink++; }
static volatile int signals_handled;
__attribute__((noinline)) static void on_signal_work(void) { GUARD(S_SIGNAL) sink++; }
static void on_signal(int signo)
{
    (void)signo;
    on_signal_work();
    signals_handled++;
}

__attribute__((noinline)) static void child_work(void) { GUARD(S_CHILD) sink++; }
__attribute__((noinline)) static void while_off(void) { GUARD(S_OFF) sink++; }

__attribute__((noinline)) static void constructor_work(void) { GUARD(S_CTOR) sink++; }
__attribute__((constructor)) static void before_main(void) { constructor_work(); }

__attribute__((noinline)) static void worker_call(void) { GUARD(S_WORKER) sink++; }
static void *worker(void *arg)
{
    long i, n = (long)(intptr_t)arg;
    for (i = 0; i < n; i++)
        worker_call();
    return NULL;
}

static void *deep_thread(void *arg)
{
    return (void *)(intptr_t)recurse((long)(intptr_t)arg);
}

/* ---- tests ---- */

static void test_counts(void)
{
    struct snapshot snap;
    int i;
    for (i = 0; i < 1000; i++)
        a();
    take_snapshot(&snap, getpid());
    CHECK(calls_of(&snap.result, "a", NULL) == 1000, "a called %llu times", (unsigned long long)calls_of(&snap.result, "a", NULL));
    CHECK(calls_of(&snap.result, "b", "a") == 3000, "b under a %llu", (unsigned long long)calls_of(&snap.result, "b", "a"));
    CHECK(calls_of(&snap.result, "constructor_work", "") == 1, "constructor call not recorded at the root");
    drop_snapshot(&snap);
}

static void test_deep_recursion(void)
{
    enum { DEPTH = 1000000 };
    pthread_t thread;
    pthread_attr_t attr;
    void *result;
    struct snapshot snap;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)1 << 30);
    pthread_create(&thread, &attr, deep_thread, (void *)(intptr_t)DEPTH);
    pthread_join(thread, &result);
    CHECK((long)(intptr_t)result == DEPTH, "recursion returned %ld", (long)(intptr_t)result);
    take_snapshot(&snap, getpid());
    CHECK(calls_of(&snap.result, "recurse", NULL) == DEPTH + 1, "recurse calls %llu",
          (unsigned long long)calls_of(&snap.result, "recurse", NULL));
    drop_snapshot(&snap);
}

static void test_longjmp(void)
{
    struct snapshot snap;
    int i;
    for (i = 0; i < 10; i++)
        f();
    a(); /* a fresh call at the top level must land at the root again */
    take_snapshot(&snap, getpid());
    CHECK(calls_of(&snap.result, "k", "f") == 10, "k under f: %llu", (unsigned long long)calls_of(&snap.result, "k", "f"));
    CHECK(calls_of(&snap.result, "k", NULL) == 10, "k calls elsewhere");
    CHECK(calls_of(&snap.result, "h", "g") == 10, "h under g");
    CHECK(calls_of(&snap.result, "a", "") == 1001, "a at the root after longjmps: %llu",
          (unsigned long long)calls_of(&snap.result, "a", ""));
    drop_snapshot(&snap);
}

static void test_threads(void)
{
    enum { THREADS = 8, CALLS = 100000 };
    pthread_t threads[THREADS];
    struct snapshot snap;
    size_t i, with_worker = 0;
    uint32_t id;
    for (i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)CALLS);
    for (i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    take_snapshot(&snap, getpid());
    CHECK(calls_of(&snap.result, "worker_call", "") == (uint64_t)THREADS * CALLS, "worker calls %llu",
          (unsigned long long)calls_of(&snap.result, "worker_call", ""));
    id = function_id(&snap.result, "worker_call");
    for (i = 0; i < snap.result.node_count; i++)
        if (snap.result.nodes[i].function_id == id) {
            CHECK(snap.result.nodes[i].calls == CALLS, "a thread's node has %llu calls",
                  (unsigned long long)snap.result.nodes[i].calls);
            with_worker++;
        }
    CHECK(with_worker == THREADS, "%zu thread trees hold worker_call", with_worker);
    for (i = 0; i < snap.result.thread_count; i++)
        if (snap.result.threads[i].index > 0)
            CHECK(snap.result.threads[i].end_ticks != 0, "finished thread %u has no end", snap.result.threads[i].index);
    drop_snapshot(&snap);
}

static void test_signals(void)
{
    struct itimerval timer = {{0, 50}, {0, 50}};
    struct snapshot snap;
    long i;
    signal(SIGALRM, on_signal);
    setitimer(ITIMER_REAL, &timer, NULL);
    sigset_t alarm;
    for (i = 0; i < 3000000 && signals_handled < 2000; i++)
        busy();
    /* an alarm still pending must neither run a handler the count misses nor, once SIG_DFL, end the process */
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alarm, NULL);
    memset(&timer, 0, sizeof timer);
    setitimer(ITIMER_REAL, &timer, NULL);
    signal(SIGALRM, SIG_IGN);
    sigprocmask(SIG_UNBLOCK, &alarm, NULL);
    signal(SIGALRM, SIG_DFL);
    a();
    take_snapshot(&snap, getpid());
    CHECK(signals_handled > 100, "only %d signals arrived", signals_handled);
    CHECK(calls_of(&snap.result, "on_signal", NULL) + snap.result.header.lost_frames == (uint64_t)signals_handled,
          "on_signal recorded %llu + lost %llu of %d", (unsigned long long)calls_of(&snap.result, "on_signal", NULL),
          (unsigned long long)snap.result.header.lost_frames, signals_handled);
    CHECK(calls_of(&snap.result, "busy", "") == (uint64_t)i, "busy %llu of %ld",
          (unsigned long long)calls_of(&snap.result, "busy", ""), i);
    CHECK(calls_of(&snap.result, "a", "") == 1002, "a back at the root after signals");
    drop_snapshot(&snap);
}

static void test_fork(void)
{
    pid_t child = fork();
    int status, i;
    if (child == 0) {
        for (i = 0; i < 5; i++)
            child_work();
        _exit(0); /* no exit handlers: the run file must hold the counts anyway */
    }
    waitpid(child, &status, 0);
    {
        struct snapshot snap;
        take_snapshot(&snap, child);
        CHECK(snap.result.header.pid == child, "child run pid %d", snap.result.header.pid);
        CHECK(snap.result.header.parent_pid == getpid(), "child run parent %d", snap.result.header.parent_pid);
        CHECK(snap.result.header.flags & CPROF_RUN_FORK_CHILD, "child run not marked as a fork child");
        CHECK(!snap.result.complete, "a run ended by _exit must not claim to be complete");
        CHECK(calls_of(&snap.result, "child_work", NULL) == 5, "child_work %llu",
              (unsigned long long)calls_of(&snap.result, "child_work", NULL));
        CHECK(calls_of(&snap.result, "a", NULL) == 0, "the child inherited the parent's counts");
        drop_snapshot(&snap);
        take_snapshot(&snap, getpid());
        CHECK(calls_of(&snap.result, "child_work", NULL) == 0, "the child wrote into the parent's run");
        drop_snapshot(&snap);
    }
}

static void test_disable(void)
{
    struct snapshot snap;
    cprof_set_enabled(0);
    while_off();
    cprof_set_enabled(1);
    while_off();
    take_snapshot(&snap, getpid());
    CHECK(calls_of(&snap.result, "while_off", NULL) == 1, "while_off %llu",
          (unsigned long long)calls_of(&snap.result, "while_off", NULL));
    drop_snapshot(&snap);
}

int main(void)
{
    test_counts();
    test_deep_recursion();
    test_longjmp();
    test_threads();
    test_signals();
    test_fork();
    test_disable();
    if (failures) {
        fprintf(stderr, "native runtime tests: %d failure(s)\n", failures);
        return 1;
    }
    printf("native runtime tests: all passed\n");
    return 0;
}
