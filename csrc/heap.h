/* heap.h — what the runtime (process start, fork) asks of heap tracking (heap.c). */
#ifndef CPROF_HEAP_H
#define CPROF_HEAP_H

#include "runfile.h"

/* hidden: none of this is part of libcprofrt.so's interface (runtime_internal.h's CPROF_INTERNAL) */
#pragma GCC visibility push(hidden)

/* Reads CPROF_HEAP (0: off), writes the process's heap record into the arena and sets CPROF_FEAT_ALLOCS when the
 * heap is tracked; allocations made before this moment are folded into the record's outside site. */
void cprof_heap_start_process(struct cprof_run_header *header);
/* While the runtime itself calls libc on this thread (start-up, exit), allocations pass through uncounted. */
void cprof_heap_pause(int paused);
/* At a clean exit. */
void cprof_heap_finish(void);
/* In a fork child, after its arena copy was made: the parent's live blocks are no longer this run's. */
void cprof_heap_after_fork(void);
/* Empties a heap record or site table of the parent's counts (the fork child's reset of the arena). */
void cprof_heap_reset_record(struct cprof_record_head *record);

/* The runtime's side: its clock (the header's ticks), for when the peak was reached. */
cprof_u64 cprof_runtime_ticks(void);

#pragma GCC visibility pop

#endif
