/* runtime_internal.h — the state and functions the runtime's files share; private to the runtime: never installed,
 * never included by user code or the Python binding. */
#ifndef CPROF_RUNTIME_INTERNAL_H
#define CPROF_RUNTIME_INTERNAL_H

#include "runfile.h"
#include "timer.h"
#include "cprof_guard.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* What one runtime file calls in another is no part of libcprofrt.so's interface: hidden, it stays out of the
 * dynamic symbol table and is called directly. A -static link still puts it beside the program's own names, hence
 * the cprof_ prefix. */
#define CPROF_INTERNAL __attribute__((visibility("hidden")))

struct function_slot {
    cprof_u64 hash;
    struct cprof_function_record *record;
};

/* The process's runtime state: one for the whole process. */
struct cprof_runtime {
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
};
extern CPROF_INTERNAL struct cprof_runtime cprof_rt; /* defined in runtime.c */

static inline cprof_u64 now_ticks(void) { return cprof_timer_ticks(&cprof_rt.timer); }
static inline cprof_u64 as_u64(const void *pointer) { return (cprof_u64)(uintptr_t)pointer; }
static inline void *as_pointer(cprof_u64 value) { return (void *)(uintptr_t)value; }
static inline size_t round_up(size_t value, size_t unit) { return (value + unit - 1) / unit * unit; }
static inline pid_t current_tid(void) { return (pid_t)syscall(SYS_gettid); }

static inline struct cprof_frame *stack_frames(struct cprof_thread_record *thread)
{
    return (struct cprof_frame *)((char *)as_pointer(thread->stack) + sizeof(struct cprof_stack_record));
}

/* arena.c: the run file's mapping, whole chunks of it, and each thread's records inside its own chunks */
CPROF_INTERNAL int cprof_map_new_arena(int fd);
CPROF_INTERNAL char *cprof_arena_alloc_chunks(size_t bytes);
CPROF_INTERNAL void *cprof_thread_alloc(struct cprof_thread_record *thread, size_t size, size_t align);

/* calltree.c: function records, call-tree nodes and stacks */
CPROF_INTERNAL struct cprof_function_record *cprof_site_function(struct cprof_thread_record *thread,
                                                                 struct __cprof_site *site);
CPROF_INTERNAL struct cprof_node *cprof_new_node(struct cprof_thread_record *thread, struct cprof_node *parent,
                                                 cprof_u64 func);
CPROF_INTERNAL struct cprof_node *cprof_child_node(struct cprof_thread_record *thread, struct cprof_node *parent,
                                                   cprof_u64 func);
CPROF_INTERNAL void cprof_release_child_index(void);
CPROF_INTERNAL int cprof_grow_stack(struct cprof_thread_record *thread);

/* threads.c */
CPROF_INTERNAL void cprof_read_thread_name(pid_t tid, char name[16]);
CPROF_INTERNAL void cprof_record_thread_cpu(struct cprof_thread_record *thread, int current);
CPROF_INTERNAL void cprof_start_thread_cpu(struct cprof_thread_record *thread, int current);
CPROF_INTERNAL void cprof_thread_finish(void *state);
CPROF_INTERNAL struct cprof_thread_record *cprof_thread_start(void);

/* counts.c: every thread's counters of the count-only sites, handed out at its start */
CPROF_INTERNAL int cprof_counts_wanted(void);
CPROF_INTERNAL void cprof_counts_thread_start(struct cprof_thread_record *thread);
CPROF_INTERNAL void cprof_counts_thread_end(struct cprof_thread_record *thread);
CPROF_INTERNAL void cprof_counts_after_fork(struct cprof_thread_record *survivor);
CPROF_INTERNAL void cprof_counts_thread_off(void);
CPROF_INTERNAL void cprof_counts_fold_early(void);
CPROF_INTERNAL void cprof_counts_forget_early(void);

/* process.c: whether an environment variable is set to something other than "" or "0" */
CPROF_INTERNAL int cprof_env_flag(const char *name);

/* process.c: 0 once the process records (started on first use), -1 when it does not */
CPROF_INTERNAL int cprof_process_start(void);
/* the guard's mode while recording: 0 (inline timer), 2 (every event via the runtime: no trustworthy counter, or
 * CPU time too) or 3 (tracing: entries inline, exits via the runtime, which appends the trace) */
CPROF_INTERNAL int cprof_recording_mode(void);

/* calibration.c: measures the guard's cost into the run header */
CPROF_INTERNAL void cprof_calibrate_guard(void);

#endif
