/* floor_runtime.c — the cost floor cprof is measured against: a minimal -finstrument-functions runtime with a
 * thread-local shadow stack, two rdtsc per call and per-function totals in a thread-local hash table. It is
 * compiled without -finstrument-functions and linked into the "floor" variant of each benchmark. */
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

#define DEPTH 65536
#define SLOTS 65536 /* power of two, above the largest benchmark's function count */

struct frame { void *function; uint64_t start; };
struct slot { void *function; uint64_t calls, ticks; };

static __thread struct frame stack[DEPTH];
static __thread unsigned depth;
static __thread struct slot table[SLOTS];

__attribute__((no_instrument_function)) void __cyg_profile_func_enter(void *function, void *site)
{
    (void)site;
    stack[depth].function = function;
    stack[depth].start = __rdtsc();
    depth++;
}

__attribute__((no_instrument_function)) void __cyg_profile_func_exit(void *function, void *site)
{
    uint64_t now = __rdtsc();
    uintptr_t at = ((uintptr_t)function >> 4) & (SLOTS - 1);
    (void)site;
    depth--;
    while (table[at].function && table[at].function != function)
        at = (at + 1) & (SLOTS - 1);
    table[at].function = function;
    table[at].calls++;
    table[at].ticks += now - stack[depth].start;
}
