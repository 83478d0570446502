/* sampling.h — CPU-time sampling of every recorded thread (sampling.c), driven by the runtime (runtime.c). */
#ifndef CPROF_SAMPLING_H
#define CPROF_SAMPLING_H

#include "runfile.h"

#include <stddef.h>

/* Reads CPROF_SAMPLE_HZ; when sampling is wanted and SIGPROF is free, installs the handler. Sets the header's
 * sample fields and CPROF_FEAT_SAMPLES. Called once, at process start, before any thread is recorded. */
void cprof_sampling_start_process(struct cprof_run_header *header);
/* Starts sampling the calling thread's CPU time (a no-op when the process does not sample). */
void cprof_sampling_start_thread(void);
/* Stops sampling the calling thread: at its end, and before it replaces its program (exec). */
void cprof_sampling_stop_thread(void);
/* In a fork child: the parent's timers are not inherited, and its sample tables belong to the parent's run. */
void cprof_sampling_after_fork(void);
/* The code of the module holding `address` (a unit's count table) holds count-only functions: a sample in
 * uninstrumented code called from there is told by the return address on the stack. Forgotten before the module
 * is unloaded. */
void cprof_sampling_note_code(const void *address);
void cprof_sampling_forget_code(const void *address);
/* Whether this process samples. */
int cprof_sampling_active(void);

/* The runtime's side (arena.c). A whole chunk of the arena: cprof_arena_chunk may lock and grow the mapping;
 * cprof_arena_try_chunk never locks (the signal handler's only allocation) and returns NULL when the mapped part
 * of the arena is used up. cprof_process_alloc: a small record that belongs to no thread. */
char *cprof_arena_chunk(void);
char *cprof_arena_try_chunk(void);
void *cprof_process_alloc(size_t bytes);

#endif
