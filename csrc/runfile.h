/* runfile.h — the cprof run-file format (version 1): the layout the runtime writes and both readers parse.
 *
 * A run file is the runtime's own arena: the runtime maps the file MAP_SHARED and keeps every counter in it, so
 * a process that is killed, crashes, calls _exit or execs still leaves everything measured up to that instant.
 *
 *   offset 0            struct cprof_run_header (CPROF_HEADER_SIZE bytes)
 *   CPROF_HEADER_SIZE   records, packed into chunks of CPROF_CHUNK_SIZE bytes
 *
 * Every record starts with struct cprof_record_head {kind, size}; size is a multiple of 8 and counts the head.
 * Records never cross a chunk boundary, except "big" records (thread stacks), which start on a chunk boundary
 * and cover whole chunks. A zero kind means "rest of this chunk unused": readers skip to the next boundary.
 * Pointers inside records are the addresses the runtime used: offset = pointer - header.base_address.
 * A clean exit sets CPROF_RUN_COMPLETE in the header and appends a trailer record.
 *
 * The header is free of #includes on purpose: the guard header mirrors the hot structs of this file into user
 * translation units, and runtime.c checks with static assertions that both layouts agree. */
#ifndef CPROF_RUNFILE_H
#define CPROF_RUNFILE_H

typedef __UINT8_TYPE__ cprof_u8;
typedef __UINT16_TYPE__ cprof_u16;
typedef __UINT32_TYPE__ cprof_u32;
typedef __INT32_TYPE__ cprof_i32;
__extension__ typedef unsigned long long cprof_u64; /* the same type as the guard's __cprof_u64 */

#define CPROF_RUN_MAGIC "CPROFRUN"
#define CPROF_TRAILER_MAGIC "CPROFEND"
#define CPROF_RUN_VERSION 1u
#define CPROF_HEADER_SIZE 4096u
#define CPROF_CHUNK_SIZE 65536u
#define CPROF_CMDLINE_MAX 2048u

/* Feature bits: what this run measured. Readers ignore bits they do not know. */
#define CPROF_FEAT_WALL_TIME (1ull << 0)  /* node.total_ticks holds wall-clock ticks */
#define CPROF_FEAT_CPU_TIME (1ull << 1)   /* node.cpu_ns holds thread CPU time (--cpu-time) */
#define CPROF_FEAT_ALLOCS (1ull << 2)     /* the heap was tracked: node allocation counters, heap records (heap.c) */
#define CPROF_FEAT_TRACE (1ull << 3)      /* a bounded event trace per thread: trace records follow (trace.c) */
#define CPROF_FEAT_THREAD_CPU (1ull << 4) /* a thread root's cpu_ns holds the thread's whole CPU time at its end */
#define CPROF_FEAT_WAIT_TIME (1ull << 5)  /* node.wait_ticks holds time spent blocked (csrc/waits.c) */
#define CPROF_FEAT_SLOW_PATH (1ull << 6)  /* node.slow_ticks / slow_calls: entries through the runtime's slow path */
#define CPROF_FEAT_SAMPLES (1ull << 7)    /* threads were sampled on their CPU time: sample and module records follow */

/* Header flags. */
#define CPROF_RUN_COMPLETE (1u << 0)    /* the process finished normally and wrote its trailer */
#define CPROF_RUN_FORK_CHILD (1u << 1)  /* created by fork(): parent_pid and fork_ticks are set */
#define CPROF_RUN_DISABLED (1u << 2)    /* profiling was switched off for this process */

/* Timer kinds. */
#define CPROF_TIMER_TSC 1u            /* x86-64 invariant TSC */
#define CPROF_TIMER_MONOTONIC 2u      /* clock_gettime(CLOCK_MONOTONIC), ticks are nanoseconds */
#define CPROF_TIMER_CNTVCT 3u         /* aarch64 virtual counter */

/* Record kinds. */
#define CPROF_REC_FUNCTION 1u
#define CPROF_REC_THREAD 2u
#define CPROF_REC_NODE 3u
#define CPROF_REC_STACK 4u
#define CPROF_REC_TRAILER 5u
#define CPROF_REC_COUNTS 7u   /* one thread's counts of one unit's count-only functions */
#define CPROF_REC_SAMPLES 8u  /* one table of a thread's CPU-time samples, by call path and instruction */
#define CPROF_REC_MODULE 9u   /* a loaded object (program or shared library): where its code was mapped */

/* Where samples came from (header.sample_source). */
#define CPROF_SAMPLES_OFF 0u            /* not asked for (CPROF_SAMPLE_HZ unset or 0) */
#define CPROF_SAMPLES_THREAD_TIMER 1u   /* a POSIX timer on each thread's CPU clock, SIGPROF */
#define CPROF_SAMPLES_REFUSED 2u        /* asked for, but SIGPROF already had a handler (the program's own) */
#define CPROF_SAMPLES_FAILED 3u         /* asked for, but no timer could be created */

/* Function flags (also used in struct __cprof_site.flags by the guard). */
#define CPROF_FN_STATIC (1u << 0)   /* internal linkage */
#define CPROF_FN_SECTION (1u << 1)  /* a user-placed section from cprof.h, not a C function */
#define CPROF_FN_INLINE (1u << 2)   /* declared inline */
#define CPROF_FN_COUNTED (1u << 3)  /* only counted (a count-only site): no frame, its time is in its callers' */
#define CPROF_FN_STRIPED (1u << 4)  /* counted into slots picked by recursion depth (__cprof_count_striped) */

struct cprof_record_head {
    cprof_u32 kind;
    cprof_u32 size;
};

struct cprof_run_header {
    char magic[8];
    cprof_u32 version;
    cprof_u32 header_size;
    cprof_u64 features;
    cprof_u64 base_address;   /* where the arena was mapped; pointers in records are relative to it */
    cprof_u64 used_bytes;     /* arena bytes handed out so far; grows while the process runs */
    cprof_u32 chunk_size;
    cprof_u32 timer_kind;
    double ticks_per_second;  /* calibrated against CLOCK_MONOTONIC at start; refined at clean exit */
    cprof_u64 start_ticks;
    cprof_u64 start_mono_ns;
    cprof_u64 start_unix_ns;
    cprof_u64 end_ticks;      /* 0 until a clean exit */
    cprof_u64 end_mono_ns;
    cprof_i32 pid;
    cprof_i32 parent_pid;     /* for fork children: the pid whose run this one continues */
    cprof_i32 exit_status;    /* wait status as written by the launcher, -1 when unknown */
    cprof_u32 flags;
    cprof_u64 threads_head;   /* newest thread record; older ones follow through .next */
    cprof_u64 functions_head; /* newest function record; older ones follow through .next */
    cprof_u64 fork_ticks;     /* fork children: when the fork happened (counts start from zero there) */
    /* Guard cost measured at start-up with the real inline guard (see cprof_calibrate_guard() in calibration.c). */
    double guard_inner_ticks;  /* per call, inside the callee's own measured interval */
    double guard_outer_ticks;  /* per call, landing in the caller's self time */
    double guard_inner_spread; /* spread (median absolute deviation) of the two above */
    double guard_outer_spread;
    cprof_u32 calibration_rounds;
    cprof_u32 cmdline_len;     /* bytes used in cmdline: arguments separated by NUL */
    cprof_u64 lost_frames;     /* calls not recorded (arena full, re-entered from a signal handler) */
    cprof_u32 timer_ordered;   /* 1: timer reads waited for earlier instructions (rdtscp) */
    cprof_u32 reserved_u32;
    cprof_u64 runtime_ns;      /* the runtime's own start-up and exit work (timer and guard calibration): not the
                                  program's time, which coverage figures are a share of */
    /* CPU-time sampling (csrc/sampling.c): what was asked for, what every thread's samples add up to */
    cprof_u64 sample_period_ns;  /* of a thread's CPU time; 0 when not sampled */
    cprof_u32 sample_source;     /* CPROF_SAMPLES_* */
    cprof_u32 reserved_u32b;
    cprof_u64 samples_outside;   /* weight of samples taken where no call was recorded (no thread state yet,
                                    profiling switched off) */
    cprof_u64 samples_dropped;   /* weight of samples that found no room in the run file */
    double count_guard_ticks;    /* what a count-only guard adds to a call (calibrate_guard), and its spread */
    double count_guard_spread;
    /* The event trace (CPROF_FEAT_TRACE, csrc/trace.c): what was asked for, and where it stopped */
    cprof_u64 trace_min_ns;      /* calls shorter than this were left out */
    cprof_u64 trace_limit_bytes; /* trace tables may take this much of the run file; then the trace stops */
    cprof_u64 trace_bytes;       /* taken so far (atomic) */
    cprof_u64 trace_stop_ticks;  /* 0, or when the limit was reached: calls ending later are cut or left out */
    cprof_u64 trace_dropped;     /* calls not recorded: begun after the stop, or no room at all */
    cprof_u64 reserved[3];
    char cmdline[CPROF_CMDLINE_MAX];
    /* What a count increment costs where nothing hides it (calibrate_guard; count_guard_ticks above is its cost
     * among work). After the command line, where older run files hold zeros. */
    double count_exposed_ticks; /* 0: no longer measured (calibration.c); kept so that the layout stays */
    double count_striped_ticks; /* 0: no longer measured (calibration.c); kept so that the layout stays */
};

struct cprof_function_record {
    struct cprof_record_head head;
    cprof_u64 next;           /* older function record, 0 at the end */
    cprof_u32 id;             /* 1-based, dense within the process */
    cprof_u32 line;
    cprof_u32 flags;          /* CPROF_FN_* */
    cprof_u16 name_len;
    cprof_u16 file_len;
    /* name_len bytes of name, then file_len bytes of file, unterminated, padded to 8 */
};

/* The first fields are the guard's hot state; struct __cprof_thread_hot in cprof_guard.h mirrors them. */
struct cprof_thread_record {
    struct cprof_record_head head;
    cprof_u64 top;            /* struct cprof_frame *: innermost open frame; stack[0] is the thread root */
    cprof_u64 limit;          /* one past the last frame slot of the stack */
    cprof_u64 last_ticks;     /* time of the latest function exit: where a crashed run's open frames end */
    cprof_u64 next;           /* older thread record */
    cprof_u64 root;           /* struct cprof_node *: the thread's root node (func 0) */
    cprof_u64 stack;          /* first frame of the current stack array */
    cprof_u64 tid;            /* kernel thread id */
    cprof_u64 start_ticks;
    cprof_u64 end_ticks;      /* 0 while the thread runs */
    cprof_u32 index;          /* 0 = the thread that started the runtime */
    cprof_u32 busy;           /* inside a slow path: a signal handler's calls are not recorded meanwhile */
    cprof_u64 lost_frames;
    char name[16];
    /* runtime-private allocation cursor into the thread's current chunk */
    cprof_u64 chunk_cursor;
    cprof_u64 chunk_end;
    cprof_u64 trace;          /* struct cprof_trace_record *: the thread's current trace table, 0 before its first */
};

/* One calling context: a function reached along one path from the thread root. */
struct cprof_node {
    struct cprof_record_head head;
    cprof_u64 parent;         /* struct cprof_node *; 0 for a thread root */
    cprof_u64 func;           /* struct cprof_function_record *; 0 for a thread root */
    cprof_u64 child_hints[2]; /* struct cprof_node *: the last two children calls from here entered through the
                                 runtime (new, or not guessed), the newest first: the guard's later guesses */
    cprof_u64 calls;          /* incremented on entry, so open and crashed frames are counted */
    cprof_u64 total_ticks;    /* sum over this node's finished activations of (exit - entry) */
    cprof_u64 cpu_ns;         /* CPROF_FEAT_CPU_TIME: thread CPU time inside, callees included; a thread root:
                                 CPROF_FEAT_THREAD_CPU, the thread's CPU time from its start to its end (valid
                                 once the thread or the process ended cleanly; before, its CPU clock at start) */
    /* second cache line: counters that later features fill (feature bits say which are valid) */
    cprof_u64 alloc_count;
    cprof_u64 alloc_bytes;
    cprof_u64 free_count;
    cprof_u64 free_bytes;
    cprof_u64 wait_ticks;     /* CPROF_FEAT_WAIT_TIME: blocked in a waiting call made right here (not in callees) */
    cprof_u64 slow_ticks;     /* CPROF_FEAT_SLOW_PATH: entries into this node that took the slow path (a new call */
    cprof_u64 slow_calls;     /* path, a longjmp repair, stack growth): their time, which lands in the caller; and
                                 the new trace tables its exits took (slow_ticks only: trace.c) */
    cprof_u64 realloc_count;  /* CPROF_FEAT_ALLOCS: reallocations made right here */
};

/* The node's counters, calls to the end of struct cprof_node in struct order, as an X-macro: the C reader and the
 * binding expand it, so that a new counter is its field above, its name here and its line in cprof/runfile.py's
 * NODE_COUNTERS. reader.c asserts at compile time that this list and the struct agree. */
#define CPROF_NODE_COUNTERS(X)                                                                                  \
    X(calls) X(total_ticks) X(cpu_ns) X(alloc_count) X(alloc_bytes) X(free_count) X(free_bytes) X(wait_ticks) \
    X(slow_ticks) X(slow_calls) X(realloc_count)

/* One open activation on a thread's shadow stack. */
struct cprof_frame {
    cprof_u64 node;           /* struct cprof_node * */
    cprof_u64 start_ticks;
    cprof_u64 frame_address;  /* the function's canonical frame address (CFA): see the guard for its use */
    cprof_u64 guard;          /* address of the guard variable: identifies the activation at exit */
    cprof_u64 return_address;
    cprof_u64 cpu_start_ns;
    cprof_u64 reserved[2];
};

struct cprof_stack_record {
    struct cprof_record_head head;  /* size covers the whole big allocation */
    cprof_u64 thread;               /* struct cprof_thread_record * that owns (or owned) it */
    cprof_u64 capacity;             /* frames */
    cprof_u64 pad[5];               /* frames start 64 bytes in, cache-line aligned */
    /* struct cprof_frame frames[capacity] */
};

/* The calls of one unit's count-only functions made by one thread: the guard of a count-only site increments
 * values[index] through a per-unit thread-local pointer, and nothing else (see __cprof_count in the guard).
 * At most CPROF_COUNTS_MAX sites, so that a record never crosses a chunk. */
#define CPROF_COUNTS_MAX 4000u
struct cprof_counts_record {
    struct cprof_record_head head;
    cprof_u64 thread;         /* struct cprof_thread_record * */
    cprof_u64 table;          /* the unit's count table (its address: the same in every thread) */
    cprof_u32 count;
    cprof_u32 reserved;
    /* cprof_u64 functions[count]: struct cprof_function_record *, then cprof_u64 values[count] */
};

/* A thread's CPU-time samples: each entry is a (call path, instruction) pair and how many sampling periods found
 * the thread there. The node is the innermost open frame's (a timed function); the instruction pointer says where
 * the CPU was, which may be inside a count-only function, a library, or the runtime itself: readers resolve it
 * with the module records' load addresses. Written only by the thread's own signal handler; an entry is in use
 * once its weight is non-zero. A table covers one whole chunk; a thread whose table fills starts another, and
 * readers add up a thread's entries over all its tables. */
struct cprof_sample_entry {
    cprof_u64 node;           /* struct cprof_node * */
    cprof_u64 ip;
    cprof_u64 caller;         /* the return address of the innermost call made from a module holding count-only
                                 functions, unwound up to the innermost timed frame (sampling.c), so that time in
                                 uninstrumented code (libc's memcmp, snprintf) reaches the count-only function
                                 that called it; 0 if none; without a timed frame or unwind information, the
                                 word on top of the stack (a frameless leaf's return address). Readers use it
                                 only when ip is in no function that cprof instruments. */
    cprof_u64 weight;         /* sampling periods (a signal that arrives late stands for the periods it missed) */
    cprof_u64 signals;        /* signals: the independent observations behind the weight */
};
struct cprof_samples_record {
    struct cprof_record_head head;  /* size: the whole chunk */
    cprof_u64 thread;               /* struct cprof_thread_record * */
    cprof_u32 capacity;
    cprof_u32 used;
    cprof_u64 reserved[5];          /* entries start 64 bytes in */
    /* struct cprof_sample_entry entries[capacity] */
};

/* A loaded object, as the dynamic loader reported it (dl_iterate_phdr): instruction pointers inside it resolve
 * against its symbols at ip - base. Written at start-up and again at a clean exit when objects were loaded
 * meanwhile (readers keep one per (path, base)). */
struct cprof_module_record {
    struct cprof_record_head head;
    cprof_u64 base;
    cprof_u64 low, high;      /* the span of its executable segments, absolute */
    cprof_u64 mtime_ns, size; /* of the file when it was loaded: a file rebuilt since cannot resolve these samples */
    cprof_u32 path_len;
    cprof_u32 reserved;
    /* path_len bytes of path, unterminated, padded to 8 */
};

/* Heap tracking (csrc/heap.c): one process record, and per-thread tables of allocation sites.
 *
 * A site is (node, return address of the allocation call): the innermost recorded call the program was in, and
 * the instruction that asked (in the program, or inside libc when strdup or fopen allocated on its behalf). Every
 * block the program gets carries its site, so whoever frees it (another thread too) charges the release back to
 * the site: live = allocated - released, per site, in a killed run as well. */
#define CPROF_REC_HEAP 10u        /* the process's heap totals and peak (one per process) */
#define CPROF_REC_HEAP_SITES 11u  /* one table of a thread's allocation sites */

/* How the heap was seen (heap record .source). */
#define CPROF_HEAP_OFF 0u          /* switched off at run time (CPROF_HEAP=0) */
#define CPROF_HEAP_INTERPOSED 1u   /* the shared runtime's malloc family came first in symbol lookup */
#define CPROF_HEAP_WRAPPED 2u      /* a -static link: the linker routed every call through the runtime (--wrap) */
#define CPROF_HEAP_FOREIGN 3u      /* the program (or a library before ours) defines its own malloc: not seen */

struct cprof_heap_site {
    cprof_u64 node;            /* struct cprof_node *; 0: no recorded call was active (the process's outside site) */
    cprof_u64 ip;              /* return address of the call into the allocator */
    cprof_u64 thread;          /* struct cprof_thread_record * that owns the table; 0 for the outside site */
    cprof_u64 alloc_count;     /* blocks handed out here (a realloc that returns a block counts as one) */
    cprof_u64 alloc_bytes;     /* bytes asked for, not what the allocator rounded them up to */
    cprof_u64 released_count;  /* of those blocks, freed since by the owning thread (realloc releases the old one) */
    cprof_u64 released_bytes;
    cprof_u64 realloc_count;   /* of the blocks, how many came from realloc */
    cprof_u64 temporary_count; /* freed by the same function with no allocation in between (heaptrack's measure) */
    cprof_u64 peak_bytes;      /* live bytes of this site when the heap record's snapshot was taken */
    cprof_u64 remote_released_count; /* freed by other threads (atomic adds, apart from the owner's plain ones) */
    cprof_u64 remote_released_bytes;
};
/* The site counters, in struct order (readers copy them by this list; cprof/model/heap.py mirrors it). */
#define CPROF_HEAP_SITE_COUNTERS(X)                                                                             \
    X(alloc_count) X(alloc_bytes) X(released_count) X(released_bytes) X(realloc_count) X(temporary_count)       \
    X(peak_bytes) X(remote_released_count) X(remote_released_bytes)
struct cprof_heap_sites_record {
    struct cprof_record_head head;  /* size: the whole chunk */
    cprof_u64 thread;               /* struct cprof_thread_record * */
    cprof_u64 next;                 /* older table of any thread (the snapshot walks them all) */
    cprof_u32 capacity;
    cprof_u32 used;
    cprof_u64 reserved[4];          /* entries start 64 bytes in */
    /* struct cprof_heap_site entries[capacity]; an entry is in use once its ip or node is non-zero */
};
struct cprof_heap_record {
    struct cprof_record_head head;
    cprof_u32 source;          /* CPROF_HEAP_* */
    cprof_u32 epoch;           /* fork generation: blocks of an older one are the parent's, not this run's */
    cprof_u64 live_bytes;      /* of this run's blocks, now */
    cprof_u64 live_blocks;     /* at the last snapshot and at a clean exit (the sites count blocks as they go) */
    cprof_u64 peak_bytes;      /* the most live_bytes ever reached, and when (ticks) */
    cprof_u64 peak_ticks;
    cprof_u64 snapshot_bytes;  /* live_bytes when sites' peak_bytes were last copied (within 1/16 of the peak) */
    cprof_u64 snapshot_ticks;
    cprof_u64 sites_head;      /* newest site table: struct cprof_heap_sites_record * */
    cprof_u64 foreign_frees;   /* frees of blocks the runtime did not hand out (before tracking, a parent's) */
    cprof_u64 untracked;       /* allocations passed through without a header (larger than 2^42 bytes) */
    cprof_u64 outside_free_count; /* frees made where no call was recorded (frees have no site of their own) */
    cprof_u64 outside_free_bytes;
    cprof_u64 op_cost_ps;      /* what tracking adds to one allocation or free, calibrated at start-up (picoseconds) */
    cprof_u64 op_spread_ps;    /* and its spread (median absolute deviation over the rounds) */
    cprof_u64 reserved[2];
    struct cprof_heap_site outside; /* allocations made where no call was recorded (thread not yet seen,
                                       profiling switched off, before the runtime started) */
};
/* The heap record's figures as readers pass them on (cprof/runfile.py mirrors the list). */
#define CPROF_HEAP_FIELDS(X)                                                                                    \
    X(source) X(epoch) X(live_bytes) X(live_blocks) X(peak_bytes) X(peak_ticks) X(snapshot_bytes)               \
    X(snapshot_ticks) X(foreign_frees) X(untracked) X(outside_free_count) X(outside_free_bytes) X(op_cost_ps)     \
    X(op_spread_ps)

/* The event trace (cprof run --trace, csrc/trace.c): every call of a timed function that lasted at least the
 * header's trace_min_ns, as (node, start, end), appended when the call ends, so a thread's events are in order of
 * their ends and nest perfectly (a call ends after every call it made). Per-thread tables of a whole chunk each,
 * written only by their thread: a killed run keeps every event whose `used` was published. Calls still open when
 * the run ended are on the thread's stack (readers close them at its end). When the tables reach
 * trace_limit_bytes the trace stops at that instant: calls that end later are recorded cut at the stop (bit 0
 * of node) if they began before it, or left out (header trace_dropped). The cut ones may take tables past the
 * limit: they are bounded by the depth of each thread's stack at the stop. */
#define CPROF_REC_TRACE 12u
#define CPROF_TRACE_CUT 1ull      /* node bit: the call was still open at the trace's stop, which is its end here */
struct cprof_trace_event {
    cprof_u64 node;           /* struct cprof_node * | CPROF_TRACE_CUT */
    cprof_u64 start_ticks;
    cprof_u64 end_ticks;
};
struct cprof_trace_record {
    struct cprof_record_head head;  /* size: the whole chunk */
    cprof_u64 thread;               /* struct cprof_thread_record * */
    cprof_u32 capacity;
    cprof_u32 used;                 /* events written; each is whole before this counts it */
    cprof_u64 reserved[5];          /* events start 64 bytes in */
    /* struct cprof_trace_event events[capacity] */
};

struct cprof_trailer_record {
    struct cprof_record_head head;
    char magic[8];
    cprof_u64 end_ticks;
    cprof_u64 used_bytes;
};

#endif
