/* heap_interposed.c — the shared runtime's malloc family: libcprofrt.so comes before libc in every instrumented
 * program's library order, so these definitions serve the program, its libraries and libc itself (glibc routes its
 * own internal allocations through the interposable malloc), and reach libc's allocator by its __libc_ names,
 * which need no symbol lookup (a lookup may itself allocate). */
#define _GNU_SOURCE
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static size_t libc_usable_size(void *pointer);
static int heap_foreign_allocator(void);

#define HEAP_ENTRY(name) name
#define REAL(name) REAL_##name
#define REAL_malloc __libc_malloc
#define REAL_free __libc_free
#define REAL_calloc __libc_calloc
#define REAL_realloc __libc_realloc
#define REAL_memalign __libc_memalign
#define REAL_malloc_usable_size libc_usable_size
#define HEAP_LINKAGE CPROF_HEAP_INTERPOSED

#include "heap.c"
#include "interpose.h"

static size_t libc_usable_size(void *pointer)
{
    static void *cache;
    size_t (*real)(void *) = (size_t (*)(void *))cprof_next_definition(&cache, "malloc_usable_size");
    return real ? real(pointer) : 0;
}

/* The definitions above under names that always mean this library's own (hidden: no GOT entry between them). */
extern __typeof(malloc) own_malloc __attribute__((alias("malloc"), copy(malloc), visibility("hidden")));
extern __typeof(free) own_free __attribute__((alias("free"), copy(free), visibility("hidden")));
extern __typeof(calloc) own_calloc __attribute__((alias("calloc"), copy(calloc), visibility("hidden")));
extern __typeof(realloc) own_realloc __attribute__((alias("realloc"), copy(realloc), visibility("hidden")));

/* Whether some other malloc comes first (the program's own, or a preloaded jemalloc): its blocks would meet this
 * library's free, or the reverse, so nothing gets a header. The addresses taken here go through the GOT, which
 * holds whichever definition the dynamic loader chose for the whole process. */
static int heap_foreign_allocator(void)
{
    void *const volatile chosen[] = {(void *)malloc, (void *)free, (void *)calloc, (void *)realloc};
    return chosen[0] != (void *)own_malloc || chosen[1] != (void *)own_free || chosen[2] != (void *)own_calloc ||
           chosen[3] != (void *)own_realloc;
}
