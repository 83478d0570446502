/* waits.h — how the blocking-call wrappers (waits.c) charge the time a thread spends waiting to the call path
 * that waited; implemented in runtime.c, which owns the thread state and the timer. */
#ifndef CPROF_WAITS_H
#define CPROF_WAITS_H

#include "runfile.h"

/* Time at the start of a wait, or 0 when nothing is being recorded on this thread (then nothing is charged). */
cprof_u64 cprof_wait_begin(void);
/* Charges the wait that began at `start` to the innermost open call of this thread (the thread root when none
 * is open). */
void cprof_wait_end(cprof_u64 start);

/* Defined (as 1) only where the wrappers are linked: the shared runtime. A -static link cannot interpose libc's
 * functions, so its runs do not claim to have measured waiting. */
extern const int cprof_waits_tracked __attribute__((weak));

#endif
