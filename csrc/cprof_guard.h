/* cprof_guard.h — the guard cprof splices into every instrumented function (force-included into each unit).
 *
 * An instrumented body starts with one declaration on the line of its opening brace (cprof/instrument/splice.py
 * writes it): a variable whose initializer enters the function and whose cleanup leaves it, so every return
 * path is covered without moving a line. The common call costs two timer reads, a few loads and stores and two
 * direct calls into the fast paths below; anything unusual goes to the runtime's slow paths.
 *
 * Where the fast paths are compiled, and why: once per program or shared library (csrc/guard_fast.c, linked at
 * every final link with hidden visibility, so calls are direct, never through the PLT). In the user's unit the
 * guard is then just two calls, which gcc compiles almost as cheaply as the plain code: Lua's 34 units took
 * 1.39x the plain compile time with a static copy of the fast paths and an inline mode check in every unit,
 * 1.15x with these calls. `--inline-guard` (__CPROF_INLINE_GUARD) inlines the fast paths into every function
 * instead: a couple of ns cheaper per call, about 3x the compile time.
 *
 * Everything here lands in the user's translation unit, so it uses only reserved identifiers, includes no
 * header, and stays valid C89 (with GNU attributes) so that strict user flags keep compiling. */
#ifndef __CPROF_GUARD_H
#define __CPROF_GUARD_H
/* What the user's warning flags find in this header is not theirs to read: a system header's code is not warned
 * about (the warnings their own code earns stay theirs). */
#pragma GCC system_header

__extension__ typedef unsigned long long __cprof_u64;

/* Mirrors of the hot prefixes of struct cprof_node / cprof_frame / cprof_thread_record in runfile.h;
 * runtime.c asserts at compile time that the offsets agree. */
struct __cprof_node_hot {
    __cprof_u64 head, parent, func, child_hints[2], calls, total_ticks;
};
struct __cprof_frame_hot {
    struct __cprof_node_hot *node;
    __cprof_u64 start_ticks, frame_address;
    void *guard, *return_address;
    __cprof_u64 cpu_start_ns, reserved[2];
};
struct __cprof_thread_hot {
    __cprof_u64 head;
    struct __cprof_frame_hot *top, *limit;
    __cprof_u64 last_ticks;
};

/* One per instrumented function per translation unit, in a static array the splicer writes. */
struct __cprof_site {
    const char *name;
    const char *file;
    unsigned line;
    unsigned flags;
    __cprof_u64 func;                /* the runtime's function record, 0 until the first call */
    struct __cprof_node_hot *cache;  /* last node entered from this site; checked against the parent */
};

/* Count-only sites (functions too cheap to time: adaptive mode). A unit's count-only functions form one table,
 * which the unit registers when it is loaded; each thread counts into a block of its own in the run file, which
 * the runtime hands out before the thread runs the program's code (csrc/counts.c) and a per-unit thread-local
 * pointer reaches in one load. A counted call costs that load and an increment, and no call and no branch: the
 * function stays as easy to inline, and as cheap to call, as the plain one. Exact in every thread, and kept in
 * the run file like everything else. The pointer is never NULL (counts.c points a thread that records nothing at
 * counters nobody reads): the test of it cost more than the increment, as gcc repeats the guard in the loop it
 * makes of a self tail call, with two branches around it (fib: 1.73x plain with the test, 1.35x without). */
struct __cprof_count_table {
    unsigned count;
    unsigned reserved;
    struct __cprof_site *sites;
};
/* A counter as the user's unit sees it: 64 bits, in a struct whose only member is a bit-field. The type is for gcc's
 * type-based alias analysis. A store of an unsigned long long through a pointer gcc cannot follow may change any
 * long long the function reads through its arguments, and gcc then optimises less around it: Lua's LTnum lost
 * its IPA-SRA clone (its arguments passed as values) in the instrumented build, which moved time between Lua's
 * functions. A bit-field cannot be pointed to, so gcc knows this store changes no object of the program's. The
 * increment is still one add to memory. */
struct __cprof_counter {
    __cprof_u64 calls : 64;
};
extern void __cprof_register_counts(struct __cprof_count_table *table,
                                    struct __cprof_counter **(*block_here)(void), struct __cprof_counter *early);
extern void __cprof_unregister_counts(struct __cprof_count_table *table);

static __inline__ __attribute__((always_inline, unused)) int __cprof_count(struct __cprof_counter **block,
                                                                           struct __cprof_count_table *table,
                                                                           unsigned index)
{
    struct __cprof_counter *counts = *block;
    (void)table;
    counts[index].calls++;
    return 0;
}

/* A count-only function that calls itself (fib): back to back, its increments of one counter would chain through
 * memory, each load waiting for the last store (fib: 1.2 ns a call against 0.6 ns of work). The stack pointer tells
 * one recursion depth from the next, so its bits 5-6 pick one of four counters, four slots (32 bytes) apart, and
 * consecutive calls at different depths touch different counters (fib: 0.4 ns a call). The instrumenter gives
 * such a site CPROF_COUNT_STRIPED_SLOTS slots (all the same function), and readers add them up. */
#define CPROF_COUNT_STRIPED_SLOTS 13u
static __inline__ __attribute__((always_inline, unused)) int __cprof_count_striped(struct __cprof_counter **block,
                                                                                   struct __cprof_count_table *table,
                                                                                   unsigned index)
{
    struct __cprof_counter *counts = *block;
    unsigned long depth_bits = 0;
    (void)table;
#if defined(__x86_64__)
    __asm__("mov %%rsp, %0" : "=r"(depth_bits));
#elif defined(__aarch64__)
    __asm__("mov %0, sp" : "=r"(depth_bits));
#endif
    /* a byte offset of 0, 32, 64 or 96: counters index, index + 4, + 8 and + 12, with no shift to compute */
    ((struct __cprof_counter *)((char *)(counts + index) + (depth_bits & 0x60u)))->calls++;
    return 0;
}

/* Initial-exec TLS: the guard may sit in a -fPIC shared library, and the default model there would turn every
 * guard into a __tls_get_addr call. The runtime keeps this TLS block small so dlopen still finds static room. */
extern __thread struct __cprof_thread_hot *__cprof_tls __attribute__((tls_model("initial-exec")));
/* 0: inline timer, 1: profiling off (the guard costs one predictable branch), 2: every event via the runtime,
 * 3: tracing (inline entries, every exit via the runtime, which appends the call to the trace) */
extern int __cprof_mode;
extern int __cprof_enter_slow(struct __cprof_site *site, void *guard, __cprof_u64 frame_address,
                              void *return_address);
extern void __cprof_leave_slow(void *guard, __cprof_u64 now);

/* 1 (the default where the CPU has rdtscp): an ordered timer read, which waits until every earlier instruction
 * has executed. A plain rdtsc may run ahead of a function's last instructions, so a latency-bound callee's time
 * leaks into its caller (a 48 ns callee measured 34 ns here): fine for totals, wrong for self time. The ordered
 * read costs about 6 ns more per read; CPROF_TIMER=fast chooses the plain one at run time. */
extern int __cprof_ordered_timer;

#if defined(__CPROF_INLINE_GUARD) || defined(__CPROF_DEFINE_FAST_PATHS)
static __inline__ __attribute__((always_inline, unused)) __cprof_u64 __cprof_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned low, high;
    if (__builtin_expect(__cprof_ordered_timer, 1))
        __asm__ __volatile__("rdtscp" : "=a"(low), "=d"(high)::"ecx"); /* the aux value is not needed in memory */
    else
        __asm__ __volatile__("rdtsc" : "=a"(low), "=d"(high));
    return ((__cprof_u64)high << 32) | low;
#elif defined(__aarch64__)
    __cprof_u64 value;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(value)::"memory");
    return value;
#else
    return 0; /* no inline counter: the runtime runs in mode 2 and reads clock_gettime itself */
#endif
}
#endif

/* The canonical frame address (CFA) of the function the guard is inlined into: the stack pointer before the
 * call that entered it. Every live frame below the innermost one has a higher CFA; a frame with a lower CFA, or an
 * equal one entered from another call site (or through the very same guard variable), was left by a longjmp.
 * Functions inlined into one host share its CFA and return address, but never its guard variable. */
static __inline__ __attribute__((always_inline, unused)) __cprof_u64 __cprof_address_value(void *address)
{
    return (__cprof_u64)address; /* a cast of a variable: a cast of the builtin's call would warn under the user's
                                    -Wbad-function-cast (xz's build: 212 warnings) */
}
#if defined(__clang__)
#define __cprof_frame_address() __cprof_address_value(__builtin_frame_address(0))
#else
#define __cprof_frame_address() __cprof_address_value(__builtin_dwarf_cfa())
#endif

#if defined(__CPROF_INLINE_GUARD)
#define __CPROF_FAST_PATH static __inline__ __attribute__((always_inline, unused))
#else
#define __CPROF_FAST_PATH extern __attribute__((visibility("hidden")))
#endif

#if !defined(__CPROF_INLINE_GUARD) && !defined(__CPROF_DEFINE_FAST_PATHS)
__CPROF_FAST_PATH int __cprof_enter_fast(struct __cprof_site *site, void *guard, __cprof_u64 cfa, void *return_address);
__CPROF_FAST_PATH void __cprof_leave_recorded(int *guard);
#else
__CPROF_FAST_PATH int __cprof_enter_fast(struct __cprof_site *site, void *guard, __cprof_u64 cfa, void *return_address)
{
    struct __cprof_thread_hot *thread;
    struct __cprof_frame_hot *frame;
    struct __cprof_node_hot *node;
    /* 1: off, the only cost a disabled run pays; 2: clock mode; 3: tracing, whose entries are the fast ones */
    if (__builtin_expect(__cprof_mode != 0, 0) && __cprof_mode != 3)
        return __cprof_mode == 1 ? 0 : __cprof_enter_slow(site, guard, cfa, return_address);
    thread = __cprof_tls;
    if (__builtin_expect(thread == 0, 0))
        return __cprof_enter_slow(site, guard, cfa, return_address);
    frame = thread->top;
    /* Slow path when the stack is full, or the innermost frame is not an ancestor of this call (a longjmp left
     * it behind). The common case costs one comparison: a real call has a lower CFA than its caller. */
    if (__builtin_expect(frame + 1 >= thread->limit ||
                             (cfa >= frame->frame_address &&
                              (cfa > frame->frame_address || return_address != frame->return_address ||
                               guard == frame->guard)),
                         0))
        return __cprof_enter_slow(site, guard, cfa, return_address);
    /* The node for this call path: the one this site entered last if it hangs under the current frame (a loop),
     * else one of the two children the current frame's node last entered through the slow path (a recursion,
     * whose site's last node is at another depth, calling itself and one other timed function). */
    node = site->cache;
    if (__builtin_expect(node == 0 || node->parent != (__cprof_u64)frame->node, 0)) {
        node = (struct __cprof_node_hot *)frame->node->child_hints[0];
        if (__builtin_expect(node == 0 || node->func != site->func, 0)) {
            node = (struct __cprof_node_hot *)frame->node->child_hints[1];
            if (__builtin_expect(node == 0 || node->func != site->func, 0))
                return __cprof_enter_slow(site, guard, cfa, return_address);
        }
    }
    node->calls++;
    frame[1].node = node;
    frame[1].frame_address = cfa;
    frame[1].return_address = return_address;
    frame[1].guard = guard;
    /* The timer is read last so that this bookkeeping lands in the caller, where it is corrected for. */
    frame[1].start_ticks = __cprof_ticks();
    __asm__ __volatile__("" ::: "memory"); /* publish the frame only once it is complete (signal handlers) */
    thread->top = frame + 1;
    return 1;
}

static __inline__ __attribute__((always_inline, unused)) void __cprof_leave_fast(int *guard)
{
    struct __cprof_thread_hot *thread;
    struct __cprof_frame_hot *frame;
    __cprof_u64 now;
    now = __cprof_ticks(); /* read first: what follows is the caller's overhead, not this function's time */
    thread = __cprof_tls;
    frame = thread->top;
    if (__builtin_expect(frame->guard != (void *)guard || __cprof_mode != 0, 0)) {
        __cprof_leave_slow(guard, now);
        return;
    }
    frame->node->total_ticks += now - frame->start_ticks;
    thread->last_ticks = now;
    __asm__ __volatile__("" ::: "memory");
    thread->top = frame - 1;
}

/* Leaves a function whose entry recorded a frame. */
__CPROF_FAST_PATH void __cprof_leave_recorded(int *guard)
{
    __cprof_leave_fast(guard);
}
#endif

/* The cleanup every guard names: leaves the function unless its entry recorded nothing. Inline in every mode, so
 * that with profiling off a guarded function pays a test here and one at its entry, and no call at all (two calls
 * per timed call made a switched-off Lua 1.4x slower than plain). */
static __inline__ __attribute__((always_inline, unused)) void __cprof_leave(int *guard)
{
    if (*guard)
        __cprof_leave_recorded(guard);
}

/* What the spliced declaration calls. The frame identity must be read here, in the instrumented function itself;
 * profiling switched off (mode 1) is a predictable branch before any call. */
static __inline__ __attribute__((always_inline, unused)) int __cprof_enter(struct __cprof_site *site, void *guard)
{
    if (__builtin_expect(__cprof_mode == 1, 0))
        return 0;
    return __cprof_enter_fast(site, guard, __cprof_frame_address(), __builtin_return_address(0));
}

/* The C standard the unit is compiled for, as a typedef name the instrumenter reads back from the preprocessed
 * text (`__cprof_stdc_202000L`, or `__cprof_stdc___STDC_VERSION__` for C90): C23 makes `bool`, `true`,
 * `nullptr`, `constexpr`... keywords, while before C23 they can only be the user's own identifiers. */
#define __CPROF_STD_NAME2(version) __cprof_stdc_##version
#define __CPROF_STD_NAME(version) __CPROF_STD_NAME2(version)
typedef int __CPROF_STD_NAME(__STDC_VERSION__);

#endif
