/* records.c — the one record walker; the pure-Python reader in cprof/runfile.py follows the same rules. */
#include "records.h"

#include <string.h>

static size_t next_chunk(size_t offset) { return (offset / CPROF_CHUNK_SIZE + 1) * CPROF_CHUNK_SIZE; }

size_t cprof_scan_records(const unsigned char *data, size_t end, cprof_record_visitor visit, void *context)
{
    size_t offset = CPROF_CHUNK_SIZE, visited = 0;
    while (offset + sizeof(struct cprof_record_head) <= end) {
        struct cprof_record_head head;
        size_t chunk_end = next_chunk(offset);
        memcpy(&head, data + offset, sizeof head);
        if (head.kind == 0) {
            offset = chunk_end;
            continue;
        }
        if (head.size < sizeof head || head.size % 8 != 0) {
            offset = chunk_end;
            continue;
        }
        if (head.kind == CPROF_REC_STACK) {
            /* big records start on a boundary and cover whole chunks */
            if (offset % CPROF_CHUNK_SIZE != 0 || head.size % CPROF_CHUNK_SIZE != 0 || head.size > end - offset) {
                offset = chunk_end;
                continue;
            }
        } else if (head.size > chunk_end - offset || head.size > end - offset) {
            offset = chunk_end;
            continue;
        }
        visited++;
        if (head.kind != CPROF_REC_PAD && visit((const struct cprof_record_head *)(data + offset), offset, context))
            break;
        offset += head.size;
    }
    return visited;
}
