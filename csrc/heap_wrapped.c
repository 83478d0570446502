/* heap_wrapped.c — the malloc family for -static links: libc.a defines malloc itself, so the link routes every
 * reference (the program's and libc's own, as in strdup or fopen) to these __wrap_ definitions with
 * -Wl,--wrap=malloc and so on (cprof/building/toolchain.py), and libc's allocator stays reachable as __real_. */
#include <stddef.h>

extern void *__real_malloc(size_t size);
extern void __real_free(void *pointer);
extern void *__real_calloc(size_t count, size_t size);
extern void *__real_realloc(void *pointer, size_t size);
extern void *__real_memalign(size_t alignment, size_t size);
extern size_t __real_malloc_usable_size(void *pointer);

#define HEAP_ENTRY(name) __wrap_##name
#define REAL(name) __real_##name
#define HEAP_LINKAGE CPROF_HEAP_WRAPPED

/* a -static link has one allocator, and every call reaches it through the wraps */
static int heap_foreign_allocator(void) { return 0; }

#include "heap.c"
