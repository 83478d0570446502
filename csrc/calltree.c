/* calltree.c — the call tree in the arena: one record per function, a node per call path, a stack per thread. */
#define _GNU_SOURCE
#include "runtime_internal.h"

#include <string.h>
#include <sys/mman.h>

#define FN_TABLE_INITIAL 4096u
#define INITIAL_STACK_BYTES CPROF_CHUNK_SIZE

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
    size_t capacity = cprof_rt.functions_capacity ? cprof_rt.functions_capacity * 2 : FN_TABLE_INITIAL;
    struct function_slot *table = mmap(NULL, capacity * sizeof *table, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t i;
    if (table == MAP_FAILED)
        return -1;
    for (i = 0; i < cprof_rt.functions_capacity; i++) {
        struct function_slot slot = cprof_rt.functions[i];
        size_t at;
        if (!slot.record)
            continue;
        for (at = slot.hash & (capacity - 1); table[at].record; at = (at + 1) & (capacity - 1))
            ;
        table[at] = slot;
    }
    if (cprof_rt.functions)
        munmap(cprof_rt.functions, cprof_rt.functions_capacity * sizeof *table);
    cprof_rt.functions = table;
    cprof_rt.functions_capacity = capacity;
    return 0;
}

/* One record per function identity (name, file, line): a static inline function from a header that many
 * translation units compiled is one function, whichever site reaches it first. */
struct cprof_function_record *cprof_site_function(struct cprof_thread_record *thread, struct __cprof_site *site)
{
    struct cprof_function_record *record = as_pointer(__atomic_load_n(&site->func, __ATOMIC_ACQUIRE));
    cprof_u64 hash;
    size_t at, name_len, file_len;
    if (record)
        return record;
    hash = hash_bytes(hash_bytes(14695981039346656037ull ^ site->line, site->name), site->file);
    pthread_mutex_lock(&cprof_rt.lock);
    if ((cprof_rt.functions_count + 1) * 2 > cprof_rt.functions_capacity && grow_function_table() != 0)
        goto done;
    for (at = hash & (cprof_rt.functions_capacity - 1); cprof_rt.functions[at].record;
         at = (at + 1) & (cprof_rt.functions_capacity - 1))
        if (cprof_rt.functions[at].hash == hash && same_function(cprof_rt.functions[at].record, site)) {
            record = cprof_rt.functions[at].record;
            goto done;
        }
    name_len = strnlen(site->name, 4096);
    file_len = strnlen(site->file, 4096);
    record = cprof_thread_alloc(thread, round_up(sizeof *record + name_len + file_len, 8), 8);
    if (!record)
        goto done;
    record->id = ++cprof_rt.next_function_id;
    record->line = site->line;
    record->flags = site->flags;
    record->name_len = (cprof_u16)name_len;
    record->file_len = (cprof_u16)file_len;
    memcpy(record + 1, site->name, name_len);
    memcpy((char *)(record + 1) + name_len, site->file, file_len);
    record->next = cprof_rt.header->functions_head;
    record->head.size = (cprof_u32)round_up(sizeof *record + name_len + file_len, 8);
    record->head.kind = CPROF_REC_FUNCTION;
    cprof_rt.header->functions_head = as_u64(record);
    cprof_rt.functions[at].hash = hash;
    cprof_rt.functions[at].record = record;
    cprof_rt.functions_count++;
done:
    pthread_mutex_unlock(&cprof_rt.lock);
    if (record)
        __atomic_store_n(&site->func, as_u64(record), __ATOMIC_RELEASE);
    return record;
}

/* ---- nodes and stacks ----------------------------------------------------------------------------------- */

struct cprof_node *cprof_new_node(struct cprof_thread_record *thread, struct cprof_node *parent, cprof_u64 func)
{
    struct cprof_node *node = cprof_thread_alloc(thread, sizeof *node, 64);
    if (!node)
        return NULL;
    node->parent = as_u64(parent);
    node->func = func;
    node->head.size = sizeof *node;
    node->head.kind = CPROF_REC_NODE;
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

struct cprof_node *cprof_child_node(struct cprof_thread_record *thread, struct cprof_node *parent, cprof_u64 func)
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
        node = cprof_new_node(thread, parent, func);
        if (node)
            child_index_insert(index, as_u64(parent), func, node); /* if not indexed: a twin later, merged by readers */
    }
    return node;
}

/* At the thread's end (threads.c): the index is private memory, no part of the run. */
void cprof_release_child_index(void)
{
    if (child_index.slots)
        munmap(child_index.slots, child_index.capacity * sizeof *child_index.slots);
    memset(&child_index, 0, sizeof child_index);
}

/* Stacks are big records of whole chunks; growing copies the frames into a stack twice the size. */
int cprof_grow_stack(struct cprof_thread_record *thread)
{
    struct cprof_stack_record *old = as_pointer(thread->stack);
    size_t bytes = old ? (size_t)old->head.size * 2 : INITIAL_STACK_BYTES;
    struct cprof_stack_record *stack;
    struct cprof_frame *frames;
    size_t depth = 0;
    if (bytes > (1u << 31))
        return -1;
    stack = (struct cprof_stack_record *)cprof_arena_alloc_chunks(bytes);
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
