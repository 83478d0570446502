/* runtime.c — the cprof runtime's entry points from profiled programs: the guard's slow paths, count-only sites,
 * waits, the guard's calibration and control from user code.
 *
 * The guard's fast paths live inline in cprof_guard.h; the runtime handles everything they hand over: first use
 * (process and thread start: process.c, threads.c), new call paths (calltree.c), stack growth, longjmp repair,
 * the clock fallback, fork, thread and process exit. Its files share their state through runtime_internal.h. It
 * never calls malloc after start-up, because a signal handler may enter an instrumented function while the
 * interrupted code is inside malloc. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "heap.h"
#include "waits.h"

#include <stdlib.h>
#include <sys/mman.h>

/* The guard header mirrors these layouts into user code: a drift would corrupt every run silently. */
_Static_assert(offsetof(struct cprof_node, parent) == offsetof(struct __cprof_node_hot, parent), "node.parent");
_Static_assert(offsetof(struct cprof_node, func) == offsetof(struct __cprof_node_hot, func), "node.func");
_Static_assert(offsetof(struct cprof_node, calls) == offsetof(struct __cprof_node_hot, calls), "node.calls");
_Static_assert(offsetof(struct cprof_node, total_ticks) == offsetof(struct __cprof_node_hot, total_ticks),
               "node.total_ticks");
_Static_assert(sizeof(struct cprof_frame) == sizeof(struct __cprof_frame_hot), "frame size");
_Static_assert(offsetof(struct cprof_frame, start_ticks) == offsetof(struct __cprof_frame_hot, start_ticks),
               "frame.start_ticks");
_Static_assert(offsetof(struct cprof_frame, frame_address) == offsetof(struct __cprof_frame_hot, frame_address),
               "frame.frame_address");
_Static_assert(offsetof(struct cprof_frame, return_address) == offsetof(struct __cprof_frame_hot, return_address),
               "frame.return_address");
_Static_assert(offsetof(struct cprof_frame, guard) == offsetof(struct __cprof_frame_hot, guard), "frame.guard");
_Static_assert(offsetof(struct cprof_thread_record, top) == offsetof(struct __cprof_thread_hot, top), "top");
_Static_assert(offsetof(struct cprof_thread_record, limit) == offsetof(struct __cprof_thread_hot, limit), "limit");
_Static_assert(offsetof(struct cprof_thread_record, last_ticks) == offsetof(struct __cprof_thread_hot, last_ticks),
               "last_ticks");
_Static_assert(sizeof(struct cprof_node) == 128, "nodes are two cache lines");
_Static_assert(sizeof(struct cprof_frame) == 64, "frames are one cache line");
_Static_assert(sizeof(struct cprof_run_header) <= CPROF_HEADER_SIZE, "header fits");
_Static_assert(sizeof(struct cprof_stack_record) == 64, "stack frames start cache-line aligned");

__thread struct __cprof_thread_hot *__cprof_tls __attribute__((tls_model("initial-exec")));
int __cprof_mode; /* 0 until start-up decides otherwise: the first call finds no thread state and starts us */
int __cprof_ordered_timer = 1; /* set from the timer chosen at start-up (see cprof_guard.h) */

struct cprof_runtime cprof_rt = {.once = PTHREAD_ONCE_INIT, .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
                                 .arena_lock = PTHREAD_MUTEX_INITIALIZER};

cprof_u64 cprof_runtime_ticks(void) { return now_ticks(); }

/* A frame address this far above the innermost frame's is another stack (sigaltstack, coroutine), not a
 * longjmp: such calls nest instead of unwinding frames that are still alive. */
#define FOREIGN_STACK_DISTANCE (1ull << 30)

/* ---- the slow paths the guard calls --------------------------------------------------------------------- */

static void close_frame(struct cprof_frame *frame, cprof_u64 now, cprof_u64 cpu_now)
{
    struct cprof_node *node = as_pointer(frame->node);
    node->total_ticks += now - frame->start_ticks;
    if (cprof_rt.cpu_time)
        node->cpu_ns += cpu_now - frame->cpu_start_ns;
}

/* Whether `frame` cannot be an ancestor of a call entering with (cfa, return_address, guard); see the guard. */
static int left_behind(const struct cprof_frame *frame, cprof_u64 cfa, void *return_address, void *guard)
{
    if (cfa < frame->frame_address || cfa - frame->frame_address >= FOREIGN_STACK_DISTANCE)
        return 0;
    return cfa > frame->frame_address || frame->return_address != as_u64(return_address) ||
           frame->guard == as_u64(guard);
}

int __cprof_enter_slow(struct __cprof_site *site, void *guard, cprof_u64 cfa, void *return_address)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame, *base;
    struct cprof_function_record *function;
    struct cprof_node *node;
    cprof_u64 now, cpu_now = 0;
    if (__cprof_mode == 1)
        return 0;
    if (!thread && !(thread = cprof_thread_start()))
        return 0;
    if (thread->busy) /* a signal handler interrupted our own slow path: skip rather than corrupt */
        goto lost_unlocked;
    thread->busy = 1;
    now = now_ticks();
    if (cprof_rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    /* frames that cannot be our ancestors belong to functions a longjmp has already left */
    while (frame > base && left_behind(frame, cfa, return_address, guard)) {
        close_frame(frame, now, cpu_now);
        frame--;
    }
    thread->top = as_u64(frame);
    if (frame + 1 >= (struct cprof_frame *)as_pointer(thread->limit)) {
        if (cprof_grow_stack(thread) != 0)
            goto lost;
        frame = as_pointer(thread->top);
    }
    function = cprof_site_function(thread, site);
    if (!function || !(node = cprof_child_node(thread, as_pointer(frame->node), as_u64(function))))
        goto lost;
    site->cache = (struct __cprof_node_hot *)node;
    node->calls++;
    frame[1].node = as_u64(node);
    frame[1].frame_address = cfa;
    frame[1].return_address = as_u64(return_address);
    frame[1].guard = as_u64(guard);
    frame[1].cpu_start_ns = cprof_rt.cpu_time ? cprof_thread_cpu_ns() : 0;
    frame[1].start_ticks = now_ticks();
    /* What this entry cost beyond a fast one (registering the function, a new node and its first-touch page, a
     * repair): measured, not calibrated, since it varies; it lies in the caller's interval, where the model takes
     * it out. */
    node->slow_ticks += frame[1].start_ticks - now;
    node->slow_calls++;
    __asm__ __volatile__("" ::: "memory");
    thread->top = as_u64(frame + 1);
    thread->busy = 0;
    return 1;
lost:
    thread->busy = 0;
lost_unlocked:
    /* the header's count is what readers report for the whole process: every lost frame must reach it */
    thread->lost_frames++;
    __atomic_fetch_add(&cprof_rt.header->lost_frames, 1, __ATOMIC_RELAXED);
    return 0;
}

void __cprof_leave_slow(void *guard, cprof_u64 now)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame, *own, *base;
    cprof_u64 cpu_now = 0;
    if (!thread)
        return;
    if (__cprof_mode != 0)
        now = now_ticks();
    if (cprof_rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    for (own = frame; own > base && own->guard != as_u64(guard); own--)
        ;
    if (own == base) /* already unwound by a repair: nothing left to close */
        return;
    for (; frame >= own; frame--) /* frames above ours were abandoned by a longjmp */
        close_frame(frame, now, cpu_now);
    thread->last_ticks = now;
    __asm__ __volatile__("" ::: "memory");
    thread->top = as_u64(own - 1);
}

/* ---- count-only sites (cprof_guard.h, __cprof_count) -------------------------------------------------- */

/* Where a thread counts while profiling is off, or when no block could be made: one shared throwaway block per
 * table, never read (so the fast path stays one load and an increment). */
static cprof_u64 *throwaway_block(struct __cprof_count_table *table)
{
    static cprof_u64 *shared;
    static size_t shared_count;
    size_t needed = table->count < 1 ? 1 : table->count;
    if (!shared || shared_count < needed) {
        size_t bytes = round_up(needed * sizeof(cprof_u64), 4096);
        void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            return NULL;
        shared = memory; /* a smaller one before stays mapped: other threads may still count into it */
        shared_count = bytes / sizeof(cprof_u64);
    }
    return shared;
}

void __cprof_count_slow(cprof_u64 **block, struct __cprof_count_table *table, unsigned index)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_counts_record *record;
    cprof_u64 *functions;
    unsigned i, count = table->count;
    if (__cprof_mode != 1 && !thread)
        thread = cprof_thread_start();
    if (__cprof_mode == 1 || !thread || count > CPROF_COUNTS_MAX) {
        *block = throwaway_block(table);
        return;
    }
    if (thread->busy) { /* a signal handler interrupted our own slow path: count this call as lost */
        thread->lost_frames++;
        __atomic_fetch_add(&cprof_rt.header->lost_frames, 1, __ATOMIC_RELAXED);
        return;
    }
    thread->busy = 1;
    /* the functions are registered before the record is made: records after an unfinished one (kind 0) in its
     * chunk would be skipped by a reader of a run that dies meanwhile */
    for (i = 0; i < count; i++)
        cprof_site_function(thread, &table->sites[i]);
    record = cprof_thread_alloc(thread, sizeof *record + 2 * count * sizeof(cprof_u64), 8);
    if (record) {
        functions = (cprof_u64 *)(record + 1);
        for (i = 0; i < count; i++)
            functions[i] = __atomic_load_n(&table->sites[i].func, __ATOMIC_ACQUIRE);
        record->thread = as_u64(thread);
        record->table = as_u64(table);
        record->count = count;
        record->head.size = (cprof_u32)(sizeof *record + 2 * count * sizeof(cprof_u64));
        __asm__ __volatile__("" ::: "memory"); /* readers find the record only once it is whole */
        record->head.kind = CPROF_REC_COUNTS;
        *block = functions + count;
        (*block)[index]++;
    } else {
        *block = throwaway_block(table);
    }
    thread->busy = 0;
}

/* ---- waiting (csrc/waits.c) ----------------------------------------------------------------------------- */

cprof_u64 cprof_wait_begin(void)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    /* busy: the runtime's own locks, taken in its slow paths, are not the program's waiting */
    if (!thread || __cprof_mode == 1 || thread->busy)
        return 0;
    return now_ticks() | 1; /* never 0, which means "not recording" */
}

void cprof_wait_end(cprof_u64 start)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame;
    cprof_u64 now = now_ticks();
    if (!thread || now <= start)
        return;
    frame = as_pointer(thread->top);
    ((struct cprof_node *)as_pointer(frame->node))->wait_ticks += now - start;
}

/* ---- guard calibration ---------------------------------------------------------------------------------- */

/* Measures what the real guard costs on this machine, on a private scratch thread state so that no calibration
 * node reaches the run: inner = ticks inside the callee's own interval, outer = the rest of a call's extra cost,
 * which lands in the caller. Both depend on the work around the timer reads (a read cannot complete faster than
 * the previous one allows), so they are measured around callees of several sizes: the reported figure is their
 * mean, and its spread covers both the round-to-round noise and that dependence on the code. */
#define CALIBRATION_STEP(x) (x) = ((x) ^ ((x) >> 7)) * 0x9E3779B1u
#define CALIBRATION_WORK_0(x)
#define CALIBRATION_WORK_1(x) CALIBRATION_STEP(x)
#define CALIBRATION_WORK_3(x) CALIBRATION_STEP(x); CALIBRATION_STEP(x); CALIBRATION_STEP(x)
#define CALIBRATION_WORK_8(x) CALIBRATION_WORK_3(x); CALIBRATION_WORK_3(x); CALIBRATION_STEP(x); CALIBRATION_STEP(x)
#define CALIBRATION_WORK_20(x) CALIBRATION_WORK_8(x); CALIBRATION_WORK_8(x); CALIBRATION_WORK_3(x); CALIBRATION_STEP(x)
enum { CALIBRATION_SIZES = 5 };
static struct __cprof_site calibration_site[CALIBRATION_SIZES] = {
    {"<calibration>", "", 0, 0, 1, 0}, {"<calibration>", "", 1, 0, 1, 0}, {"<calibration>", "", 2, 0, 1, 0},
    {"<calibration>", "", 3, 0, 1, 0}, {"<calibration>", "", 4, 0, 1, 0}};
#define __cprof_sites calibration_site
#define CALIBRATION_PAIR(index, steps)                                                                         \
    static __attribute__((noinline)) unsigned calibration_plain_##steps(unsigned x)                            \
    {                                                                                                          \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }                                                                                                          \
    static __attribute__((noinline)) unsigned calibration_guarded_##steps(unsigned x)                          \
    {                                                                                                          \
        int __cprof_guard __attribute__((cleanup(__cprof_leave), unused)) =                                    \
            __cprof_enter(&__cprof_sites[index], &__cprof_guard);                                              \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }
CALIBRATION_PAIR(0, 0)
CALIBRATION_PAIR(1, 1)
CALIBRATION_PAIR(2, 3)
CALIBRATION_PAIR(3, 8)
CALIBRATION_PAIR(4, 20)
#undef __cprof_sites

/* A count-only guard, counting into a scratch block through a thread-local pointer as in the user's units (see
 * COUNT_GUARD in cprof/instrument/splice.py). What an increment costs depends on its neighbours: increments back
 * to back with nothing between (fib, whose calls gcc makes nearly free) chain through memory, one store-to-load
 * forwarding each, while work around them hides most of the cost. Both ends are measured: a loop of bare
 * increments, and a call that does the largest calibration work. */
static struct __cprof_site calibration_count_site = {"<calibration>", "", 9, CPROF_FN_COUNTED, 1, 0};
static struct __cprof_count_table calibration_count_table = {1, 0, &calibration_count_site};
static cprof_u64 calibration_count_values[1];
static __thread cprof_u64 *calibration_count_block __attribute__((tls_model("initial-exec")));
#define CALIBRATION_COUNTED(steps)                                                                             \
    static __attribute__((noinline)) unsigned calibration_counted_##steps(unsigned x)                          \
    {                                                                                                          \
        int counted __attribute__((unused)) =                                                                  \
            __cprof_count(&calibration_count_block, &calibration_count_table, 0);                              \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }
CALIBRATION_COUNTED(20)

static cprof_u64 chained_increments(int count, int counting)
{
    cprof_u64 start = now_ticks();
    int i;
    for (i = 0; i < count; i++) {
        if (counting)
            __cprof_count(&calibration_count_block, &calibration_count_table, 0);
        __asm__ __volatile__("" ::: "memory"); /* every increment goes to memory, as in separate calls */
    }
    return now_ticks() - start;
}

typedef unsigned (*calibration_function)(unsigned);

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *values, size_t count)
{
    qsort(values, count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

static double spread_of(const double *values, size_t count, double median)
{
    double deviations[64];
    size_t i;
    for (i = 0; i < count; i++)
        deviations[i] = values[i] > median ? values[i] - median : median - values[i];
    return median_of(deviations, count);
}

static cprof_u64 loop_ticks(calibration_function function, int calls, unsigned *sink)
{
    cprof_u64 start = now_ticks();
    unsigned x = *sink;
    int i;
    for (i = 0; i < calls; i++)
        x = function(x);
    *sink = x;
    return now_ticks() - start;
}

void cprof_calibrate_guard(void)
{
    enum { ROUNDS = 9, CALLS = 500 };
    static const calibration_function plain[CALIBRATION_SIZES] = {calibration_plain_0, calibration_plain_1,
        calibration_plain_3, calibration_plain_8, calibration_plain_20};
    static const calibration_function guarded[CALIBRATION_SIZES] = {calibration_guarded_0, calibration_guarded_1,
        calibration_guarded_3, calibration_guarded_8, calibration_guarded_20};
    static struct cprof_node nodes[1 + CALIBRATION_SIZES];
    static struct cprof_frame frames[8];
    static struct cprof_thread_record scratch;
    double inner[CALIBRATION_SIZES][ROUNDS], outer[CALIBRATION_SIZES][ROUNDS], chained[ROUNDS], hidden[ROUNDS];
    double chained_median, hidden_median;
    double inner_by_size[CALIBRATION_SIZES], outer_by_size[CALIBRATION_SIZES];
    double inner_mean = 0, outer_mean = 0, inner_noise = 0, outer_noise = 0, inner_low, inner_high, outer_low,
           outer_high;
    struct __cprof_thread_hot *saved = __cprof_tls;
    unsigned sink = 1;
    int round, size;
    frames[0].node = as_u64(&nodes[0]);
    frames[0].frame_address = ~0ull;
    scratch.top = as_u64(&frames[0]);
    scratch.limit = as_u64(&frames[8]);
    for (size = 0; size < CALIBRATION_SIZES; size++) {
        nodes[1 + size].parent = as_u64(&nodes[0]);
        calibration_site[size].cache = (struct __cprof_node_hot *)&nodes[1 + size];
    }
    __cprof_tls = (struct __cprof_thread_hot *)&scratch;
    for (round = 0; round < ROUNDS; round++)
        for (size = 0; size < CALIBRATION_SIZES; size++) {
            cprof_u64 inside = nodes[1 + size].total_ticks;
            double empty = (double)loop_ticks(plain[0], CALLS, &sink);
            double work = (double)loop_ticks(plain[size], CALLS, &sink);
            double with_guard = (double)loop_ticks(guarded[size], CALLS, &sink);
            inside = nodes[1 + size].total_ticks - inside;
            /* the callee's own work, as the plain program spends it, is what the loop adds over the empty call */
            inner[size][round] = ((double)inside - (work - empty)) / CALLS;
            outer[size][round] = (with_guard - work) / CALLS - inner[size][round];
        }
    calibration_count_block = calibration_count_values;
    for (round = 0; round < ROUNDS; round++) {
        double bare = (double)chained_increments(CALLS, 0);
        double work = (double)loop_ticks(calibration_plain_20, CALLS, &sink);
        chained[round] = ((double)chained_increments(CALLS, 1) - bare) / CALLS;
        hidden[round] = ((double)loop_ticks(calibration_counted_20, CALLS, &sink) - work) / CALLS;
    }
    chained_median = median_of(chained, ROUNDS);
    hidden_median = median_of(hidden, ROUNDS);
    chained_median = chained_median > 0 ? chained_median : 0;
    hidden_median = hidden_median > 0 ? hidden_median : 0;
    /* the middle of the two ends, and half their distance plus the rounds' noise as the spread */
    cprof_rt.header->count_guard_ticks = (chained_median + hidden_median) / 2;
    cprof_rt.header->count_guard_spread = (chained_median > hidden_median ? chained_median - hidden_median
                                                                    : hidden_median - chained_median) / 2 +
                                    (spread_of(chained, ROUNDS, chained_median) +
                                     spread_of(hidden, ROUNDS, hidden_median)) / 2;
    __cprof_tls = saved;
    for (size = 0; size < CALIBRATION_SIZES; size++) {
        inner_by_size[size] = median_of(inner[size], ROUNDS);
        outer_by_size[size] = median_of(outer[size], ROUNDS);
        inner_noise += spread_of(inner[size], ROUNDS, inner_by_size[size]) / CALIBRATION_SIZES;
        outer_noise += spread_of(outer[size], ROUNDS, outer_by_size[size]) / CALIBRATION_SIZES;
        inner_mean += inner_by_size[size] / CALIBRATION_SIZES;
        outer_mean += outer_by_size[size] / CALIBRATION_SIZES;
    }
    inner_low = inner_high = inner_by_size[0];
    outer_low = outer_high = outer_by_size[0];
    for (size = 1; size < CALIBRATION_SIZES; size++) {
        inner_low = inner_by_size[size] < inner_low ? inner_by_size[size] : inner_low;
        inner_high = inner_by_size[size] > inner_high ? inner_by_size[size] : inner_high;
        outer_low = outer_by_size[size] < outer_low ? outer_by_size[size] : outer_low;
        outer_high = outer_by_size[size] > outer_high ? outer_by_size[size] : outer_high;
    }
    cprof_rt.header->guard_inner_ticks = inner_mean;
    cprof_rt.header->guard_outer_ticks = outer_mean;
    cprof_rt.header->guard_inner_spread = (inner_high - inner_low) / 2 + inner_noise;
    cprof_rt.header->guard_outer_spread = (outer_high - outer_low) / 2 + outer_noise;
    cprof_rt.header->calibration_rounds = ROUNDS;
}

/* ---- control from user code (cprof.h) ------------------------------------------------------------------- */

void cprof_set_enabled(int enabled)
{
    if (cprof_process_start() != 0)
        return;
    /* leaving mode 2 would hand timing back to an inline counter that is not valid here */
    if (enabled)
        __cprof_mode = (cprof_rt.timer.kind == CPROF_TIMER_MONOTONIC || cprof_rt.cpu_time) ? 2 : 0;
    else
        __cprof_mode = 1;
}
