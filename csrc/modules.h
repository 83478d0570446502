/* modules.h — the loaded objects' module records (modules.c), written by the runtime at start-up and at exit. */
#ifndef CPROF_MODULES_H
#define CPROF_MODULES_H

/* Writes one module record per loaded object that has none yet (at start-up, and at exit for later dlopens). */
void cprof_record_modules(void);

#endif
