/* thread_start.c — starts a new thread's recording before it runs the program's code, when the program has
 * count-only sites: their counters must be in place before the thread's first counted call (counts.c), which may
 * come before its first timed one. Linked into the shared runtime only, like waits.c; in a -static link a thread
 * gets its counters at its first timed call, and counts nothing before it. */
#define _GNU_SOURCE
#include "heap.h"
#include "interpose.h"
#include "runtime_internal.h"

#include <errno.h>
#include <stdlib.h>

struct thread_start {
    void *(*start)(void *);
    void *arg;
};

static void *start_recorded(void *state)
{
    struct thread_start start = *(struct thread_start *)state;
    cprof_heap_pause(1);
    free(state);
    cprof_heap_pause(0);
    if (__cprof_mode != 1)
        cprof_thread_start();
    else
        cprof_counts_thread_off();
    return start.start(start.arg);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg)
{
    static void *cache;
    int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))cprof_next_definition(
            &cache, "pthread_create");
    struct thread_start *state;
    int result;
    if (!real)
        return ENOSYS;
    if (!cprof_counts_wanted())
        return real(thread, attr, start, arg); /* nothing to hand out: the thread starts as it would */
    cprof_heap_pause(1); /* the runtime's own allocation, not the program's */
    state = malloc(sizeof *state);
    cprof_heap_pause(0);
    if (!state)
        return real(thread, attr, start, arg);
    state->start = start;
    state->arg = arg;
    result = real(thread, attr, start_recorded, state);
    if (result != 0) {
        cprof_heap_pause(1);
        free(state);
        cprof_heap_pause(0);
    }
    return result;
}
