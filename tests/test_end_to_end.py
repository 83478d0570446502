"""End to end through the real CLI: build small programs, run them, and check exact counts and unchanged output."""

from __future__ import annotations

import glob
import os
import re
import subprocess

import pytest

from conftest import by_name, validate
from cprof.runfile import read_header

FIB = """\
    #include <stdio.h>
    #include <stdlib.h>
    static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
    int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 20;
        printf("fib(%d) = %d\\n", n, fib(n));
        return 0;
    }
"""


def test_profile_counts_every_call_exactly(project):
    project.write("fib.c", FIB)
    result = project.cprof("profile", "fib.c", "--args", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    validate(report, "report-4.json")
    functions = by_name(report)
    assert functions["fib"]["calls"] == 21891  # 2 * fib(21) - 1
    assert functions["main"]["calls"] == 1
    # recursion: fib's total counts only the outermost activation, so it cannot exceed main's
    assert functions["fib"]["total_ns"] <= functions["main"]["total_ns"]
    assert report["run"]["complete"] and report["run"]["exit_status"] == 0


def test_program_output_and_exit_status_pass_through(project):
    project.write("prog.c", """\
        #include <stdio.h>
        int helper(int x) { return x * 3; }
        int main(void) {
            char line[64];
            if (!fgets(line, sizeof line, stdin)) return 9;
            printf("got %s", line);
            fprintf(stderr, "to stderr %d\\n", helper(2));
            return 42;
        }
    """)
    assert project.cprof("build", "prog.c").returncode == 0
    result = project.cprof("run", "--", stdin="hello\n")
    assert result.returncode == 42
    assert result.stdout == "got hello\n"
    assert "to stderr 6" in result.stderr
    report = project.cprof("report", "--json").json()
    assert report["run"]["exit_status"] == 42
    assert by_name(report)["helper"]["calls"] == 1


def test_plain_and_instrumented_builds_print_the_same(project):
    project.write("fib.c", FIB)
    plain = os.path.join(project.root, "plain")
    assert project.run("cc", "-O2", "fib.c", "-o", plain).returncode == 0
    assert project.cprof("build", "fib.c", "-o", "fibi").returncode == 0
    assert project.cprof("run", "--", "24").stdout == project.run(plain, "24").stdout == "fib(24) = 46368\n"


def test_inline_guard_counts_exactly_and_behaves_as_plain(project):
    """--inline-guard puts the guard's fast paths into every function instead of calling them."""
    project.write("fib.c", FIB)
    plain = project.run("cc", "-O2", "-g", "fib.c", "-o", "plain")
    assert plain.returncode == 0
    build = project.cprof("build", "--inline-guard", "fib.c")
    assert build.returncode == 0 and "1 units instrumented, 0 fell back" in build.stderr, build.stderr
    run = project.cprof("run", "--", "18")
    assert run.stdout == project.run("./plain", "18").stdout == "fib(18) = 2584\n"
    report = project.cprof("report", "--json").json()
    validate(report, "report-4.json")
    assert by_name(report)["fib"]["calls"] == 8361 and by_name(report)["main"]["calls"] == 1
    # the fast paths really are inline: the program calls no out-of-line __cprof_enter_fast
    symbols = project.run("nm", os.path.join(project.root, ".cprof", "build", "direct", "fib")).stdout
    assert "__cprof_enter_fast" not in symbols


COUNTED = """\
    #include <pthread.h>
    #include <stdio.h>
    #include <stdlib.h>
    volatile unsigned long sink;
    static int tiny(int x) { sink += x; return x + 1; }
    static void *worker(void *arg) { for (int i = 0; i < 5000; i++) tiny(i); return arg; }
    static void driver(long rounds) { for (long i = 0; i < rounds; i++) tiny((int)i); }
    int main(int argc, char **argv) {
        pthread_t thread;
        long rounds = argc > 1 ? atol(argv[1]) : 1000;
        pthread_create(&thread, NULL, worker, NULL);
        driver(rounds);
        pthread_join(thread, NULL);
        if (rounds < 0) for (;;) driver(1000);  /* runs until it is stopped */
        printf("%lu\\n", sink);
        return 0;
    }
"""


def test_count_only_functions_are_counted_exactly_per_thread_and_said_to_be(project):
    """Without sampling (CPROF_SAMPLE_HZ=0) a count-only function has calls and no time at all."""
    project.write("counted.c", COUNTED)
    result = project.cprof("profile", "--count-only", "tiny", "counted.c", "--args", "70000", "--json",
                           "--threads", "--", "-pthread", env={"CPROF_SAMPLE_HZ": "0"})
    assert result.returncode == 0, result.stderr
    report = result.json()
    validate(report, "report-4.json")
    assert report["sampling"] is None
    functions = by_name(report)
    tiny = functions["tiny"]
    assert tiny["calls"] == 75000 and not tiny["timed"] and tiny["time_source"] == "none"
    assert tiny["self_ns"] is None and tiny["total_ns"] is None and tiny["self_err_ns"] is None
    assert {(t["index"], t["calls"]) for t in tiny["threads"]} == {(0, 70000), (1, 5000)}
    assert functions["driver"]["timed"] and functions["driver"]["calls"] == 1
    # tiny's time is in driver's self time: driver has no timed callee left
    assert functions["driver"]["self_ns"] == functions["driver"]["total_ns"]
    table = project.cprof("report").stdout
    assert "tiny [counted]" in table and "1 function only counted, not timed" in table
    assert "only counted, their time in their callers: tiny ×75,000" in project.cprof("report", "--tree").stdout


EVERYWHERE = r"""
    #include <pthread.h>
    #include <stdio.h>
    volatile int sink;
    __attribute__((noinline)) int tiny(int x) { return x * 3 + 1; }
    /* both left uninstrumented: the constructor runs before the runtime starts, and the thread's start routine
       makes no timed call that would start its recording */
    __attribute__((constructor)) static void early(void) { for (int i = 0; i < 300; i++) sink += tiny(i); }
    static void *plain_worker(void *arg) { for (int i = 0; i < 2000; i++) sink += tiny(i); return arg; }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, NULL, plain_worker, NULL);
        pthread_join(thread, NULL);
        for (int i = 0; i < 100; i++) sink += tiny(i);
        printf("%d\n", sink & 1);
        return 0;
    }
"""


@pytest.mark.parametrize("link", ["dynamic", "static"])
def test_count_only_calls_are_exact_before_main_and_in_threads_no_timed_call_started(project, link):
    """Counters are handed out before a thread runs the program's code (the pthread_create wrapper), and what is
    counted before the runtime starts (a constructor) joins the run at its end. A -static link cannot wrap
    pthread_create: its thread's calls are still all counted, in the thread that finishes the run."""
    project.write("everywhere.c", EVERYWHERE)
    flags = ["-pthread"] + (["-static"] if link == "static" else [])
    built = project.cprof("build", "--count-only", "tiny", "--exclude-fn", "early", "--exclude-fn", "plain_worker",
                          "everywhere.c", "--", *flags)
    assert built.returncode == 0, built.stderr
    result = project.cprof("run", env={"CPROF_SAMPLE_HZ": "0"})
    assert result.returncode == 0, result.stderr
    tiny = by_name(project.cprof("report", "--json", "--threads").json())["tiny"]
    assert tiny["calls"] == 300 + 2000 + 100
    if link == "dynamic":
        assert {(t["index"], t["calls"]) for t in tiny["threads"]} == {(0, 400), (1, 2000)}


RECURSIVE = r"""
    #include <pthread.h>
    #include <stdio.h>
    #include <stdlib.h>
    __attribute__((noinline)) int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
    /* frames of 64 bytes and more: a thousand levels go through every stripe, many times */
    __attribute__((noinline)) long deep(long n, const char *above) {
        char here[48];
        here[0] = (char)(n & 1);
        return n ? deep(n - 1, here) + above[0] : 0;
    }
    static void *worker(void *result) { *(int *)result = fib(18); return result; }
    int main(int argc, char **argv) {
        pthread_t thread;
        int other = 0, mine;
        char top[1] = {0};
        pthread_create(&thread, NULL, worker, &other);
        mine = fib(atoi(argv[1]));
        pthread_join(thread, NULL);
        printf("%d %d %ld\n", mine, other, deep(1000, top));
        return 0;
    }
"""


def test_a_count_only_function_that_calls_itself_is_counted_exactly_in_its_stripes(project):
    """A count-only function that calls itself counts into slots picked by recursion depth (__cprof_count_striped,
    so that its increments do not chain through one counter): its instrumented text says so, and the slots add up
    to the exact count, in each thread."""
    project.write("recursive.c", RECURSIVE)
    spliced = project.cprof("instrument", "recursive.c", "--count-only", "fib", "--count-only", "deep")
    assert spliced.returncode == 0, spliced.stderr
    assert spliced.stdout.count("__cprof_count_striped(&__cprof_count_block") == 2
    assert "__cprof_count_sites[26]" in spliced.stdout  # 13 slots each
    built = project.cprof("build", "--count-only", "fib", "--count-only", "deep", "recursive.c", "--", "-O2",
                          "-pthread")
    assert built.returncode == 0, built.stderr
    result = project.cprof("run", "--", "20", env={"CPROF_SAMPLE_HZ": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"6765 2584 {sum((n + 1) & 1 for n in range(1, 1000))}\n"
    functions = by_name(project.cprof("report", "--json", "--threads").json())
    # fib(n) makes 2 fib(n + 1) - 1 calls: fib(21) = 10946, fib(19) = 4181
    assert {(t["index"], t["calls"]) for t in functions["fib"]["threads"]} == {(0, 21891), (1, 8361)}
    assert functions["deep"]["calls"] == 1001 and not functions["deep"]["timed"]
    run_file = max(glob.glob(os.path.join(project.root, ".cprof", "runs", "*", "*.cprof")), key=os.path.getmtime)
    with open(run_file, "rb") as handle:
        header = read_header(handle.read(4096))
    # neither a striped count nor an exposed one is measured at start-up any more (each told the calibration code's
    # layout, not a count's cost): the fields stay, as zeros
    assert header["count_striped_ticks"] == 0 and header["count_exposed_ticks"] == 0


def test_a_program_whose_every_function_is_only_counted_still_makes_its_run(project):
    """No timed call ever starts the runtime: the run is made as the program exits, with every count."""
    project.write("everywhere.c", EVERYWHERE)
    built = project.cprof("build", "--count-only", "tiny", "--count-only", "main", "--exclude-fn", "early",
                          "--exclude-fn", "plain_worker", "everywhere.c", "--", "-pthread")
    assert built.returncode == 0, built.stderr
    assert project.cprof("run", env={"CPROF_SAMPLE_HZ": "0"}).returncode == 0
    functions = by_name(project.cprof("report", "--json").json())
    assert functions["tiny"]["calls"] == 2400 and functions["main"]["calls"] == 1


LATE_LIBRARY = r"""
    __attribute__((noinline)) int leaf(int x) { return x * 2 + 1; }
    int drive(int n) { int s = 0; for (int i = 0; i < n; i++) s += leaf(i); return s; }
"""
LOADS_LATE = r"""
    #include <dlfcn.h>
    #include <pthread.h>
    #include <stdio.h>
    #include <sys/wait.h>
    #include <unistd.h>
    static int (*drive)(int);
    static volatile int loaded;
    static void *worker(void *arg) { while (!loaded) ; drive(3000); return arg; }
    int main(int argc, char **argv) {
        pthread_t thread;
        pthread_create(&thread, NULL, worker, NULL);  /* running before the library is loaded */
        usleep(20000);
        void *library = dlopen(argv[1], RTLD_NOW);
        if (!library) { printf("%s\n", dlerror()); return 1; }
        drive = (int (*)(int))dlsym(library, "drive");
        loaded = 1;
        pthread_join(thread, NULL);
        drive(1000);
        pid_t child = fork();
        if (child == 0) { drive(100); _exit(0); }
        waitpid(child, NULL, 0);
        drive(200);
        return 0;
    }
"""


def test_a_library_loaded_later_counts_in_threads_already_running_and_in_a_fork_child(project):
    """A unit registered after threads started reaches each of them through the same thread-local offset; a forked
    child counts from the fork in a run file of its own."""
    project.write("late.c", LATE_LIBRARY)
    project.write("loads_late.c", LOADS_LATE)
    library = project.cprof("build", "-shared", "--count-only", "leaf", "--exclude-fn", "drive", "late.c")
    assert library.returncode == 0, library.stderr
    program = project.cprof("build", "loads_late.c", "--", "-pthread", "-ldl")
    assert program.returncode == 0, program.stderr
    path = os.path.join(project.root, ".cprof", "build", "direct", "liblate.so")
    assert project.cprof("run", "--", path, env={"CPROF_SAMPLE_HZ": "0"}).returncode == 0
    leaf = by_name(project.cprof("report", "--json", "--threads").json())["leaf"]
    assert leaf["calls"] == 3000 + 1000 + 100 + 200
    assert sorted((t["index"], t["calls"]) for t in leaf["threads"]) == [(0, 100), (0, 1200), (1, 3000)]


def test_a_stopped_run_keeps_its_counts(project):
    """Counts live in the run file like everything else: a run stopped by a signal keeps them."""
    project.write("counted.c", COUNTED)
    assert project.cprof("build", "--count-only", "tiny", "counted.c", "--", "-pthread").returncode == 0
    result = project.cprof("run", "--duration", "0.5", "--", "-1")
    assert result.returncode == 0, result.stderr
    report = project.cprof("report", "--json").json()
    assert not report["run"]["complete"]
    assert by_name(report)["tiny"]["calls"] > 5000  # the worker's 5,000 and the main loop's, up to the stop


def test_threads_started_with_profiling_switched_off_count_where_nobody_reads(project):
    """The count guard never tests its pointer (cprof_guard.h): a thread started while profiling is off counts into a
    scratch block of its own, also after its start routine returned (its thread-specific data's destructor), and a
    thread that reuses an ended one's thread pointer takes its block over."""
    project.write("threads.c", """\
        #include <pthread.h>
        #include <stdio.h>
        static __thread volatile unsigned long sink;
        static pthread_key_t key;
        static int tiny(int x) { sink += x; return x + 1; }
        static void at_exit(void *value) { tiny((int)(long)value); }
        static void *worker(void *arg) {
            pthread_setspecific(key, arg);
            for (int i = 0; i < 1000; i++) tiny(i);
            return (void *)sink;
        }
        int main(void) {
            unsigned long total = 0;
            pthread_key_create(&key, at_exit);
            for (long round = 0; round < 50; round++) {
                pthread_t threads[2];
                void *sums[2];
                for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, worker, (void *)(round + 1));
                for (int i = 0; i < 2; i++) pthread_join(threads[i], &sums[i]);
                total += (unsigned long)sums[0] + (unsigned long)sums[1];
            }
            tiny(0);
            printf("%lu\\n", total);
            return 0;
        }
    """)
    assert project.cprof("build", "--count-only", "tiny", "threads.c", "--", "-O2", "-pthread").returncode == 0
    binary = os.path.join(project.root, ".cprof", "build", "direct", "threads")
    expected = f"{100 * 499500}\n"  # each thread's own sum (its destructor's call comes after it returned)
    off = subprocess.run([binary], capture_output=True, text=True, env=dict(os.environ, CPROF_DISABLE="1"))
    assert off.returncode == 0 and off.stdout == expected, off.stderr
    result = project.cprof("run")  # and recorded, every call counted in its thread
    assert result.returncode == 0 and result.stdout == expected, result.stderr
    assert by_name(project.cprof("report", "--json").json())["tiny"]["calls"] == 100 * 1001 + 1


def test_adaptive_counts_only_what_the_full_run_found_too_cheap_to_time(project):
    """--adaptive: a full run first, then the functions too cheap to time (many calls, little work each) are only
    counted; every count stays identical to the full run's, and the heavy function keeps its time."""
    project.write("mixed.c", """\
        #include <stdio.h>
        volatile unsigned long sink;
        static int tiny(int x) { return x * 3 + 1; }
        static void heavy(void) { for (long i = 0; i < 3000000; i++) sink += i; }
        int main(void) {
            int t = 0;
            for (int i = 0; i < 200000; i++) t = tiny(t) & 1023;
            for (int i = 0; i < 5; i++) heavy();
            printf("%d\\n", t);
            return 0;
        }
    """)
    assert_error = project.cprof("build", "--adaptive", "mixed.c")
    assert assert_error.returncode == 3 and "--adaptive learns from a run of this build" in assert_error.stderr
    result = project.cprof("profile", "--adaptive", "mixed.c", "--json")
    assert result.returncode == 0, result.stderr
    assert "adaptive: 1 functions only counted" in result.stderr
    adaptive = by_name(result.json())
    full = by_name(project.cprof("report", "latest~1", "--json").json())  # the learning run, fully timed
    assert {n: f["calls"] for n, f in adaptive.items()} == {n: f["calls"] for n, f in full.items()}
    assert not adaptive["tiny"]["timed"] and adaptive["tiny"]["calls"] == 200000 and full["tiny"]["timed"]
    assert adaptive["heavy"]["timed"] and adaptive["heavy"]["calls"] == 5 and adaptive["main"]["timed"]
    # `cprof instrument --adaptive` shows the unit as that build compiled it
    spliced = project.cprof("instrument", "--adaptive", "mixed.c").stdout
    tiny, heavy = (next(line for line in spliced.splitlines() if f" {name}(" in line and "{" in line)
                   for name in ("tiny", "heavy"))
    assert "__cprof_count(" in tiny and "__cprof_enter(" in heavy and "__cprof_count(" not in heavy


def test_adaptive_counts_small_leaves_its_learning_run_called_rarely_or_never(project):
    """The learning run (no argument) never calls what the second workload (`b`) runs, and calls `rare_small` three
    times: the small leaves among them (no loop, a few statements, calling only other small leaves) are counted,
    as they would cost a timed guard more than their work; a function with a loop, or one calling it, is timed."""
    project.write("modes.c", """\
        #include <stdio.h>
        #include <string.h>
        volatile unsigned long sink;
        static int tiny(int x) { return x * 3 + 1; }
        static int rare_small(int x) { return x ^ 5; }
        static unsigned short read16(const void *p) { unsigned short v; memcpy(&v, p, sizeof v); return v; }
        static int other_small(const unsigned char *p) { return read16(p) + 1; }
        static void other_loop(int n) { for (int i = 0; i < n; i++) sink += i; }
        static void calls_loop(void) { other_loop(10); }
        int main(int argc, char **argv) {
            unsigned char bytes[2] = {1, 2};
            long t = 0;
            if (argc > 1 && strcmp(argv[1], "b") == 0) {
                for (int i = 0; i < 100000; i++) t += other_small(bytes);
                for (int i = 0; i < 1000; i++) calls_loop();
            } else {
                for (int i = 0; i < 200000; i++) t = tiny((int)t) & 1023;
                for (int i = 0; i < 3; i++) t += rare_small(i);
            }
            printf("%ld\\n", t);
            return 0;
        }
    """)
    result = project.cprof("profile", "--adaptive", "modes.c", "--json")
    assert result.returncode == 0, result.stderr
    # rare_small is counted either way: its three calls measured smaller than a guard, or as a small leaf
    assert re.search(r"adaptive: [12] functions only counted, .* and [23] small ones it called rarely or never",
                     result.stderr), result.stderr
    learned = by_name(result.json())
    assert not learned["tiny"]["timed"] and not learned["rare_small"]["timed"] and learned["rare_small"]["calls"] == 3
    second = project.cprof("run", "--", "b")
    assert second.returncode == 0 and second.stdout == "51400000\n", second.stderr
    functions = by_name(project.cprof("report", "--all", "--json").json())
    assert functions["other_small"]["calls"] == functions["read16"]["calls"] == 100000
    assert not functions["other_small"]["timed"] and not functions["read16"]["timed"]
    assert functions["other_loop"]["timed"] and functions["calls_loop"]["timed"]
    assert functions["other_loop"]["calls"] == functions["calls_loop"]["calls"] == 1000
