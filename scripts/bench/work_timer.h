/* work_timer.h — how the benchmark programs time their own measured work: `work_ns N` on standard error, which
 * the benchmark scripts read (start-up, exit and trace writing stay outside the measurement). */
#ifndef BENCH_WORK_TIMER_H
#define BENCH_WORK_TIMER_H
#include <stdio.h>
#include <time.h>

#define TIME_WORK(statement)                                                                                   \
    do {                                                                                                       \
        struct timespec work_start_, work_end_;                                                                \
        clock_gettime(CLOCK_MONOTONIC, &work_start_);                                                          \
        statement;                                                                                             \
        clock_gettime(CLOCK_MONOTONIC, &work_end_);                                                            \
        fprintf(stderr, "work_ns %lld\n", (long long)((work_end_.tv_sec - work_start_.tv_sec) * 1000000000LL + \
                                                      (work_end_.tv_nsec - work_start_.tv_nsec)));             \
    } while (0)
#endif
