/* process.c — process start (the run file, made at first use), fork (a run file of the child's own), exit, and the
 * sessions of a process that loaded an instrumented library (cprof/library/: one run file per session). */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "cprof.h"
#include "heap.h"
#include "modules.h"
#include "records.h"
#include "sampling.h"
#include "trace.h"
#include "waits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

static void timer_pair(cprof_u64 *ticks, cprof_u64 *ns)
{
    uint64_t t, n;
    cprof_timer_pair(&cprof_rt.timer, &t, &n);
    *ticks = t;
    *ns = n;
}

int cprof_env_flag(const char *name)
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

/* The run directory a session named before the runtime started (cprof_session_begin): it wins over the
 * environment, which a Python process shares with everything it starts. */
static char session_dir[PATH_MAX];

static int open_run_file(cprof_u64 unix_ns)
{
    const char *dir = session_dir[0] ? session_dir : getenv("CPROF_RUN_DIR");
    char path[PATH_MAX + 32];
    int attempt, fd = -1;
    if (dir && *dir) {
        snprintf(cprof_rt.dir, sizeof cprof_rt.dir, "%s", dir);
    } else {
        const char *home = getenv("CPROF_HOME");
        char id[64];
        format_run_id(id, sizeof id, unix_ns);
        snprintf(cprof_rt.dir, sizeof cprof_rt.dir, "%s/runs/%s", home && *home ? home : ".cprof", id);
    }
    if (make_dirs(cprof_rt.dir) != 0)
        return -1;
    for (attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        if (attempt == 0)
            snprintf(path, sizeof path, "%s/%d.cprof", cprof_rt.dir, (int)getpid());
        else
            snprintf(path, sizeof path, "%s/%d-%d.cprof", cprof_rt.dir, (int)getpid(), attempt);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    return fd;
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
    int keep_threads; /* a session cut: every thread lives on */
};

static int reset_record(const struct cprof_record_head *record, size_t offset, void *context)
{
    struct reset_context *reset = context;
    (void)offset;
    if (record->kind == CPROF_REC_NODE) {
        struct cprof_node *node = (struct cprof_node *)record;
#define ZERO_COUNTER(name) node->name = 0;
        CPROF_NODE_COUNTERS(ZERO_COUNTER)
#undef ZERO_COUNTER
    } else if (record->kind == CPROF_REC_HEAP || record->kind == CPROF_REC_HEAP_SITES) {
        cprof_heap_reset_record((struct cprof_record_head *)record);
    } else if (record->kind == CPROF_REC_TRACE) {
        cprof_trace_reset_record((struct cprof_record_head *)record);
    } else if (record->kind == CPROF_REC_COUNTS) {
        const struct cprof_counts_record *counts = (const struct cprof_counts_record *)record;
        memset((cprof_u64 *)(counts + 1) + counts->count, 0, counts->count * sizeof(cprof_u64));
    } else if (record->kind == CPROF_REC_SAMPLES) {
        struct cprof_samples_record *samples = (struct cprof_samples_record *)record;
        memset(samples + 1, 0, samples->capacity * sizeof(struct cprof_sample_entry));
        samples->used = 0;
    } else if (record->kind == CPROF_REC_THREAD && !reset->keep_threads &&
               (const void *)record != (void *)reset->survivor) {
        struct cprof_thread_record *gone = (struct cprof_thread_record *)record;
        /* threads other than the forking one do not exist in the child */
        gone->top = gone->stack ? as_u64(stack_frames(gone)) : 0;
        if (!gone->end_ticks)
            gone->end_ticks = reset->now;
    }
    return 0;
}

/* A run that starts again from zero in a new file (a forked child's, a session's): its start, and the figures
 * that count from it. */
static void restart_run(struct cprof_run_header *header)
{
    timer_pair(&header->start_ticks, &header->start_mono_ns);
    header->start_unix_ns = cprof_realtime_ns();
    header->lost_frames = 0;
    header->runtime_ns = 0;
    header->samples_outside = header->samples_dropped = 0;
    cprof_heap_after_fork();
    cprof_trace_after_fork(header);
}

/* Copies the arena's used bytes into `fd` and maps that file in its place, at the same address, so that every
 * pointer into the arena stays valid; 0 when done (on failure the old mapping may be gone: the caller decides). */
static int move_arena_to(int fd, size_t used, size_t mapped)
{
    size_t written = 0;
    while (written < used) {
        ssize_t put = write(fd, cprof_rt.base + written, used - written);
        if (put <= 0)
            return -1;
        written += (size_t)put;
    }
    if (ftruncate(fd, (off_t)mapped) != 0 ||
        mmap(cprof_rt.base, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
        return -1;
    return 0;
}

/* The child must not write into its parent's file: copy the arena into a file of its own, map that at the
 * same address (so every pointer stays valid), and start its counts from zero at the fork. */
static void on_fork_child(void)
{
    struct cprof_run_header *header = cprof_rt.header;
    struct cprof_thread_record *thread = (struct cprof_thread_record *)__cprof_tls;
    struct reset_context reset;
    size_t used = header->used_bytes, mapped = atomic_load(&cprof_rt.mapped);
    pid_t parent = header->pid;
    char path[PATH_MAX + 32];
    int fd;
    pthread_mutex_init(&cprof_rt.lock, NULL);
    pthread_mutex_init(&cprof_rt.arena_lock, NULL);
    if (used > mapped)
        used = mapped;
    snprintf(path, sizeof path, "%s/%d.cprof", cprof_rt.dir, (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || move_arena_to(fd, used, mapped) != 0) {
        /* cannot give the child its own file: stop profiling it, and keep its writes out of the parent's */
        __cprof_mode = 1;
        if (fd >= 0)
            close(fd);
        mmap(cprof_rt.base, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return;
    }
    close(cprof_rt.fd);
    cprof_rt.fd = fd;
    reset.now = now_ticks();
    reset.survivor = thread;
    reset.keep_threads = 0;
    cprof_scan_records((const unsigned char *)cprof_rt.base, used, reset_record, &reset);
    if (thread) {
        struct cprof_frame *frame;
        thread->tid = (cprof_u64)current_tid();
        for (frame = stack_frames(thread); frame <= (struct cprof_frame *)as_pointer(thread->top); frame++) {
            frame->start_ticks = reset.now;
            if (cprof_rt.cpu_time)
                frame->cpu_start_ns = cprof_thread_cpu_ns();
        }
    }
    header->parent_pid = parent;
    header->pid = getpid();
    header->flags = (header->flags & ~CPROF_RUN_COMPLETE) | CPROF_RUN_FORK_CHILD;
    header->fork_ticks = reset.now;
    cprof_sampling_after_fork();
    cprof_counts_after_fork(thread);
    restart_run(header);
}

static void before_fork(void)
{
    pthread_mutex_lock(&cprof_rt.lock);
    pthread_mutex_lock(&cprof_rt.arena_lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&cprof_rt.arena_lock);
    pthread_mutex_unlock(&cprof_rt.lock);
}

int cprof_recording_mode(void)
{
    /* leaving mode 2 would hand timing back to an inline counter that is not valid here */
    if (cprof_rt.timer.kind == CPROF_TIMER_MONOTONIC || cprof_rt.cpu_time)
        return 2;
    return cprof_tracing ? 3 : 0;
}

static void process_start_once(void)
{
    struct cprof_run_header *header;
    cprof_u64 unix_ns = cprof_realtime_ns(), began = cprof_monotonic_ns();
    int fd;
    if (cprof_env_flag("CPROF_DISABLE")) {
        __cprof_mode = 1;
        cprof_rt.ready = -1;
        return;
    }
    cprof_rt.cpu_time = cprof_env_flag("CPROF_CPU_TIME");
    {
        const char *timer = getenv("CPROF_TIMER");
        enum cprof_timer_choice choice = CPROF_TIMER_CHOICE_ORDERED;
        if (timer && strcmp(timer, "fast") == 0)
            choice = CPROF_TIMER_CHOICE_FAST;
        else if (timer && strcmp(timer, "clock") == 0)
            choice = CPROF_TIMER_CHOICE_CLOCK;
        cprof_timer_init(&cprof_rt.timer, 2000000, choice);
    }
    __cprof_ordered_timer = cprof_rt.timer.ordered;
    fd = open_run_file(unix_ns);
    if (fd < 0 || cprof_map_new_arena(fd) != 0) {
        fprintf(stderr, "cprof: cannot create a run file in %s (%s); profiling is off\n", cprof_rt.dir,
                strerror(errno));
        __cprof_mode = 1;
        cprof_rt.ready = -1;
        return;
    }
    header = cprof_rt.header = (struct cprof_run_header *)cprof_rt.base;
    memcpy(header->magic, CPROF_RUN_MAGIC, 8);
    header->version = CPROF_RUN_VERSION;
    header->header_size = CPROF_HEADER_SIZE;
    header->features = CPROF_FEAT_WALL_TIME | CPROF_FEAT_THREAD_CPU | CPROF_FEAT_SLOW_PATH |
                       (cprof_rt.cpu_time ? CPROF_FEAT_CPU_TIME : 0) |
                       (&cprof_waits_tracked && cprof_waits_tracked ? CPROF_FEAT_WAIT_TIME : 0);
    header->base_address = as_u64(cprof_rt.base);
    header->used_bytes = CPROF_CHUNK_SIZE; /* the first chunk holds the header and the trailer */
    header->chunk_size = CPROF_CHUNK_SIZE;
    header->timer_kind = cprof_rt.timer.kind;
    header->timer_ordered = (cprof_u32)cprof_rt.timer.ordered;
    header->ticks_per_second = cprof_rt.timer.ticks_per_second;
    timer_pair(&header->start_ticks, &header->start_mono_ns);
    header->start_unix_ns = unix_ns;
    header->pid = getpid();
    header->parent_pid = getppid();
    header->exit_status = -1;
    read_cmdline(header);
    pthread_key_create(&cprof_rt.thread_key, cprof_thread_finish);
    pthread_atfork(before_fork, after_fork_in_parent, on_fork_child);
    /* The inline guard reads the counter itself; without a trustworthy one (or when CPU time is wanted too)
     * every event goes through the slow path, which reads the right clocks. */
    cprof_trace_start_process(header);
    __cprof_mode = cprof_recording_mode();
    cprof_sampling_start_process(header);
    cprof_heap_start_process(header);
    cprof_record_modules(); /* where sampled instructions and allocation calls resolve */
    cprof_rt.ready = 1;
    if ((__cprof_mode == 0 || __cprof_mode == 3) && !(getenv("CPROF_CALIBRATE") && strcmp(getenv("CPROF_CALIBRATE"), "0") == 0))
        cprof_calibrate_guard();
    header->runtime_ns = cprof_monotonic_ns() - began;
}

/* Set while this thread starts the runtime: what start-up calls in libc may reach the program's own instrumented
 * code (a program that defines malloc: qsort calls free), whose guard would wait in pthread_once for itself. */
static __thread int starting_here __attribute__((tls_model("initial-exec")));

int cprof_process_start(void)
{
    if (starting_here)
        return -1; /* not recorded: the runtime is not ready yet */
    starting_here = 1;
    cprof_heap_pause(1); /* the runtime's own allocations in libc (gmtime_r's time zone) are not the program's */
    pthread_once(&cprof_rt.once, process_start_once);
    cprof_heap_pause(0);
    starting_here = 0;
    return cprof_rt.ready == 1 ? 0 : -1;
}

/* Ends the run: thread names and CPU times, the final calibration, the trailer, the complete flag. The mapping
 * stays: code that still runs later keeps counting into a valid arena. */
static void finish_run(void)
{
    struct cprof_run_header *header = cprof_rt.header;
    struct cprof_trailer_record *trailer;
    struct cprof_thread_record *thread;
    cprof_u64 end_ticks, end_mono;
    cprof_heap_pause(1); /* from here on, what allocates is the runtime's exit work */
    timer_pair(&end_ticks, &end_mono);
    /* a whole-run calibration beats the 2 ms one taken at start, once the run is long enough */
    if (cprof_rt.timer.kind != CPROF_TIMER_MONOTONIC && end_mono - header->start_mono_ns > 50000000ull &&
        end_ticks > header->start_ticks)
        header->ticks_per_second =
            (double)(end_ticks - header->start_ticks) * 1e9 / (double)(end_mono - header->start_mono_ns);
    for (thread = as_pointer(header->threads_head); thread; thread = as_pointer(thread->next))
        if (!thread->end_ticks) {
            cprof_read_thread_name((pid_t)thread->tid, thread->name);
            cprof_record_thread_cpu(thread, thread == (struct cprof_thread_record *)__cprof_tls);
        }
    /* the guard's cost in ticks depends on the core's clock, which is often still low at start-up after idle:
     * once the run has kept the core busy for a while, measure again and use that */
    if ((__cprof_mode == 0 || __cprof_mode == 3) && end_mono - header->start_mono_ns > 50000000ull) {
        cprof_u64 began = cprof_monotonic_ns();
        cprof_calibrate_guard();
        header->runtime_ns += cprof_monotonic_ns() - began;
    }
    cprof_counts_fold_early();
    cprof_record_modules(); /* objects dlopen'ed since start-up */
    cprof_heap_finish();
    header->end_ticks = end_ticks;
    header->end_mono_ns = end_mono;
    trailer = (struct cprof_trailer_record *)(cprof_rt.base + CPROF_HEADER_SIZE);
    trailer->end_ticks = end_ticks;
    trailer->used_bytes = header->used_bytes;
    memcpy(trailer->magic, CPROF_TRAILER_MAGIC, 8);
    trailer->head.size = sizeof *trailer;
    trailer->head.kind = CPROF_REC_TRAILER;
    __atomic_or_fetch(&header->flags, CPROF_RUN_COMPLETE, __ATOMIC_RELEASE);
    cprof_heap_pause(0); /* later destructors are the program's again */
}

/* Runs after main and the user's atexit handlers (the runtime library is initialised first, so finalised
 * last). A session that already ended its run (cprof_session_end) leaves nothing to finish. */
__attribute__((destructor)) static void process_finish(void)
{
    if (cprof_rt.ready != 1 || !cprof_rt.header || (cprof_rt.header->flags & CPROF_RUN_COMPLETE))
        return;
    finish_run();
}

/* ---- sessions (cprof.h): a process that loaded an instrumented library makes one run per session ---------- */

/* The next session's run file, in `dir`: the arena is copied into it and mapped at the same address (as for a
 * forked child, so every pointer stays valid), its counters zeroed; threads keep their records and open frames,
 * which restart at the cut. Threads that ended in an earlier session leave the thread list. */
static int cut_run(const char *dir)
{
    struct cprof_run_header *header = cprof_rt.header;
    struct cprof_trailer_record *trailer = (struct cprof_trailer_record *)(cprof_rt.base + CPROF_HEADER_SIZE);
    struct cprof_thread_record *thread;
    cprof_u64 *link;
    struct reset_context reset;
    size_t used, mapped;
    char path[PATH_MAX + 32];
    int fd, old_fd = cprof_rt.fd;
    snprintf(path, sizeof path, "%s", dir);
    if (make_dirs(path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%d.cprof", dir, (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    /* no function registration nor arena growth while the arena moves to the new file */
    pthread_mutex_lock(&cprof_rt.lock);
    pthread_mutex_lock(&cprof_rt.arena_lock);
    used = header->used_bytes;
    mapped = atomic_load(&cprof_rt.mapped);
    if (used > mapped)
        used = mapped;
    if (move_arena_to(fd, used, mapped) != 0) {
        pthread_mutex_unlock(&cprof_rt.arena_lock);
        pthread_mutex_unlock(&cprof_rt.lock);
        close(fd);
        unlink(path);
        return -1;
    }
    cprof_rt.fd = fd;
    /* the last session's file is no longer mapped: its unused tail can go */
    if (ftruncate(old_fd, (off_t)used) != 0) {
        /* a file with a tail of zeroes still reads */
    }
    close(old_fd);
    snprintf(cprof_rt.dir, sizeof cprof_rt.dir, "%s", dir);
    reset.now = now_ticks();
    reset.survivor = NULL;
    reset.keep_threads = 1;
    cprof_scan_records((const unsigned char *)cprof_rt.base, used, reset_record, &reset);
    for (link = &header->threads_head; *link;) {
        struct cprof_frame *frame;
        thread = as_pointer(*link);
        if (thread->end_ticks) {
            *link = thread->next;
            continue;
        }
        thread->start_ticks = thread->last_ticks = reset.now;
        cprof_start_thread_cpu(thread, thread == (struct cprof_thread_record *)__cprof_tls);
        for (frame = stack_frames(thread); frame <= (struct cprof_frame *)as_pointer(thread->top); frame++)
            frame->start_ticks = reset.now;
        link = &thread->next;
    }
    memset(trailer->magic, 0, sizeof trailer->magic);
    trailer->end_ticks = 0;
    header->flags &= ~CPROF_RUN_COMPLETE;
    header->end_ticks = header->end_mono_ns = 0;
    header->exit_status = -1;
    restart_run(header);
    cprof_counts_forget_early();
    pthread_mutex_unlock(&cprof_rt.arena_lock);
    pthread_mutex_unlock(&cprof_rt.lock);
    return 0;
}

int cprof_session_begin(const char *run_dir)
{
    if (!run_dir || !*run_dir || strlen(run_dir) >= sizeof session_dir)
        return -1;
    if (cprof_rt.ready == 0) { /* the first session starts the runtime itself, in its directory */
        snprintf(session_dir, sizeof session_dir, "%s", run_dir);
        if (cprof_process_start() != 0)
            return -1;
        if (!__cprof_tls)
            cprof_thread_start(); /* the calling thread's counters, for the count-only functions it calls */
        return 0;
    }
    if (cprof_rt.ready != 1)
        return -1;
    if (!(cprof_rt.header->flags & CPROF_RUN_COMPLETE)) /* a session still open: it ends here */
        cprof_session_end();
    if (cut_run(run_dir) != 0)
        return -1;
    __cprof_mode = cprof_recording_mode();
    return 0;
}

int cprof_session_end(void)
{
    if (cprof_rt.ready != 1 || !cprof_rt.header)
        return -1;
    if (cprof_rt.header->flags & CPROF_RUN_COMPLETE)
        return 0;
    finish_run();
    cprof_rt.header->exit_status = 0; /* the process lives on: as a program that exited normally */
    __cprof_mode = 1; /* calls between sessions are nobody's */
    return 0;
}
