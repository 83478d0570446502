/* guard_fast.c — the guard's fast paths, compiled once and linked (hidden) into every instrumented program and
 * shared library, so that each guarded call makes two direct calls here (see cprof_guard.h for why). */
#define __CPROF_DEFINE_FAST_PATHS 1
#include "cprof_guard.h"
