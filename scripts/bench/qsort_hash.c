/* qsort_hash.c — qsort of a million ints through a comparison callback, then building, hashing and inserting
 * keys into a table: about 37 ns of real work per call, the middle ground of call density. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "work_timer.h"

#define COUNT 1000000
#define TABLE (1 << 21)

static unsigned long long state = 0x9E3779B97F4A7C15ull;
static int values[COUNT];
static struct slot { char key[24]; int value; } table[TABLE];

__attribute__((noinline)) static unsigned next_random(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)state;
}

__attribute__((noinline)) static int compare(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) static void make_key(char *out, int value)
{
    snprintf(out, 24, "key-%d", value);
}

__attribute__((noinline)) static unsigned hash_key(const char *key)
{
    unsigned hash = 2166136261u;
    while (*key)
        hash = (hash ^ (unsigned char)*key++) * 16777619u;
    return hash;
}

__attribute__((noinline)) static void insert(const char *key, int value)
{
    unsigned at = hash_key(key) & (TABLE - 1);
    while (table[at].key[0] && strcmp(table[at].key, key) != 0)
        at = (at + 1) & (TABLE - 1);
    memcpy(table[at].key, key, 24);
    table[at].value = value;
}

__attribute__((noinline)) void benchmark(void)
{
    char key[24];
    int i;
    for (i = 0; i < COUNT; i++)
        values[i] = (int)(next_random() % 100000000u);
    qsort(values, COUNT, sizeof *values, compare);
    for (i = 0; i < COUNT; i++) {
        make_key(key, values[i]);
        insert(key, i);
    }
}

int main(void)
{
    TIME_WORK(benchmark());
    return 0;
}
