/* sampling.c — samples every recorded thread on its own CPU time: which call path and which instruction it was
 * running, so that time the guards do not measure (count-only functions, code between guards) is still told.
 *
 * Why a timer on each thread's CPU clock: it fires only while its thread runs, so a blocked thread costs nothing
 * and samples are CPU time by construction; the kernel checks such timers at its scheduler tick, which makes a
 * sample nearly free (a 1 ms period cost nothing measurable here, where a perf_event hrtimer sample cost ~40 µs
 * in this VM). The tick also bounds the rate: a signal that comes late says how many periods it stands for
 * (si_overrun), and is weighted by them, so totals stay unbiased at any tick rate.
 *
 * The handler stores (innermost open frame's node, interrupted instruction) into a table of the thread's own in
 * the run file, so a killed run keeps its samples like its counts. It never locks or allocates except a whole
 * arena chunk through a lock-free path; it touches only its own thread's table. */
#define _GNU_SOURCE
#include "sampling.h"
#include "cprof_guard.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unwind.h>
#include <unistd.h>

/* Defined (as 1) where exec is interposed (exec_wrappers.c, the shared runtime): only there is sampling safe. */
extern const int cprof_exec_guarded __attribute__((weak));

static struct {
    int active;
    long period_ns;
    struct cprof_run_header *header;
} sampling;

/* Initial-exec like the guard's own TLS: the runtime may sit in a library loaded into a -fPIC program. */
static __thread struct cprof_samples_record *thread_table __attribute__((tls_model("initial-exec")));
static __thread struct cprof_thread_record *table_owner __attribute__((tls_model("initial-exec")));
static __thread timer_t thread_timer __attribute__((tls_model("initial-exec")));
static __thread int timer_live __attribute__((tls_model("initial-exec")));

int cprof_sampling_active(void) { return sampling.active; }

static cprof_u64 interrupted_ip(const void *context)
{
    const ucontext_t *uc = context;
#if defined(__x86_64__)
    return (cprof_u64)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (cprof_u64)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

/* The code of the modules that hold count-only functions (cprof_sampling_note_code): a return address into it tells
 * which count-only function called the uninstrumented code a sample interrupted. Appended and forgotten under
 * counts.c's lock, read by the handler without one: a range is published whole before the count that covers it. */
#define CODE_RANGES_MAX 64
static struct code_range {
    cprof_u64 low, high; /* high 0: its module was unloaded */
    cprof_u64 bias;      /* its module's load bias (dlpi_addr): which ranges a dlclose takes away */
} code_ranges[CODE_RANGES_MAX];
static int code_range_count;

/* The loaded module holding an address: its load bias and program headers. */
struct module_search {
    cprof_u64 address;
    cprof_u64 bias;
    const ElfW(Phdr) *headers;
    int header_count;
};

static int find_module(struct dl_phdr_info *info, size_t size, void *data)
{
    struct module_search *search = data;
    int i;
    (void)size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        cprof_u64 low = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
        if (info->dlpi_phdr[i].p_type == PT_LOAD && search->address >= low &&
            search->address < low + info->dlpi_phdr[i].p_memsz) {
            search->bias = info->dlpi_addr;
            search->headers = info->dlpi_phdr;
            search->header_count = info->dlpi_phnum;
            return 1;
        }
    }
    return 0;
}

void cprof_sampling_note_code(const void *address)
{
    struct module_search search = {(cprof_u64)(uintptr_t)address, 0, NULL, 0};
    int i, j;
    if (!dl_iterate_phdr(find_module, &search))
        return;
    for (j = 0; j < code_range_count; j++)
        if (code_ranges[j].bias == search.bias && code_ranges[j].high)
            return; /* noted by another unit of the same module */
    for (i = 0; i < search.header_count; i++) {
        const ElfW(Phdr) *segment = &search.headers[i];
        int at = code_range_count;
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_X) || at == CODE_RANGES_MAX)
            continue;
        code_ranges[at].low = search.bias + segment->p_vaddr;
        code_ranges[at].high = code_ranges[at].low + segment->p_memsz;
        code_ranges[at].bias = search.bias;
        __atomic_store_n(&code_range_count, at + 1, __ATOMIC_RELEASE);
    }
}

void cprof_sampling_forget_code(const void *address)
{
    struct module_search search = {(cprof_u64)(uintptr_t)address, 0, NULL, 0};
    int i, count = __atomic_load_n(&code_range_count, __ATOMIC_ACQUIRE);
    if (!dl_iterate_phdr(find_module, &search))
        return;
    for (i = 0; i < count; i++)
        if (code_ranges[i].bias == search.bias)
            __atomic_store_n(&code_ranges[i].high, 0, __ATOMIC_RELEASE); /* its code is about to be unmapped */
}

static int in_counted_code(cprof_u64 address)
{
    int i, count = __atomic_load_n(&code_range_count, __ATOMIC_ACQUIRE);
    for (i = 0; i < count; i++)
        if (address > code_ranges[i].low && address < __atomic_load_n(&code_ranges[i].high, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/* At most this many frames are unwound between the interrupted instruction and the innermost timed frame. */
#define UNWIND_FRAMES_MAX 64

struct caller_search {
    cprof_u64 stack;  /* the interrupted stack pointer: frames at or below it are the handler's and the signal's */
    cprof_u64 bound;  /* the innermost timed frame's CFA: the search ends there */
    cprof_u64 found;  /* the return address into counted code nearest the interrupted instruction */
    int frames;
    int reached;      /* the unwinding got to the bound: no count-only function called what runs */
};

static _Unwind_Reason_Code caller_step(struct _Unwind_Context *context, void *data)
{
    struct caller_search *search = data;
    int exact = 0; /* the interrupted frame's own instruction, not a return address (a signal frame's) */
    cprof_u64 ip = (cprof_u64)_Unwind_GetIPInfo(context, &exact), cfa = (cprof_u64)_Unwind_GetCFA(context);
    if (cfa >= search->bound) {
        search->reached = 1;
        return _URC_END_OF_STACK;
    }
    if (++search->frames > UNWIND_FRAMES_MAX)
        return _URC_END_OF_STACK;
    if (cfa > search->stack && !exact && in_counted_code(ip)) {
        search->found = ip;
        return _URC_END_OF_STACK;
    }
    return _URC_NO_REASON;
}

/* The return address of the innermost call made from counted code that is still running (cprof_sample_entry.caller),
 * so that time in uninstrumented code (libc's snprintf) reaches the count-only function that called it. The stack
 * is unwound by its call frame information, from this handler through the signal frame and the interrupted code,
 * up to the innermost timed frame (`bound`, its CFA): what a debugger or perf's --call-graph dwarf does, and
 * unlike a scan for words that look like return addresses, never fooled by a stale one a deeper call left (a scan
 * gave qsort+hash's snprintf time to `insert`, whose earlier call had left its return address where snprintf's
 * frames now are). libgcc finds each module's unwind tables with _dl_find_object, which takes no lock: safe in a
 * signal handler. 0 when the unwinding reached the timed frame without one. With no timed frame open, or code
 * without frame information, the word at the stack pointer (a frameless leaf's return address, always mapped)
 * stands in. */
static _Unwind_Reason_Code first_frame_only(struct _Unwind_Context *context, void *data)
{
    (void)context;
    (void)data;
    return _URC_END_OF_STACK;
}

static cprof_u64 interrupted_caller(const void *context, cprof_u64 bound)
{
    const ucontext_t *uc = context;
    struct caller_search search = {0, bound, 0, 0, 0};
    cprof_u64 leaf_return;
#if defined(__x86_64__)
    search.stack = (cprof_u64)uc->uc_mcontext.gregs[REG_RSP];
    leaf_return = *(const cprof_u64 *)(uintptr_t)search.stack;
#elif defined(__aarch64__)
    search.stack = (cprof_u64)uc->uc_mcontext.sp;
    leaf_return = (cprof_u64)uc->uc_mcontext.regs[30];
#else
    (void)uc;
    (void)search;
    return 0;
#endif
    if (!__atomic_load_n(&code_range_count, __ATOMIC_RELAXED) || bound <= search.stack ||
        bound - search.stack > (1ull << 30))
        return leaf_return;
    _Unwind_Backtrace(caller_step, &search);
    return search.found ? search.found : search.reached ? 0 : leaf_return;
}

static struct cprof_samples_record *new_table(char *chunk, struct cprof_thread_record *thread)
{
    struct cprof_samples_record *record = (struct cprof_samples_record *)chunk;
    if (!record)
        return NULL;
    record->thread = (cprof_u64)(uintptr_t)thread;
    record->capacity = (cprof_u32)((CPROF_CHUNK_SIZE - sizeof *record) / sizeof(struct cprof_sample_entry));
    record->used = 0;
    record->head.size = CPROF_CHUNK_SIZE;
    __asm__ __volatile__("" ::: "memory"); /* readers find the table only once it is whole */
    record->head.kind = CPROF_REC_SAMPLES;
    return record;
}

static void add_sample(struct cprof_thread_record *thread, cprof_u64 node, cprof_u64 ip, cprof_u64 caller,
                       cprof_u64 weight)
{
    struct cprof_samples_record *table = thread_table;
    struct cprof_sample_entry *entries;
    size_t at, probe;
    if (table_owner != thread) { /* the runtime's own calibration, on a scratch thread state */
        __atomic_fetch_add(&sampling.header->samples_outside, weight, __ATOMIC_RELAXED);
        return;
    }
    /* a table three quarters full keeps probes short: the next samples go to a new one */
    if ((size_t)table->used * 4 >= (size_t)table->capacity * 3) {
        table = new_table(cprof_arena_try_chunk(), thread);
        if (!table) {
            __atomic_fetch_add(&sampling.header->samples_dropped, weight, __ATOMIC_RELAXED);
            return;
        }
        thread_table = table;
        table_owner = thread;
    }
    entries = (struct cprof_sample_entry *)(table + 1);
    at = (size_t)(((node >> 6) * 0x9E3779B97F4A7C15ull) ^ (ip * 0xC2B2AE3D27D4EB4Full) ^ (caller >> 3)) %
         table->capacity;
    for (probe = 0; probe < table->capacity; probe++) {
        struct cprof_sample_entry *entry = &entries[at];
        if (!entry->weight) {
            entry->node = node;
            entry->ip = ip;
            entry->caller = caller;
            entry->signals = 1;
            __asm__ __volatile__("" ::: "memory");
            entry->weight = weight;
            table->used++;
            return;
        }
        if (entry->node == node && entry->ip == ip && entry->caller == caller) {
            entry->signals++;
            entry->weight += weight;
            return;
        }
        at = at + 1 == table->capacity ? 0 : at + 1;
    }
}

static void on_sample(int signal, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    cprof_u64 weight = 1;
    (void)signal;
    if (!info || info->si_code != SI_TIMER) /* not our timer's (kill -PROF): nothing to record */
        return;
    if (info->si_overrun > 0)
        weight += (cprof_u64)info->si_overrun;
    /* The innermost frame is published only once complete (see the guard), so top->node is always valid. */
    if (thread && timer_live && __cprof_mode != 1) {
        const struct cprof_frame *top = (const struct cprof_frame *)(uintptr_t)thread->top;
        add_sample(thread, top->node, interrupted_ip(context), interrupted_caller(context, top->frame_address),
                   weight);
    }
    else
        __atomic_fetch_add(&sampling.header->samples_outside, weight, __ATOMIC_RELAXED);
    errno = saved_errno;
}

void cprof_sampling_start_process(struct cprof_run_header *header)
{
    const char *rate = getenv("CPROF_SAMPLE_HZ");
    long hz = rate && *rate ? strtol(rate, NULL, 10) : 0;
    struct sigaction action, previous;
    sampling.header = header;
    if (hz <= 0)
        return;
    if (!&cprof_exec_guarded) { /* a -static link: see exec_wrappers.c */
        header->sample_source = CPROF_SAMPLES_FAILED;
        return;
    }
    /* the program's own SIGPROF (its own profiler, setitimer) wins: sampling would steal its signals */
    if (sigaction(SIGPROF, NULL, &previous) != 0 || (previous.sa_flags & SA_SIGINFO) ||
        (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)) {
        header->sample_source = CPROF_SAMPLES_REFUSED;
        return;
    }
    /* libgcc's unwinder sets up its tables once, under pthread_once: done here, so that no signal can arrive in
     * the middle of that first set-up and unwind into it from the handler */
    _Unwind_Backtrace(first_frame_only, NULL);
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sample;
    action.sa_flags = SA_SIGINFO | SA_RESTART; /* interrupted system calls resume, as without us */
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGPROF, &action, NULL) != 0) {
        header->sample_source = CPROF_SAMPLES_FAILED;
        return;
    }
    if (hz > 100000)
        hz = 100000;
    sampling.period_ns = 1000000000L / hz;
    header->sample_period_ns = (cprof_u64)sampling.period_ns;
    header->sample_source = CPROF_SAMPLES_THREAD_TIMER;
    header->features |= CPROF_FEAT_SAMPLES;
    sampling.active = 1;
}

void cprof_sampling_start_thread(void)
{
    struct sigevent event;
    struct itimerspec period;
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    if (!sampling.active || timer_live || !thread)
        return;
    if (table_owner != thread) { /* the first table is made here, where growing the arena may lock */
        struct cprof_samples_record *table = new_table(cprof_arena_chunk(), thread);
        if (table) {
            thread_table = table;
            table_owner = thread;
        }
    }
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGPROF;
    event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &event, &thread_timer) != 0)
        return;
    period.it_interval.tv_sec = period.it_value.tv_sec = sampling.period_ns / 1000000000L;
    period.it_interval.tv_nsec = period.it_value.tv_nsec = sampling.period_ns % 1000000000L;
    timer_live = 1;
    if (timer_settime(thread_timer, 0, &period, NULL) != 0) {
        timer_delete(thread_timer);
        timer_live = 0;
    }
}

void cprof_sampling_stop_thread(void)
{
    sigset_t profiling, saved;
    siginfo_t info;
    struct timespec now = {0, 0};
    if (!timer_live)
        return;
    timer_live = 0;
    timer_delete(thread_timer);
    /* A sample that is pending because the thread blocks SIGPROF would outlive the handler; take it now. A raw
     * system call, so that waits.c does not record this as the program waiting. */
    sigemptyset(&profiling);
    sigaddset(&profiling, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &profiling, &saved);
    while (syscall(SYS_rt_sigtimedwait, &profiling, &info, &now, _NSIG / 8) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void cprof_sampling_after_fork(void)
{
    /* timers are not inherited; the tables copied from the parent were emptied with its other counters and
     * stay in use */
    timer_live = 0;
    cprof_sampling_start_thread();
}
