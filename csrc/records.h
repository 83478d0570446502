/* records.h — walks the records of a run-file arena; shared by the runtime (fork reset) and the fast reader. */
#ifndef CPROF_RECORDS_H
#define CPROF_RECORDS_H

#include <stddef.h>
#include "runfile.h"

#define CPROF_REC_PAD 6u

/* Visits every well-formed record in data[start, end): a zero kind skips to the next chunk boundary, a size
 * that is malformed or runs past the chunk (for small records) or past end (for big ones) abandons the
 * chunk. Returns the number of records visited; the callback returns nonzero to stop early. Never reads
 * outside data[0, end). */
typedef int (*cprof_record_visitor)(const struct cprof_record_head *record, size_t offset, void *context);
size_t cprof_scan_records(const unsigned char *data, size_t end, cprof_record_visitor visit, void *context);

#endif
