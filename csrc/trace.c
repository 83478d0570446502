/* trace.c — the bounded event trace (cprof run --trace): each finished call of a timed function, as (node, start,
 * end), into per-thread tables in the run file; the layout and the stop rule are described in runfile.h. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>

int cprof_tracing;                   /* read on every traced exit: set once at start-up */
static cprof_u64 trace_min_ticks;   /* calls shorter than this are not recorded */

#define DEFAULT_TRACE_LIMIT (64ull << 20)

static cprof_u64 env_u64(const char *name, cprof_u64 fallback)
{
    const char *text = getenv(name);
    char *end;
    unsigned long long value;
    if (!text || !*text)
        return fallback;
    value = strtoull(text, &end, 10);
    return *end ? fallback : (cprof_u64)value;
}

void cprof_trace_start_process(struct cprof_run_header *header)
{
    const char *asked = getenv("CPROF_TRACE");
    if (!asked || !*asked || strcmp(asked, "0") == 0)
        return;
    header->trace_min_ns = env_u64("CPROF_TRACE_MIN_NS", 0);
    header->trace_limit_bytes = env_u64("CPROF_TRACE_LIMIT", DEFAULT_TRACE_LIMIT);
    trace_min_ticks = (cprof_u64)((double)header->trace_min_ns * header->ticks_per_second / 1e9);
    header->features |= CPROF_FEAT_TRACE;
    cprof_tracing = 1;
}

static struct cprof_trace_event *events_of(struct cprof_trace_record *table)
{
    return (struct cprof_trace_event *)((char *)table + 64);
}

/* A new table for the thread; past_limit: the trace has stopped and this takes a cut event (see runfile.h). */
static struct cprof_trace_record *new_table(struct cprof_thread_record *thread, int past_limit, cprof_u64 now)
{
    struct cprof_run_header *header = cprof_rt.header;
    struct cprof_trace_record *table = as_pointer(thread->trace);
    char *chunk;
    if (table && !table->thread) { /* the calibration's scratch table (calibration.c): reused, never kept */
        table->used = 0;
        return table;
    }
    if (!past_limit) {
        cprof_u64 taken = __atomic_fetch_add(&header->trace_bytes, CPROF_CHUNK_SIZE, __ATOMIC_RELAXED);
        if (taken + CPROF_CHUNK_SIZE > header->trace_limit_bytes) {
            cprof_u64 unset = 0;
            __atomic_fetch_sub(&header->trace_bytes, CPROF_CHUNK_SIZE, __ATOMIC_RELAXED);
            __atomic_compare_exchange_n(&header->trace_stop_ticks, &unset, now, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED);
            return NULL;
        }
    } else {
        __atomic_fetch_add(&header->trace_bytes, CPROF_CHUNK_SIZE, __ATOMIC_RELAXED);
    }
    chunk = cprof_arena_alloc_chunks(CPROF_CHUNK_SIZE);
    if (!chunk)
        return NULL;
    /* Every page of the table is touched now, not at its first event: the run file's page faults cost microseconds
     * each, and here they are measured (record_event) rather than spread over events as unexplained time. */
    for (size_t page = 0; page < CPROF_CHUNK_SIZE; page += 4096)
        ((volatile char *)chunk)[page] = 0;
    table = (struct cprof_trace_record *)chunk;
    table->thread = as_u64(thread);
    table->capacity = (CPROF_CHUNK_SIZE - 64) / sizeof(struct cprof_trace_event);
    table->head.size = CPROF_CHUNK_SIZE;
    __asm__ __volatile__("" ::: "memory"); /* readers find the table only once it is whole */
    table->head.kind = CPROF_REC_TRACE;
    thread->trace = as_u64(table);
    return table;
}

static void record_event(struct cprof_thread_record *thread, cprof_u64 node, cprof_u64 start, cprof_u64 end)
{
    struct cprof_run_header *header = cprof_rt.header;
    struct cprof_trace_record *table = as_pointer(thread->trace);
    struct cprof_trace_event *event;
    cprof_u64 stop = __atomic_load_n(&header->trace_stop_ticks, __ATOMIC_RELAXED);
    if (stop && end > stop) {
        if (start >= stop)
            goto dropped;
        node |= CPROF_TRACE_CUT;
        end = stop;
    }
    if (!table || table->used == table->capacity) {
        /* A new table (a chunk of the run file, its pages faulted in) takes microseconds, in the time of the caller
         * of the call that ended: measured, and given back to that caller like a slow entry's (runfile.h). */
        cprof_u64 began = now_ticks();
        table = new_table(thread, stop != 0, end);
        if (!table) {
            /* the limit was reached right now: this call ended at the stop, every later one is cut or left out */
            stop = __atomic_load_n(&header->trace_stop_ticks, __ATOMIC_RELAXED);
            if (stop)
                table = new_table(thread, 1, end);
        }
        ((struct cprof_node *)as_pointer(node & ~CPROF_TRACE_CUT))->slow_ticks += now_ticks() - began;
        if (!table)
            goto dropped;
    }
    event = events_of(table) + table->used;
    event->node = node;
    event->start_ticks = start;
    event->end_ticks = end;
    __asm__ __volatile__("" ::: "memory"); /* a killed run's readers see only whole events */
    table->used++;
    return;
dropped:
    __atomic_fetch_add(&header->trace_dropped, 1, __ATOMIC_RELAXED);
}

void cprof_trace_call(struct cprof_thread_record *thread, const struct cprof_frame *frame, cprof_u64 end)
{
    if (end - frame->start_ticks < trace_min_ticks)
        return;
    /* busy: a signal handler that interrupted this thread's own append must not write the same slot */
    if (thread->busy) {
        __atomic_fetch_add(&cprof_rt.header->trace_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    thread->busy = 1;
    record_event(thread, frame->node, frame->start_ticks, end);
    thread->busy = 0;
}

void cprof_trace_reset_record(struct cprof_record_head *record)
{
    ((struct cprof_trace_record *)record)->used = 0;
}

void cprof_trace_after_fork(struct cprof_run_header *header)
{
    /* the child's trace starts at the fork; the tables it inherited still count against its limit */
    header->trace_stop_ticks = 0;
    header->trace_dropped = 0;
}
