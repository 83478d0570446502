/* reader.h — the fast run-file reader: validates an arena image and flattens it into plain arrays. */
#ifndef CPROF_READER_H
#define CPROF_READER_H

#include <stddef.h>
#include <stdint.h>
#include "runfile.h"

struct cprof_read_function {
    uint64_t offset;
    uint32_t id, line, flags;
    const char *name, *file; /* point into the image; not terminated */
    size_t name_len, file_len;
};

struct cprof_read_node {
    uint64_t offset;
    int64_t parent;  /* offset of the parent node, -1 for a thread root */
    uint32_t function_id; /* 0 for a thread root */
    uint64_t function_offset; /* the function record's offset (internal to the reader) */
#define CPROF_READ_COUNTER(name) uint64_t name;
    CPROF_NODE_COUNTERS(CPROF_READ_COUNTER) /* as in struct cprof_node */
#undef CPROF_READ_COUNTER
};

struct cprof_read_count {
    uint32_t thread_index, function_id; /* resolved (internal: thread and function record offsets first) */
    uint64_t thread_offset, function_offset;
    uint64_t calls;
};

struct cprof_read_sample {
    uint32_t thread_index;   /* resolved from thread_offset */
    uint64_t thread_offset;
    uint64_t node;           /* offset of the node that was innermost */
    uint64_t ip, caller, weight, signals;
};

struct cprof_read_module {
    const char *path; /* points into the image; not terminated */
    size_t path_len;
    uint64_t base, low, high, mtime_ns, size;
};

/* One allocation site, summed over the tables it appears in; node -1 is the process's outside site. */
struct cprof_read_heap_site {
    uint64_t thread_offset;  /* internal: the table's thread */
    int64_t node;            /* offset of the node, -1 outside every recorded call */
    uint64_t ip;
#define CPROF_READ_SITE_COUNTER(name) uint64_t name;
    CPROF_HEAP_SITE_COUNTERS(CPROF_READ_SITE_COUNTER)
#undef CPROF_READ_SITE_COUNTER
};

/* One thread's event trace: its tables' events in the order they were written (by their ends), nodes as
 * offsets (with CPROF_TRACE_CUT kept in bit 0); events of nodes that are not records in the image are dropped. */
struct cprof_read_trace {
    uint32_t thread_index;
    uint64_t thread_offset;  /* internal */
    struct cprof_trace_event *events;
    size_t count;
};

struct cprof_read_frame {
    uint64_t node;  /* offset of the node */
    uint64_t start_ticks;
};

struct cprof_read_thread {
    uint64_t offset, tid, root, start_ticks, end_ticks, last_ticks, lost_frames;
    uint32_t index;
    char name[17];
    size_t first_open_frame, open_frame_count; /* into cprof_read_result.frames; frame 0 (root) excluded */
};

struct cprof_read_result {
    struct cprof_run_header header;
    int complete;        /* the COMPLETE flag and a valid trailer */
    size_t used;         /* bytes of the image actually read */
    struct cprof_read_function *functions;
    struct cprof_read_node *nodes;
    struct cprof_read_thread *threads;
    struct cprof_read_frame *frames;
    struct cprof_read_count *counts; /* count-only functions: one per (thread, function), summed, sorted */
    struct cprof_read_sample *samples; /* one per (thread, node, ip), summed, sorted */
    struct cprof_read_module *modules; /* one per (path, base), sorted */
    int has_heap;                      /* a heap record was found: heap holds the first one */
    struct cprof_heap_record heap;
    struct cprof_read_heap_site *heap_sites; /* one per (node, ip), summed, sorted; the outside site first */
    struct cprof_read_trace *traces;          /* one per thread that has events, by thread index */
    size_t function_count, node_count, thread_count, frame_count, count_count, sample_count, module_count,
        heap_site_count, trace_count;
    char error[160];
};

/* Returns 0 on success (possibly with records dropped as corrupt), -1 with result->error set when the image is
 * not a run file at all. Allocates; release with cprof_read_free in either case. */
int cprof_read_run(const unsigned char *data, size_t size, struct cprof_read_result *result);
void cprof_read_free(struct cprof_read_result *result);

#endif
