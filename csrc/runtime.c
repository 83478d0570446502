/* runtime.c — the cprof runtime's entry points from profiled programs: the guard's slow paths (count-only sites: counts.c),
 * waits and control from user code.
 *
 * The guard's fast paths live inline in cprof_guard.h; the runtime handles everything they hand over: first use
 * (process and thread start: process.c, threads.c), new call paths (calltree.c), stack growth, longjmp repair,
 * the clock fallback, fork, thread and process exit. Its files share their state through runtime_internal.h. It
 * never calls malloc after start-up, because a signal handler may enter an instrumented function while the
 * interrupted code is inside malloc. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "heap.h"
#include "trace.h"
#include "waits.h"

#include <stdlib.h>

/* The guard header mirrors these layouts into user code: a drift would corrupt every run silently. */
_Static_assert(offsetof(struct cprof_node, parent) == offsetof(struct __cprof_node_hot, parent), "node.parent");
_Static_assert(offsetof(struct cprof_node, func) == offsetof(struct __cprof_node_hot, func), "node.func");
_Static_assert(offsetof(struct cprof_node, child_hints) == offsetof(struct __cprof_node_hot, child_hints),
               "node.child_hints");
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

/* Switched off from the first instruction, not from the first timed call: a function entered before that call
 * (main) would otherwise run its instrumented body to the end rather than its plain copy (offcopy.py). */
__attribute__((constructor)) static void switched_off_from_the_start(void)
{
    if (cprof_env_flag("CPROF_DISABLE"))
        __cprof_mode = 1;
}

struct cprof_runtime cprof_rt = {.once = PTHREAD_ONCE_INIT, .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
                                 .arena_lock = PTHREAD_MUTEX_INITIALIZER};

cprof_u64 cprof_runtime_ticks(void) { return now_ticks(); }

/* A frame address this far above the innermost frame's is another stack (sigaltstack, coroutine), not a
 * longjmp: such calls nest instead of unwinding frames that are still alive. */
#define FOREIGN_STACK_DISTANCE (1ull << 30)

/* ---- the slow paths the guard calls --------------------------------------------------------------------- */

static void close_frame(struct cprof_thread_record *thread, struct cprof_frame *frame, cprof_u64 now,
                        cprof_u64 cpu_now)
{
    struct cprof_node *node = as_pointer(frame->node);
    node->total_ticks += now - frame->start_ticks;
    if (cprof_rt.cpu_time)
        node->cpu_ns += cpu_now - frame->cpu_start_ns;
    if (cprof_tracing)
        cprof_trace_call(thread, frame, now);
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
    if (!thread && !(thread = cprof_thread_start()))
        return 0;
    if (thread->busy) /* a signal handler interrupted our own slow path: skip rather than corrupt */
        goto lost_unlocked;
    thread->busy = 1;
    now = now_ticks();
    if (cprof_rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    /* frames that cannot be our ancestors belong to functions a longjmp has already left */
    while (frame > base && left_behind(frame, cfa, return_address, guard)) {
        close_frame(thread, frame, now, cpu_now);
        frame--;
    }
    thread->top = as_u64(frame);
    if (frame + 1 >= (struct cprof_frame *)as_pointer(thread->limit)) {
        if (cprof_grow_stack(thread) != 0)
            goto lost;
        frame = as_pointer(thread->top);
    }
    function = cprof_site_function(thread, site);
    if (!function || !(node = cprof_child_node(thread, as_pointer(frame->node), as_u64(function))))
        goto lost;
    site->cache = (struct __cprof_node_hot *)node;
    /* The fast path's later guesses. With one (the parent's newest child), a recursion calling itself and one
     * other timed function (GNU bc's _bc_rec_mul: itself, and _bc_simp_mul below a size) missed every guess at a
     * quarter of its calls (bc's adaptive build: 395,000 slow entries in 1.5 million; 159 with two), and a slow
     * entry's cost is not all measured (its call, its first timer read). */
    {
        struct cprof_node *parent = as_pointer(frame->node);
        if (parent->child_hints[0] != as_u64(node)) {
            parent->child_hints[1] = parent->child_hints[0];
            parent->child_hints[0] = as_u64(node);
        }
    }
    node->calls++;
    frame[1].node = as_u64(node);
    frame[1].frame_address = cfa;
    frame[1].return_address = as_u64(return_address);
    frame[1].guard = as_u64(guard);
    frame[1].cpu_start_ns = cprof_rt.cpu_time ? cprof_thread_cpu_ns() : 0;
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
    __atomic_fetch_add(&cprof_rt.header->lost_frames, 1, __ATOMIC_RELAXED);
    return 0;
}

void __cprof_leave_slow(void *guard, cprof_u64 now)
{
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct cprof_frame *frame, *own, *base;
    cprof_u64 cpu_now = 0;
    if (!thread)
        return;
    if (__cprof_mode != 0 && __cprof_mode != 3) /* mode 3 (tracing): the guard's own read is the exit time */
        now = now_ticks();
    if (cprof_rt.cpu_time)
        cpu_now = cprof_thread_cpu_ns();
    base = stack_frames(thread);
    frame = as_pointer(thread->top);
    for (own = frame; own > base && own->guard != as_u64(guard); own--)
        ;
    if (own == base) /* already unwound by a repair: nothing left to close */
        return;
    for (; frame >= own; frame--) /* frames above ours were abandoned by a longjmp */
        close_frame(thread, frame, now, cpu_now);
    thread->last_ticks = now;
    __asm__ __volatile__("" ::: "memory");
    thread->top = as_u64(own - 1);
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

/* ---- control from user code (cprof.h) ------------------------------------------------------------------- */

void cprof_set_enabled(int enabled)
{
    if (cprof_process_start() != 0)
        return;
    /* leaving mode 2 would hand timing back to an inline counter that is not valid here */
    __cprof_mode = enabled ? cprof_recording_mode() : 1;
}
