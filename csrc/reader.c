/* reader.c — the fast run-file reader behind cprof._native; cprof/runfile.py is its pure-Python twin.
 *
 * The image may be truncated, half-written (a crashed process) or corrupt, so every size and pointer is
 * checked against the image before use and anything that does not fit is dropped, never followed. */
#include "reader.h"
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CPROF_NODE_COUNTERS is copied field by field, so it must name every counter of the struct in order: from calls
 * to the struct's end, each 8 bytes after the one before. */
#define COUNTER_INDEX(name) COUNTER_AT_##name,
enum { CPROF_NODE_COUNTERS(COUNTER_INDEX) NODE_COUNTER_COUNT };
#define CHECK_COUNTER(name)                                                                                        \
    _Static_assert(offsetof(struct cprof_node, name) == offsetof(struct cprof_node, calls) + 8 * COUNTER_AT_##name \
                       && sizeof(((struct cprof_node *)0)->name) == 8,                                           \
                   "CPROF_NODE_COUNTERS: " #name " is not where the struct has it");
CPROF_NODE_COUNTERS(CHECK_COUNTER)
_Static_assert(offsetof(struct cprof_node, calls) + 8 * NODE_COUNTER_COUNT == sizeof(struct cprof_node),
               "CPROF_NODE_COUNTERS lacks a counter of struct cprof_node");

struct growable {
    void *items;
    size_t count, capacity, item_size;
};

static void *push(struct growable *array)
{
    if (array->count == array->capacity) {
        size_t capacity = array->capacity ? array->capacity * 2 : 64;
        void *items = realloc(array->items, capacity * array->item_size);
        if (!items)
            return NULL;
        array->items = items;
        array->capacity = capacity;
    }
    return (char *)array->items + array->item_size * array->count++;
}

struct scan_state {
    const unsigned char *data;
    size_t used;
    uint64_t base;
    struct growable functions, nodes, threads, frames, counts, samples, modules, heap_sites, trace_tables;
    int has_heap;
    struct cprof_heap_record heap;
    int out_of_memory;
};

/* A pointer from the image, as an offset of a record start inside it, or -1 when it points elsewhere. */
static int64_t to_offset(const struct scan_state *state, uint64_t pointer, size_t record_size)
{
    uint64_t offset;
    if (pointer < state->base)
        return -1;
    offset = pointer - state->base;
    if (offset < CPROF_CHUNK_SIZE || offset % 8 != 0 || offset + record_size > state->used)
        return -1;
    return (int64_t)offset;
}

static int collect_counts(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at);
static int collect_samples(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at);
static int collect_module(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at);
static int collect_heap_sites(struct scan_state *state, const struct cprof_record_head *record,
                              const unsigned char *at);

/* A trace table found in the image: its events are gathered per thread once every node is known. */
struct trace_table {
    uint64_t thread_offset, offset;
    uint32_t used;
};

static int collect(const struct cprof_record_head *record, size_t offset, void *context)
{
    struct scan_state *state = context;
    const unsigned char *at = state->data + offset;
    if (record->kind == CPROF_REC_COUNTS && record->size >= sizeof(struct cprof_counts_record))
        return collect_counts(state, record, at);
    if (record->kind == CPROF_REC_SAMPLES && record->size >= sizeof(struct cprof_samples_record))
        return collect_samples(state, record, at);
    if (record->kind == CPROF_REC_MODULE && record->size >= sizeof(struct cprof_module_record))
        return collect_module(state, record, at);
    if (record->kind == CPROF_REC_HEAP_SITES && record->size >= sizeof(struct cprof_heap_sites_record))
        return collect_heap_sites(state, record, at);
    if (record->kind == CPROF_REC_TRACE && record->size >= sizeof(struct cprof_trace_record)) {
        struct cprof_trace_record table;
        struct trace_table *out;
        int64_t thread;
        memcpy(&table, at, sizeof table);
        thread = to_offset(state, table.thread, offsetof(struct cprof_thread_record, trace));
        if (thread < 0 || table.used > table.capacity ||
            sizeof table + (uint64_t)table.capacity * sizeof(struct cprof_trace_event) > record->size)
            return 0;
        if (!(out = push(&state->trace_tables)))
            return state->out_of_memory = 1;
        out->thread_offset = (uint64_t)thread;
        out->offset = offset;
        out->used = table.used;
        return 0;
    }
    if (record->kind == CPROF_REC_HEAP && record->size >= sizeof(struct cprof_heap_record)) {
        if (!state->has_heap) {
            memcpy(&state->heap, at, sizeof state->heap);
            state->has_heap = 1;
        }
        return 0;
    }
    if (record->kind == CPROF_REC_FUNCTION && record->size >= sizeof(struct cprof_function_record)) {
        struct cprof_function_record function;
        struct cprof_read_function *out;
        memcpy(&function, at, sizeof function);
        if (sizeof function + function.name_len + function.file_len > record->size)
            return 0;
        if (!(out = push(&state->functions)))
            return state->out_of_memory = 1;
        out->offset = offset;
        out->id = function.id;
        out->line = function.line;
        out->flags = function.flags;
        out->name = (const char *)at + sizeof function;
        out->name_len = function.name_len;
        out->file = out->name + function.name_len;
        out->file_len = function.file_len;
    } else if (record->kind == CPROF_REC_NODE && record->size >= sizeof(struct cprof_node)) {
        struct cprof_node node;
        struct cprof_read_node *out;
        memcpy(&node, at, sizeof node);
        if (!(out = push(&state->nodes)))
            return state->out_of_memory = 1;
        out->offset = offset;
        out->parent = node.parent ? to_offset(state, node.parent, sizeof node) : -1;
        out->function_id = 0; /* resolved from function_offset in resolve() */
        out->function_offset = 0;
        if (node.func) {
            int64_t function = to_offset(state, node.func, sizeof(struct cprof_function_record));
            out->function_offset = function < 0 ? UINT64_MAX : (uint64_t)function;
        }
        if (node.parent && out->parent < 0)
            out->parent = -2; /* dangling: dropped in resolve() */
#define COPY_COUNTER(name) out->name = node.name;
        CPROF_NODE_COUNTERS(COPY_COUNTER)
#undef COPY_COUNTER
    } else if (record->kind == CPROF_REC_THREAD && record->size >= offsetof(struct cprof_thread_record, trace)) {
        struct cprof_thread_record thread; /* runs recorded before the trace field have a shorter record */
        struct cprof_read_thread *out;
        int64_t stack, top, root;
        memset(&thread, 0, sizeof thread);
        memcpy(&thread, at, record->size < sizeof thread ? record->size : sizeof thread);
        root = to_offset(state, thread.root, sizeof(struct cprof_node));
        if (root < 0)
            return 0;
        if (!(out = push(&state->threads)))
            return state->out_of_memory = 1;
        memset(out, 0, sizeof *out);
        out->offset = offset;
        out->tid = thread.tid;
        out->root = (uint64_t)root;
        out->start_ticks = thread.start_ticks;
        out->end_ticks = thread.end_ticks;
        out->last_ticks = thread.last_ticks;
        out->lost_frames = thread.lost_frames;
        out->index = thread.index;
        memcpy(out->name, thread.name, 16);
        out->name[16] = 0;
        out->first_open_frame = state->frames.count;
        stack = to_offset(state, thread.stack, sizeof(struct cprof_stack_record));
        top = to_offset(state, thread.top, sizeof(struct cprof_frame));
        if (stack >= 0 && top >= 0) {
            struct cprof_stack_record stack_record;
            uint64_t first = (uint64_t)stack + sizeof stack_record, frame_at;
            memcpy(&stack_record, state->data + stack, sizeof stack_record);
            if (stack_record.head.kind != CPROF_REC_STACK || (uint64_t)top < first ||
                (uint64_t)top + sizeof(struct cprof_frame) > (uint64_t)stack + stack_record.head.size ||
                ((uint64_t)top - first) % sizeof(struct cprof_frame) != 0)
                return 0; /* the thread's tree stands; only its open frames are lost */
            for (frame_at = first + sizeof(struct cprof_frame); frame_at <= (uint64_t)top;
                 frame_at += sizeof(struct cprof_frame)) {
                struct cprof_frame frame;
                struct cprof_read_frame *open;
                int64_t node;
                memcpy(&frame, state->data + frame_at, sizeof frame);
                node = to_offset(state, frame.node, sizeof(struct cprof_node));
                if (node < 0)
                    continue;
                if (!(open = push(&state->frames)))
                    return state->out_of_memory = 1;
                open->node = (uint64_t)node;
                open->start_ticks = frame.start_ticks;
            }
            out->open_frame_count = state->frames.count - out->first_open_frame;
        }
    }
    return 0;
}

static int collect_counts(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at)
{
    struct cprof_counts_record counts;
    uint64_t pointer, value;
    uint32_t i;
    memcpy(&counts, at, sizeof counts);
    if (sizeof counts + 16ull * counts.count > record->size)
        return 0;
    for (i = 0; i < counts.count; i++) {
        struct cprof_read_count *out;
        memcpy(&pointer, at + sizeof counts + 8ull * i, 8);
        memcpy(&value, at + sizeof counts + 8ull * (counts.count + i), 8);
        if (!value)
            continue;
        if (!(out = push(&state->counts))) {
            state->out_of_memory = 1;
            return 1;
        }
        out->thread_offset = (uint64_t)to_offset(state, counts.thread, sizeof(struct cprof_thread_record));
        out->function_offset = (uint64_t)to_offset(state, pointer, sizeof(struct cprof_function_record));
        out->calls = value;
    }
    return 0;
}

static int collect_samples(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at)
{
    struct cprof_samples_record table;
    uint64_t i;
    int64_t thread;
    memcpy(&table, at, sizeof table);
    if (sizeof table + (uint64_t)table.capacity * sizeof(struct cprof_sample_entry) > record->size)
        return 0;
    thread = to_offset(state, table.thread, sizeof(struct cprof_thread_record));
    if (thread < 0)
        return 0;
    for (i = 0; i < table.capacity; i++) {
        struct cprof_sample_entry entry;
        struct cprof_read_sample *out;
        int64_t node;
        memcpy(&entry, at + sizeof table + i * sizeof entry, sizeof entry);
        if (!entry.weight || (node = to_offset(state, entry.node, sizeof(struct cprof_node))) < 0)
            continue;
        if (!(out = push(&state->samples))) {
            state->out_of_memory = 1;
            return 1;
        }
        out->thread_offset = (uint64_t)thread;
        out->node = (uint64_t)node;
        out->ip = entry.ip;
        out->caller = entry.caller;
        out->weight = entry.weight;
        out->signals = entry.signals;
    }
    return 0;
}

static int collect_module(struct scan_state *state, const struct cprof_record_head *record, const unsigned char *at)
{
    struct cprof_module_record module;
    struct cprof_read_module *out;
    memcpy(&module, at, sizeof module);
    if (sizeof module + (uint64_t)module.path_len > record->size)
        return 0;
    if (!(out = push(&state->modules))) {
        state->out_of_memory = 1;
        return 1;
    }
    out->path = (const char *)at + sizeof module;
    out->path_len = module.path_len;
    out->base = module.base;
    out->low = module.low;
    out->high = module.high;
    out->mtime_ns = module.mtime_ns;
    out->size = module.size;
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    uint64_t x = ((const struct cprof_read_function *)a)->offset, y = ((const struct cprof_read_function *)b)->offset;
    return (x > y) - (x < y);
}

static int by_thread_and_function(const void *a, const void *b)
{
    const struct cprof_read_count *x = a, *y = b;
    if (x->thread_index != y->thread_index)
        return (x->thread_index > y->thread_index) - (x->thread_index < y->thread_index);
    return (x->function_id > y->function_id) - (x->function_id < y->function_id);
}

/* Counts of functions and threads that are records in the image, by thread index and function id, summed. */
static void resolve_counts(struct scan_state *state)
{
    struct cprof_read_function *functions = state->functions.items;
    struct cprof_read_thread *threads = state->threads.items;
    struct cprof_read_count *counts = state->counts.items;
    size_t i, j, kept = 0;
    for (i = 0; i < state->counts.count; i++) {
        struct cprof_read_function key, *found;
        struct cprof_read_count count = counts[i];
        key.offset = count.function_offset;
        found = bsearch(&key, functions, state->functions.count, sizeof *functions, by_offset);
        for (j = 0; j < state->threads.count && threads[j].offset != count.thread_offset; j++)
            ;
        if (!found || j == state->threads.count)
            continue;
        count.function_id = found->id;
        count.thread_index = threads[j].index;
        counts[kept++] = count;
    }
    qsort(counts, kept, sizeof *counts, by_thread_and_function);
    for (i = 0, j = 0; i < kept; i++) {
        if (j > 0 && counts[j - 1].thread_index == counts[i].thread_index &&
            counts[j - 1].function_id == counts[i].function_id)
            counts[j - 1].calls += counts[i].calls;
        else
            counts[j++] = counts[i];
    }
    state->counts.count = j;
}
static int collect_heap_sites(struct scan_state *state, const struct cprof_record_head *record,
                              const unsigned char *at)
{
    struct cprof_heap_sites_record table;
    uint64_t i;
    int64_t thread;
    memcpy(&table, at, sizeof table);
    if (sizeof table + (uint64_t)table.capacity * sizeof(struct cprof_heap_site) > record->size)
        return 0;
    thread = to_offset(state, table.thread, sizeof(struct cprof_thread_record));
    if (thread < 0)
        return 0;
    for (i = 0; i < table.capacity; i++) {
        struct cprof_heap_site entry;
        struct cprof_read_heap_site *out;
        int64_t node;
        memcpy(&entry, at + sizeof table + i * sizeof entry, sizeof entry);
        if (!entry.ip || (node = to_offset(state, entry.node, sizeof(struct cprof_node))) < 0)
            continue;
        if (!(out = push(&state->heap_sites))) {
            state->out_of_memory = 1;
            return 1;
        }
        out->thread_offset = (uint64_t)thread;
        out->node = node;
        out->ip = entry.ip;
#define COPY_SITE_COUNTER(name) out->name = entry.name;
        CPROF_HEAP_SITE_COUNTERS(COPY_SITE_COUNTER)
#undef COPY_SITE_COUNTER
    }
    return 0;
}

static int by_node_offset(const void *a, const void *b)
{
    uint64_t x = ((const struct cprof_read_node *)a)->offset, y = ((const struct cprof_read_node *)b)->offset;
    return (x > y) - (x < y);
}

static int by_sample_key(const void *a, const void *b)
{
    const struct cprof_read_sample *x = a, *y = b;
    if (x->thread_index != y->thread_index)
        return (x->thread_index > y->thread_index) - (x->thread_index < y->thread_index);
    if (x->node != y->node)
        return (x->node > y->node) - (x->node < y->node);
    if (x->ip != y->ip)
        return (x->ip > y->ip) - (x->ip < y->ip);
    return (x->caller > y->caller) - (x->caller < y->caller);
}

/* Samples of threads and nodes that are records in the image (nodes kept by resolve()), by thread index, node
 * and instruction, summed. */
static void resolve_samples(struct scan_state *state)
{
    struct cprof_read_thread *threads = state->threads.items;
    struct cprof_read_sample *samples = state->samples.items;
    size_t i, j, kept = 0;
    for (i = 0; i < state->samples.count; i++) {
        struct cprof_read_node key;
        key.offset = samples[i].node;
        for (j = 0; j < state->threads.count && threads[j].offset != samples[i].thread_offset; j++)
            ;
        if (j == state->threads.count ||
            !bsearch(&key, state->nodes.items, state->nodes.count, sizeof key, by_node_offset))
            continue;
        samples[i].thread_index = threads[j].index;
        samples[kept++] = samples[i];
    }
    qsort(samples, kept, sizeof *samples, by_sample_key);
    for (i = 0, j = 0; i < kept; i++) {
        if (j > 0 && by_sample_key(&samples[j - 1], &samples[i]) == 0)
        {
            samples[j - 1].weight += samples[i].weight;
            samples[j - 1].signals += samples[i].signals;
        }
        else
            samples[j++] = samples[i];
    }
    state->samples.count = j;
}

static int by_site_key(const void *a, const void *b)
{
    const struct cprof_read_heap_site *x = a, *y = b;
    if (x->node != y->node)
        return (x->node > y->node) - (x->node < y->node);
    return (x->ip > y->ip) - (x->ip < y->ip);
}

/* Sites of nodes that are records in the image, by node and instruction, summed; the outside site (node -1)
 * from the heap record goes first. */
static void resolve_heap_sites(struct scan_state *state)
{
    struct cprof_read_heap_site *sites = state->heap_sites.items;
    size_t i, j, kept = 0;
    for (i = 0; i < state->heap_sites.count; i++) {
        struct cprof_read_node key;
        key.offset = (uint64_t)sites[i].node;
        if (bsearch(&key, state->nodes.items, state->nodes.count, sizeof key, by_node_offset))
            sites[kept++] = sites[i];
    }
    qsort(sites, kept, sizeof *sites, by_site_key);
    for (i = 0, j = 0; i < kept; i++) {
        if (j > 0 && by_site_key(&sites[j - 1], &sites[i]) == 0) {
#define ADD_SITE_COUNTER(name) sites[j - 1].name += sites[i].name;
            CPROF_HEAP_SITE_COUNTERS(ADD_SITE_COUNTER)
#undef ADD_SITE_COUNTER
        } else
            sites[j++] = sites[i];
    }
    state->heap_sites.count = j;
    if (state->has_heap && (state->heap.outside.alloc_count || state->heap.outside.released_count ||
                            state->heap.outside.remote_released_count)) {
        struct cprof_read_heap_site *outside = push(&state->heap_sites);
        if (!outside) {
            state->out_of_memory = 1;
            return;
        }
        sites = state->heap_sites.items;
        memmove(sites + 1, sites, j * sizeof *sites);
        memset(sites, 0, sizeof *sites);
        sites[0].node = -1;
#define COPY_OUTSIDE_COUNTER(name) sites[0].name = state->heap.outside.name;
        CPROF_HEAP_SITE_COUNTERS(COPY_OUTSIDE_COUNTER)
#undef COPY_OUTSIDE_COUNTER
    }
}

static int by_module(const void *a, const void *b)
{
    const struct cprof_read_module *x = a, *y = b;
    size_t shorter = x->path_len < y->path_len ? x->path_len : y->path_len;
    int order = memcmp(x->path, y->path, shorter);
    if (order || x->path_len != y->path_len)
        return order ? order : (x->path_len > y->path_len) - (x->path_len < y->path_len);
    return (x->base > y->base) - (x->base < y->base);
}

static void resolve_modules(struct scan_state *state)
{
    struct cprof_read_module *modules = state->modules.items;
    size_t i, j;
    qsort(modules, state->modules.count, sizeof *modules, by_module);
    for (i = 0, j = 0; i < state->modules.count; i++)
        if (j == 0 || by_module(&modules[j - 1], &modules[i]) != 0)
            modules[j++] = modules[i];
    state->modules.count = j;
}

static int by_trace_table(const void *a, const void *b)
{
    const struct trace_table *x = a, *y = b;
    if (x->thread_offset != y->thread_offset)
        return (x->thread_offset > y->thread_offset) - (x->thread_offset < y->thread_offset);
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int by_trace_thread(const void *a, const void *b)
{
    const struct cprof_read_trace *x = a, *y = b;
    return (x->thread_index > y->thread_index) - (x->thread_index < y->thread_index);
}

/* Each thread's tables in the order it took them (the arena only grows, so by offset), their events with nodes
 * as offsets. Returns the per-thread traces, or NULL with *count 0 when there are none. */
static struct cprof_read_trace *resolve_traces(struct scan_state *state, size_t *count)
{
    struct trace_table *tables = state->trace_tables.items;
    struct cprof_read_thread *threads = state->threads.items;
    struct cprof_read_trace *traces;
    size_t i, j, made = 0;
    *count = 0;
    if (!state->trace_tables.count)
        return NULL;
    qsort(tables, state->trace_tables.count, sizeof *tables, by_trace_table);
    if (!(traces = calloc(state->trace_tables.count, sizeof *traces))) {
        state->out_of_memory = 1;
        return NULL;
    }
    for (i = 0; i < state->trace_tables.count; i = j) {
        struct cprof_read_trace *trace = &traces[made];
        size_t events = 0, k;
        memset(trace, 0, sizeof *trace);
        for (j = i; j < state->trace_tables.count && tables[j].thread_offset == tables[i].thread_offset; j++)
            events += tables[j].used;
        for (k = 0; k < state->threads.count && threads[k].offset != tables[i].thread_offset; k++)
            ;
        if (k == state->threads.count || !events)
            continue;
        if (!(trace->events = malloc(events * sizeof *trace->events))) {
            state->out_of_memory = 1;
            break;
        }
        trace->thread_index = threads[k].index;
        trace->thread_offset = tables[i].thread_offset;
        for (k = i; k < j; k++) {
            const unsigned char *at = state->data + tables[k].offset + sizeof(struct cprof_trace_record);
            uint32_t e;
            for (e = 0; e < tables[k].used; e++) {
                struct cprof_trace_event event;
                struct cprof_read_node key;
                int64_t node;
                memcpy(&event, at + (size_t)e * sizeof event, sizeof event);
                node = to_offset(state, event.node & ~CPROF_TRACE_CUT, sizeof(struct cprof_node));
                key.offset = (uint64_t)node;
                if (node < 0 || event.end_ticks < event.start_ticks ||
                    !bsearch(&key, state->nodes.items, state->nodes.count, sizeof key, by_node_offset))
                    continue;
                event.node = (uint64_t)node | (event.node & CPROF_TRACE_CUT);
                trace->events[trace->count++] = event;
            }
        }
        if (trace->count)
            made++;
        else
            free(trace->events);
    }
    qsort(traces, made, sizeof *traces, by_trace_thread);
    *count = made;
    return traces;
}

/* Function pointers become ids; nodes whose function or parent is not a record in the image are dropped. */
static void resolve(struct scan_state *state)
{
    struct cprof_read_function *functions = state->functions.items;
    struct cprof_read_node *nodes = state->nodes.items;
    size_t i, kept = 0;
    qsort(functions, state->functions.count, sizeof *functions, by_offset);
    for (i = 0; i < state->nodes.count; i++) {
        struct cprof_read_node node = nodes[i];
        if (node.parent == -2 || node.function_offset == UINT64_MAX)
            continue;
        if (node.function_offset) {
            struct cprof_read_function key, *found;
            key.offset = node.function_offset;
            found = bsearch(&key, functions, state->functions.count, sizeof *functions, by_offset);
            if (!found)
                continue;
            node.function_id = found->id;
        }
        nodes[kept++] = node;
    }
    state->nodes.count = kept;
    resolve_counts(state);
    resolve_samples(state);
    resolve_modules(state);
    resolve_heap_sites(state);
}

int cprof_read_run(const unsigned char *data, size_t size, struct cprof_read_result *result)
{
    struct scan_state state;
    struct cprof_trailer_record trailer;
    memset(result, 0, sizeof *result);
    memset(&state, 0, sizeof state);
    if (size < CPROF_HEADER_SIZE || memcmp(data, CPROF_RUN_MAGIC, 8) != 0) {
        snprintf(result->error, sizeof result->error, "not a cprof run file (bad magic or shorter than its header)");
        return -1;
    }
    memcpy(&result->header, data, sizeof result->header);
    if (result->header.version != CPROF_RUN_VERSION || result->header.chunk_size != CPROF_CHUNK_SIZE) {
        snprintf(result->error, sizeof result->error, "unsupported run file version %u", result->header.version);
        return -1;
    }
    state.data = data;
    state.used = result->header.used_bytes < size ? (size_t)result->header.used_bytes : size;
    state.base = result->header.base_address;
    state.functions.item_size = sizeof(struct cprof_read_function);
    state.nodes.item_size = sizeof(struct cprof_read_node);
    state.threads.item_size = sizeof(struct cprof_read_thread);
    state.frames.item_size = sizeof(struct cprof_read_frame);
    state.counts.item_size = sizeof(struct cprof_read_count);
    state.samples.item_size = sizeof(struct cprof_read_sample);
    state.modules.item_size = sizeof(struct cprof_read_module);
    state.heap_sites.item_size = sizeof(struct cprof_read_heap_site);
    state.trace_tables.item_size = sizeof(struct trace_table);
    cprof_scan_records(data, state.used, collect, &state);
    resolve(&state);
    result->traces = resolve_traces(&state, &result->trace_count);
    free(state.trace_tables.items);
    result->functions = state.functions.items;
    result->function_count = state.functions.count;
    result->nodes = state.nodes.items;
    result->node_count = state.nodes.count;
    result->threads = state.threads.items;
    result->thread_count = state.threads.count;
    result->frames = state.frames.items;
    result->frame_count = state.frames.count;
    result->counts = state.counts.items;
    result->count_count = state.counts.count;
    result->samples = state.samples.items;
    result->sample_count = state.samples.count;
    result->modules = state.modules.items;
    result->module_count = state.modules.count;
    result->heap_sites = state.heap_sites.items;
    result->heap_site_count = state.heap_sites.count;
    result->has_heap = state.has_heap;
    result->heap = state.heap;
    result->used = state.used;
    result->complete = 0;
    if (size >= CPROF_HEADER_SIZE + sizeof trailer && size >= result->header.used_bytes) { /* not truncated */
        memcpy(&trailer, data + CPROF_HEADER_SIZE, sizeof trailer);
        result->complete = (result->header.flags & CPROF_RUN_COMPLETE) && trailer.head.kind == CPROF_REC_TRAILER &&
                           memcmp(trailer.magic, CPROF_TRAILER_MAGIC, 8) == 0;
    }
    if (state.out_of_memory) {
        snprintf(result->error, sizeof result->error, "out of memory while reading the run file");
        return -1;
    }
    return 0;
}

void cprof_read_free(struct cprof_read_result *result)
{
    free(result->functions);
    free(result->nodes);
    free(result->threads);
    free(result->frames);
    free(result->counts);
    free(result->samples);
    free(result->modules);
    free(result->heap_sites);
    if (result->traces) {
        size_t i;
        for (i = 0; i < result->trace_count; i++)
            free(result->traces[i].events);
        free(result->traces);
    }
    memset(result, 0, sizeof *result);
}
