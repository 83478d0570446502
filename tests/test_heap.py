"""Heap tracking on C programs with known allocation patterns: exact counts and bytes per function, path and line."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest

from conftest import Project, by_name, validate
from test_cli import names, table

# Every figure a function has for the heap, in the order the expectations below give them.
FIELDS = ("alloc_count", "alloc_bytes", "free_count", "free_bytes", "realloc_count", "live_count", "live_bytes",
          "temporary_count")
CFLAGS = ("--", "-O2", "-g")


def figures(allocs=(0, 0), frees=(0, 0), reallocs=0, live=(0, 0), temporary=0) -> dict:
    """What a function is expected to show: (count, bytes) allocated, freed (by it) and still live at the end."""
    return dict(zip(FIELDS, (*allocs, *frees, reallocs, *live, temporary)))


def heap_of(function: dict) -> dict:
    return {name: function[name] for name in FIELDS}


def line_of(source: str, text: str) -> int:
    """The line number of the only line of `source` holding `text`: expected sites come from the source itself."""
    found = [number for number, line in enumerate(source.splitlines(), 1) if text in line]
    assert len(found) == 1, (text, found)
    return found[0]


def sites_of(report: dict, path: list[str], pid: int | None = None) -> list[dict]:
    return [s for s in report["heap"]["sites"] if s["path"] == path and (pid is None or s["pid"] == pid)]


def section(text: str, title: str) -> list[str]:
    """The lines of a `report --mem` section, from its title to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1:end]


def report(project: Project, *args: str) -> dict:
    result = project.cprof("report", "--json", "--all", *args)
    assert result.returncode == 0, result.stderr
    document = result.json()
    validate(document, "report-4.json")
    return document


def build_and_run(project: Project, source: str, *run_args: str, build_args: tuple = CFLAGS, status: int = 0):
    project.write("prog.c", source)
    built = project.cprof("build", "prog.c", *build_args)
    assert built.returncode == 0, built.stderr
    ran = project.cprof("run", *run_args)
    assert ran.returncode == status, ran.stderr
    return ran


def has_debug_info(library: str) -> bool:
    """Whether the functions of a system library have names addr2line can give (for libc, Debian's libc6-dbg):
    without them a site in it is known by its module alone."""
    notes = subprocess.run(["readelf", "-n", library], capture_output=True, text=True).stdout
    build_id = re.search(r"Build ID: ([0-9a-f]+)", notes)
    return bool(build_id) and os.path.exists(
        f"/usr/lib/debug/.build-id/{build_id[1][:2]}/{build_id[1][2:]}.debug")


# One program for the malloc family's every entry point, each pattern in a function of its own. Nothing it calls
# allocates behind its back (no stdio but in `files`; the results go out by write(2) at the end), so that every
# block is one the test can count. `sink` is volatile: gcc may not drop a malloc whose result is stored there.
TEXT = "copied by libc"
BASICS = r"""
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;
static const char *volatile text = "@TEXT@"; /* not a literal gcc could turn strdup of into malloc + memcpy */
static volatile size_t huge = SIZE_MAX / 2;
static char out[512];
static int used;

static void say(const char *name, int value)
{
    used += snprintf(out + used, sizeof out - used, "%s %d\n", name, value);
}
static int aligned_to(const void *p, size_t alignment) { return p && (uintptr_t)p % alignment == 0; }

__attribute__((noinline)) void churn(int n)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(100);
        p[0] = (char)i;
        sink = p;
        free(p);
    }
}

__attribute__((noinline)) void interleaved(void)
{
    char *a = malloc(10), *b = malloc(20);
    sink = a;
    sink = b;
    free(a); /* not temporary: b was allocated after it */
    free(b);
}

__attribute__((noinline)) void grow(void)
{
    char *p = NULL;
    for (int i = 1; i <= 10; i++) {
        p = realloc(p, 100 * i);
        p[0] = 1;
        sink = p;
    }
    say("realloc_zero_frees", realloc(p, 0) == NULL);
}

__attribute__((noinline)) void arrays(void)
{
    long *q = reallocarray(NULL, 10, sizeof *q);
    sink = q;
    errno = 0;
    say("reallocarray_overflow", reallocarray(q, huge, 4) == NULL && errno == ENOMEM);
    free(q);
}

__attribute__((noinline)) void zeroed(void)
{
    long *p = calloc(25, 8);
    int zero = 1;
    for (int i = 0; i < 25; i++)
        zero &= p[i] == 0;
    sink = p;
    say("calloc_zeroed", zero);
    say("calloc_overflow", calloc(huge, 4) == NULL);
    free(p);
}

__attribute__((noinline)) void aligned(void)
{
    char *a = aligned_alloc(64, 256);
    void *b = NULL, *c = NULL;
    int b_status = posix_memalign(&b, 4096, 1000);
    int c_status = posix_memalign(&c, 24, 10);
    void *d = memalign(128, 77);
    void *e = valloc(33);
    say("aligned", aligned_to(a, 64) && aligned_to(b, 4096) && aligned_to(d, 128) &&
                   aligned_to(e, (size_t)sysconf(_SC_PAGESIZE)) && b_status == 0);
    say("usable_size", malloc_usable_size(a) >= 256 && malloc_usable_size(b) >= 1000 &&
                       malloc_usable_size(d) >= 77 && malloc_usable_size(e) >= 33);
    say("posix_memalign_einval", c_status == EINVAL && c == NULL);
    memset(a, 'x', 256);
    a = realloc(a, 512);
    say("realloc_of_aligned_kept", a[0] == 'x' && a[255] == 'x');
    sink = b;
    sink = d;
    sink = e;
    free(b);
    free(d);
    free(e);
    free(a);
}

__attribute__((noinline)) void duplicate(void)
{
    char *s = strdup(text);
    sink = s;
    say("strdup_kept", strcmp(s, text) == 0);
    free(s);
}

__attribute__((noinline)) void files(void)
{
    FILE *f = fopen("/dev/null", "w");
    fputs("x", f);
    fclose(f);
}

__attribute__((noinline)) void make(size_t n)
{
    sink = malloc(n); /* the leak */
}

__attribute__((noinline)) void left(void) { make(40); make(40); }
__attribute__((noinline)) void right(void) { make(70); }

int main(void)
{
    churn(1000);
    interleaved();
    grow();
    arrays();
    zeroed();
    aligned();
    duplicate();
    files();
    left();
    right();
    if (write(1, out, used) != used)
        return 1;
    return 0;
}
""".replace("@TEXT@", TEXT)
BASICS_OUTPUT = """\
realloc_zero_frees 1
reallocarray_overflow 1
calloc_zeroed 1
calloc_overflow 1
aligned 1
usable_size 1
posix_memalign_einval 1
realloc_of_aligned_kept 1
strdup_kept 1
"""
BASICS_EXPECTED = {
    "churn": figures(allocs=(1000, 100_000), frees=(1000, 100_000), temporary=1000),
    "interleaved": figures(allocs=(2, 30), frees=(2, 30), temporary=1),
    # realloc(NULL, 100) allocates; the next nine each allocate 100 more and free the block before; realloc(p, 0)
    # frees the last (1000 bytes), right after it was made: temporary
    "grow": figures(allocs=(10, 5500), frees=(10, 5500), reallocs=10, temporary=1),
    # the overflowing reallocarray fails before anything is allocated: q, freed next, is still the newest block
    "arrays": figures(allocs=(1, 80), frees=(1, 80), reallocs=1, temporary=1),
    "zeroed": figures(allocs=(1, 200), frees=(1, 200), temporary=1),
    # four aligned blocks (posix_memalign's EINVAL allocates none) and the realloc's copy of `a` (512 bytes), which
    # frees the aligned original (256); only the copy is freed with no allocation after it
    "aligned": figures(allocs=(5, 256 + 1000 + 77 + 33 + 512), frees=(5, 256 + 1000 + 77 + 33 + 512), reallocs=1,
                       temporary=1),
    "duplicate": figures(allocs=(1, len(TEXT) + 1), frees=(1, len(TEXT) + 1), temporary=1),
    "make": figures(allocs=(3, 150), live=(3, 150)),
    "left": figures(),
    "right": figures(),
    "main": figures(),
}


@pytest.fixture(scope="module")
def basics(tmp_path_factory) -> tuple[Project, dict]:
    """BASICS built and run once; the tests read its report (with the sites: --mem)."""
    project = Project(str(tmp_path_factory.mktemp("basics")))
    ran = build_and_run(project, BASICS)
    assert ran.stdout == BASICS_OUTPUT
    document = report(project, "--mem")
    assert document["heap"]["source"] == "interposed" and document["heap"]["tracked"]
    assert "allocations" in document["run"]["features"]
    return project, document


def test_every_entry_point_is_counted_exactly_per_function(basics):
    _, document = basics
    functions = by_name(document)
    for name, expected in BASICS_EXPECTED.items():
        assert heap_of(functions[name]) == expected, name


def test_each_allocating_line_is_a_site_of_its_own(basics):
    _, document = basics
    source = textwrap.dedent(BASICS)
    expected = {  # line -> (blocks, bytes, of them by realloc)
        line_of(source, "aligned_alloc(64, 256)"): (1, 256, 0),
        line_of(source, "posix_memalign(&b, 4096, 1000)"): (1, 1000, 0),
        line_of(source, "memalign(128, 77)"): (1, 77, 0),
        line_of(source, "valloc(33)"): (1, 33, 0),
        line_of(source, "realloc(a, 512)"): (1, 512, 1),
    }
    sites = sites_of(document, ["main", "aligned"])
    assert {s["line"]: (s["alloc_count"], s["alloc_bytes"], s["realloc_count"]) for s in sites} == expected
    assert all(s["function"] == "aligned" and s["file"].endswith("prog.c") and s["module"].endswith("/prog")
               for s in sites)
    churn, = sites_of(document, ["main", "churn"])
    assert (churn["line"], churn["alloc_count"], churn["temporary_count"]) == (line_of(source, "malloc(100)"),
                                                                              1000, 1000)


def test_libc_allocations_are_charged_to_the_function_that_called_libc(basics):
    """strdup and fopen allocate inside libc: the blocks are the calling function's, the site is libc's call."""
    _, document = basics
    functions = by_name(document)
    copy, = sites_of(document, ["main", "duplicate"])
    assert os.path.basename(copy["module"]).startswith("libc.so")
    assert (copy["alloc_count"], copy["alloc_bytes"]) == (1, len(TEXT) + 1)
    files = heap_of(functions["files"])
    # fopen's FILE and the buffer of the first write (their sizes are glibc's), both freed by fclose
    assert files["alloc_count"] >= 1 and files["alloc_bytes"] > 0
    assert (files["free_count"], files["free_bytes"]) == (files["alloc_count"], files["alloc_bytes"])
    assert (files["live_count"], files["live_bytes"], files["realloc_count"]) == (0, 0, 0)
    stream = sites_of(document, ["main", "files"])
    assert all(os.path.basename(s["module"]).startswith("libc.so") for s in stream)
    assert sum(s["alloc_count"] for s in stream) == files["alloc_count"]
    assert sum(s["alloc_bytes"] for s in stream) == files["alloc_bytes"]
    if has_debug_info(copy["module"]):
        assert "strdup" in copy["function"]
        assert any("fopen" in s["function"] for s in stream), stream
    else:  # addr2line names no function in a libc without its debug information
        assert copy["function"] == "" and all(s["function"] == "" for s in stream)


def test_leaks_are_found_per_function_per_call_path_and_per_line(basics):
    project, document = basics
    source = textwrap.dedent(BASICS)
    leak_line = line_of(source, "/* the leak */")
    by_path = {tuple(s["path"]): s for s in document["heap"]["sites"] if s["live_count"]}
    assert set(by_path) == {("main", "left", "make"), ("main", "right", "make")}
    left, right = by_path[("main", "left", "make")], by_path[("main", "right", "make")]
    assert (left["live_count"], left["live_bytes"], right["live_count"], right["live_bytes"]) == (2, 80, 1, 70)
    assert all(s["line"] == leak_line and s["function"] == "make" for s in (left, right))
    assert (document["heap"]["live_count"], document["heap"]["live_bytes"]) == (3, 150)
    text = project.cprof("report", "--mem").stdout
    live = section(text, "live at the end, by call path")
    rows = [line for line in live if "→" in line]
    assert len(rows) == 2, live
    assert re.search(rf"^\s*80 B\s+2 blocks\s+main → left → make\s+prog\.c:{leak_line}\s*$", rows[0]), rows
    assert re.search(rf"^\s*70 B\s+1 block\s+main → right → make\s+prog\.c:{leak_line}\s*$", rows[1]), rows
    allocations = f"{document['heap']['alloc_count']:,} allocations"
    assert re.match(rf"heap: {allocations} .*; 3 blocks \(150 B\) live at the end$", text.splitlines()[0]), text


def test_node_figures_add_up_to_the_process_totals(basics):
    """Every block of this program is made inside a recorded call: nothing is left to the outside site."""
    _, document = basics
    heap = document["heap"]
    for name in FIELDS:
        assert heap[name] == sum(f[name] for f in document["functions"]), name
    assert all(site["path"] for site in heap["sites"])
    for name in ("alloc_count", "alloc_bytes", "live_count", "live_bytes", "realloc_count", "temporary_count"):
        assert heap[name] == sum(site[name] for site in heap["sites"]), name
    assert heap["foreign_frees"] == 0 and heap["untracked"] == 0


def test_a_static_link_is_wrapped_and_counts_exactly_as_the_dynamic_one(project, basics):
    _, dynamic = basics
    ran = build_and_run(project, BASICS, build_args=CFLAGS + ("-static",))
    assert ran.stdout == BASICS_OUTPUT
    document = report(project, "--mem")
    heap = document["heap"]
    assert heap["source"] == "wrapped" and heap["tracked"]
    static_functions, dynamic_functions = by_name(document), by_name(dynamic)
    for name in list(BASICS_EXPECTED) + ["files"]:  # libc's own allocations (strdup, fopen) included
        assert heap_of(static_functions[name]) == heap_of(dynamic_functions[name]), name
    copy, = sites_of(document, ["main", "duplicate"])
    assert copy["module"].endswith("/prog") and "strdup" in copy["function"] and copy["file"] == ""
    # libc.a's start-up allocates before main, outside every recorded call: the only difference in the totals
    outside = sites_of(document, [])
    for name in ("alloc_count", "alloc_bytes", "live_count", "live_bytes"):
        assert heap[name] == dynamic["heap"][name] + sum(s[name] for s in outside), name
    assert heap["free_count"] == dynamic["heap"]["free_count"]


def test_no_heap_switches_tracking_off_and_leaves_the_program_alone(project):
    ran = build_and_run(project, BASICS, "--no-heap")
    assert ran.stdout == BASICS_OUTPUT
    plain = os.path.join(project.root, "plain")
    compiled = subprocess.run(["cc", "-O2", "-o", plain, os.path.join(project.root, "prog.c")], capture_output=True,
                              text=True)
    assert compiled.returncode == 0, compiled.stderr
    assert project.run(plain).stdout == BASICS_OUTPUT
    for run_args, env in ((("--no-heap",), None), ((), {"CPROF_HEAP": "0"})):
        if env:
            assert project.cprof("run", *run_args, env=env).stdout == BASICS_OUTPUT
        document = report(project)
        heap = document["heap"]
        assert heap["source"] == "off" and not heap["tracked"]
        assert all(heap[name] == 0 for name in FIELDS)
        assert "allocations" not in document["run"]["features"]
        functions = by_name(document)
        assert all(heap_of(f) == figures() for f in functions.values())
        assert functions["churn"]["calls"] == 1 and functions["make"]["calls"] == 3  # still profiled
        assert project.cprof("report", "--mem").stdout.startswith("heap: heap tracking was switched off")



# Whether the block malloc handed out carries the runtime's header: the word in front of it starts with its magic
# number (csrc/heap.c), where glibc's own chunk header keeps the top bits zero.
HEADER_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void make(void) { sink = malloc(40); }
int main(void)
{
    make();
    printf("header %d\n", (int)(((unsigned long long *)sink)[-1] >> 52 == 0xC9F));
    free(sink);
    return 0;
}
"""


def test_profiling_switched_off_leaves_the_heap_to_libc(project):
    # switched off, nothing is recorded: a tracked block would still cost its header and atomic adds to the shared
    # outside site on every call (GNU bc: 3% of its time)
    ran = build_and_run(project, HEADER_PROBE)
    assert ran.stdout == "header 1\n"  # the probe sees the header when the heap is tracked
    assert by_name(report(project))["make"]["alloc_count"] == 1
    switched_off = subprocess.run([os.path.join(project.root, ".cprof", "build", "direct", "prog")], capture_output=True, text=True,
                                  env=dict(os.environ, CPROF_DISABLE="1"))
    assert switched_off.returncode == 0 and switched_off.stdout == "header 0\n"

# The program's own allocator, in a file of its own left uninstrumented: an instrumented malloc or free would be
# entered by the runtime's own start-up (its qsort calls free), before the runtime can record calls.
OWN_ALLOCATOR = r"""
#include <stddef.h>
#include <string.h>
static char pool[1 << 20];
static size_t used;
int mallocs, frees;
void *malloc(size_t n) { void *p = pool + used; used += (n + 15) & ~(size_t)15; mallocs++; return p; }
void free(void *p) { if (p) frees++; }
void *calloc(size_t n, size_t size) { void *p = malloc(n * size); memset(p, 0, n * size); return p; }
void *realloc(void *old, size_t n) { void *p = malloc(n); if (old) memcpy(p, old, n); return p; }
"""
OWN_ALLOCATOR_USER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern int mallocs, frees;
void *volatile sink;
__attribute__((noinline)) void work(void) { for (int i = 0; i < 10; i++) { sink = malloc(32); free(sink); } }
int main(void)
{
    int before = mallocs;
    work();
    char *s = strdup("abc");
    printf("%d %d %s\n", mallocs - before, frees, s);
    return 0;
}
"""


def test_a_program_with_its_own_malloc_is_left_to_it(project):
    project.write("alloc.c", OWN_ALLOCATOR)
    project.write("prog.c", OWN_ALLOCATOR_USER)
    built = project.cprof("build", "prog.c", "alloc.c", "--exclude-file", "alloc.c", *CFLAGS)
    assert built.returncode == 0, built.stderr
    ran = project.cprof("run")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "11 10 abc\n"  # its malloc served work's ten blocks and strdup's, its free the ten frees
    document = report(project)
    heap = document["heap"]
    assert heap["source"] == "foreign" and not heap["tracked"]
    assert all(heap[name] == 0 for name in FIELDS) and heap["foreign_frees"] == 0
    assert "allocations" not in document["run"]["features"]
    functions = by_name(document)
    assert functions["work"]["calls"] == 1 and heap_of(functions["work"]) == figures()
    assert "the program brings its own malloc" in project.cprof("report", "--mem").stdout


def test_a_program_whose_own_malloc_is_instrumented_still_runs(project):
    project.write("alloc.c", OWN_ALLOCATOR)
    project.write("prog.c", OWN_ALLOCATOR_USER)
    # the runtime's start-up calls libc (qsort frees), which reaches the program's instrumented free before the
    # runtime can record calls: such calls go unrecorded instead of waiting for the start-up they are part of
    # (--duration ends a program that deadlocks; a working one ends in milliseconds)
    result = project.cprof("profile", "prog.c", "alloc.c", "--duration", "5", "--kill-timeout", "1", *CFLAGS)
    assert result.stdout.startswith("11 10 abc\n"), result.stdout
    document = report(project)
    assert document["heap"]["source"] == "foreign" and not document["run"]["stopped"]
    assert by_name(document)["malloc"]["calls"] >= 11  # the program's own allocator, measured like its code


# A producer thread allocates every block; half of them it frees itself (in `discard`), the other half go through a
# ring to a consumer thread that frees them (in `consume`) at the same time: a free from another thread must not
# be lost against the owner's own frees of the same site.
THREADS = r"""
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#define BLOCKS 200000
static void *_Atomic ring[256];
__attribute__((noinline)) void *produce(void) { return malloc(24); }
__attribute__((noinline)) void discard(void *p) { free(p); }
__attribute__((noinline)) void consume(void *p) { free(p); }
static void *consumer(void *arg)
{
    for (long taken = 0, at = 0; taken < BLOCKS / 2; at = (at + 1) % 256) {
        void *p;
        while (!(p = atomic_exchange(&ring[at], NULL)))
            sched_yield();
        consume(p);
        taken++;
    }
    return arg;
}
static void *producer(void *arg)
{
    for (long i = 0, at = 0; i < BLOCKS; i++) {
        void *p = produce();
        if (i % 2) {
            discard(p);
            continue;
        }
        void *empty = NULL;
        while (!atomic_compare_exchange_weak(&ring[at], &empty, p)) {
            empty = NULL;
            sched_yield();
        }
        at = (at + 1) % 256;
    }
    return arg;
}
int main(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, producer, NULL);
    pthread_create(&b, NULL, consumer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
"""


def test_a_block_freed_by_another_thread_is_freed_where_it_was_freed(project):
    build_and_run(project, THREADS, build_args=CFLAGS + ("-pthread",))
    document = report(project, "--mem")
    functions = by_name(document)
    blocks = 200_000
    assert heap_of(functions["produce"]) == figures(allocs=(blocks, 24 * blocks))
    assert heap_of(functions["discard"]) == figures(frees=(blocks // 2, 12 * blocks))
    assert heap_of(functions["consume"]) == figures(frees=(blocks // 2, 12 * blocks))
    site, = sites_of(document, ["producer", "produce"])
    assert (site["alloc_count"], site["live_count"], site["live_bytes"]) == (blocks, 0, 0)
    # (main's own figures are glibc's: pthread_create allocates the threads' TLS vectors inside it)


FORK = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
void *volatile sink;
static void *inherited;
__attribute__((noinline)) void before_fork(void)
{
    for (int i = 0; i < 5; i++) {
        char *p = malloc(10);
        sink = p;
        free(p);
    }
    inherited = malloc(300);
}
__attribute__((noinline)) void in_child(void)
{
    for (int i = 0; i < 3; i++) {
        char *p = malloc(50);
        sink = p;
        free(p);
    }
    sink = malloc(70);
    free(inherited);
}
__attribute__((noinline)) void after_fork(void)
{
    char *p = malloc(20);
    sink = p;
    free(p);
}
int main(void)
{
    before_fork();
    pid_t child = fork();
    if (child == 0) {
        in_child();
        return 0;
    }
    int status;
    waitpid(child, &status, 0);
    after_fork();
    return WEXITSTATUS(status);
}
"""


def test_a_fork_child_counts_from_the_fork_in_its_own_process(project):
    build_and_run(project, FORK)
    document = report(project, "--mem")
    parent, child = document["run"]["processes"]
    assert child["fork_child"] and child["parent_pid"] == parent["pid"] and parent["complete"] and child["complete"]
    functions = by_name(document)
    assert heap_of(functions["before_fork"]) == figures(allocs=(6, 350), frees=(5, 50), live=(1, 300), temporary=5)
    assert heap_of(functions["after_fork"]) == figures(allocs=(1, 20), frees=(1, 20), temporary=1)
    # the child frees the parent's block: a free of 300 bytes there, but no allocation of this process's
    assert heap_of(functions["in_child"]) == figures(allocs=(4, 220), frees=(4, 450), live=(1, 70), temporary=3)
    assert document["heap"]["foreign_frees"] == 1
    assert heap_of(functions["main"]) == figures()
    # the child's sites are its own allocations only, not the parent's copied at the fork
    sites = {(s["pid"], tuple(s["path"]), s["alloc_count"], s["live_count"]) for s in document["heap"]["sites"]}
    assert sites == {(parent["pid"], ("main", "before_fork"), 5, 0), (parent["pid"], ("main", "before_fork"), 1, 1),
                     (parent["pid"], ("main", "after_fork"), 1, 0),
                     (child["pid"], ("main", "in_child"), 3, 0), (child["pid"], ("main", "in_child"), 1, 1)}
    heap = document["heap"]
    assert (heap["alloc_count"], heap["alloc_bytes"], heap["live_count"], heap["live_bytes"]) == (11, 590, 2, 370)


KILLED = r"""
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void *held[5];
__attribute__((noinline)) void hold(void) { for (int i = 0; i < 5; i++) held[i] = malloc(1000); }
__attribute__((noinline)) void drop_two(void) { free(held[0]); free(held[1]); }
__attribute__((noinline)) void churn(void) { for (int i = 0; i < 10; i++) { void *volatile p = malloc(8); free(p); } }
int main(void)
{
    hold();
    drop_two();
    churn();
    kill(getpid(), SIGKILL);
    return 0;
}
"""


def test_a_killed_run_keeps_the_blocks_live_when_it_died(project):
    build_and_run(project, KILLED, status=128 + 9)
    document = report(project)
    assert not document["run"]["complete"] and document["run"]["exit_status"] == 128 + 9
    functions = by_name(document)
    assert heap_of(functions["hold"]) == figures(allocs=(5, 5000), live=(3, 3000))
    assert heap_of(functions["drop_two"]) == figures(frees=(2, 2000))
    assert heap_of(functions["churn"]) == figures(allocs=(10, 80), frees=(10, 80), temporary=10)
    heap = document["heap"]
    assert (heap["live_count"], heap["live_bytes"], heap["peak_bytes"]) == (3, 3000, 5000)


LIBRARY = r"""
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) char *lib_make(int n)
{
    char *p = malloc(n);
    memset(p, 'a', n);
    return p;
}
__attribute__((noinline)) char *lib_copy(const char *s) { return strdup(s); }
"""
LIBRARY_USER = r"""
char *lib_make(int n);
char *lib_copy(const char *s);
void free(void *p);
__attribute__((noinline)) void use(void)
{
    for (int i = 1; i <= 4; i++)
        free(lib_make(10 * i));
    free(lib_copy("in a library"));
}
int main(void) { use(); return 0; }
"""
LIBRARY_MAKEFILE = """\
app: app.c libmk.so
\t$(CC) -O2 -g -o $@ app.c -L. -lmk -Wl,-rpath,'$$ORIGIN'
libmk.so: lib.c
\t$(CC) -O2 -g -fPIC -shared -o $@ lib.c
"""


def test_an_instrumented_shared_library_allocates_in_its_own_functions(project):
    project.write("lib.c", LIBRARY)
    project.write("app.c", LIBRARY_USER)
    project.write("Makefile", LIBRARY_MAKEFILE)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    ran = project.cprof("run", "--bin", "app")
    assert ran.returncode == 0, ran.stderr
    document = report(project, "--mem")
    functions = by_name(document)
    copied = len("in a library") + 1
    assert heap_of(functions["lib_make"]) == figures(allocs=(4, 100))
    assert heap_of(functions["lib_copy"]) == figures(allocs=(1, copied))
    assert heap_of(functions["use"]) == figures(frees=(5, 100 + copied))
    made, = sites_of(document, ["main", "use", "lib_make"])
    assert (made["function"], os.path.basename(made["module"]), os.path.basename(made["file"]), made["line"]) == (
        "lib_make", "libmk.so", "lib.c", line_of(LIBRARY, "malloc(n)"))
    copy, = sites_of(document, ["main", "use", "lib_copy"])
    assert os.path.basename(copy["module"]).startswith("libc.so") and copy["alloc_bytes"] == copied


PEAK = r"""
#include <stdlib.h>
static void *small[6], *large;
__attribute__((noinline)) void first(void) { for (int i = 0; i < 6; i++) small[i] = malloc(1000); }
__attribute__((noinline)) void second(void) { large = malloc(40000); }
__attribute__((noinline)) void release(void) { for (int i = 0; i < 6; i++) free(small[i]); free(large); }
__attribute__((noinline)) void after(void) { void *volatile p = malloc(500); free(p); }
int main(void) { first(); second(); release(); after(); return 0; }
"""


def test_the_peak_and_the_call_paths_holding_it(project):
    """The heap peaks at 46,000 bytes, when second's block arrives: a jump far past any snapshot threshold, so
    the per-path figures are those of the peak itself."""
    build_and_run(project, PEAK)
    document = report(project)
    heap = document["heap"]
    assert (heap["peak_bytes"], heap["snapshot_bytes"], heap["live_bytes"]) == (46000, 46000, 0)
    functions = by_name(document)
    assert {name: functions[name]["peak_bytes"] for name in ("first", "second", "release", "after", "main")} == {
        "first": 6000, "second": 40000, "release": 0, "after": 0, "main": 0}
    text = project.cprof("report", "--mem").stdout
    rows = section(text, "at the peak, 44.9 KiB")
    assert "live at the end, by call path" not in text  # nothing was
    paths = [line for line in rows if "→" in line]
    assert len(paths) == 2 and "39.1 KiB" in paths[0] and "main → second" in paths[0], rows
    assert "5.9 KiB" in paths[1] and "main → first" in paths[1], rows


# `fill` allocates and frees 64 bytes per argument unit; the others leak different amounts.
LEAKS = r"""
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void fill(int n) { for (int i = 0; i < n; i++) { sink = malloc(64); free(sink); } }
__attribute__((noinline)) void big(void) { sink = malloc(5000); }
__attribute__((noinline)) void mid(void) { sink = malloc(300); sink = malloc(300); }
__attribute__((noinline)) void small(void) { sink = malloc(10); }
int main(int argc, char **argv) { fill(atoi(argv[1])); small(); big(); mid(); return 0; }
"""


@pytest.fixture(scope="module")
def leaks(tmp_path_factory) -> Project:
    """LEAKS run twice: fill(10), then fill(25)."""
    project = Project(str(tmp_path_factory.mktemp("leaks")))
    build_and_run(project, LEAKS, "--", "10")
    ran = project.cprof("run", "--", "25")
    assert ran.returncode == 0, ran.stderr
    return project


def test_diff_shows_the_allocation_deltas(leaks):
    text = leaks.cprof("diff").stdout
    header, rows, _ = table(text)
    assert header[-2:] == ["Allocs delta", "Bytes delta"]
    deltas = {row[0]: tuple(row[-2:]) for row in rows}
    assert deltas == {"fill": ("+15", "+960 B"), "big": ("+0", "0 B"), "mid": ("+0", "0 B"), "small": ("+0", "0 B"),
                      "main": ("+0", "0 B")}


def test_sort_live_puts_the_largest_leaks_first(leaks):
    assert names(leaks.cprof("report", "--sort", "live").stdout)[:3] == ["big", "mid", "small"]
    result = leaks.cprof("report", "--json", "--all", "--sort", "live")  # validated below
    assert result.returncode == 0, result.stderr
    document = result.json()
    assert document["sort"] == "live"
    assert [(f["name"], f["live_bytes"]) for f in document["functions"]][:3] == [("big", 5000), ("mid", 600),
                                                                                 ("small", 10)]
    assert by_name(document)["fill"]["alloc_count"] == 25


def test_a_report_sorted_by_live_bytes_follows_the_schema(leaks):
    report(leaks, "--sort", "live")


def test_tree_by_bytes_weighs_call_paths_by_bytes_allocated(leaks):
    text = leaks.cprof("report", "--tree", "--by", "bytes", "--min-percent", "0").stdout
    # main's inclusive bytes: 5000 + 600 + 10 + 25 * 64 = 7210
    assert "7.0 KiB allocated" in text
    expected = {"main": "7.0 KiB", "big": "4.9 KiB", "fill": "1.6 KiB", "mid": "600 B", "small": "10 B"}
    for name, size in expected.items():
        assert re.search(rf"\s{re.escape(size)}  {name}  ×1$", text, re.M), (name, text)
    lines = [line for line in text.splitlines() if "×1" in line]
    assert [line.split()[-2] for line in lines] == ["main", "big", "fill", "mid", "small"]  # heaviest first


CHURN = r"""
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void churn(int n) { for (int i = 0; i < n; i++) { sink = malloc(100); free(sink); } }
int main(void) { churn(20000); return 0; }
"""


def test_heap_tracking_cost_is_given_back_out_of_the_allocating_function(project):
    """Tracking adds a calibrated cost to each allocation and free, inside the allocator's call and so in the
    self time of the function that called it: the correction gives it back, per operation, and states it."""
    build_and_run(project, CHURN)
    corrected, raw = report(project), report(project, "--uncorrected")
    op_ns = corrected["correction"]["heap_op_ns"]
    assert op_ns > 0
    churn, churn_raw = by_name(corrected)["churn"], by_name(raw)["churn"]
    operations = churn["alloc_count"] + churn["free_count"]
    assert operations == 40000
    guard = corrected["correction"]["per_call_ns"]  # churn's one call: its own guard cost, inside its time
    assert churn_raw["self_ns"] - churn["self_ns"] == pytest.approx(operations * op_ns + guard, abs=0.05 * operations)
    assert churn["self_err_ns"] >= operations * 0.18 * op_ns  # the model error widens it, as for the guard
    assert "heap tracking's (" in project.cprof("report").stdout
    # untracked, nothing is given back
    assert project.cprof("run", "--no-heap").returncode == 0
    assert report(project)["correction"]["heap_op_ns"] == 0
