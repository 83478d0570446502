/* calibration.c — measures at start-up what the guard costs on this machine, with the real inline guard, into the
 * run header (the reports give that cost back: cprof/model/correction.py). */
#define _GNU_SOURCE
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

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
/* The measured functions and the loop that calls them start on a 64-byte line: a call of a few instructions costs
 * what its branches' places in the instruction fetch make it cost, and without this the runtime's layout decided
 * (a change to sampling.c alone tripled the exposed count cost measured here; aligned, it is nearly nothing). */
#define CALIBRATION_CODE __attribute__((noinline, aligned(64)))
enum { CALIBRATION_SIZES = 5 };
static struct __cprof_site calibration_site[CALIBRATION_SIZES] = {
    {"<calibration>", "", 0, 0, 1, 0}, {"<calibration>", "", 1, 0, 1, 0}, {"<calibration>", "", 2, 0, 1, 0},
    {"<calibration>", "", 3, 0, 1, 0}, {"<calibration>", "", 4, 0, 1, 0}};
#define __cprof_sites calibration_site
#define CALIBRATION_PAIR(index, steps)                                                                         \
    static CALIBRATION_CODE unsigned calibration_plain_##steps(unsigned x)                                     \
    {                                                                                                          \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }                                                                                                          \
    static CALIBRATION_CODE unsigned calibration_guarded_##steps(unsigned x)                                   \
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
 * COUNT_GUARD in cprof/instrument/splice.py). What an increment costs depends on its neighbours: a chain of
 * dependent work hides nearly all of it (the floor the report never goes below), and in calls that do nothing
 * else, back to back, it costs what the places of a few branches make it cost: no longer measured, as it told the
 * code's layout, not the count's cost (the report gives back what real programs pay instead: COUNT_COST_NS in
 * cprof/model/correction.py). A striped count (__cprof_count_striped) is no longer measured either: in a recursion
 * that does nothing else, of fib's shape, it read 0.27-0.65 ns from run to run as this code's alignment moved,
 * where fib itself pays about what the median program pays (scripts/bench_adaptive.py). */
static struct __cprof_site calibration_count_site = {"<calibration>", "", 9, CPROF_FN_COUNTED, 1, 0};
static struct __cprof_count_table calibration_count_table = {1, 0, &calibration_count_site};
static struct __cprof_counter calibration_count_values[1];
/* Not thread-local, unlike the user's pointer: in this shared library a thread-local one costs a load from the GOT
 * before the thread-local load, which in an executable the linker turns into a constant. A global costs one load,
 * as the executable's thread-local pointer does. The calibration runs in one thread, before the program's. */
static struct __cprof_counter *calibration_count_block;
#define CALIBRATION_COUNTED(steps)                                                                             \
    static CALIBRATION_CODE unsigned calibration_counted_##steps(unsigned x)                                   \
    {                                                                                                          \
        int counted __attribute__((unused)) =                                                                  \
            __cprof_count(&calibration_count_block, &calibration_count_table, 0);                              \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }
CALIBRATION_COUNTED(20)

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

static double non_negative(double value) { return value > 0 ? value : 0; }

static CALIBRATION_CODE cprof_u64 loop_ticks(calibration_function function, int calls, unsigned *sink)
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
    /* a traced run's guard appends every exit: measured into a table of its own, which trace.c reuses when full */
    static struct {
        struct cprof_trace_record table;
        struct cprof_trace_event events[256];
    } scratch_trace = {.table = {.capacity = 256}};
    double inner[CALIBRATION_SIZES][ROUNDS], outer[CALIBRATION_SIZES][ROUNDS], hidden[ROUNDS];
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
    scratch.trace = as_u64(&scratch_trace.table);
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
        double work = (double)loop_ticks(calibration_plain_20, CALLS, &sink);
        hidden[round] = ((double)loop_ticks(calibration_counted_20, CALLS, &sink) - work) / CALLS;
    }
    cprof_rt.header->count_guard_ticks = non_negative(median_of(hidden, ROUNDS));
    cprof_rt.header->count_guard_spread = spread_of(hidden, ROUNDS, cprof_rt.header->count_guard_ticks);
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

