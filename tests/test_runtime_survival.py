"""The runtime on real programs that end badly or do unusual things: the run must hold what was measured."""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from conftest import REPO, by_name, validate

COMMON = """\
    #include <signal.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    static volatile int sink;
    __attribute__((noinline)) void work(void) { sink++; }
"""


def profile(project, body: str, *args: str, expect_status: int | None = None):
    project.write("prog.c", COMMON + body)
    result = project.cprof("profile", "prog.c", "--json", *args)
    if expect_status is not None:
        assert result.returncode == expect_status, result.stderr
    report = result.json()
    validate(report, "report-4.json")
    return report, result


@pytest.mark.parametrize(
    "ending, status",
    [
        ("*(volatile int *)0 = 1;", 128 + 11),  # SIGSEGV
        ("abort();", 128 + 6),
        ("_exit(3);", 3),
        ("kill(getpid(), SIGKILL);", 128 + 9),
    ],
)
def test_a_run_that_dies_keeps_what_it_measured(project, ending, status):
    report, _ = profile(project, f"int main(void) {{ for (int i = 0; i < 100; i++) work(); {ending} return 0; }}",
                        expect_status=status)
    assert report["run"]["complete"] is False
    assert report["run"]["exit_status"] == status
    functions = by_name(report)
    assert functions["work"]["calls"] == 100
    assert functions["main"]["calls"] == 1
    # open frames are closed where the process ended (raw: a few empty calls may correct to zero)
    assert functions["main"]["raw_total_ns"] >= functions["work"]["raw_total_ns"] > 0


def test_exec_keeps_the_data_of_the_image_it_replaced(project):
    report, result = profile(project, """\
        int main(void) {
            for (int i = 0; i < 10; i++) work();
            fflush(stdout);
            execl("/bin/echo", "echo", "replaced", (char *)0);
            return 1;
        }
    """, expect_status=0)
    assert "replaced" in result.stderr  # with --json the program's stdout goes to stderr
    assert by_name(report)["work"]["calls"] == 10
    assert report["run"]["complete"] is False


def test_duration_stops_a_program_that_ignores_sigterm(project):
    report, result = profile(project, """\
        int main(void) {
            signal(SIGTERM, SIG_IGN);
            for (;;) work();
        }
    """, "--duration", "0.5", "--kill-timeout", "0.5", expect_status=0)  # stopping it was asked for
    assert report["run"]["exit_status"] == 128 + 9
    assert by_name(report)["work"]["calls"] > 1000
    assert report["run"]["complete"] is False


def test_fork_child_writes_its_own_run_linked_to_the_parent(project):
    report, _ = profile(project, """\
        #include <sys/wait.h>
        __attribute__((noinline)) void in_child(void) { sink++; }
        int main(void) {
            for (int i = 0; i < 7; i++) work();
            pid_t child = fork();
            if (child == 0) { for (int i = 0; i < 5; i++) in_child(); return 0; }
            waitpid(child, 0, 0);
            work();
            return 0;
        }
    """, expect_status=0)
    processes = report["run"]["processes"]
    assert len(processes) == 2
    parent, child = processes
    assert child["fork_child"] and child["parent_pid"] == parent["pid"]
    assert parent["complete"] and child["complete"]
    functions = by_name(report)
    assert functions["work"]["calls"] == 8  # the child counts from zero at the fork
    assert functions["in_child"]["calls"] == 5
    assert functions["main"]["calls"] == 1  # main's frame continues in the child, but it was entered once


def test_threads_count_exactly_and_break_down_per_thread(project):
    project.write("prog.c", COMMON + """\
        #include <pthread.h>
        void *worker(void *arg) { for (long i = 0; i < (long)arg; i++) work(); return 0; }
        int main(void) {
            pthread_t threads[8];
            for (long i = 0; i < 8; i++) pthread_create(&threads[i], 0, worker, (void *)(10000 * (i + 1)));
            for (int i = 0; i < 8; i++) pthread_join(threads[i], 0);
            return 0;
        }
    """)
    report = project.cprof("profile", "prog.c", "--json", "--threads").json()
    validate(report, "report-4.json")
    work = by_name(report)["work"]
    assert work["calls"] == 10000 * 36
    per_thread = sorted(t["calls"] for t in work["threads"])
    assert per_thread == [10000 * i for i in range(1, 9)]
    assert len(report["run"]["threads"]) == 9


def test_code_before_and_after_main_is_measured(project):
    report, _ = profile(project, """\
        __attribute__((noinline)) void in_constructor(void) { sink++; }
        __attribute__((noinline)) void in_atexit(void) { sink++; }
        __attribute__((noinline)) void in_destructor(void) { sink++; }
        __attribute__((constructor)) static void before(void) { in_constructor(); }
        __attribute__((destructor)) static void after(void) { in_destructor(); }
        static void at_exit(void) { in_atexit(); }
        int main(void) { atexit(at_exit); work(); return 0; }
    """, expect_status=0)
    functions = by_name(report)
    for name in ("in_constructor", "in_atexit", "in_destructor", "before", "after", "at_exit", "work"):
        assert functions[name]["calls"] == 1, name


def test_signal_handlers_that_call_instrumented_functions(project):
    report, result = profile(project, """\
        #include <sys/time.h>
        static volatile int handled;
        __attribute__((noinline)) void in_handler(void) { sink++; }
        static void on_alarm(int signo) { (void)signo; in_handler(); handled++; }
        int main(void) {
            struct itimerval every = {{0, 100}, {0, 100}};
            signal(SIGALRM, on_alarm);
            setitimer(ITIMER_REAL, &every, 0);
            while (handled < 500) work();
            sigset_t alarm;  /* an alarm still pending after this must not run a handler the count misses */
            sigemptyset(&alarm);
            sigaddset(&alarm, SIGALRM);
            sigprocmask(SIG_BLOCK, &alarm, 0);
            struct itimerval off = {{0, 0}, {0, 0}};
            setitimer(ITIMER_REAL, &off, 0);
            fprintf(stderr, "handled %d\\n", handled);
            return 0;
        }
    """, expect_status=0)
    handled = int(result.stderr.split("handled ")[1].split()[0])
    recorded = by_name(report)["in_handler"]["calls"]
    assert recorded + report["run"]["lost_calls"] == handled
    assert recorded >= handled * 0.9


def test_sections_from_cprof_h_appear_like_functions_and_vanish_elsewhere(project):
    source = project.write("prog.c", COMMON + """\
        #include <cprof.h>
        int main(void) {
            for (int i = 0; i < 3; i++) {
                CPROF_SECTION("hot loop");
                work();
            }
            return 0;
        }
    """)
    report = project.cprof("profile", "prog.c", "--json").json()
    section = by_name(report)["hot loop"]
    assert section["section"] is True and section["calls"] == 3
    # outside a cprof build the header compiles to nothing
    plain = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.join(REPO, "csrc"), source, "-o",
                            os.path.join(project.root, "plain")], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr


def test_disabled_profiling_writes_nothing(project):
    project.write("prog.c", COMMON + "int main(void) { work(); puts(\"ran\"); return 0; }")
    assert project.cprof("build", "prog.c").returncode == 0
    binary = os.path.join(project.root, ".cprof", "build", "direct", "prog")
    runs = os.path.join(project.root, "elsewhere")
    env = dict(os.environ, CPROF_DISABLE="1", CPROF_HOME=runs)
    out = subprocess.run([binary], capture_output=True, text=True, env=env, cwd=project.root)
    assert out.stdout == "ran\n"
    assert not os.path.exists(runs) and not glob.glob(os.path.join(project.root, ".cprof", "runs", "*"))


def test_cpu_time_is_self_time_of_running_code(project):
    report, _ = profile(project, """\
        #include <time.h>
        __attribute__((noinline)) void spin(void) { for (volatile long i = 0; i < 20000000; i++); }
        __attribute__((noinline)) void nap(void) { struct timespec t = {0, 200000000}; nanosleep(&t, 0); }
        int main(void) { spin(); nap(); return 0; }
    """, "--cpu-time", expect_status=0)
    assert "cpu_time" in report["run"]["features"]
    functions = by_name(report)
    # machine load may stretch wall time, but it cannot give a sleeping function CPU time
    assert functions["nap"]["total_ns"] > 150_000_000
    assert functions["nap"]["cpu_ns"] < 0.2 * functions["nap"]["total_ns"]
    assert functions["spin"]["cpu_ns"] > 10 * functions["nap"]["cpu_ns"]
    assert functions["main"]["cpu_ns"] < functions["spin"]["cpu_ns"]  # CPU time is self time: callees excluded


def test_thousands_of_functions_grow_the_arena_while_registering(project):
    count = 6000  # their records and nodes outgrow the first arena mapping in the middle of a registration
    lines = [f"__attribute__((noinline)) int f{i}(int x) {{ return x + {i}; }}" for i in range(count)]
    table = "static int (*table[])(int) = {" + ", ".join(f"f{i}" for i in range(count)) + "};"
    report, _ = profile(project, "\n".join(lines) + "\n" + table + """
        int main(void) {
            int total = 0;
            for (unsigned i = 0; i < sizeof table / sizeof *table; i++) total += table[i](total & 7);
            return total == 42;
        }
    """, "--all", expect_status=0)
    functions = by_name(report)
    assert len([f for f in functions.values() if f["name"].startswith("f")]) == count
    assert all(functions[f"f{i}"]["calls"] == 1 for i in range(count))


@pytest.mark.parametrize("timer, kind", [("clock", "clock_gettime"), ("fast", "tsc"), ("ordered", "tsc")])
def test_every_timer_counts_exactly_and_nests_times(project, timer, kind):
    """CPROF_TIMER=clock is what a machine without an invariant TSC gets: every event through the runtime."""
    project.write("prog.c", COMMON + """\
        __attribute__((noinline)) void outer(void) { for (int i = 0; i < 1000; i++) work(); }
        int main(void) { for (int i = 0; i < 20; i++) outer(); return 0; }
    """)
    assert project.cprof("build", "prog.c").returncode == 0
    result = project.cprof("run", "--", env={"CPROF_TIMER": timer})
    assert result.returncode == 0, result.stderr
    report = project.cprof("report", "--json", "--uncorrected").json()
    assert report["run"]["timer"]["kind"] == kind
    functions = by_name(report)
    assert functions["work"]["calls"] == 20000 and functions["outer"]["calls"] == 20
    assert functions["main"]["total_ns"] >= functions["outer"]["total_ns"] >= functions["work"]["total_ns"] > 0


def test_a_recursion_that_calls_two_timed_functions_enters_most_calls_by_the_fast_path(project):
    """The guard's fast path guesses a call's node twice: the node its site entered last, if it hangs under the
    current frame, else the child the current frame last entered through the runtime. A recursion calling itself
    and another timed function (GNU bc's _bc_rec_mul) missed both guesses at a quarter of its calls when the
    second guess was the newest child; the slow path's cost is not all measured. Counts and paths stay exact."""
    import cprof

    project.write("prog.c", COMMON + """\
        __attribute__((noinline)) void leaf(int n) { sink += n; }
        __attribute__((noinline)) void split(int depth) {
            if (depth == 0) { leaf(depth); return; }
            split(depth - 1);
            leaf(depth);
            split(depth - 1);
        }
        int main(void) { for (int i = 0; i < 20; i++) split(10); return 0; }
    """)
    assert project.cprof("build", "prog.c").returncode == 0
    assert project.cprof("run").returncode == 0
    [process] = cprof.load(home=os.path.join(project.root, ".cprof")).model.processes
    nodes = [node for node in process.threads[0].root.walk() if node.key is not None]
    calls = {name: sum(n.calls for n in nodes if n.key.name == name) for name in ("split", "leaf")}
    assert calls == {"split": 20 * (2 ** 11 - 1), "leaf": 20 * (2 ** 11 - 1)}
    # every node's first entry is a slow one; after that, a handful at most
    assert sum(node.slow_calls for node in nodes) <= 2 * len(nodes)
