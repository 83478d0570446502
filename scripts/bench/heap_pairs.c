/* heap_pairs.c — malloc+free pairs of varied sizes in one function, for what heap tracking adds to each pair
 * (scripts/bench_heap.py). The blocks are written to, so that no compiler drops the pair. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) unsigned long pairs(long count)
{
    unsigned long sum = 0, state = 12345;
    long i;
    for (i = 0; i < count; i++) {
        size_t size = 16 + (state >> 33) % 1008; /* 16..1023 bytes, as small objects are */
        unsigned char *block = malloc(size);
        block[0] = (unsigned char)i;
        block[size - 1] = (unsigned char)state;
        sum += block[0] + block[size - 1];
        free(block);
        state = state * 6364136223846793005ul + 1442695040888963407ul;
    }
    return sum;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 2000000;
    printf("%lu\n", pairs(count));
    return 0;
}
