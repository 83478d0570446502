/* trace_calls.c — ROUNDS (the argument) times a million calls of a ~5 ns leaf: what the trace costs per call is
 * the slope between two round counts (scripts/bench_trace.py). */
#include <stdlib.h>

static volatile unsigned sink;

/* three dependent shift-xor-multiply steps (about 15 cycles) that the compiler cannot fold */
__attribute__((noinline)) static unsigned leaf(unsigned x)
{
    x = (x ^ (x >> 7)) * 0x9E3779B1u;
    x = (x ^ (x >> 11)) * 0x85EBCA6Bu;
    x = (x ^ (x >> 13)) * 0xC2B2AE35u;
    return x;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 1, i, x = sink;
    for (i = 0; i < rounds * 1000000u; i++)
        x = leaf(x) ^ i;
    sink = x;
    return 0;
}
