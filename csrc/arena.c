/* arena.c — the run file's arena: the reserved address range, its mapping as the file grows, and allocation. */
#define _GNU_SOURCE
#include "runtime_internal.h"
#include "records.h"
#include "sampling.h"

#include <sys/mman.h>

#define ARENA_INITIAL (1u << 20)
#define ARENA_STEP_MAX (64u << 20)

static int arena_map_to(size_t needed)
{
    size_t mapped = atomic_load(&cprof_rt.mapped), target = mapped ? mapped : ARENA_INITIAL;
    if (needed <= mapped)
        return 0;
    while (target < needed)
        target += target < ARENA_STEP_MAX ? target : ARENA_STEP_MAX;
    if (target > cprof_rt.reserved)
        target = cprof_rt.reserved;
    if (target < needed || ftruncate(cprof_rt.fd, (off_t)target) != 0)
        return -1;
    if (mmap(cprof_rt.base + mapped, target - mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, cprof_rt.fd,
             (off_t)mapped) == MAP_FAILED)
        return -1;
    atomic_store(&cprof_rt.mapped, target);
    return 0;
}

/* Reserves as large an address range as the system grants (the arena never moves: its records point at each
 * other) and maps the start of the run file `fd` there. */
int cprof_map_new_arena(int fd)
{
    static const size_t reservations[] = {(size_t)16 << 30, (size_t)4 << 30, (size_t)1 << 30, (size_t)256 << 20};
    size_t i;
    for (i = 0; i < sizeof reservations / sizeof *reservations; i++) {
        void *base = mmap(NULL, reservations[i], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base != MAP_FAILED) {
            cprof_rt.base = base;
            cprof_rt.reserved = reservations[i];
            break;
        }
    }
    if (!cprof_rt.base)
        return -1;
    cprof_rt.fd = fd;
    atomic_store(&cprof_rt.mapped, 0);
    return arena_map_to(ARENA_INITIAL);
}

/* Whole chunks from the shared arena; every thread then sub-allocates from its own chunk without locking. */
char *cprof_arena_alloc_chunks(size_t bytes)
{
    size_t offset = __atomic_fetch_add(&cprof_rt.header->used_bytes, bytes, __ATOMIC_RELAXED);
    if (offset + bytes > atomic_load(&cprof_rt.mapped)) {
        int failed;
        pthread_mutex_lock(&cprof_rt.arena_lock);
        failed = arena_map_to(offset + bytes);
        pthread_mutex_unlock(&cprof_rt.arena_lock);
        if (failed)
            return NULL;
    }
    return cprof_rt.base + offset;
}

char *cprof_arena_chunk(void) { return cprof_arena_alloc_chunks(CPROF_CHUNK_SIZE); }

char *cprof_arena_try_chunk(void)
{
    cprof_u64 offset = __atomic_load_n(&cprof_rt.header->used_bytes, __ATOMIC_RELAXED);
    do {
        if (offset + CPROF_CHUNK_SIZE > atomic_load(&cprof_rt.mapped))
            return NULL;
    } while (!__atomic_compare_exchange_n(&cprof_rt.header->used_bytes, &offset, offset + CPROF_CHUNK_SIZE, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return cprof_rt.base + offset;
}

/* Records that belong to no thread (modules) come from a chunk of their own. */
void *cprof_process_alloc(size_t bytes)
{
    static char *cursor, *end;
    void *record = NULL;
    pthread_mutex_lock(&cprof_rt.lock);
    if (!cursor || cursor + bytes > end) {
        cursor = bytes <= CPROF_CHUNK_SIZE ? cprof_arena_alloc_chunks(CPROF_CHUNK_SIZE) : NULL;
        end = cursor ? cursor + CPROF_CHUNK_SIZE : NULL;
    }
    if (cursor) {
        record = cursor;
        cursor += bytes;
    }
    pthread_mutex_unlock(&cprof_rt.lock);
    return record;
}

void *cprof_thread_alloc(struct cprof_thread_record *thread, size_t size, size_t align)
{
    cprof_u64 at = round_up(thread->chunk_cursor, align);
    if (thread->chunk_cursor == 0 || at + size > thread->chunk_end) {
        char *chunk = cprof_arena_alloc_chunks(CPROF_CHUNK_SIZE);
        if (!chunk)
            return NULL;
        thread->chunk_cursor = as_u64(chunk);
        thread->chunk_end = as_u64(chunk) + CPROF_CHUNK_SIZE;
        at = thread->chunk_cursor;
    } else if (at > thread->chunk_cursor) {
        /* alignment gaps become pad records so that readers keep walking the chunk */
        struct cprof_record_head *pad = as_pointer(thread->chunk_cursor);
        pad->size = (cprof_u32)(at - thread->chunk_cursor);
        pad->kind = CPROF_REC_PAD;
    }
    thread->chunk_cursor = at + size;
    return as_pointer(at);
}
