/* modules.c — records where each loaded object (the program, its shared libraries) was mapped, so that readers
 * can resolve the instructions the run saw (sampled instructions, the calls that allocated) with the object's own
 * symbols and debug info at ip - base. */
#define _GNU_SOURCE
#include "modules.h"
#include "sampling.h"

#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODULES_MAX 1024

static struct {
    pthread_mutex_t lock;
    size_t count;
    cprof_u64 bases[MODULES_MAX]; /* objects already recorded (private memory: only to skip repeats) */
} modules = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int record_module(struct dl_phdr_info *info, size_t size, void *unused)
{
    char path[PATH_MAX];
    const char *name = info->dlpi_name;
    size_t length, i, bytes;
    cprof_u64 low = ~0ull, high = 0;
    struct cprof_module_record *record;
    (void)size;
    (void)unused;
    for (i = 0; i < modules.count; i++)
        if (modules.bases[i] == (cprof_u64)info->dlpi_addr)
            return 0;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_X))
            continue;
        if (info->dlpi_addr + segment->p_vaddr < low)
            low = info->dlpi_addr + segment->p_vaddr;
        if (info->dlpi_addr + segment->p_vaddr + segment->p_memsz > high)
            high = info->dlpi_addr + segment->p_vaddr + segment->p_memsz;
    }
    if (high == 0 || modules.count == MODULES_MAX)
        return 0;
    if (!name || !*name) { /* the program itself */
        ssize_t got = readlink("/proc/self/exe", path, sizeof path - 1);
        if (got <= 0)
            return 0;
        path[got] = 0;
        name = path;
    }
    length = strnlen(name, PATH_MAX);
    bytes = (sizeof *record + length + 7) / 8 * 8;
    record = cprof_process_alloc(bytes);
    if (!record)
        return 1;
    record->base = (cprof_u64)info->dlpi_addr;
    record->low = low;
    record->high = high;
    {
        struct stat file;
        if (stat(name, &file) == 0) {
            record->mtime_ns = (cprof_u64)file.st_mtim.tv_sec * 1000000000ull + (cprof_u64)file.st_mtim.tv_nsec;
            record->size = (cprof_u64)file.st_size;
        }
    }
    record->path_len = (cprof_u32)length;
    memcpy(record + 1, name, length);
    record->head.size = (cprof_u32)bytes;
    __asm__ __volatile__("" ::: "memory");
    record->head.kind = CPROF_REC_MODULE;
    modules.bases[modules.count++] = (cprof_u64)info->dlpi_addr;
    return 0;
}

void cprof_record_modules(void)
{
    pthread_mutex_lock(&modules.lock);
    dl_iterate_phdr(record_module, NULL);
    pthread_mutex_unlock(&modules.lock);
}
