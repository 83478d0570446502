/* threads.c — a thread's record: made on its first instrumented call, finished when it exits. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "sampling.h"

#include <fcntl.h>
#include <stdio.h>
#include <time.h>

static __thread int thread_finished __attribute__((tls_model("initial-exec")));

void cprof_read_thread_name(pid_t tid, char name[16])
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

/* The CPU clock of a thread of this process (0 when it cannot be read). */
static cprof_u64 thread_cpu_now(const struct cprof_thread_record *thread, int current)
{
    struct timespec now;
    /* Linux's clock id for another thread of this process, as glibc's pthread_getcpuclockid builds it */
    clockid_t clock = current ? CLOCK_THREAD_CPUTIME_ID : (clockid_t)((~(unsigned)thread->tid << 3) | 6u);
    if (clock_gettime(clock, &now) != 0)
        return 0;
    return (cprof_u64)now.tv_sec * 1000000000ull + (cprof_u64)now.tv_nsec;
}

/* The thread's whole CPU time, read once at its end: two clock reads per thread tell a thread that worked from
 * one that mostly waited, where a read per call (--cpu-time) costs hundreds of ns each. */
void cprof_record_thread_cpu(struct cprof_thread_record *thread, int current)
{
    struct cprof_node *root = as_pointer(thread->root);
    cprof_u64 now = thread_cpu_now(thread, current);
    /* it held the CPU time at the thread's start (cprof_thread_start): what is recorded is the time since */
    if (root && now)
        root->cpu_ns = now - root->cpu_ns;
}

/* A session cut (process.c) restarts a living thread's CPU time where its new run starts. */
void cprof_start_thread_cpu(struct cprof_thread_record *thread, int current)
{
    struct cprof_node *root = as_pointer(thread->root);
    if (root)
        root->cpu_ns = thread_cpu_now(thread, current);
}

/* The thread key's destructor (process.c): runs as the thread exits. */
void cprof_thread_finish(void *state)
{
    struct cprof_thread_record *thread = state;
    cprof_sampling_stop_thread();
    /* Open frames stay on the stack: readers close them at end_ticks, like a crashed run's at last_ticks. */
    cprof_read_thread_name((pid_t)thread->tid, thread->name);
    cprof_record_thread_cpu(thread, 1);
    thread->end_ticks = now_ticks();
    cprof_counts_thread_end(thread);
    cprof_release_child_index();
    __cprof_tls = NULL;
    thread_finished = 1;
}

/* At the thread's first call that records (runtime.c), which starts the process's run too when it is the first. */
struct cprof_thread_record *cprof_thread_start(void)
{
    struct cprof_thread_record *thread;
    struct cprof_node *root;
    struct cprof_frame *frames;
    char *chunk;
    if (thread_finished || cprof_process_start() != 0)
        return NULL;
    chunk = cprof_arena_alloc_chunks(CPROF_CHUNK_SIZE);
    if (!chunk)
        return NULL;
    thread = (struct cprof_thread_record *)chunk;
    thread->chunk_cursor = as_u64(chunk) + round_up(sizeof *thread, 64);
    thread->chunk_end = as_u64(chunk) + CPROF_CHUNK_SIZE;
    root = cprof_new_node(thread, NULL, 0);
    if (!root || cprof_grow_stack(thread) != 0)
        return NULL;
    thread->root = as_u64(root);
    thread->tid = (cprof_u64)current_tid();
    thread->index = atomic_fetch_add(&cprof_rt.next_thread_index, 1);
    thread->start_ticks = now_ticks();
    root->cpu_ns = cprof_thread_cpu_ns(); /* the start of what cprof_record_thread_cpu records at the end */
    thread->last_ticks = thread->start_ticks;
    cprof_read_thread_name((pid_t)thread->tid, thread->name);
    frames = stack_frames(thread);
    frames[0].node = as_u64(root);
    frames[0].frame_address = ~0ull; /* every real frame lies below the root */
    frames[0].start_ticks = thread->start_ticks;
    thread->head.size = (cprof_u32)round_up(sizeof *thread, 64);
    thread->head.kind = CPROF_REC_THREAD;
    pthread_mutex_lock(&cprof_rt.lock);
    thread->next = cprof_rt.header->threads_head;
    cprof_rt.header->threads_head = as_u64(thread);
    pthread_mutex_unlock(&cprof_rt.lock);
    pthread_setspecific(cprof_rt.thread_key, thread);
    __cprof_tls = (struct __cprof_thread_hot *)thread;
    cprof_sampling_start_thread();
    cprof_counts_thread_start(thread);
    return thread;
}
