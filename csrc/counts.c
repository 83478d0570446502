/* counts.c — count-only sites (cprof_guard.h, __cprof_count): the units that have them, and each thread's counters.
 *
 * A count must cost no more than one load, a test and an increment, with nothing the compiler has to plan around:
 * a call on a cold path (as a lazily made block once needed) makes every counted function a caller, and the
 * registers that call clobbers then cost the hot loops they are inlined into about a tenth of their time (Lua, zstd).
 * So nothing is made lazily: each unit registers its table at load (a constructor the instrumenter writes), and
 * every thread gets its block of counters for every unit, in the run file, before it runs the program's code — at
 * its start (the pthread_create wrapper, thread_start.c, or its first timed call) and, for a unit loaded later, in
 * every live thread at once, through the unit's thread-local pointer at the same offset from each thread pointer.
 * Until then a thread counts into the unit's early counters (the pointer's initial value): calls made before the
 * runtime starts — which it does at the first timed call, not at load, so that a program's constructors run before
 * it as they would — and are added to the finishing thread's counters when the run ends. With profiling off nothing
 * is recorded: see __cprof_register_counts for where each thread's increments then go. The guard never tests the
 * pointer (cprof_guard.h), so it always points at counters: the run file's, the early ones, or a scratch block. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "cprof.h"
#include "heap.h"
#include "sampling.h"

#include <stdlib.h>
#include <string.h>

struct count_unit {
    struct __cprof_count_table *table;
    struct __cprof_counter **(*block_here)(void); /* the unit's pointer in the calling thread */
    ptrdiff_t offset;                 /* the pointer from the thread pointer: one offset for all threads */
    struct __cprof_counter *early;    /* what threads counted before the runtime gave them counters */
};

/* a live thread, and its thread pointer: where a unit registered later finds the thread's copy of its pointer */
struct live_thread {
    struct cprof_thread_record *thread;
    char *thread_pointer;
};

static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER; /* taken outside cprof_rt.lock, never inside */
static struct count_unit *units;
static size_t unit_count, unit_capacity;
static struct live_thread *live;
static size_t live_count, live_capacity;
static int any_units; /* read without the lock by the pthread_create wrapper: a program without counts pays nothing */

/* What a thread started while profiling is off counts into: counters of its own, which nobody reads (shared ones,
 * written by every such thread, would bounce their cache lines between the CPUs: zstd's workers switched off ran
 * 1.15x plain on the early counters). Each is kept by the thread pointer of the thread it was made for and never
 * freed while that thread may still count into it, which it may do after its start routine returns (its
 * thread-specific data's destructors): a new thread with the same thread pointer is the proof that the old one
 * has ended, and takes its block over. */
struct scratch_block {
    char *thread_pointer;
    size_t count;
    struct __cprof_counter *counters;
};
static struct scratch_block *scratch;
static size_t scratch_count, scratch_capacity;

static int grow(void **array, size_t *capacity, size_t needed, size_t item)
{
    void *bigger;
    if (needed <= *capacity)
        return 0;
    cprof_heap_pause(1); /* the runtime's own bookkeeping is not the program's heap */
    bigger = realloc(*array, (*capacity ? *capacity * 2 : 16) * item);
    cprof_heap_pause(0);
    if (!bigger)
        return -1;
    *array = bigger;
    *capacity = *capacity ? *capacity * 2 : 16;
    return 0;
}

static char *thread_pointer(void) { return (char *)__builtin_thread_pointer(); }

/* A thread's counters for one unit: a counts record in the run file (the function records first, so that a reader
 * of a run that dies meanwhile finds the record whole), from the thread's own chunk when it is the calling thread. */
static struct __cprof_counter *new_block(struct cprof_thread_record *thread, struct __cprof_count_table *table, int own)
{
    struct cprof_thread_record *caller = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_counts_record *record;
    size_t size = sizeof *record + 2 * table->count * sizeof(cprof_u64);
    cprof_u64 *functions;
    unsigned i;
    if (table->count > CPROF_COUNTS_MAX || !caller)
        return NULL;
    for (i = 0; i < table->count; i++)
        cprof_site_function(caller, &table->sites[i]);
    record = own ? cprof_thread_alloc(thread, size, 8) : cprof_process_alloc(size);
    if (!record)
        return NULL;
    functions = (cprof_u64 *)(record + 1);
    for (i = 0; i < table->count; i++)
        functions[i] = __atomic_load_n(&table->sites[i].func, __ATOMIC_ACQUIRE);
    record->thread = as_u64(thread);
    record->table = as_u64(table);
    record->count = table->count;
    record->head.size = (cprof_u32)size;
    __asm__ __volatile__("" ::: "memory"); /* readers find the record only once it is whole */
    record->head.kind = CPROF_REC_COUNTS;
    return (struct __cprof_counter *)(functions + table->count); /* the run file's u64 counters (asserted below) */
}
_Static_assert(sizeof(struct __cprof_counter) == sizeof(cprof_u64), "a counter is a run file's u64");

/* Adds what threads counted into the unit's early counters to the calling thread's counters (under counts_lock). */
static void fold_early(struct count_unit *unit)
{
    struct __cprof_counter *mine = *unit->block_here();
    size_t i;
    if (!mine || mine == unit->early)
        return;
    for (i = 0; i < unit->table->count; i++) {
        mine[i].calls += unit->early[i].calls;
        unit->early[i].calls = 0;
    }
}

/* Whether some thread counted into a unit's early counters (under counts_lock). */
static int early_pending(void)
{
    size_t i, j;
    for (i = 0; i < unit_count; i++)
        for (j = 0; j < units[i].table->count; j++)
            if (units[i].early[j].calls)
                return 1;
    return 0;
}

static int profiling_disabled(void) { return cprof_rt.ready == -1 || cprof_env_flag("CPROF_DISABLE"); }

/* Early counts are about to be joined to the calling thread's counters: it needs counters of its own (a program that
 * never made a timed call, a Python thread that called only count-only functions) unless nothing is pending. */
static void start_thread_for_early_counts(void)
{
    int pending;
    pthread_mutex_lock(&counts_lock);
    pending = early_pending();
    pthread_mutex_unlock(&counts_lock);
    if (pending && !__cprof_tls && !profiling_disabled())
        cprof_thread_start();
}

void __cprof_register_counts(struct __cprof_count_table *table, struct __cprof_counter **(*block_here)(void),
                             struct __cprof_counter *early)
{
    struct cprof_thread_record *thread;
    struct count_unit unit;
    size_t i;
    unit.table = table;
    unit.block_here = block_here;
    unit.offset = (char *)block_here() - thread_pointer();
    unit.early = early;
    pthread_mutex_lock(&counts_lock);
    cprof_sampling_note_code(table);
    if (grow((void **)&units, &unit_capacity, unit_count + 1, sizeof *units) == 0) {
        units[unit_count++] = unit;
        __atomic_store_n(&any_units, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&counts_lock);
    /* Profiling off: the thread that loads the program keeps counting into the early counters, which nothing
     * reads. An increment there costs less than skipping it (Lua switched off: 1.13x against 1.25x with a NULL
     * pointer, when the guard still skipped the increment for one); threads started later get a scratch block
     * of their own (cprof_counts_thread_off), as their increments would contend for the same shared lines. */
    if (profiling_disabled())
        return;
    if (cprof_rt.ready != 1 || __cprof_mode == 1)
        return; /* the runtime starts later (at the first timed call): until then, the early counters */
    thread = (struct cprof_thread_record *)__cprof_tls;
    if (!thread) {
        cprof_thread_start(); /* which gives this thread its counters of every unit, this one included */
        thread = (struct cprof_thread_record *)__cprof_tls;
    } else if (!thread->busy) {
        struct __cprof_counter *block;
        thread->busy = 1; /* a signal handler's calls meanwhile must not allocate from the same chunk */
        block = new_block(thread, table, 1);
        thread->busy = 0;
        if (block)
            *block_here() = block;
    }
    /* a unit loaded while other threads run (dlopen): their copies of its pointer, at the same offset */
    pthread_mutex_lock(&counts_lock);
    for (i = 0; i < live_count; i++)
        if (live[i].thread != thread) {
            struct __cprof_counter *block = new_block(live[i].thread, table, 0);
            if (block) /* else its early counters keep counting, and join the run at its end */
                *(struct __cprof_counter **)(live[i].thread_pointer + unit.offset) = block;
        }
    pthread_mutex_unlock(&counts_lock);
}

/* The unit's destructor: at exit, or at its dlclose, after which its code, table and early counters are gone. What it
 * counted early joins the calling thread's counters first (a program that never made a timed call starts its run
 * here, so that the counts are not lost). */
void __cprof_unregister_counts(struct __cprof_count_table *table)
{
    size_t i;
    start_thread_for_early_counts();
    pthread_mutex_lock(&counts_lock);
    for (i = 0; i < unit_count; i++)
        if (units[i].table == table) {
            fold_early(&units[i]);
            units[i] = units[--unit_count];
            break;
        }
    cprof_sampling_forget_code(table);
    pthread_mutex_unlock(&counts_lock);
}

int cprof_counts_wanted(void) { return __atomic_load_n(&any_units, __ATOMIC_ACQUIRE); }

void cprof_thread_attach(void)
{
    if (!__cprof_tls && __cprof_mode != 1 && cprof_counts_wanted())
        cprof_thread_start();
}

void cprof_counts_thread_start(struct cprof_thread_record *thread)
{
    size_t i;
    pthread_mutex_lock(&counts_lock);
    if (grow((void **)&live, &live_capacity, live_count + 1, sizeof *live) == 0) {
        live[live_count].thread = thread;
        live[live_count++].thread_pointer = thread_pointer();
    }
    thread->busy = 1;
    for (i = 0; i < unit_count; i++) {
        struct __cprof_counter *block = __cprof_mode == 1 ? NULL : new_block(thread, units[i].table, 1);
        /* without a block of its own the thread keeps its pointer's initial value, the early counters */
        if (block)
            *units[i].block_here() = block;
    }
    thread->busy = 0;
    pthread_mutex_unlock(&counts_lock);
}

void cprof_counts_thread_end(struct cprof_thread_record *thread)
{
    size_t i;
    pthread_mutex_lock(&counts_lock);
    for (i = 0; i < live_count; i++)
        if (live[i].thread == thread) {
            live[i] = live[--live_count];
            break;
        }
    pthread_mutex_unlock(&counts_lock);
}

/* The calling thread's scratch block of at least `count` counters (under counts_lock); NULL if none can be made. */
static struct __cprof_counter *scratch_here(size_t count)
{
    char *here = thread_pointer();
    struct scratch_block *block = NULL;
    void *memory;
    size_t i;
    for (i = 0; i < scratch_count && !block; i++)
        if (scratch[i].thread_pointer == here)
            block = &scratch[i];
    if (block && block->count >= count)
        return block->counters;
    if (!block) {
        if (grow((void **)&scratch, &scratch_capacity, scratch_count + 1, sizeof *scratch) != 0)
            return NULL;
        block = &scratch[scratch_count++];
        block->thread_pointer = here;
        block->count = 0;
        block->counters = NULL;
    }
    cprof_heap_pause(1);
    free(block->counters); /* the thread it was made for has ended */
    /* whole cache lines of its own: a line shared with another thread's counters (or the heap's next block)
     * would bounce between the CPUs at every increment */
    if (posix_memalign(&memory, 64, (count * sizeof *block->counters + 63) & ~(size_t)63) != 0)
        memory = NULL;
    cprof_heap_pause(0);
    block->counters = (struct __cprof_counter *)memory;
    block->count = memory ? count : 0;
    return block->counters;
}

/* A thread started while profiling is off counts into a scratch block of its own, which nobody reads. */
void cprof_counts_thread_off(void)
{
    struct __cprof_counter *block;
    size_t i, largest = 0;
    pthread_mutex_lock(&counts_lock);
    for (i = 0; i < unit_count; i++)
        if (units[i].table->count > largest)
            largest = units[i].table->count;
    block = largest ? scratch_here(largest) : NULL;
    for (i = 0; i < unit_count && block; i++)
        *units[i].block_here() = block; /* every unit: nothing reads them, so they may overlap */
    pthread_mutex_unlock(&counts_lock);
}

/* At the end of a run: the early counts go to the finishing thread's counters, made for it when it has none (a
 * Python thread that only called count-only functions of a library, a program that never made a timed call). */
void cprof_counts_fold_early(void)
{
    size_t i;
    start_thread_for_early_counts();
    pthread_mutex_lock(&counts_lock);
    for (i = 0; i < unit_count; i++)
        fold_early(&units[i]);
    pthread_mutex_unlock(&counts_lock);
}

/* In a forked child only the forking thread lives on; its blocks moved with the arena (same addresses), and the
 * early counts are the parent's. */
void cprof_counts_after_fork(struct cprof_thread_record *survivor)
{
    size_t i, kept = 0;
    pthread_mutex_init(&counts_lock, NULL);
    for (i = 0; i < live_count; i++)
        if (live[i].thread == survivor)
            live[kept++] = live[i];
    live_count = kept;
    cprof_counts_forget_early();
}

/* A new run (a fork, a library session's cut) starts from zero: what was counted early belongs to the last one. */
void cprof_counts_forget_early(void)
{
    size_t i;
    for (i = 0; i < unit_count; i++)
        memset(units[i].early, 0, units[i].table->count * sizeof *units[i].early);
}
