/* ratio.c — three functions doing 6:3:1 units of the same work: a profiler must report 60/30/10%. */
#include <stdio.h>
#include "work_timer.h"

static volatile unsigned sink;

/* the work is written into each function, so that it is their own (self) time */
#define WORK(units)                                                                                            \
    do {                                                                                                       \
        unsigned i, x = sink;                                                                                  \
        for (i = 0; i < (units) * 200000u; i++)                                                                \
            x = x * 1664525u + 1013904223u;                                                                    \
        sink = x;                                                                                              \
    } while (0)

__attribute__((noinline)) void six(void) { WORK(6); }
__attribute__((noinline)) void three(void) { WORK(3); }
__attribute__((noinline)) void one(void) { WORK(1); }

__attribute__((noinline)) void benchmark(void)
{
    int round;
    for (round = 0; round < 100; round++) {
        six();
        three();
        one();
    }
}

int main(void)
{
    TIME_WORK(benchmark());
    return 0;
}
