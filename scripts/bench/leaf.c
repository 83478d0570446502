/* leaf.c — a parent calling a ~5 ns leaf ten million times. Built with -DNO_LEAF_CALL, the same loop without the
 * call: the difference of the two plain builds is the leaf's true cost. */
#include <stdio.h>
#include "work_timer.h"

static volatile unsigned sink;

/* three dependent shift-xor-multiply steps (about 15 cycles) that the compiler cannot fold */
__attribute__((noinline)) static unsigned leaf(unsigned x)
{
    x = (x ^ (x >> 7)) * 0x9E3779B1u;
    x = (x ^ (x >> 11)) * 0x85EBCA6Bu;
    x = (x ^ (x >> 13)) * 0xC2B2AE35u;
    return x;
}

__attribute__((noinline)) void parent(void)
{
    unsigned i, x = sink;
    for (i = 0; i < 10000000u; i++) {
#ifdef NO_LEAF_CALL
        __asm__ __volatile__("" : "+r"(x));
#else
        x = leaf(x);
#endif
        x ^= i;
    }
    sink = x;
}

int main(void)
{
    TIME_WORK(parent());
    return 0;
}
