/* runtime.c — the cprof runtime linked into profiled programs: arena run file, threads, slow paths, fork, exit.
 *
 * The guard's fast paths live inline in cprof_guard.h; this file handles everything they hand over: first use
 * (process and thread start), new call paths, stack growth, longjmp repair, the clock fallback, fork, thread
 * and process exit. It never calls malloc after start-up, because a signal handler may enter an instrumented
 * function while the interrupted code is inside malloc. */
#define _GNU_SOURCE
#include "runfile.h"
#include "records.h"
#include "sampling.h"
#include "timer.h"
#include "waits.h"
#include "cprof_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The guard header mirrors these layouts into user code: a drift would corrupt every run silently. */
_Static_assert(offsetof(struct cprof_node, parent) == offsetof(struct __cprof_node_hot, parent), "node.parent");
_Static_assert(offsetof(struct cprof_node, func) == offsetof(struct __cprof_node_hot, func), "node.func");
_Static_assert(offsetof(struct cprof_node, calls) == offsetof(struct __cprof_node_hot, calls), "node.calls");
_Static_assert(offsetof(struct cprof_node, total_ticks) == offsetof(struct __cprof_node_hot, total_ticks),
               "node.total_ticks");
_Static_assert(sizeof(struct cprof_frame) == sizeof(struct __cprof_frame_hot), "frame size");
_Static_assert(offsetof(struct cprof_frame, start_ticks) == offsetof(struct __cprof_frame_hot, start_ticks),
               "frame.start_ticks");
_Static_assert(offsetof(struct cprof_frame, frame_address) == offsetof(struct __cprof_frame_hot, frame_address),
               "frame.frame_address");
_Static_assert(offsetof(struct cprof_frame, return_address) == offsetof(struct __cprof_frame_hot, return_address),
               "frame.return_address");
_Static_assert(offsetof(struct cprof_frame, guard) == offsetof(struct __cprof_frame_hot, guard), "frame.guard");
_Static_assert(offsetof(struct cprof_thread_record, top) == offsetof(struct __cprof_thread_hot, top), "top");
_Static_assert(offsetof(struct cprof_thread_record, limit) == offsetof(struct __cprof_thread_hot, limit), "limit");
_Static_assert(offsetof(struct cprof_thread_record, last_ticks) == offsetof(struct __cprof_thread_hot, last_ticks),
               "last_ticks");
_Static_assert(sizeof(struct cprof_node) == 128, "nodes are two cache lines");
_Static_assert(sizeof(struct cprof_frame) == 64, "frames are one cache line");
_Static_assert(sizeof(struct cprof_run_header) <= CPROF_HEADER_SIZE, "header fits");
_Static_assert(sizeof(struct cprof_stack_record) == 64, "stack frames start cache-line aligned");

__thread struct __cprof_thread_hot *__cprof_tls __attribute__((tls_model("initial-exec")));
int __cprof_mode; /* 0 until start-up decides otherwise: the first call finds no thread state and starts us */
int __cprof_ordered_timer = 1; /* set from the timer chosen at start-up (see cprof_guard.h) */
static __thread int thread_finished __attribute__((tls_model("initial-exec")));

#define ARENA_INITIAL (1u << 20)
#define ARENA_STEP_MAX (64u << 20)
#define INITIAL_STACK_BYTES CPROF_CHUNK_SIZE
/* A frame address this far above the innermost frame's is another stack (sigaltstack, coroutine), not a
 * longjmp: such calls nest instead of unwinding frames that are still alive. */
#define FOREIGN_STACK_DISTANCE (1ull << 30)
#define FN_TABLE_INITIAL 4096u

struct function_slot {
    cprof_u64 hash;
    struct cprof_function_record *record;
};

static struct {
    pthread_once_t once;
    int ready; /* 1 recording, -1 off */
    int fd;
    int cpu_time;
    char *base;
    size_t reserved;
    _Atomic size_t mapped;
    pthread_mutex_t lock;       /* function registration and the thread list */
    pthread_mutex_t arena_lock; /* arena growth: taken inside `lock` (registering allocates), never around it */
    struct cprof_run_header *header;
    struct cprof_timer_info timer;
    pthread_key_t thread_key;
    _Atomic cprof_u32 next_thread_index;
    cprof_u32 next_function_id;
    struct function_slot *functions;
    size_t functions_capacity, functions_count;
    char dir[PATH_MAX];
} rt = {.once = PTHREAD_ONCE_INIT, .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .arena_lock = PTHREAD_MUTEX_INITIALIZER};

static cprof_u64 now_ticks(void) { return cprof_timer_ticks(&rt.timer); }

static void timer_pair(cprof_u64 *ticks, cprof_u64 *ns)
{
    uint64_t t, n;
    cprof_timer_pair(&rt.timer, &t, &n);
    *ticks = t;
    *ns = n;
}
static cprof_u64 as_u64(const void *pointer) { return (cprof_u64)(uintptr_t)pointer; }
static void *as_pointer(cprof_u64 value) { return (void *)(uintptr_t)value; }
static size_t round_up(size_t value, size_t unit) { return (value + unit - 1) / unit * unit; }
static pid_t current_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* ---- arena ---------------------------------------------------------------------------------------------- */

static int arena_map_to(size_t needed)
{
    size_t mapped = atomic_load(&rt.mapped), target = mapped ? mapped : ARENA_INITIAL;
    if (needed <= mapped)
        return 0;
    while (target < needed)
        target += target < ARENA_STEP_MAX ? target : ARENA_STEP_MAX;
    if (target > rt.reserved)
        target = rt.reserved;
    if (target < needed || ftruncate(rt.fd, (off_t)target) != 0)
        return -1;
    if (mmap(rt.base + mapped, target - mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, rt.fd,
             (off_t)mapped) == MAP_FAILED)
        return -1;
    atomic_store(&rt.mapped, target);
    return 0;
}

/* Whole chunks from the shared arena; every thread then sub-allocates from its own chunk without locking. */
static char *arena_alloc_chunks(size_t bytes)
{
    size_t offset = __atomic_fetch_add(&rt.header->used_bytes, bytes, __ATOMIC_RELAXED);
    if (offset + bytes > atomic_load(&rt.mapped)) {
        int failed;
        pthread_mutex_lock(&rt.arena_lock);
        failed = arena_map_to(offset + bytes);
        pthread_mutex_unlock(&rt.arena_lock);
        if (failed)
            return NULL;
    }
    return rt.base + offset;
}

char *cprof_arena_chunk(void) { return arena_alloc_chunks(CPROF_CHUNK_SIZE); }

char *cprof_arena_try_chunk(void)
{
    cprof_u64 offset = __atomic_load_n(&rt.header->used_bytes, __ATOMIC_RELAXED);
    do {
        if (offset + CPROF_CHUNK_SIZE > atomic_load(&rt.mapped))
            return NULL;
    } while (!__atomic_compare_exchange_n(&rt.header->used_bytes, &offset, offset + CPROF_CHUNK_SIZE, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return rt.base + offset;
}

/* Records that belong to no thread (modules) come from a chunk of their own. */
void *cprof_process_alloc(size_t bytes)
{
    static char *cursor, *end;
    void *record = NULL;
    pthread_mutex_lock(&rt.lock);
    if (!cursor || cursor + bytes > end) {
        cursor = bytes <= CPROF_CHUNK_SIZE ? arena_alloc_chunks(CPROF_CHUNK_SIZE) : NULL;
        end = cursor ? cursor + CPROF_CHUNK_SIZE : NULL;
    }
    if (cursor) {
        record = cursor;
        cursor += bytes;
    }
    pthread_mutex_unlock(&rt.lock);
    return record;
}

static void *thread_alloc(struct cprof_thread_record *thread, size_t size, size_t align)
{
    cprof_u64 at = round_up(thread->chunk_cursor, align);
    if (thread->chunk_cursor == 0 || at + size > thread->chunk_end) {
        char *chunk = arena_alloc_chunks(CPROF_CHUNK_SIZE);
        if (!chunk)
            return NULL;
        thread->chunk_cursor = as_u64(chunk);
        thread->chunk_end = as_u64(chunk) + CPROF_CHUNK_SIZE;
        at = thread->chunk_cursor;
    } else if (at > thread->chunk_cursor) {
        /* alignment gaps become pad records so that readers keep walking the chunk */
        struct cprof_record_head *pad = as_pointer(thread->chunk_cursor);
        pad->size = (cprof_u32)(at - thread->chunk_cursor);
        pad->kind = CPROF_REC_PAD;
    }
    thread->chunk_cursor = at + size;
    return as_pointer(at);
}

/* ---- functions ------------------------------------------------------------------------------------------ */

static cprof_u64 hash_bytes(cprof_u64 hash, const char *text)
{
    for (; *text; text++)
        hash = (hash ^ (unsigned char)*text) * 1099511628211ull;
    return hash;
}

static int same_function(const struct cprof_function_record *record, const struct __cprof_site *site)
{
    const char *strings = (const char *)(record + 1);
    return record->line == site->line && strlen(site->name) == record->name_len &&
           strlen(site->file) == record->file_len && memcmp(strings, site->name, record->name_len) == 0 &&
           memcmp(strings + record->name_len, site->file, record->file_len) == 0;
}

static int grow_function_table(void)
{
    size_t capacity = rt.functions_capacity ? rt.functions_capacity * 2 : FN_TABLE_INITIAL;
    struct function_slot *table = mmap(NULL, capacity * sizeof *table, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t i;
    if (table == MAP_FAILED)
        return -1;
    for (i = 0; i < rt.functions_capacity; i++) {
        struct function_slot slot = rt.functions[i];
        size_t at;
        if (!slot.record)
            continue;
        for (at = slot.hash & (capacity - 1); table[at].record; at = (at + 1) & (capacity - 1))
            ;
        table[at] = slot;
    }
    if (rt.functions)
        munmap(rt.functions, rt.functions_capacity * sizeof *table);
    rt.functions = table;
    rt.functions_capacity = capacity;
    return 0;
}

/* One record per function identity (name, file, line): a static inline function from a header that many
 * translation units compiled is one function, whichever site reaches it first. */
static struct cprof_function_record *site_function(struct cprof_thread_record *thread, struct __cprof_site *site)
{
    struct cprof_function_record *record = as_pointer(__atomic_load_n(&site->func, __ATOMIC_ACQUIRE));
    cprof_u64 hash;
    size_t at, name_len, file_len;
    if (record)
        return record;
    hash = hash_bytes(hash_bytes(14695981039346656037ull ^ site->line, site->name), site->file);
    pthread_mutex_lock(&rt.lock);
    if ((rt.functions_count + 1) * 2 > rt.functions_capacity && grow_function_table() != 0)
        goto done;
    for (at = hash & (rt.functions_capacity - 1); rt.functions[at].record; at = (at + 1) & (rt.functions_capacity - 1))
        if (rt.functions[at].hash == hash && same_function(rt.functions[at].record, site)) {
            record = rt.functions[at].record;
            goto done;
        }
    name_len = strnlen(site->name, 4096);
    file_len = strnlen(site->file, 4096);
    record = thread_alloc(thread, round_up(sizeof *record + name_len + file_len, 8), 8);
    if (!record)
        goto done;
    record->id = ++rt.next_function_id;
    record->line = site->line;
    record->flags = site->flags;
    record->name_len = (cprof_u16)name_len;
    record->file_len = (cprof_u16)file_len;
    memcpy(record + 1, site->name, name_len);
    memcpy((char *)(record + 1) + name_len, site->file, file_len);
    record->next = rt.header->functions_head;
    record->head.size = (cprof_u32)round_up(sizeof *record + name_len + file_len, 8);
    record->head.kind = CPROF_REC_FUNCTION;
    rt.header->functions_head = as_u64(record);
    rt.functions[at].hash = hash;
    rt.functions[at].record = record;
    rt.functions_count++;
done:
    pthread_mutex_unlock(&rt.lock);
    if (record)
        __atomic_store_n(&site->func, as_u64(record), __ATOMIC_RELEASE);
    return record;
}

/* ---- nodes and stacks ----------------------------------------------------------------------------------- */

static struct cprof_node *new_node(struct cprof_thread_record *thread, struct cprof_node *parent, cprof_u64 func)
{
    struct cprof_node *node = thread_alloc(thread, sizeof *node, 64);
    if (!node)
        return NULL;
    node->parent = as_u64(parent);
    node->func = func;
    node->head.size = sizeof *node;
    node->head.kind = CPROF_REC_NODE;
    if (parent) {
        node->next_sibling = parent->first_child;
        parent->first_child = as_u64(node);
    }
    return node;
}

/* Per-thread hash index of (parent, function) -> node. The guard's fast path finds most nodes through the site
 * cache or the parent's first child; the index keeps every other lookup O(1), where walking a parent's child list
 * was quadratic in the number of functions one parent calls (10,000 callees: seconds). It lives in private
 * memory, not the run file: readers rebuild trees from the nodes' parent pointers. */
struct child_slot {
    cprof_u64 parent, func;
    struct cprof_node *node;
};
struct child_index {
    struct child_slot *slots;
    size_t capacity, count;
};
static __thread struct child_index child_index __attribute__((tls_model("initial-exec")));

static size_t child_hash(cprof_u64 parent, cprof_u64 func, size_t capacity)
{
    return (size_t)(((parent >> 6) * 0x9E3779B97F4A7C15ull) ^ ((func >> 3) * 0xC2B2AE3D27D4EB4Full)) & (capacity - 1);
}

static int child_index_insert(struct child_index *index, cprof_u64 parent, cprof_u64 func, struct cprof_node *node)
{
    size_t at;
    if ((index->count + 1) * 2 > index->capacity) {
        size_t capacity = index->capacity ? index->capacity * 2 : 1024, i;
        struct child_slot *slots = mmap(NULL, capacity * sizeof *slots, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (slots == MAP_FAILED)
            return -1;
        for (i = 0; i < index->capacity; i++)
            if (index->slots[i].node) {
                for (at = child_hash(index->slots[i].parent, index->slots[i].func, capacity); slots[at].node;
                     at = (at + 1) & (capacity - 1))
                    ;
                slots[at] = index->slots[i];
            }
        if (index->slots)
            munmap(index->slots, index->capacity * sizeof *slots);
        index->slots = slots;
        index->capacity = capacity;
    }
    for (at = child_hash(parent, func, index->capacity); index->slots[at].node; at = (at + 1) & (index->capacity - 1))
        ;
    index->slots[at].parent = parent;
    index->slots[at].func = func;
    index->slots[at].node = node;
    index->count++;
    return 0;
}

static struct cprof_node *child_node(struct cprof_thread_record *thread, struct cprof_node *parent, cprof_u64 func)
{
    struct child_index *index = &child_index;
    struct cprof_node *node = NULL;
    size_t at;
    if (index->capacity)
        for (at = child_hash(as_u64(parent), func, index->capacity); index->slots[at].node;
             at = (at + 1) & (index->capacity - 1))
            if (index->slots[at].parent == as_u64(parent) && index->slots[at].func == func) {
                node = index->slots[at].node;
                break;
            }
    if (!node) {
        node = new_node(thread, parent, func);
        if (node)
            child_index_insert(index, as_u64(parent), func, node); /* if not indexed: a twin later, merged by readers */
    }
    return node;
}

static struct cprof_frame *stack_frames(struct cprof_thread_record *thread)
{
    return (struct cprof_frame *)((char *)as_pointer(thread->stack) + sizeof(struct cprof_stack_record));
}

/* Stacks are big records of whole chunks; growing copies the frames into a stack twice the size. */
static int grow_stack(struct cprof_thread_record *thread)
{
    struct cprof_stack_record *old = as_pointer(thread->stack);
    size_t bytes = old ? (size_t)old->head.size * 2 : INITIAL_STACK_BYTES;
    struct cprof_stack_record *stack;
    struct cprof_frame *frames;
    size_t depth = 0;
    if (bytes > (1u << 31))
        return -1;
    stack = (struct cprof_stack_record *)arena_alloc_chunks(bytes);
    if (!stack)
        return -1;
    stack->thread = as_u64(thread);
    stack->capacity = (bytes - sizeof *stack) / sizeof(struct cprof_frame);
    frames = (struct cprof_frame *)(stack + 1);
    if (old) {
        depth = (size_t)((struct cprof_frame *)as_pointer(thread->top) - stack_frames(thread));
        memcpy(frames, stack_frames(thread), (depth + 1) * sizeof *frames);
    }
    stack->head.size = (cprof_u32)bytes;
    stack->head.kind = CPROF_REC_STACK;
    thread->stack = as_u64(stack);
    thread->limit = as_u64(frames + stack->capacity);
    thread->top = as_u64(frames + depth);
    if (old)
        old->thread = 0;
    return 0;
}

/* ---- threads -------------------------------------------------------------------------------------------- */

static void read_thread_name(pid_t tid, char name[16])
{
    char path[64];
    int fd;
    ssize_t got;
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    got = read(fd, name, 15);
    close(fd);
    if (got <= 0)
        return;
    if (name[got - 1] == '\n')
        got--;
    name[got] = 0;
}

/* The thread's whole CPU time, read once at its end: two clock reads per thread tell a thread that worked from
 * one that mostly waited, where a read per call (--cpu-time) costs hundreds of ns each. */
static void record_thread_cpu(struct cprof_thread_record *thread, int current)
{
    struct cprof_node *root = as_pointer(thread->root);
    struct timespec now;
    /* Linux's clock id for another thread of this process, as glibc's pthread_getcpuclockid builds it */
    clockid_t clock = current ? CLOCK_THREAD_CPUTIME_ID : (clockid_t)((~(unsigned)thread->tid << 3) | 6u);
    /* it held the CPU time at the thread's start (thread_start): what is recorded is the time since */
    if (root && clock_gettime(clock, &now) == 0)
        root->cpu_ns = (cprof_u64)now.tv_sec * 1000000000ull + (cprof_u64)now.tv_nsec - root->cpu_ns;
}

static void thread_finish(void *state)
{
    struct cprof_thread_record *thread = state;
    cprof_sampling_stop_thread();
    /* Open frames stay on the stack: readers close them at end_ticks, like a crashed run's at last_ticks. */
    read_thread_name((pid_t)thread->tid, thread->name);
    record_thread_cpu(thread, 1);
    thread->end_ticks = now_ticks();
    if (child_index.slots)
        munmap(child_index.slots, child_index.capacity * sizeof *child_index.slots);
    memset(&child_index, 0, sizeof child_index);
    __cprof_tls = NULL;
    thread_finished = 1;
}

static int process_start(void);

static struct cprof_thread_record *thread_start(void)
{
    struct cprof_thread_record *thread;
    struct cprof_node *root;
    struct cprof_frame *frames;
    char *chunk;
    if (thread_finished || process_start() != 0)
        return NULL;
    chunk = arena_alloc_chunks(CPROF_CHUNK_SIZE);
    if (!chunk)
        return NULL;
    thread = (struct cprof_thread_record *)chunk;
    thread->chunk_cursor = as_u64(chunk) + round_up(sizeof *thread, 64);
    thread->chunk_end = as_u64(chunk) + CPROF_CHUNK_SIZE;
    root = new_node(thread, NULL, 0);
    if (!root || grow_stack(thread) != 0)
        return NULL;
    thread->root = as_u64(root);
    thread->tid = (cprof_u64)current_tid();
    thread->index = atomic_fetch_add(&rt.next_thread_index, 1);
    thread->start_ticks = now_ticks();
    root->cpu_ns = cprof_thread_cpu_ns(); /* the start of what record_thread_cpu records at the end */
    thread->last_ticks = thread->start_ticks;
    read_thread_name((pid_t)thread->tid, thread->name);
    frames = stack_frames(thread);
    frames[0].node = as_u64(root);
    frames[0].frame_address = ~0ull; /* every real frame lies below the root */
    frames[0].start_ticks = thread->start_ticks;
    thread->head.size = (cprof_u32)round_up(sizeof *thread, 64);
    thread->head.kind = CPROF_REC_THREAD;
    pthread_mutex_lock(&rt.lock);
    thread->next = rt.header->threads_head;
    rt.header->threads_head = as_u64(thread);
    pthread_mutex_unlock(&rt.lock);
    pthread_setspecific(rt.thread_key, thread);
    __cprof_tls = (struct __cprof_thread_hot *)thread;
    cprof_sampling_start_thread();
    return thread;
}

/* ---- the slow paths the guard calls --------------------------------------------------------------------- */

static void close_frame(struct cprof_frame *frame, cprof_u64 now, cprof_u64 cpu_now)
{
    struct cprof_node *node = as_pointer(frame->node);
    node->total_ticks += now - frame->start_ticks;
    if (rt.cpu_time)
        node->cpu_ns += cpu_now - frame->cpu_start_ns;
}

/* Whether `frame` cannot be an ancestor of a call entering with (cfa, return_address, guard); see the guard. */
static int left_behind(const struct cprof_frame *frame, cprof_u64 cfa, void *return_address, void *guard)
{
    if (cfa < frame->frame_address || cfa - frame->frame_address >= FOREIGN_STACK_DISTANCE)
        return 0;
    return cfa > frame->frame_address || frame->return_address != as_u64(return_address) ||
           frame->guard == as_u64(guard);
}

int __cprof_enter_slow(struct __cprof_site *site, void *guard, cprof_u64 cfa, void *return_address)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame, *base;
    struct cprof_function_record *function;
    struct cprof_node *node;
    cprof_u64 now, cpu_now = 0;
    if (__cprof_mode == 1)
        return 0;
    if (!thread && !(thread = thread_start()))
        return 0;
    if (thread->busy) /* a signal handler interrupted our own slow path: skip rather than corrupt */
        goto lost_unlocked;
    thread->busy = 1;
    now = now_ticks();
    if (rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    /* frames that cannot be our ancestors belong to functions a longjmp has already left */
    while (frame > base && left_behind(frame, cfa, return_address, guard)) {
        close_frame(frame, now, cpu_now);
        frame--;
    }
    thread->top = as_u64(frame);
    if (frame + 1 >= (struct cprof_frame *)as_pointer(thread->limit)) {
        if (grow_stack(thread) != 0)
            goto lost;
        frame = as_pointer(thread->top);
    }
    function = site_function(thread, site);
    if (!function || !(node = child_node(thread, as_pointer(frame->node), as_u64(function))))
        goto lost;
    site->cache = (struct __cprof_node_hot *)node;
    node->calls++;
    frame[1].node = as_u64(node);
    frame[1].frame_address = cfa;
    frame[1].return_address = as_u64(return_address);
    frame[1].guard = as_u64(guard);
    frame[1].cpu_start_ns = rt.cpu_time ? cprof_thread_cpu_ns() : 0;
    frame[1].start_ticks = now_ticks();
    /* What this entry cost beyond a fast one (registering the function, a new node and its first-touch page, a
     * repair): measured, not calibrated, since it varies; it lies in the caller's interval, where the model takes
     * it out. */
    node->slow_ticks += frame[1].start_ticks - now;
    node->slow_calls++;
    __asm__ __volatile__("" ::: "memory");
    thread->top = as_u64(frame + 1);
    thread->busy = 0;
    return 1;
lost:
    thread->busy = 0;
lost_unlocked:
    /* the header's count is what readers report for the whole process: every lost frame must reach it */
    thread->lost_frames++;
    __atomic_fetch_add(&rt.header->lost_frames, 1, __ATOMIC_RELAXED);
    return 0;
}

void __cprof_leave_slow(void *guard, cprof_u64 now)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame, *own, *base;
    cprof_u64 cpu_now = 0;
    if (!thread)
        return;
    if (__cprof_mode != 0)
        now = now_ticks();
    if (rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    for (own = frame; own > base && own->guard != as_u64(guard); own--)
        ;
    if (own == base) /* already unwound by a repair: nothing left to close */
        return;
    for (; frame >= own; frame--) /* frames above ours were abandoned by a longjmp */
        close_frame(frame, now, cpu_now);
    thread->last_ticks = now;
    __asm__ __volatile__("" ::: "memory");
    thread->top = as_u64(own - 1);
}

/* ---- count-only sites (cprof_guard.h, __cprof_count) -------------------------------------------------- */

/* Where a thread counts while profiling is off, or when no block could be made: one shared throwaway block per
 * table, never read (so the fast path stays one load and an increment). */
static cprof_u64 *throwaway_block(struct __cprof_count_table *table)
{
    static cprof_u64 *shared;
    static size_t shared_count;
    size_t needed = table->count < 1 ? 1 : table->count;
    if (!shared || shared_count < needed) {
        size_t bytes = round_up(needed * sizeof(cprof_u64), 4096);
        void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            return NULL;
        shared = memory; /* a smaller one before stays mapped: other threads may still count into it */
        shared_count = bytes / sizeof(cprof_u64);
    }
    return shared;
}

void __cprof_count_slow(cprof_u64 **block, struct __cprof_count_table *table, unsigned index)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_counts_record *record;
    cprof_u64 *functions;
    unsigned i, count = table->count;
    if (__cprof_mode != 1 && !thread)
        thread = thread_start();
    if (__cprof_mode == 1 || !thread || count > CPROF_COUNTS_MAX) {
        *block = throwaway_block(table);
        return;
    }
    if (thread->busy) { /* a signal handler interrupted our own slow path: count this call as lost */
        thread->lost_frames++;
        __atomic_fetch_add(&rt.header->lost_frames, 1, __ATOMIC_RELAXED);
        return;
    }
    thread->busy = 1;
    /* the functions are registered before the record is made: records after an unfinished one (kind 0) in its
     * chunk would be skipped by a reader of a run that dies meanwhile */
    for (i = 0; i < count; i++)
        site_function(thread, &table->sites[i]);
    record = thread_alloc(thread, sizeof *record + 2 * count * sizeof(cprof_u64), 8);
    if (record) {
        functions = (cprof_u64 *)(record + 1);
        for (i = 0; i < count; i++)
            functions[i] = __atomic_load_n(&table->sites[i].func, __ATOMIC_ACQUIRE);
        record->thread = as_u64(thread);
        record->table = as_u64(table);
        record->count = count;
        record->head.size = (cprof_u32)(sizeof *record + 2 * count * sizeof(cprof_u64));
        __asm__ __volatile__("" ::: "memory"); /* readers find the record only once it is whole */
        record->head.kind = CPROF_REC_COUNTS;
        *block = functions + count;
        (*block)[index]++;
    } else {
        *block = throwaway_block(table);
    }
    thread->busy = 0;
}

/* ---- waiting (csrc/waits.c) ----------------------------------------------------------------------------- */

cprof_u64 cprof_wait_begin(void)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    /* busy: the runtime's own locks, taken in its slow paths, are not the program's waiting */
    if (!thread || __cprof_mode == 1 || thread->busy)
        return 0;
    return now_ticks() | 1; /* never 0, which means "not recording" */
}

void cprof_wait_end(cprof_u64 start)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame;
    cprof_u64 now = now_ticks();
    if (!thread || now <= start)
        return;
    frame = as_pointer(thread->top);
    ((struct cprof_node *)as_pointer(frame->node))->wait_ticks += now - start;
}

/* ---- guard calibration ---------------------------------------------------------------------------------- */

/* Measures what the real guard costs on this machine, on a private scratch thread state so that no calibration
 * node reaches the run: inner = ticks inside the callee's own interval, outer = the rest of a call's extra cost,
 * which lands in the caller. Both depend on the work around the timer reads (a read cannot complete faster than
 * the previous one allows), so they are measured around callees of several sizes: the reported figure is their
 * mean, and its spread covers both the round-to-round noise and that dependence on the code. */
#define CALIBRATION_STEP(x) (x) = ((x) ^ ((x) >> 7)) * 0x9E3779B1u
#define CALIBRATION_WORK_0(x)
#define CALIBRATION_WORK_1(x) CALIBRATION_STEP(x)
#define CALIBRATION_WORK_3(x) CALIBRATION_STEP(x); CALIBRATION_STEP(x); CALIBRATION_STEP(x)
#define CALIBRATION_WORK_8(x) CALIBRATION_WORK_3(x); CALIBRATION_WORK_3(x); CALIBRATION_STEP(x); CALIBRATION_STEP(x)
#define CALIBRATION_WORK_20(x) CALIBRATION_WORK_8(x); CALIBRATION_WORK_8(x); CALIBRATION_WORK_3(x); CALIBRATION_STEP(x)
enum { CALIBRATION_SIZES = 5 };
static struct __cprof_site calibration_site[CALIBRATION_SIZES] = {
    {"<calibration>", "", 0, 0, 1, 0}, {"<calibration>", "", 1, 0, 1, 0}, {"<calibration>", "", 2, 0, 1, 0},
    {"<calibration>", "", 3, 0, 1, 0}, {"<calibration>", "", 4, 0, 1, 0}};
#define __cprof_sites calibration_site
#define CALIBRATION_PAIR(index, steps)                                                                         \
    static __attribute__((noinline)) unsigned calibration_plain_##steps(unsigned x)                            \
    {                                                                                                          \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }                                                                                                          \
    static __attribute__((noinline)) unsigned calibration_guarded_##steps(unsigned x)                          \
    {                                                                                                          \
        int __cprof_guard __attribute__((cleanup(__cprof_leave), unused)) =                                    \
            __cprof_enter(&__cprof_sites[index], &__cprof_guard);                                              \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }
CALIBRATION_PAIR(0, 0)
CALIBRATION_PAIR(1, 1)
CALIBRATION_PAIR(2, 3)
CALIBRATION_PAIR(3, 8)
CALIBRATION_PAIR(4, 20)
#undef __cprof_sites

/* A count-only guard, counting into a scratch block through a thread-local pointer as in the user's units (see
 * COUNT_GUARD in cprof/instrument/splice.py). What an increment costs depends on its neighbours: increments back
 * to back with nothing between (fib, whose calls gcc makes nearly free) chain through memory, one store-to-load
 * forwarding each, while work around them hides most of the cost. Both ends are measured: a loop of bare
 * increments, and a call that does the largest calibration work. */
static struct __cprof_site calibration_count_site = {"<calibration>", "", 9, CPROF_FN_COUNTED, 1, 0};
static struct __cprof_count_table calibration_count_table = {1, 0, &calibration_count_site};
static cprof_u64 calibration_count_values[1];
static __thread cprof_u64 *calibration_count_block __attribute__((tls_model("initial-exec")));
#define CALIBRATION_COUNTED(steps)                                                                             \
    static __attribute__((noinline)) unsigned calibration_counted_##steps(unsigned x)                          \
    {                                                                                                          \
        int counted __attribute__((unused)) =                                                                  \
            __cprof_count(&calibration_count_block, &calibration_count_table, 0);                              \
        CALIBRATION_WORK_##steps(x);                                                                           \
        __asm__ __volatile__("" : "+r"(x));                                                                    \
        return x;                                                                                              \
    }
CALIBRATION_COUNTED(20)

static cprof_u64 chained_increments(int count, int counting)
{
    cprof_u64 start = now_ticks();
    int i;
    for (i = 0; i < count; i++) {
        if (counting)
            __cprof_count(&calibration_count_block, &calibration_count_table, 0);
        __asm__ __volatile__("" ::: "memory"); /* every increment goes to memory, as in separate calls */
    }
    return now_ticks() - start;
}

typedef unsigned (*calibration_function)(unsigned);

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *values, size_t count)
{
    qsort(values, count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

static double spread_of(const double *values, size_t count, double median)
{
    double deviations[64];
    size_t i;
    for (i = 0; i < count; i++)
        deviations[i] = values[i] > median ? values[i] - median : median - values[i];
    return median_of(deviations, count);
}

static cprof_u64 loop_ticks(calibration_function function, int calls, unsigned *sink)
{
    cprof_u64 start = now_ticks();
    unsigned x = *sink;
    int i;
    for (i = 0; i < calls; i++)
        x = function(x);
    *sink = x;
    return now_ticks() - start;
}

static void calibrate_guard(void)
{
    enum { ROUNDS = 9, CALLS = 500 };
    static const calibration_function plain[CALIBRATION_SIZES] = {calibration_plain_0, calibration_plain_1,
        calibration_plain_3, calibration_plain_8, calibration_plain_20};
    static const calibration_function guarded[CALIBRATION_SIZES] = {calibration_guarded_0, calibration_guarded_1,
        calibration_guarded_3, calibration_guarded_8, calibration_guarded_20};
    static struct cprof_node nodes[1 + CALIBRATION_SIZES];
    static struct cprof_frame frames[8];
    static struct cprof_thread_record scratch;
    double inner[CALIBRATION_SIZES][ROUNDS], outer[CALIBRATION_SIZES][ROUNDS], chained[ROUNDS], hidden[ROUNDS];
    double chained_median, hidden_median;
    double inner_by_size[CALIBRATION_SIZES], outer_by_size[CALIBRATION_SIZES];
    double inner_mean = 0, outer_mean = 0, inner_noise = 0, outer_noise = 0, inner_low, inner_high, outer_low,
           outer_high;
    struct __cprof_thread_hot *saved = __cprof_tls;
    unsigned sink = 1;
    int round, size;
    frames[0].node = as_u64(&nodes[0]);
    frames[0].frame_address = ~0ull;
    scratch.top = as_u64(&frames[0]);
    scratch.limit = as_u64(&frames[8]);
    for (size = 0; size < CALIBRATION_SIZES; size++) {
        nodes[1 + size].parent = as_u64(&nodes[0]);
        calibration_site[size].cache = (struct __cprof_node_hot *)&nodes[1 + size];
    }
    __cprof_tls = (struct __cprof_thread_hot *)&scratch;
    for (round = 0; round < ROUNDS; round++)
        for (size = 0; size < CALIBRATION_SIZES; size++) {
            cprof_u64 inside = nodes[1 + size].total_ticks;
            double empty = (double)loop_ticks(plain[0], CALLS, &sink);
            double work = (double)loop_ticks(plain[size], CALLS, &sink);
            double with_guard = (double)loop_ticks(guarded[size], CALLS, &sink);
            inside = nodes[1 + size].total_ticks - inside;
            /* the callee's own work, as the plain program spends it, is what the loop adds over the empty call */
            inner[size][round] = ((double)inside - (work - empty)) / CALLS;
            outer[size][round] = (with_guard - work) / CALLS - inner[size][round];
        }
    calibration_count_block = calibration_count_values;
    for (round = 0; round < ROUNDS; round++) {
        double bare = (double)chained_increments(CALLS, 0);
        double work = (double)loop_ticks(calibration_plain_20, CALLS, &sink);
        chained[round] = ((double)chained_increments(CALLS, 1) - bare) / CALLS;
        hidden[round] = ((double)loop_ticks(calibration_counted_20, CALLS, &sink) - work) / CALLS;
    }
    chained_median = median_of(chained, ROUNDS);
    hidden_median = median_of(hidden, ROUNDS);
    chained_median = chained_median > 0 ? chained_median : 0;
    hidden_median = hidden_median > 0 ? hidden_median : 0;
    /* the middle of the two ends, and half their distance plus the rounds' noise as the spread */
    rt.header->count_guard_ticks = (chained_median + hidden_median) / 2;
    rt.header->count_guard_spread = (chained_median > hidden_median ? chained_median - hidden_median
                                                                    : hidden_median - chained_median) / 2 +
                                    (spread_of(chained, ROUNDS, chained_median) +
                                     spread_of(hidden, ROUNDS, hidden_median)) / 2;
    __cprof_tls = saved;
    for (size = 0; size < CALIBRATION_SIZES; size++) {
        inner_by_size[size] = median_of(inner[size], ROUNDS);
        outer_by_size[size] = median_of(outer[size], ROUNDS);
        inner_noise += spread_of(inner[size], ROUNDS, inner_by_size[size]) / CALIBRATION_SIZES;
        outer_noise += spread_of(outer[size], ROUNDS, outer_by_size[size]) / CALIBRATION_SIZES;
        inner_mean += inner_by_size[size] / CALIBRATION_SIZES;
        outer_mean += outer_by_size[size] / CALIBRATION_SIZES;
    }
    inner_low = inner_high = inner_by_size[0];
    outer_low = outer_high = outer_by_size[0];
    for (size = 1; size < CALIBRATION_SIZES; size++) {
        inner_low = inner_by_size[size] < inner_low ? inner_by_size[size] : inner_low;
        inner_high = inner_by_size[size] > inner_high ? inner_by_size[size] : inner_high;
        outer_low = outer_by_size[size] < outer_low ? outer_by_size[size] : outer_low;
        outer_high = outer_by_size[size] > outer_high ? outer_by_size[size] : outer_high;
    }
    rt.header->guard_inner_ticks = inner_mean;
    rt.header->guard_outer_ticks = outer_mean;
    rt.header->guard_inner_spread = (inner_high - inner_low) / 2 + inner_noise;
    rt.header->guard_outer_spread = (outer_high - outer_low) / 2 + outer_noise;
    rt.header->calibration_rounds = ROUNDS;
}

/* ---- process start, fork and exit ----------------------------------------------------------------------- */

static int env_flag(const char *name)
{
    const char *value = getenv(name);
    return value && *value && strcmp(value, "0") != 0;
}

static int make_dirs(char *path)
{
    char *slash;
    for (slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            *slash = '/';
            return -1;
        }
        *slash = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Run ids sort by time; cprof/workspace.py makes them the same way. */
static void format_run_id(char *out, size_t size, cprof_u64 unix_ns)
{
    time_t seconds = (time_t)(unix_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    snprintf(out, size, "%04d%02d%02dT%02d%02d%02d.%06u-%d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(unix_ns / 1000 % 1000000), (int)getpid());
}

static int open_run_file(cprof_u64 unix_ns)
{
    const char *dir = getenv("CPROF_RUN_DIR");
    char path[PATH_MAX + 32];
    int attempt, fd = -1;
    if (dir && *dir) {
        snprintf(rt.dir, sizeof rt.dir, "%s", dir);
    } else {
        const char *home = getenv("CPROF_HOME");
        char id[64];
        format_run_id(id, sizeof id, unix_ns);
        snprintf(rt.dir, sizeof rt.dir, "%s/runs/%s", home && *home ? home : ".cprof", id);
    }
    if (make_dirs(rt.dir) != 0)
        return -1;
    for (attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        if (attempt == 0)
            snprintf(path, sizeof path, "%s/%d.cprof", rt.dir, (int)getpid());
        else
            snprintf(path, sizeof path, "%s/%d-%d.cprof", rt.dir, (int)getpid(), attempt);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    return fd;
}

static int map_new_arena(int fd)
{
    static const size_t reservations[] = {(size_t)16 << 30, (size_t)4 << 30, (size_t)1 << 30, (size_t)256 << 20};
    size_t i;
    for (i = 0; i < sizeof reservations / sizeof *reservations; i++) {
        void *base = mmap(NULL, reservations[i], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base != MAP_FAILED) {
            rt.base = base;
            rt.reserved = reservations[i];
            break;
        }
    }
    if (!rt.base)
        return -1;
    rt.fd = fd;
    atomic_store(&rt.mapped, 0);
    return arena_map_to(ARENA_INITIAL);
}

static void read_cmdline(struct cprof_run_header *header)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t got;
    if (fd < 0)
        return;
    got = read(fd, header->cmdline, CPROF_CMDLINE_MAX);
    close(fd);
    header->cmdline_len = got > 0 ? (cprof_u32)got : 0;
}

struct reset_context {
    cprof_u64 now;
    struct cprof_thread_record *survivor;
};

static int reset_record(const struct cprof_record_head *record, size_t offset, void *context)
{
    struct reset_context *reset = context;
    (void)offset;
    if (record->kind == CPROF_REC_NODE) {
        struct cprof_node *node = (struct cprof_node *)record;
        node->calls = node->total_ticks = node->cpu_ns = node->wait_ticks = node->slow_ticks = node->slow_calls = 0;
        node->alloc_count = node->alloc_bytes = node->free_count = node->free_bytes = 0;
    } else if (record->kind == CPROF_REC_COUNTS) {
        const struct cprof_counts_record *counts = (const struct cprof_counts_record *)record;
        memset((cprof_u64 *)(counts + 1) + counts->count, 0, counts->count * sizeof(cprof_u64));
    } else if (record->kind == CPROF_REC_SAMPLES) {
        struct cprof_samples_record *samples = (struct cprof_samples_record *)record;
        memset(samples + 1, 0, samples->capacity * sizeof(struct cprof_sample_entry));
        samples->used = 0;
    } else if (record->kind == CPROF_REC_THREAD && (const void *)record != (void *)reset->survivor) {
        struct cprof_thread_record *gone = (struct cprof_thread_record *)record;
        /* threads other than the forking one do not exist in the child */
        gone->top = gone->stack ? as_u64(stack_frames(gone)) : 0;
        if (!gone->end_ticks)
            gone->end_ticks = reset->now;
    }
    return 0;
}

/* The child must not write into its parent's file: copy the arena into a file of its own, map that at the
 * same address (so every pointer stays valid), and start its counts from zero at the fork. */
static void on_fork_child(void)
{
    struct cprof_run_header *header = rt.header;
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct reset_context reset;
    size_t used = header->used_bytes, mapped = atomic_load(&rt.mapped), written = 0;
    pid_t parent = header->pid;
    char path[PATH_MAX + 32];
    int fd;
    pthread_mutex_init(&rt.lock, NULL);
    pthread_mutex_init(&rt.arena_lock, NULL);
    if (used > mapped)
        used = mapped;
    snprintf(path, sizeof path, "%s/%d.cprof", rt.dir, (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    while (fd >= 0 && written < used) {
        ssize_t put = write(fd, rt.base + written, used - written);
        if (put <= 0)
            break;
        written += (size_t)put;
    }
    if (fd < 0 || written < used || ftruncate(fd, (off_t)mapped) != 0 ||
        mmap(rt.base, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        /* cannot give the child its own file: stop profiling it, and keep its writes out of the parent's */
        __cprof_mode = 1;
        if (fd >= 0)
            close(fd);
        mmap(rt.base, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return;
    }
    close(rt.fd);
    rt.fd = fd;
    reset.now = now_ticks();
    reset.survivor = thread;
    cprof_scan_records((const unsigned char *)rt.base, used, reset_record, &reset);
    if (thread) {
        struct cprof_frame *frame;
        thread->tid = (cprof_u64)current_tid();
        for (frame = stack_frames(thread); frame <= (struct cprof_frame *)as_pointer(thread->top); frame++) {
            frame->start_ticks = reset.now;
            if (rt.cpu_time)
                frame->cpu_start_ns = cprof_thread_cpu_ns();
        }
    }
    header->parent_pid = parent;
    header->pid = getpid();
    header->flags = (header->flags & ~CPROF_RUN_COMPLETE) | CPROF_RUN_FORK_CHILD;
    header->fork_ticks = reset.now;
    timer_pair(&header->start_ticks, &header->start_mono_ns);
    header->start_unix_ns = cprof_realtime_ns();
    header->lost_frames = 0;
    header->runtime_ns = 0;
    header->samples_outside = header->samples_dropped = 0;
    cprof_sampling_after_fork();
}

static void before_fork(void)
{
    pthread_mutex_lock(&rt.lock);
    pthread_mutex_lock(&rt.arena_lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&rt.arena_lock);
    pthread_mutex_unlock(&rt.lock);
}

static void process_start_once(void)
{
    struct cprof_run_header *header;
    cprof_u64 unix_ns = cprof_realtime_ns(), began = cprof_monotonic_ns();
    int fd;
    if (env_flag("CPROF_DISABLE")) {
        __cprof_mode = 1;
        rt.ready = -1;
        return;
    }
    rt.cpu_time = env_flag("CPROF_CPU_TIME");
    {
        const char *timer = getenv("CPROF_TIMER");
        enum cprof_timer_choice choice = CPROF_TIMER_CHOICE_ORDERED;
        if (timer && strcmp(timer, "fast") == 0)
            choice = CPROF_TIMER_CHOICE_FAST;
        else if (timer && strcmp(timer, "clock") == 0)
            choice = CPROF_TIMER_CHOICE_CLOCK;
        cprof_timer_init(&rt.timer, 2000000, choice);
    }
    __cprof_ordered_timer = rt.timer.ordered;
    fd = open_run_file(unix_ns);
    if (fd < 0 || map_new_arena(fd) != 0) {
        fprintf(stderr, "cprof: cannot create a run file in %s (%s); profiling is off\n", rt.dir, strerror(errno));
        __cprof_mode = 1;
        rt.ready = -1;
        return;
    }
    header = rt.header = (struct cprof_run_header *)rt.base;
    memcpy(header->magic, CPROF_RUN_MAGIC, 8);
    header->version = CPROF_RUN_VERSION;
    header->header_size = CPROF_HEADER_SIZE;
    header->features = CPROF_FEAT_WALL_TIME | CPROF_FEAT_THREAD_CPU | CPROF_FEAT_SLOW_PATH |
                       (rt.cpu_time ? CPROF_FEAT_CPU_TIME : 0) |
                       (&cprof_waits_tracked && cprof_waits_tracked ? CPROF_FEAT_WAIT_TIME : 0);
    header->base_address = as_u64(rt.base);
    header->used_bytes = CPROF_CHUNK_SIZE; /* the first chunk holds the header and the trailer */
    header->chunk_size = CPROF_CHUNK_SIZE;
    header->timer_kind = rt.timer.kind;
    header->timer_ordered = (cprof_u32)rt.timer.ordered;
    header->ticks_per_second = rt.timer.ticks_per_second;
    timer_pair(&header->start_ticks, &header->start_mono_ns);
    header->start_unix_ns = unix_ns;
    header->pid = getpid();
    header->parent_pid = getppid();
    header->exit_status = -1;
    read_cmdline(header);
    pthread_key_create(&rt.thread_key, thread_finish);
    pthread_atfork(before_fork, after_fork_in_parent, on_fork_child);
    /* The inline guard reads the counter itself; without a trustworthy one (or when CPU time is wanted too)
     * every event goes through the slow path, which reads the right clocks. */
    __cprof_mode = (rt.timer.kind == CPROF_TIMER_MONOTONIC || rt.cpu_time) ? 2 : 0;
    cprof_sampling_start_process(header);
    rt.ready = 1;
    if (__cprof_mode == 0 && !(getenv("CPROF_CALIBRATE") && strcmp(getenv("CPROF_CALIBRATE"), "0") == 0))
        calibrate_guard();
    header->runtime_ns = cprof_monotonic_ns() - began;
}

static int process_start(void)
{
    pthread_once(&rt.once, process_start_once);
    return rt.ready == 1 ? 0 : -1;
}

/* Runs after main and the user's atexit handlers (the runtime library is initialised first, so finalised
 * last). The mapping stays: code that still runs later keeps counting into a valid arena. */
__attribute__((destructor)) static void process_finish(void)
{
    struct cprof_run_header *header = rt.header;
    struct cprof_trailer_record *trailer;
    struct cprof_thread_record *thread;
    cprof_u64 end_ticks, end_mono;
    if (rt.ready != 1 || !header)
        return;
    timer_pair(&end_ticks, &end_mono);
    /* a whole-run calibration beats the 2 ms one taken at start, once the run is long enough */
    if (rt.timer.kind != CPROF_TIMER_MONOTONIC && end_mono - header->start_mono_ns > 50000000ull &&
        end_ticks > header->start_ticks)
        header->ticks_per_second =
            (double)(end_ticks - header->start_ticks) * 1e9 / (double)(end_mono - header->start_mono_ns);
    for (thread = as_pointer(header->threads_head); thread; thread = as_pointer(thread->next))
        if (!thread->end_ticks) {
            read_thread_name((pid_t)thread->tid, thread->name);
            record_thread_cpu(thread, thread == (struct cprof_thread_record *)__cprof_tls);
        }
    /* the guard's cost in ticks depends on the core's clock, which is often still low at start-up after idle:
     * once the run has kept the core busy for a while, measure again and use that */
    if (__cprof_mode == 0 && end_mono - header->start_mono_ns > 50000000ull) {
        cprof_u64 began = cprof_monotonic_ns();
        calibrate_guard();
        header->runtime_ns += cprof_monotonic_ns() - began;
    }
    cprof_record_modules(); /* objects dlopen'ed since start-up */
    header->end_ticks = end_ticks;
    header->end_mono_ns = end_mono;
    trailer = (struct cprof_trailer_record *)(rt.base + CPROF_HEADER_SIZE);
    trailer->end_ticks = end_ticks;
    trailer->used_bytes = header->used_bytes;
    memcpy(trailer->magic, CPROF_TRAILER_MAGIC, 8);
    trailer->head.size = sizeof *trailer;
    trailer->head.kind = CPROF_REC_TRAILER;
    __atomic_or_fetch(&header->flags, CPROF_RUN_COMPLETE, __ATOMIC_RELEASE);
}

/* ---- control from user code (cprof.h) ------------------------------------------------------------------- */

void cprof_set_enabled(int enabled)
{
    if (process_start() != 0)
        return;
    /* leaving mode 2 would hand timing back to an inline counter that is not valid here */
    if (enabled)
        __cprof_mode = (rt.timer.kind == CPROF_TIMER_MONOTONIC || rt.cpu_time) ? 2 : 0;
    else
        __cprof_mode = 1;
}
