/* fib.c — naive recursive Fibonacci: a few ns of real work per call, where a guard costs many times the work. */
#include <stdio.h>
#include <stdlib.h>
#include "work_timer.h"

__attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static volatile int result;

__attribute__((noinline)) void benchmark(int n) { result = fib(n); }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30;
    TIME_WORK(benchmark(n));
    printf("%d\n", result);
    return 0;
}
