/* heap.c — sees every heap operation of the program and charges it to the call path and the instruction that made
 * it; included by heap_interposed.c (the shared runtime: malloc & co. defined in front of libc's) and by
 * heap_wrapped.c (a -static link: the linker's --wrap routes every call here), which define HEAP_ENTRY and REAL.
 *
 * Why a header in front of every block, and not a table of live blocks: whoever frees a block (another thread, a
 * libc function) must find its size and its allocation site, and a shared table costs an atomic operation and a
 * cache miss per call on a big heap, where the 16 bytes in front of the block sit in the cache line the allocator
 * touches anyway. The header holds the site and a word with a magic number, the fork generation, the block's
 * alignment and its size; glibc's own chunk header keeps the top bits of that word zero, so a block the runtime
 * did not hand out (allocated while tracking was deciding, or by a program calling __libc_malloc) is recognised and
 * passed through untouched. With tracking off (CPROF_HEAP=0) nothing gets a header, and the only cost left is a
 * predictable branch per call.
 *
 * Nothing here may call malloc: the runtime's memory comes from the run file's arena. */
#include "heap.h"
#include "cprof_guard.h"
#include "runtime_internal.h"
#include "sampling.h"
#include "timer.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the word in front of the block: magic (12 bits) | fork epoch (4) | log2 of the offset to the real block (6) |
 * bytes asked for (42) */
#define HEADER_MAGIC 0xC9Full
#define MAGIC_SHIFT 52
#define EPOCH_SHIFT 48
#define OFFSET_SHIFT 42
#define SIZE_MASK ((1ull << OFFSET_SHIFT) - 1)
#define HEADER_BYTES 16u  /* keeps malloc's 16-byte alignment */

struct block_header {
    cprof_u64 site; /* struct cprof_heap_site *: where it was allocated */
    cprof_u64 word;
};

enum heap_state { HEAP_UNDECIDED, HEAP_DECIDING, HEAP_PASS_THROUGH, HEAP_TRACKING };

static struct {
    int state;
    unsigned epoch;
    unsigned source;                 /* CPROF_HEAP_* decided at the first call */
    struct cprof_heap_record *record;
    struct cprof_run_header *header;
    cprof_u64 stamped_peak;          /* the peak whose time was last taken */
    int snapshot_lock;
} heap;

/* Before the runtime has a run file, allocations are charged here and folded into the record's outside site. */
static struct cprof_heap_site early_site;
static cprof_u64 early_untracked;

static __thread struct cprof_heap_sites_record *site_table __attribute__((tls_model("initial-exec")));
static __thread struct cprof_thread_record *site_table_owner __attribute__((tls_model("initial-exec")));
static __thread struct cprof_heap_site *last_site __attribute__((tls_model("initial-exec")));
static __thread void *last_block __attribute__((tls_model("initial-exec"))); /* this thread's latest allocation */
static __thread int paused __attribute__((tls_model("initial-exec")));       /* the runtime's own calls (heap.h) */

static void decide(void);

/* Inline, like the entry points' own paths below: the program pays for every malloc and free, also with tracking
 * off or profiling switched off, where a chain of calls in front of libc's cost libyaml's parser about 9% (by
 * perf, switched off). */
static __inline__ __attribute__((always_inline)) int tracking(void)
{
    if (__builtin_expect(heap.state >= HEAP_PASS_THROUGH, 1))
        return heap.state == HEAP_TRACKING && !paused;
    if (__atomic_load_n(&heap.state, __ATOMIC_ACQUIRE) == HEAP_UNDECIDED)
        decide();
    return __atomic_load_n(&heap.state, __ATOMIC_ACQUIRE) == HEAP_TRACKING && !paused;
}

void cprof_heap_pause(int pause) { paused = pause; }

/* Calls made while deciding (the symbol lookup may allocate) pass through: their blocks carry no header. */
static void decide(void)
{
    int expected = HEAP_UNDECIDED, state = HEAP_PASS_THROUGH;
    const char *setting;
    if (!__atomic_compare_exchange_n(&heap.state, &expected, HEAP_DECIDING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    setting = getenv("CPROF_HEAP");
    heap.source = HEAP_LINKAGE;
    /* Profiling switched off for the process (CPROF_DISABLE) records nothing, so nothing is worth a header: tracking
     * would still charge every call to the shared outside site, three atomic adds each (GNU bc switched off ran 7%
     * over plain with them, 4% without). */
    if ((setting && strcmp(setting, "0") == 0) || cprof_env_flag("CPROF_DISABLE"))
        heap.source = CPROF_HEAP_OFF;
    else if (heap_foreign_allocator())
        heap.source = CPROF_HEAP_FOREIGN;
    else
        state = HEAP_TRACKING;
    __atomic_store_n(&heap.state, state, __ATOMIC_RELEASE);
}

/* ---- sites ------------------------------------------------------------------------------------------------ */

static struct cprof_heap_sites_record *new_site_table(struct cprof_thread_record *thread)
{
    struct cprof_heap_sites_record *table = (struct cprof_heap_sites_record *)cprof_arena_chunk();
    if (!table)
        return NULL;
    table->thread = (cprof_u64)(uintptr_t)thread;
    table->capacity = (cprof_u32)((CPROF_CHUNK_SIZE - sizeof *table) / sizeof(struct cprof_heap_site));
    table->head.size = CPROF_CHUNK_SIZE;
    table->next = __atomic_load_n(&heap.record->sites_head, __ATOMIC_RELAXED);
    __asm__ __volatile__("" ::: "memory");
    table->head.kind = CPROF_REC_HEAP_SITES;
    while (!__atomic_compare_exchange_n(&heap.record->sites_head, &table->next, (cprof_u64)(uintptr_t)table, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    return table;
}

/* The thread's entry for (node, ip). Loops allocate from one place over and over: the last entry is tried first. */
static struct cprof_heap_site *thread_site(struct cprof_thread_record *thread, cprof_u64 node, cprof_u64 ip)
{
    struct cprof_heap_sites_record *table = site_table;
    struct cprof_heap_site *entries, *site = last_site;
    size_t at, probe;
    if (site && site->node == node && site->ip == ip && site_table_owner == thread)
        return site;
    /* a table three quarters full keeps probes short: the next sites go to a new one (readers add them up) */
    if (site_table_owner != thread || !table || (size_t)table->used * 4 >= (size_t)table->capacity * 3) {
        table = new_site_table(thread);
        if (!table)
            return NULL;
        site_table = table;
        site_table_owner = thread;
    }
    entries = (struct cprof_heap_site *)(table + 1);
    at = (size_t)(((node >> 6) * 0x9E3779B97F4A7C15ull) ^ (ip * 0xC2B2AE3D27D4EB4Full)) % table->capacity;
    for (probe = 0; probe < table->capacity; probe++) {
        site = &entries[at];
        if (!site->ip) {
            site->node = node;
            site->thread = (cprof_u64)(uintptr_t)thread;
            __asm__ __volatile__("" ::: "memory");
            site->ip = ip;
            table->used++;
            return last_site = site;
        }
        if (site->node == node && site->ip == ip)
            return last_site = site;
        at = at + 1 == table->capacity ? 0 : at + 1;
    }
    return NULL;
}

static cprof_u64 site_live_bytes(const struct cprof_heap_site *site)
{
    return site->alloc_bytes - site->released_bytes - site->remote_released_bytes;
}

static cprof_u64 site_live_blocks(const struct cprof_heap_site *site)
{
    return site->alloc_count - site->released_count - site->remote_released_count;
}

/* The live bytes of every site, copied when the heap grows past the last copy by a sixteenth: the call paths
 * holding the most at the peak, to within that much. Rare (a heap growing a thousandfold takes ~110 copies).
 * With `live` 0, only the live blocks are counted. */
static void take_snapshot(cprof_u64 live)
{
    struct cprof_heap_record *record = heap.record;
    const struct cprof_heap_sites_record *table;
    cprof_u64 blocks;
    if (__atomic_exchange_n(&heap.snapshot_lock, 1, __ATOMIC_ACQUIRE))
        return; /* another thread is taking one */
    record->outside.peak_bytes = site_live_bytes(&record->outside);
    blocks = site_live_blocks(&record->outside);
    for (table = (const void *)(uintptr_t)__atomic_load_n(&record->sites_head, __ATOMIC_ACQUIRE); table;
         table = (const void *)(uintptr_t)table->next) {
        struct cprof_heap_site *entries = (struct cprof_heap_site *)(table + 1);
        size_t i;
        for (i = 0; i < table->capacity; i++)
            if (entries[i].ip) {
                if (live)
                    entries[i].peak_bytes = site_live_bytes(&entries[i]);
                blocks += site_live_blocks(&entries[i]);
            }
    }
    record->live_blocks = blocks;
    if (!live) { /* only the blocks were wanted (at exit) */
        __atomic_store_n(&heap.snapshot_lock, 0, __ATOMIC_RELEASE);
        return;
    }
    record->snapshot_bytes = live;
    record->snapshot_ticks = cprof_runtime_ticks();
    __atomic_store_n(&heap.snapshot_lock, 0, __ATOMIC_RELEASE);
}

/* One atomic operation per call (the process's live bytes, for its peak): blocks are counted per site instead,
 * where only the owning thread writes. */
static void live_changed(cprof_u64 size, int allocated)
{
    struct cprof_heap_record *record = heap.record;
    cprof_u64 live;
    if (!allocated) {
        __atomic_fetch_sub(&record->live_bytes, size, __ATOMIC_RELAXED);
        return;
    }
    live = __atomic_add_fetch(&record->live_bytes, size, __ATOMIC_RELAXED);
    if (__builtin_expect(live <= record->peak_bytes, 1))
        return;
    record->peak_bytes = live; /* racing threads may lower it by a block: both were peaks within a block */
    if (live - heap.stamped_peak > heap.stamped_peak / 256) {
        heap.stamped_peak = live;
        record->peak_ticks = cprof_runtime_ticks();
    }
    if (live > record->snapshot_bytes + record->snapshot_bytes / 16 + 4096)
        take_snapshot(live);
}

/* Charges an allocation of `size` bytes asked for at `ip`; returns the site its header names. */
static struct cprof_heap_site *charge_allocation(cprof_u64 size, cprof_u64 ip, int from_realloc)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_heap_site *site = NULL;
    if (__builtin_expect(thread && __cprof_mode != 1 && !thread->busy && heap.record, 1)) {
        struct cprof_node *node = (struct cprof_node *)(uintptr_t)((struct cprof_frame *)(uintptr_t)thread->top)->node;
        node->alloc_count++;
        node->alloc_bytes += size;
        node->realloc_count += (cprof_u64)from_realloc;
        site = thread_site(thread, (cprof_u64)(uintptr_t)node, ip);
        if (site) {
            site->alloc_count++;
            site->alloc_bytes += size;
            site->realloc_count += (cprof_u64)from_realloc;
        }
    }
    if (!site) { /* shared by every thread: atomic */
        site = heap.record ? &heap.record->outside : &early_site;
        __atomic_fetch_add(&site->alloc_count, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&site->alloc_bytes, size, __ATOMIC_RELAXED);
        __atomic_fetch_add(&site->realloc_count, (cprof_u64)from_realloc, __ATOMIC_RELAXED);
    }
    if (heap.record)
        live_changed(size, 1);
    return site;
}

/* Charges a free (or the release of a realloc's old block) to the freeing call and back to the block's site. */
static void charge_release(void *pointer, const struct block_header *block)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_heap_site *site = (struct cprof_heap_site *)(uintptr_t)block->site;
    cprof_u64 size = block->word & SIZE_MASK;
    cprof_u64 node = 0;
    int own_epoch = ((block->word >> EPOCH_SHIFT) & 15u) == heap.epoch;
    if (thread && __cprof_mode != 1 && !thread->busy && heap.record) {
        struct cprof_node *current =
            (struct cprof_node *)(uintptr_t)((struct cprof_frame *)(uintptr_t)thread->top)->node;
        current->free_count++;
        current->free_bytes += size;
        node = (cprof_u64)(uintptr_t)current;
    } else if (heap.record) {
        __atomic_fetch_add(&heap.record->outside_free_count, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&heap.record->outside_free_bytes, size, __ATOMIC_RELAXED);
    }
    if (!own_epoch) { /* the parent's block, freed in a fork child: not this run's allocation */
        if (heap.record)
            __atomic_fetch_add(&heap.record->foreign_frees, 1, __ATOMIC_RELAXED);
        return;
    }
    if (site == &early_site && heap.record)
        site = &heap.record->outside;
    if (site->thread && site->thread == (cprof_u64)(uintptr_t)thread) {
        /* only the owning thread writes these: plain increments */
        site->released_count++;
        site->released_bytes += size;
        if (pointer == last_block && node == site->node)
            site->temporary_count++;
    } else { /* another thread's block (or the shared outside site): counters of their own, atomic */
        __atomic_fetch_add(&site->remote_released_count, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&site->remote_released_bytes, size, __ATOMIC_RELAXED);
    }
    if (heap.record)
        live_changed(size, 0);
}

/* ---- blocks ----------------------------------------------------------------------------------------------- */

static __inline__ __attribute__((always_inline)) int ours(const void *pointer)
{
    return pointer && (((const struct block_header *)pointer)[-1].word >> MAGIC_SHIFT) == HEADER_MAGIC;
}

static void *block_base(void *pointer)
{
    const struct block_header *block = (const struct block_header *)pointer - 1;
    return (char *)pointer - (1ull << ((block->word >> OFFSET_SHIFT) & 63u));
}

/* Writes the header in front of the program's block at base + offset (offset a power of two >= 16). */
static void *hand_out(void *base, size_t offset, size_t size, cprof_u64 ip, int from_realloc)
{
    char *pointer = (char *)base + offset;
    struct block_header *block = (struct block_header *)pointer - 1;
    block->site = (cprof_u64)(uintptr_t)charge_allocation(size, ip, from_realloc);
    block->word = (HEADER_MAGIC << MAGIC_SHIFT) | ((cprof_u64)heap.epoch << EPOCH_SHIFT) |
                  ((cprof_u64)__builtin_ctzll(offset) << OFFSET_SHIFT) | size;
    last_block = pointer;
    return pointer;
}

static int too_big(size_t size, size_t extra) { return size > SIZE_MASK - extra; }

static __inline__ __attribute__((always_inline)) void *heap_malloc(size_t size, cprof_u64 ip, int from_realloc)
{
    void *base;
    if (!tracking())
        return REAL(malloc)(size);
    if (too_big(size, HEADER_BYTES)) {
        __atomic_fetch_add(heap.record ? &heap.record->untracked : &early_untracked, 1, __ATOMIC_RELAXED);
        return REAL(malloc)(size);
    }
    base = REAL(malloc)(size + HEADER_BYTES);
    return base ? hand_out(base, HEADER_BYTES, size, ip, from_realloc) : NULL;
}

static __inline__ __attribute__((always_inline)) void heap_free(void *pointer)
{
    if (!ours(pointer)) {
        if (pointer && heap.record && heap.state == HEAP_TRACKING)
            __atomic_fetch_add(&heap.record->foreign_frees, 1, __ATOMIC_RELAXED);
        REAL(free)(pointer);
        return;
    }
    charge_release(pointer, (const struct block_header *)pointer - 1);
    REAL(free)(block_base(pointer));
}

static void *heap_calloc(size_t count, size_t size, cprof_u64 ip)
{
    size_t bytes;
    void *base;
    if (!tracking())
        return REAL(calloc)(count, size);
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    if (too_big(bytes, HEADER_BYTES))
        return REAL(calloc)(count, size);
    base = REAL(calloc)(1, bytes + HEADER_BYTES);
    return base ? hand_out(base, HEADER_BYTES, bytes, ip, 0) : NULL;
}

/* Aligned to `alignment` (a power of two above 16): the block starts `alignment` bytes into the real one. */
static void *heap_aligned(size_t alignment, size_t size, cprof_u64 ip)
{
    void *base;
    if (alignment <= HEADER_BYTES)
        return heap_malloc(size, ip, 0);
    if (too_big(size, alignment))
        return REAL(memalign)(alignment, size);
    base = REAL(memalign)(alignment, size + alignment);
    return base ? hand_out(base, alignment, size, ip, 0) : NULL;
}

static void *heap_realloc(void *pointer, size_t size, cprof_u64 ip)
{
    const struct block_header *old = (const struct block_header *)pointer - 1;
    struct block_header saved;
    void *base;
    if (!pointer)
        return tracking() ? heap_malloc(size, ip, 1) : REAL(realloc)(NULL, size);
    if (!ours(pointer))
        return REAL(realloc)(pointer, size);
    if (size == 0) { /* glibc frees the block and returns NULL */
        heap_free(pointer);
        return NULL;
    }
    saved = *old;
    if (((old->word >> OFFSET_SHIFT) & 63u) != 4u || too_big(size, HEADER_BYTES)) {
        /* an aligned block cannot move with realloc (the offset would change): copy it, as glibc would */
        size_t keep = (size_t)(old->word & SIZE_MASK);
        void *fresh = heap_malloc(size, ip, 1);
        if (!fresh)
            return NULL;
        memcpy(fresh, pointer, keep < size ? keep : size);
        heap_free(pointer);
        return fresh;
    }
    base = REAL(realloc)(block_base(pointer), size + HEADER_BYTES);
    if (!base)
        return NULL; /* the old block is untouched, and still the program's */
    charge_release(NULL, &saved);
    return hand_out(base, HEADER_BYTES, size, ip, 1);
}

static size_t heap_usable_size(void *pointer)
{
    if (!ours(pointer))
        return REAL(malloc_usable_size)(pointer);
    return REAL(malloc_usable_size)(block_base(pointer)) - (size_t)((char *)pointer - (char *)block_base(pointer));
}

static int power_of_two(size_t value) { return value && !(value & (value - 1)); }

/* ---- the functions the program calls ---------------------------------------------------------------------- */

#define CALLER ((cprof_u64)(uintptr_t)__builtin_return_address(0))

/* Nothing tracked, ever (CPROF_HEAP=0, profiling switched off, a foreign allocator): no block has a header, and
 * the two calls made most go straight to libc, before anything that would need a stack frame. */
static __inline__ __attribute__((always_inline)) int passing_through(void)
{
    return __builtin_expect(heap.state == HEAP_PASS_THROUGH, 0);
}

/* malloc's tracked path, out of line so that its entry needs no stack frame before it knows it is tracking (gcc
 * saved four registers before the test, inline); the calibration times this same call. */
static __attribute__((noinline)) void *tracked_malloc(size_t size, cprof_u64 ip)
{
    return heap_malloc(size, ip, 0);
}

void *HEAP_ENTRY(malloc)(size_t size)
{
    if (passing_through())
        return REAL(malloc)(size);
    return tracked_malloc(size, CALLER);
}

void HEAP_ENTRY(free)(void *pointer)
{
    if (passing_through())
        REAL(free)(pointer);
    else
        heap_free(pointer);
}
void *HEAP_ENTRY(calloc)(size_t count, size_t size) { return heap_calloc(count, size, CALLER); }
void *HEAP_ENTRY(realloc)(void *pointer, size_t size) { return heap_realloc(pointer, size, CALLER); }

void *HEAP_ENTRY(reallocarray)(void *pointer, size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return heap_realloc(pointer, bytes, CALLER);
}

/* glibc's memalign (and its aligned_alloc, the same function) rounds an alignment that is not a power of two up
 * to one */
static void *heap_memalign(size_t alignment, size_t size, cprof_u64 ip)
{
    if (!tracking())
        return REAL(memalign)(alignment, size);
    while (!power_of_two(alignment))
        alignment = alignment ? (alignment | (alignment - 1)) + 1 : 1;
    return heap_aligned(alignment, size, ip);
}

void *HEAP_ENTRY(memalign)(size_t alignment, size_t size) { return heap_memalign(alignment, size, CALLER); }
void *HEAP_ENTRY(aligned_alloc)(size_t alignment, size_t size) { return heap_memalign(alignment, size, CALLER); }

int HEAP_ENTRY(posix_memalign)(void **out, size_t alignment, size_t size)
{
    void *block;
    int saved = errno;
    if (!power_of_two(alignment) || alignment % sizeof(void *))
        return EINVAL;
    block = tracking() ? heap_aligned(alignment, size, CALLER) : REAL(memalign)(alignment, size);
    if (!block) {
        errno = saved;
        return ENOMEM;
    }
    *out = block;
    return 0;
}

void *HEAP_ENTRY(valloc)(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return tracking() ? heap_aligned(page, size, CALLER) : REAL(memalign)(page, size);
}

void *HEAP_ENTRY(pvalloc)(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), rounded = (size + page - 1) / page * page;
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    if (!tracking())
        return REAL(memalign)(page, rounded);
    /* the program may use every byte of the last page: that is what it asked for */
    return heap_aligned(page, rounded ? rounded : page, CALLER);
}

size_t HEAP_ENTRY(malloc_usable_size)(void *pointer) { return heap_usable_size(pointer); }

/* ---- the runtime's side ----------------------------------------------------------------------------------- */

/* ---- calibration ------------------------------------------------------------------------------------------ */

#define CALIBRATION_ROUNDS 9
#define CALIBRATION_PAIRS 2000

static int compare_costs(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sort_costs(double *values, int count) /* insertion sort: qsort may call the program's free */
{
    int i, j;
    for (i = 1; i < count; i++)
        for (j = i; j > 0 && compare_costs(&values[j - 1], &values[j]) > 0; j--) {
            double swap = values[j];
            values[j] = values[j - 1];
            values[j - 1] = swap;
        }
}

/* What tracking adds to one allocation or free, so that reports can give it back out of the self time of the
 * functions that allocated (as the guard's own cost is). Measured on the real path, malloc+free pairs through it
 * against the same pairs straight to libc, on a scratch thread state whose counts go nowhere; the heap record's
 * running totals are put back afterwards. */
static void calibrate(struct cprof_heap_record *record)
{
    static struct cprof_thread_record scratch_thread;
    static struct cprof_frame scratch_frame;
    static struct cprof_node scratch_node;
    static struct {
        struct cprof_heap_sites_record table;
        struct cprof_heap_site entries[16];
    } scratch_sites;
    struct __cprof_thread_hot *saved_tls = __cprof_tls;
    struct cprof_heap_sites_record *saved_table = site_table;
    struct cprof_thread_record *saved_owner = site_table_owner;
    struct cprof_heap_record saved_record = *record;
    cprof_u64 saved_stamp = heap.stamped_peak;
    double costs[CALIBRATION_ROUNDS], spreads[CALIBRATION_ROUNDS], median, ps_per_tick;
    int saved_paused = paused, round, i;
    if (heap.header->ticks_per_second <= 0)
        return;
    ps_per_tick = 1e12 / heap.header->ticks_per_second;
    scratch_frame.node = (cprof_u64)(uintptr_t)&scratch_node;
    scratch_thread.top = (cprof_u64)(uintptr_t)&scratch_frame;
    scratch_sites.table.capacity = 16;
    __cprof_tls = (struct __cprof_thread_hot *)&scratch_thread;
    site_table = &scratch_sites.table;
    site_table_owner = &scratch_thread;
    last_site = NULL;
    paused = 0;
    for (round = 0; round < CALIBRATION_ROUNDS; round++) {
        cprof_u64 start = cprof_runtime_ticks(), tracked, direct;
        for (i = 0; i < CALIBRATION_PAIRS; i++) {
            void *block = tracked_malloc(64, 1);
            __asm__ __volatile__("" : : "r"(block) : "memory");
            heap_free(block);
        }
        tracked = cprof_runtime_ticks() - start;
        start = cprof_runtime_ticks();
        for (i = 0; i < CALIBRATION_PAIRS; i++) {
            void *block = REAL(malloc)(64);
            __asm__ __volatile__("" : : "r"(block) : "memory");
            REAL(free)(block);
        }
        direct = cprof_runtime_ticks() - start;
        costs[round] = ((double)tracked - (double)direct) / (2.0 * CALIBRATION_PAIRS);
    }
    sort_costs(costs, CALIBRATION_ROUNDS);
    median = costs[CALIBRATION_ROUNDS / 2];
    for (round = 0; round < CALIBRATION_ROUNDS; round++)
        spreads[round] = costs[round] > median ? costs[round] - median : median - costs[round];
    sort_costs(spreads, CALIBRATION_ROUNDS);
    __cprof_tls = saved_tls;
    site_table = saved_table;
    site_table_owner = saved_owner;
    last_site = NULL;
    last_block = NULL;
    paused = saved_paused;
    heap.stamped_peak = saved_stamp;
    *record = saved_record;
    record->op_cost_ps = median > 0 ? (cprof_u64)(median * ps_per_tick) : 0;
    record->op_spread_ps = (cprof_u64)(spreads[CALIBRATION_ROUNDS / 2] * ps_per_tick);
}

void cprof_heap_start_process(struct cprof_run_header *header)
{
    struct cprof_heap_record *record;
    tracking(); /* decides, if no allocation has yet */
    heap.header = header;
    record = cprof_process_alloc(sizeof *record);
    if (!record)
        return;
    record->source = heap.source;
    record->epoch = heap.epoch;
    if (heap.state == HEAP_TRACKING) {
        record->outside = early_site;
        record->outside.thread = 0;
        record->untracked = early_untracked;
        record->live_bytes = site_live_bytes(&early_site);
        header->features |= CPROF_FEAT_ALLOCS;
    }
    __atomic_store_n(&heap.record, record, __ATOMIC_RELEASE);
    if (heap.state == HEAP_TRACKING)
        calibrate(record);
    record->head.size = (cprof_u32)sizeof *record;
    __asm__ __volatile__("" ::: "memory");
    record->head.kind = CPROF_REC_HEAP;
}

void cprof_heap_finish(void)
{
    /* a program that ends at its peak (nothing freed since) gets the per-path figures of the peak itself */
    if (!heap.record)
        return;
    if (heap.record->live_bytes == heap.record->peak_bytes && heap.record->snapshot_bytes != heap.record->peak_bytes)
        take_snapshot(heap.record->live_bytes);
    else
        take_snapshot(0);
}

void cprof_heap_after_fork(void)
{
    heap.epoch = (heap.epoch + 1) & 15u;
    heap.stamped_peak = 0;
    heap.snapshot_lock = 0;
    if (heap.record)
        heap.record->epoch = heap.epoch;
    last_block = NULL;
    last_site = NULL;
}

void cprof_heap_reset_record(struct cprof_record_head *record)
{
    if (record->kind == CPROF_REC_HEAP) {
        struct cprof_heap_record *totals = (struct cprof_heap_record *)record;
        cprof_u64 sites_head = totals->sites_head;
        cprof_u32 source = totals->source;
        memset((char *)totals + sizeof totals->head, 0, sizeof *totals - sizeof totals->head);
        totals->source = source;
        totals->sites_head = sites_head;
    } else if (record->kind == CPROF_REC_HEAP_SITES) {
        struct cprof_heap_sites_record *table = (struct cprof_heap_sites_record *)record;
        struct cprof_heap_site *entries = (struct cprof_heap_site *)(table + 1);
        cprof_u32 i;
        for (i = 0; i < table->capacity; i++) { /* the keys stay: the surviving thread keeps using its table */
            entries[i].alloc_count = entries[i].alloc_bytes = entries[i].released_count = 0;
            entries[i].released_bytes = entries[i].realloc_count = entries[i].temporary_count = 0;
            entries[i].remote_released_count = entries[i].remote_released_bytes = 0;
            entries[i].peak_bytes = 0;
        }
    }
}
