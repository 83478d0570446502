/* timer.c — picks the cheapest trustworthy counter and calibrates its frequency against CLOCK_MONOTONIC. */
#define _GNU_SOURCE
#include "timer.h"
#include "runfile.h"

#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cprof_monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t cprof_realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }
uint64_t cprof_thread_cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static int has_rdtscp(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx))
        return 0;
    return (edx >> 27) & 1u;
#else
    return 0;
#endif
}

static int tsc_is_invariant(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) || eax < 0x80000007u)
        return 0;
    __get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx);
    return (edx >> 8) & 1u;
#else
    return 0;
#endif
}

uint64_t cprof_timer_ticks(const struct cprof_timer_info *info)
{
    switch (info->kind) {
#if defined(__x86_64__) || defined(__i386__)
    case CPROF_TIMER_TSC:
        if (info->ordered) {
            unsigned aux;
            return __rdtscp(&aux);
        }
        return __rdtsc();
#endif
#if defined(__aarch64__)
    case CPROF_TIMER_CNTVCT: {
        uint64_t value;
        __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(value));
        return value;
    }
#endif
    default:
        return cprof_monotonic_ns();
    }
}

/* One counter read bracketed by two clock reads, the tightest of a few tries: a read pair the scheduler cut in two
 * (a preemption between the reads) has a wide bracket and is never used. */
void cprof_timer_pair(const struct cprof_timer_info *info, uint64_t *ticks, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    int attempt;
    for (attempt = 0; attempt < 8; attempt++) {
        uint64_t before = cprof_monotonic_ns(), t = cprof_timer_ticks(info), after = cprof_monotonic_ns();
        if (after - before < best) {
            best = after - before;
            *ticks = t;
            *ns = before + (after - before) / 2;
        }
    }
}

/* Calibrate over a short spin between two tight read pairs; the run's start and clean-exit pairs later refine
 * the figure over the whole run. */
static double calibrate(const struct cprof_timer_info *info, uint64_t spin_ns)
{
    uint64_t t0, ns0, t1, ns1;
    cprof_timer_pair(info, &t0, &ns0);
    do
        cprof_timer_pair(info, &t1, &ns1);
    while (ns1 - ns0 < spin_ns);
    if (ns1 == ns0 || t1 == t0)
        return 0.0;
    return (double)(t1 - t0) * 1e9 / (double)(ns1 - ns0);
}

void cprof_timer_init(struct cprof_timer_info *info, uint64_t spin_ns, enum cprof_timer_choice choice)
{
    info->invariant_tsc = tsc_is_invariant();
    info->ordered = choice == CPROF_TIMER_CHOICE_ORDERED && has_rdtscp();
#if defined(__x86_64__) || defined(__i386__)
    info->kind = info->invariant_tsc ? CPROF_TIMER_TSC : CPROF_TIMER_MONOTONIC;
#elif defined(__aarch64__)
    info->kind = CPROF_TIMER_CNTVCT;
#else
    info->kind = CPROF_TIMER_MONOTONIC;
#endif
    if (choice == CPROF_TIMER_CHOICE_CLOCK) /* also what a machine without a trustworthy counter gets */
        info->kind = CPROF_TIMER_MONOTONIC;
    if (info->kind == CPROF_TIMER_MONOTONIC) {
        info->ordered = 0;
        info->ticks_per_second = 1e9;
        return;
    }
#if defined(__aarch64__)
    {
        uint64_t freq;
        __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(freq));
        if (freq) {
            info->ticks_per_second = (double)freq;
            return;
        }
    }
#endif
    info->ticks_per_second = calibrate(info, spin_ns);
    if (info->ticks_per_second <= 0.0) {
        info->kind = CPROF_TIMER_MONOTONIC;
        info->ticks_per_second = 1e9;
    }
}

const char *cprof_timer_name(uint32_t kind)
{
    switch (kind) {
    case CPROF_TIMER_TSC:
        return "tsc";
    case CPROF_TIMER_CNTVCT:
        return "cntvct";
    default:
        return "clock_gettime";
    }
}
