/* cprof.h — the public header for profiled programs: scoped sections and switching profiling on and off.
 *
 *     #include <cprof.h>
 *     void load(void) {
 *         CPROF_SECTION("parse config");   // from here to the end of the enclosing block
 *         ...
 *     }
 *     cprof_disable(); ...uninteresting work...; cprof_enable();
 *
 * Under a cprof build (which defines __CPROF__ and force-includes the guard), a section appears in reports
 * like a function named after it. In any other build everything here compiles to nothing. */
#ifndef CPROF_H
#define CPROF_H

#define CPROF_CONCAT_(a, b) a##b
#define CPROF_CONCAT(a, b) CPROF_CONCAT_(a, b)

#if defined(__CPROF__) && !defined(__cplusplus)

void cprof_set_enabled(int enabled);

#define CPROF_SECTION(name)                                                                                    \
    static struct __cprof_site CPROF_CONCAT(__cprof_section_site_, __LINE__)[1] = {                            \
        {name, __FILE__, __LINE__, 2u /* CPROF_FN_SECTION */, 0, 0}};                                          \
    int CPROF_CONCAT(__cprof_section_, __LINE__) __attribute__((cleanup(__cprof_leave), unused)) =            \
        __cprof_enter(&CPROF_CONCAT(__cprof_section_site_, __LINE__)[0], &CPROF_CONCAT(__cprof_section_, __LINE__))
#define cprof_enable() cprof_set_enabled(1)
#define cprof_disable() cprof_set_enabled(0)

#else

/* a declaration, like the real one, so it may stand wherever that may; -Wall does not flag unused enumerators */
#define CPROF_SECTION(name) enum { CPROF_CONCAT(cprof_section_placeholder_, __LINE__) = 0 }
#define cprof_enable() ((void)0)
#define cprof_disable() ((void)0)

#endif

/* Sessions, for a process that loads an instrumented library (cprof's Python API reaches these through dlsym,
 * cprof/library/): begin starts a run whose file lands in run_dir (the first one starts the runtime; a later one
 * moves the arena to a new file and zeroes every counter), end finishes it as a program's exit would and switches
 * profiling off until the next begin. Both return 0, or -1 when the runtime cannot record. */
int cprof_session_begin(const char *run_dir);
int cprof_session_end(void);
/* Before a thread the runtime did not start (a Python thread) calls into the library: gives it its counters of the
 * count-only functions, so that they are counted in that thread. */
void cprof_thread_attach(void);
#endif
