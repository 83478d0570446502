/* fib.c — naive recursive Fibonacci: a few ns of real work per call, where a guard costs many times the work. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static volatile int result;

__attribute__((noinline)) void benchmark(int n) { result = fib(n); }

int main(int argc, char **argv)
{
    struct timespec a, b;
    int n = argc > 1 ? atoi(argv[1]) : 30;
    clock_gettime(CLOCK_MONOTONIC, &a);
    benchmark(n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "work_ns %lld\n", (long long)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec)));
    printf("%d\n", result);
    return 0;
}
