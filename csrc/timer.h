/* timer.h — the runtime's clocks: which counter the guard reads and how ticks convert to seconds. */
#ifndef CPROF_TIMER_H
#define CPROF_TIMER_H

#include <stdint.h>

struct cprof_timer_info {
    uint32_t kind;              /* CPROF_TIMER_* from runfile.h */
    int invariant_tsc;          /* CPUID says the TSC runs at a constant rate in all P/C states */
    int ordered;                /* reads wait for earlier instructions (rdtscp on x86-64) */
    double ticks_per_second;
};

/* How the user asked to read time: the best counter (ordered), a plain counter read, or clock_gettime. */
enum cprof_timer_choice { CPROF_TIMER_CHOICE_ORDERED, CPROF_TIMER_CHOICE_FAST, CPROF_TIMER_CHOICE_CLOCK };

/* Chooses the counter (TSC only when invariant; ordered reads unless asked otherwise or the CPU lacks rdtscp)
 * and calibrates it against CLOCK_MONOTONIC for `spin_ns`. */
void cprof_timer_init(struct cprof_timer_info *info, uint64_t spin_ns, enum cprof_timer_choice choice);
uint64_t cprof_timer_ticks(const struct cprof_timer_info *info);
/* A counter read and the CLOCK_MONOTONIC time it was taken at, free of preemption between the two. */
void cprof_timer_pair(const struct cprof_timer_info *info, uint64_t *ticks, uint64_t *ns);
uint64_t cprof_monotonic_ns(void);
uint64_t cprof_realtime_ns(void);
uint64_t cprof_thread_cpu_ns(void);
const char *cprof_timer_name(uint32_t kind);

#endif
