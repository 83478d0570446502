/* interpose.h — how the shared runtime's wrappers of libc functions (waits.c, exec_wrappers.c) find the
 * definition they stand in front of. */
#ifndef CPROF_INTERPOSE_H
#define CPROF_INTERPOSE_H

#include <dlfcn.h>

/* libc's own definition of `name`, looked up once: libcprofrt.so comes before libc in every instrumented
 * program's library order, so RTLD_NEXT is the definition the program would have called. */
static inline void *cprof_next_definition(void **cache, const char *name)
{
    void *function = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!function) {
        function = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, function, __ATOMIC_RELEASE);
    }
    return function;
}

#endif
