/* trace.h — what the runtime (process start, the guard's slow exit, fork) asks of the event trace (trace.c). */
#ifndef CPROF_TRACE_H
#define CPROF_TRACE_H

#include "runfile.h"

/* hidden: none of this is part of libcprofrt.so's interface (runtime_internal.h's CPROF_INTERNAL) */
#pragma GCC visibility push(hidden)

/* 1 when this run records a trace: every exit then goes through the runtime (guard mode 3). */
extern int cprof_tracing;
/* Reads CPROF_TRACE, CPROF_TRACE_MIN_NS and CPROF_TRACE_LIMIT into the header; after the timer is calibrated. */
void cprof_trace_start_process(struct cprof_run_header *header);
/* A call of the thread's ends at `end`: recorded when long enough and while there is room (runfile.h). */
void cprof_trace_call(struct cprof_thread_record *thread, const struct cprof_frame *frame, cprof_u64 end);
/* The fork child's reset of the arena: its inherited tables are emptied, the stop forgotten. */
void cprof_trace_reset_record(struct cprof_record_head *record);
void cprof_trace_after_fork(struct cprof_run_header *header);

#pragma GCC visibility pop

#endif
