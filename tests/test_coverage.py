"""What a report says about how much of the run it saw (cprof/model/coverage.py): a run whose instrumented
functions cover little of its time says so in every output format, the build names every unit it could not
instrument, threads that mostly waited are recognisable, time blocked in waiting calls is shown apart from work,
and the messages a user meets (the compiler's, "recorded nothing") tell the truth. Sleeps, not busy loops, make
the uncovered and waiting time here, so that no outcome depends on the machine's speed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import by_name, validate

# main's unit falls back (a digraph body is beyond the scanner) and spends 150 ms asleep; only helper.c is
# instrumented, and its function runs for a moment.
UNCOVERED_MAIN = """\
    #include <stdio.h>
    #include <unistd.h>
    int helper(int x);
    int main(void) <%
        usleep(150000);
        printf("%d\\n", helper(20));
        return 0;
    %>
"""
HELPER = "int helper(int x) { return x + 1; }\n"

# A worker that waits on a condition variable for 150 ms before it gets its job; main sleeps, then joins.
WAITING = """\
    #include <pthread.h>
    #include <stdio.h>
    #include <unistd.h>
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
    static int job;
    volatile unsigned long sink;
    static void compute(long n) { for (long i = 0; i < n; i++) sink += i; }
    static int take_job(void) {
        pthread_mutex_lock(&lock);
        while (!job) pthread_cond_wait(&ready, &lock);
        pthread_mutex_unlock(&lock);
        return job;
    }
    static void *worker(void *arg) { (void)arg; compute(take_job()); return NULL; }
    static void hand_out(void) {
        usleep(150000);
        pthread_mutex_lock(&lock);
        job = 1000;
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&lock);
    }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, NULL, worker, NULL);
        hand_out();
        pthread_join(thread, NULL);
        printf("%d\\n", sink > 0);
        return 0;
    }
"""


def test_a_run_that_covers_little_says_so_in_every_format(project):
    project.write("main.c", UNCOVERED_MAIN)
    project.write("helper.c", HELPER)
    build = project.cprof("build", "main.c", "helper.c", "-o", "prog")
    assert build.returncode == 0, build.stderr
    # the build ends with the list of what fell back, where and why
    assert "1 units instrumented, 1 fell back" in build.stderr
    assert re.search(r"^  main\.c:\d+: pycparser cannot parse it", build.stderr, re.MULTILINE), build.stderr
    listed = project.cprof("build", "--list-fallbacks")
    assert listed.returncode == 0 and re.match(r"main\.c:\d+: pycparser cannot parse it", listed.stdout), listed
    assert project.cprof("run", "--").stdout == "21\n"

    table = project.cprof("report").stdout
    warning = re.search(r"WARNING: instrumented functions ran only ([\d.]+)% of this run's .*1 of 2 units of its "
                        r"build were not instrumented \(cprof build --list-fallbacks\)", table)
    assert warning and float(warning.group(1)) < 10, table
    assert "WARNING: instrumented functions ran only" in project.cprof("report", "--tree").stdout
    document = project.cprof("report", "--json").json()
    validate(document, "report-4.json")
    coverage = document["coverage"]
    assert coverage["low"] and coverage["share"] < 0.1 and coverage["units"] == 2
    assert coverage["units_fallen_back"] == 1 and coverage["fallbacks"][0]["source"].endswith("main.c")
    # the program's own time: at least its sleep, and cprof's calibration apart
    assert coverage["wall_ns"] - coverage["runtime_ns"] >= 150e6 > coverage["main_thread_ns"]
    diff = project.cprof("diff", "latest", "latest")
    assert "WARNING: instrumented functions ran only" in diff.stdout, diff.stdout
    assert project.cprof("diff", "latest", "latest", "--json").json()["coverage"]["b"]["low"]


def test_a_fully_instrumented_run_covers_nearly_all_of_it(project):
    project.write("main.c", UNCOVERED_MAIN.replace("<%", "{").replace("%>", "}"))
    project.write("helper.c", HELPER)
    assert project.cprof("profile", "main.c", "helper.c").returncode == 0
    document = project.cprof("report", "--json").json()
    coverage = document["coverage"]
    # main is instrumented and covers its sleep: whatever the machine, start-up is a few ms of 150
    assert not coverage["low"] and coverage["share"] > 0.8 and coverage["units_fallen_back"] == 0
    assert coverage["cpu_ns"] is not None and coverage["cpu_ns"] < coverage["wall_ns"]
    assert "WARNING" not in project.cprof("report").stdout


def test_waiting_is_told_apart_from_work(project):
    project.write("pool.c", WAITING)
    assert project.cprof("profile", "pool.c", "--", "-pthread").returncode == 0
    document = project.cprof("report", "--json", "--all").json()
    validate(document, "report-4.json")
    functions = by_name(document)
    # the worker waited in take_job; main waited in hand_out's sleep and in its join
    assert functions["take_job"]["wait_ns"] >= 100e6 and functions["take_job"]["self_ns"] >= 100e6
    assert functions["hand_out"]["wait_ns"] >= 140e6
    assert functions["main"]["wait_ns"] > 0 and functions["compute"]["wait_ns"] == 0
    threads = {t["index"]: t for t in document["run"]["threads"]}
    assert threads[1]["mostly_waiting"] and threads[1]["cpu_ns"] < 0.2 * threads[1]["lifetime_ns"]
    assert all(t["cpu_ns"] and t["cpu_ns"] > 0 for t in threads.values())
    assert document["coverage"]["waits_tracked"] and document["coverage"]["threads_mostly_waiting"] == 2

    table = project.cprof("report").stdout
    header = next(line for line in table.splitlines() if line.startswith("Function"))
    assert header.split()[:5] == ["Function", "Self", "Self", "%", "Waiting"]
    assert "2 of 2 threads mostly waited" in table
    tree = project.cprof("report", "--tree").stdout
    assert re.search(r"take_job  ×1, waiting [\d.]+ ms", tree) and "mostly waiting" in tree


def test_a_static_link_does_not_claim_to_have_timed_waits(project):
    project.write("pool.c", WAITING)
    assert project.cprof("profile", "pool.c", "--", "-pthread", "-static").returncode == 0
    document = project.cprof("report", "--json").json()
    assert not document["coverage"]["waits_tracked"] and "wait_time" not in document["run"]["features"]
    assert all(f["wait_ns"] == 0 for f in document["functions"])
    assert by_name(document)["take_job"]["calls"] == 1  # counted and timed all the same
    # the binary really is static: no libcprofrt.so, no interposed libc
    program = project.cprof("build", "pool.c", "--", "-pthread", "-static")
    assert program.returncode == 0
    dynamic = subprocess.run(["ldd", os.path.join(project.root, ".cprof", "build", "direct", "pool")],
                             capture_output=True, text=True)
    assert "not a dynamic executable" in dynamic.stdout + dynamic.stderr


def test_recorded_nothing_names_the_units_that_fell_back(project):
    project.write("only.c", """\
        #include <stdio.h>
        int main(void) <% puts("plain"); return 0; %>
    """)
    assert project.cprof("build", "only.c").returncode == 0
    run = project.cprof("run", "--")
    assert run.stdout == "plain\n"
    assert ("recorded nothing: none of its build's functions were instrumented: 1 of 1 units fell back to plain "
            "compiles (first: only.c:") in run.stderr and "pycparser cannot parse it" in run.stderr, run.stderr


BAD = """\
#include <stdio.h>
int f(int x) { int unused; return x + 1; }
\tint g(int x) {\tint y = x;\treturn y / 0; }
int main(void) { printf("%d\\n", f(1) + g(2)); return 0; }
"""


def test_compiler_messages_point_where_they_do_without_cprof(project):
    with open(os.path.join(project.root, "bad.c"), "w") as handle:
        handle.write(BAD)
    for colour in ([], ["-fdiagnostics-color=always"]):
        plain = project.run("cc", "-Wall", *colour, "-c", "bad.c", "-o", "/dev/null")
        assert "bad.c:2:20: warning: unused variable" in re.sub(r"\x1b\[[0-9;]*m\x1b\[K", "", plain.stderr)
        build = project.cprof("build", "bad.c", "--", "-Wall", *colour)
        assert build.returncode == 0 and " 0 fell back" in build.stderr
        ours = [line.replace(project.root + "/", "") for line in build.stderr.splitlines()
                if not line.startswith("cprof:")]
        assert ours == plain.stderr.splitlines()


def test_a_failure_of_cprof_falls_back_with_one_warning_and_a_log(project, monkeypatch, capsys):
    """Any exception in the instrumenter, and a unit that takes too long, compile plain: never a traceback in the
    user's build."""
    from cprof.building import unit_compiler, wrapper
    from cprof.building.config import WrapperConfig

    project.write("prog.c", "int main(void) { return 3; }\n")
    log = os.path.join(project.root, "log.jsonl")

    def broken(self, text):
        raise RuntimeError("injected fault")

    def stuck(self, text):
        import time
        time.sleep(5)

    for fault, expected in ((broken, "internal error RuntimeError: injected fault"),
                            (stuck, "instrumenting it took over 0.5 s")):
        monkeypatch.setattr(unit_compiler.UnitCompiler, "instrument", fault)
        monkeypatch.setattr(unit_compiler, "UNIT_TIME_LIMIT", 0.5)
        config = WrapperConfig(real_compiler="cc", log_path=log, cache_dir=None)
        program = os.path.join(project.root, "prog")
        status = wrapper.run_wrapper([os.path.join(project.root, "prog.c"), "-o", program], config=config)
        assert status == 0 and subprocess.run([program]).returncode == 3
        warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cprof: warning")]
        assert len(warnings) == 1 and expected in warnings[0] and "compiled uninstrumented" in warnings[0]
    with open(os.path.join(project.root, "internal-errors.log")) as handle:
        details = handle.read()
    assert "Traceback" in details and "injected fault" in details and "UnitTimeout" in details


def test_a_build_started_in_a_subfolder_shadows_the_whole_project(project):
    project.write("common.mk", "CFLAGS = -O2 -g\n")
    project.write("Makefile", "all:\n\t$(MAKE) -C app\n")
    project.write("lib/add.c", "int add(int a, int b) { return a + b; }\n")
    project.write("app/main.c", """\
        #include <stdio.h>
        int add(int a, int b);
        int main(void) { printf("%d\\n", add(2, 3)); return 0; }
    """)
    project.write("app/Makefile", "include ../common.mk\napp: main.c ../lib/add.c\n\t$(CC) $(CFLAGS) $^ -o $@\n")
    app = os.path.join(project.root, "app")
    env = dict(os.environ, CPROF_CACHE_DIR=os.path.join(project.root, "cache"))
    build = subprocess.run([sys.executable, "-m", "cprof", "build", "--", "make"], cwd=app, capture_output=True,
                           text=True, env=env)
    assert build.returncode == 0, build.stderr
    assert f"building in a shadow copy of {os.path.realpath(project.root)}" in build.stderr
    assert "2 units instrumented, 0 fell back" in build.stderr
    run = subprocess.run([sys.executable, "-m", "cprof", "run", "--"], cwd=app, capture_output=True, text=True,
                         env=env)
    assert run.stdout == "5\n", run.stderr
    assert not os.path.exists(os.path.join(app, "app"))  # the user's tree is untouched
