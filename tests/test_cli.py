"""The tour through the real CLI: profile, report in every form, tag, diff, runs, merge, concurrent runs, --duration,
Ctrl-C and exit statuses, each checked against exact call counts and the outputs a user sees."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys

import pytest

from conftest import Project, by_name, validate

# functions of clearly different costs: heavy does 40 times light's work per call; tiny is called most
TOUR = """\
    #include <stdio.h>
    #include <stdlib.h>
    volatile unsigned long sink;
    void light(long n) { for (long i = 0; i < n; i++) sink += i; }
    void heavy(long n) { for (long i = 0; i < 40 * n; i++) sink += i; }
    int tiny(int x) { sink += x; return x + 1; }
    int main(int argc, char **argv) {
        long scale = argc > 1 ? atol(argv[1]) : 1;
        int t = 0;
        for (int r = 0; r < 50; r++) { light(20000 * scale); heavy(20000 * scale); }
        for (int i = 0; i < 1000; i++) t = tiny(t);
        printf("%d\\n", t);
        return 0;
    }
"""
TOUR_CALLS = {"main": 1, "light": 50, "heavy": 50, "tiny": 1000}

THREADS = """\
    #include <pthread.h>
    volatile unsigned long sink;
    void work(long n) { for (long i = 0; i < n; i++) sink += i; }
    static void *worker(void *arg) { for (int i = 0; i < 30; i++) work((long)arg); return NULL; }
    int main(void) {
        pthread_t a, b;
        pthread_create(&a, NULL, worker, (void *)20000L);
        pthread_create(&b, NULL, worker, (void *)40000L);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        work(10);
        return 0;
    }
"""

FOREVER = """\
    volatile unsigned long sink;
    void spin(void) { for (int i = 0; i < 100000; i++) sink += i; }
    int main(void) { for (;;) spin(); }
"""

# counts SIGINTs; after the first it waits a little (a second, duplicated one would be counted) and exits 3
SIGINT_COUNTER = """\
    #include <signal.h>
    #include <stdio.h>
    #include <unistd.h>
    static volatile sig_atomic_t interrupts;
    volatile unsigned long sink;
    static void on_interrupt(int signo) { (void)signo; interrupts++; }
    void spin(void) { for (int i = 0; i < 10000; i++) sink += i; }
    int main(void) {
        signal(SIGINT, on_interrupt);
        printf("ready\\n");
        fflush(stdout);
        while (!interrupts) spin();
        usleep(300000);
        printf("interrupts=%d\\n", (int)interrupts);
        return 3;
    }
"""


def many_functions(count: int) -> str:
    """A program calling `count` functions f0..f(count-1), f<i> i+1 times."""
    functions = "".join(f"int f{i}(int x) {{ return x + {i}; }}\n" for i in range(count))
    calls = "".join(f"    for (int i = 0; i < {i + 1}; i++) t = f{i}(t);\n" for i in range(count))
    return f"{functions}int main(void) {{\n    int t = 0;\n{calls}    return t == 12345;\n}}\n"


def table(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header cells, rows of cells, footer lines) of a report, diff, runs or tags table. Rows are the lines after
    the header with a column gap (two spaces) in them; columns are the runs of 2+ positions blank in every row,
    so that empty cells stay in place."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("Function", "Run ", "Tag ")))
    end = next((i for i in range(start + 1, len(lines)) if "  " not in lines[i].strip()), len(lines))
    block = lines[start:end]
    width = max(len(line) for line in block)
    blank = [all(at >= len(line) or line[at] == " " for line in block) for at in range(width)]
    spans, at = [], 0
    while at < width:
        if blank[at] and at + 1 < width and blank[at + 1]:
            while at < width and blank[at]:
                at += 1
            continue
        begin = at
        while at < width and not (blank[at] and at + 1 < width and blank[at + 1]):
            at += 1
        spans.append((begin, at))
    cells = [[line[begin:stop].strip() for begin, stop in spans] for line in block]
    return cells[0], cells[1:], lines[end:]


def names(text: str) -> list[str]:
    return [row[0] for row in table(text)[1]]


def report_json(project: Project, *args: str) -> dict:
    result = project.cprof("report", "--json", *args)
    assert result.returncode == 0, result.stderr
    document = result.json()
    validate(document, "report-4.json")
    return document


def calls_of(document: dict) -> dict[str, int]:
    return {f["name"]: f["calls"] for f in document["functions"]}


def cprof_env(project: Project, **extra: str) -> dict:
    """The environment Project.cprof gives the CLI, for the tests that start it themselves."""
    env = dict(os.environ, CPROF_HOME=os.path.join(project.root, ".cprof"),
               CPROF_CACHE_DIR=os.path.join(project.root, "cache"))
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def on_terminal(project: Project, *args: str, **env: str) -> str:
    """What `cprof ARGS` writes to standard output when that is a terminal."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cprof", *args], cwd=project.root, stdout=follower,
                               stderr=subprocess.DEVNULL, env=cprof_env(project, **env))
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode()


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> Project:
    """TOUR profiled once; the report tests only read it."""
    project = Project(str(tmp_path_factory.mktemp("tour")))
    project.write("tour.c", TOUR)
    result = project.cprof("profile", "tour.c")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1000\n")  # the program's own output comes first, unchanged
    return project


def test_profile_prints_the_report_with_exact_calls(tour):
    result = tour.cprof("report")
    header, rows, footer = table(result.stdout)
    # the heap was tracked: the one allocation is stdout's buffer, which libc made inside main's printf
    assert header == ["Function", "Self", "Self %", "Total", "Calls", "Self/call", "Allocs", "Alloc Bytes", "Frees",
                      "Free Bytes"]
    assert {row[0]: int(row[4].replace(",", "")) for row in rows} == TOUR_CALLS
    assert {row[0]: row[6] for row in rows} == {name: "1" if name == "main" else "0" for name in TOUR_CALLS}
    assert rows[0][0] == "heavy" and names(result.stdout).index("heavy") < names(result.stdout).index("light")
    assert re.match(r"run \S+: wall [\d.]+ [mµ]?s, 1 thread, complete$", footer[0])
    assert re.match(r"instrumented functions ran [\d.]+% of this run's [\d.]+ [mµ]?s \(main thread", footer[1])
    assert footer[2].startswith("times corrected for the guard's cost")
    document = report_json(tour)
    functions = by_name(document)
    assert calls_of(document) == TOUR_CALLS
    assert functions["heavy"]["self_ns"] > 10 * functions["light"]["self_ns"]
    assert functions["main"]["total_ns"] >= functions["heavy"]["total_ns"] + functions["light"]["total_ns"]
    assert document["run"]["complete"] and document["run"]["exit_status"] == 0 and not document["run"]["stopped"]


def test_sorting_and_selecting(tour):
    assert names(tour.cprof("report", "--sort", "calls").stdout) == ["tiny", "heavy", "light", "main"]
    assert names(tour.cprof("report", "--sort", "total").stdout)[0] == "main"
    assert names(tour.cprof("report", "--top", "2").stdout) == ["heavy", "light"]
    _, _, footer = table(tour.cprof("report", "--top", "2").stdout)
    assert footer[0].startswith("2 more functions hidden (") and "--all shows them" in footer[0]
    only = tour.cprof("report", "--fn", "ea")
    assert names(only.stdout) == ["heavy"] and "1 function matching 'ea'" in only.stdout
    matching = [f["name"] for f in report_json(tour, "--fn", "i")["functions"]]
    assert matching[0] == "light" and sorted(matching) == ["light", "main", "tiny"]


def test_locations(tour):
    rows = table(tour.cprof("report", "--locations").stdout)[1]
    assert {row[0] for row in rows} == {"heavy  tour.c:5", "light  tour.c:4", "tiny  tour.c:6", "main  tour.c:7"}
    assert {f["name"]: f["line"] for f in report_json(tour)["functions"]} == {"light": 4, "heavy": 5, "tiny": 6,
                                                                             "main": 7}


def test_top_ten_by_default_and_all(project):
    project.write("many.c", many_functions(14))
    assert project.cprof("profile", "many.c").returncode == 0
    default = project.cprof("report", "--sort", "calls")
    assert names(default.stdout) == [f"f{i}" for i in range(13, 3, -1)]
    assert "5 more functions hidden" in default.stdout  # f3..f0 and main
    every = project.cprof("report", "--all", "--sort", "calls")
    assert len(names(every.stdout)) == 15 and "hidden" not in every.stdout
    document = report_json(project, "--all")
    assert calls_of(document) == dict({f"f{i}": i + 1 for i in range(14)}, main=1)
    assert report_json(project)["hidden_functions"] == 5


def test_threads(project):
    project.write("threads.c", THREADS)
    assert project.cprof("profile", "threads.c", "--", "-pthread").returncode == 0
    text = project.cprof("report", "--threads").stdout
    header, rows, _ = table(text)
    work_at = names(text).index("work")
    parts = rows[work_at + 1: work_at + 4]
    assert [row[0].split(" (")[0] for row in parts] == ["thread 0", "thread 1", "thread 2"]
    assert [row[header.index("Calls")] for row in parts] == ["1", "30", "30"]
    assert "3 threads" in text
    functions = by_name(report_json(project, "--threads"))
    assert functions["work"]["calls"] == 61
    assert {(t["index"], t["calls"]) for t in functions["work"]["threads"]} == {(0, 1), (1, 30), (2, 30)}
    assert {(t["index"], t["calls"]) for t in functions["worker"]["threads"]} == {(1, 1), (2, 1)}


def test_tree(tour):
    text = tour.cprof("report", "--tree", "--min-percent", "0").stdout
    lines = text.splitlines()
    assert re.match(r"thread 0 \(tour, tid \d+\): ", lines[0])
    assert re.match(r"└─ 100\.0% +\S+ \S+  main  ×1$", lines[1])
    children = [re.sub(r"^[│ ]+", "", line) for line in lines[2:5]]
    assert [line.split()[-2:] for line in children] == [["heavy", "×50"], ["light", "×50"], ["tiny", "×1,000"]]
    assert lines[2].startswith("   ├─ ") and lines[4].startswith("   └─ ")
    pruned = tour.cprof("report", "--tree", "--min-percent", "50").stdout
    assert "light" not in pruned and "call paths under 50% not shown" in pruned


def test_corrected_and_uncorrected(tour):
    corrected = report_json(tour)
    uncorrected = report_json(tour, "--uncorrected")
    assert corrected["corrected"] is True and uncorrected["corrected"] is False
    assert corrected["correction"]["applied"] and corrected["correction"]["per_call_ns"] > 0
    assert uncorrected["correction"] == {"applied": False, "reason": "raw times were asked for", "per_call_ns": None,
                                         "heap_op_ns": None}
    for item in uncorrected["functions"]:
        assert item["self_ns"] == item["raw_self_ns"] and item["self_err_ns"] is None  # nothing measured: no zero
    raw = by_name(corrected)
    assert all(f["self_ns"] <= f["raw_self_ns"] for f in corrected["functions"])
    # a thousand calls of a function doing almost nothing: most of its measured time is the guard's
    assert raw["tiny"]["self_ns"] < raw["tiny"]["raw_self_ns"]
    assert "raw times: the guard's own cost is included" in tour.cprof("report", "--uncorrected").stdout


@pytest.mark.parametrize("how", [("--cpu-time",), ("CPROF_TIMER=clock",)], ids=["cpu-time", "clock-timer"])
def test_a_mode_without_calibration_says_its_times_are_raw_everywhere(project, how):
    """--cpu-time and the clock timer send every call through the uncalibrated slow path: no report may claim a
    correction (or a zero uncertainty) it did not make."""
    tour = project
    tour.write("tour.c", TOUR)
    assert tour.cprof("profile", "tour.c").returncode == 0
    option = [a for a in how if a.startswith("--")]
    env = dict(a.split("=", 1) for a in how if "=" in a)
    assert tour.cprof("run", *option, "--", env=env).returncode == 0
    table = tour.cprof("report").stdout
    assert "times are raw: with" in table and "times corrected" not in table and "~" not in table
    assert "times are raw: with" in tour.cprof("report", "--tree").stdout
    document = report_json(tour)
    validate(document, "report-4.json")
    assert document["corrected"] is False and not document["correction"]["applied"]
    assert document["correction"]["reason"].startswith("times are raw: with")
    assert all(f["self_ns"] == f["raw_self_ns"] and f["self_err_ns"] is None and f["total_err_ns"] is None
               for f in document["functions"])
    # a diff of a calibrated run against this one compares raw with raw, and says so
    diff = tour.cprof("diff", "latest~1", "latest", "--json").json()
    validate(diff, "diff-2.json")
    assert diff["corrected"] is False and diff["raw_reason"].startswith("times are raw")
    assert all(f["a"] is None or f["a"]["err_ns"] is None for f in diff["functions"])
    assert "times are raw: with" in tour.cprof("diff", "latest~1", "latest").stdout


def test_columns_are_stable_and_plain_unless_on_a_terminal(tour):
    piped = tour.cprof("report").stdout
    assert "\x1b" not in piped
    header, *rows = piped.splitlines()[:5]
    assert {len(line) for line in rows} == {len(header)}  # right-aligned numbers: every row ends at one column
    coloured = on_terminal(tour, "report")
    assert "\x1b[1m" in coloured  # the header is bold on a terminal
    plain = on_terminal(tour, "report", NO_COLOR="1")
    assert "\x1b" not in plain and plain.replace("\r\n", "\n") == piped


def test_output_file_format_from_extension(tour):
    assert tour.cprof("report", "--output", "report.txt").stdout == ""
    with open(os.path.join(tour.root, "report.txt")) as handle:
        assert handle.read() == tour.cprof("report").stdout
    assert tour.cprof("report", "--output", "report.json").returncode == 0
    with open(os.path.join(tour.root, "report.json")) as handle:
        assert handle.read() == tour.cprof("report", "--json").stdout


def test_tag_rerun_and_diff(project):
    project.write("tour.c", TOUR)
    assert project.cprof("profile", "tour.c", "--args", "1").returncode == 0
    tagged = project.cprof("tag", "a")
    assert tagged.returncode == 0 and "as 'a'" in tagged.stderr
    listing = project.cprof("tag")
    assert table(listing.stdout)[1][0][:3] == ["a", report_json(project)["run"]["id"], "run"]
    # fifty times the work in light and heavy: a change no timer noise can hide or turn around
    assert project.cprof("run", "--", "50").returncode == 0
    text = project.cprof("diff", "a").stdout
    assert text.startswith("A: a (one run)\nB: ")
    header, rows, footer = table(text)
    assert header == ["Function", "A self", "B self", "Delta", "Delta %", "Noise", "Calls A", "Calls B"]
    by_function = {row[0]: row for row in rows}
    assert names(text)[0] == "heavy"  # the largest change first
    for name in ("heavy", "light"):
        assert by_function[name][3].startswith("+") and by_function[name][4].startswith("+")
        assert by_function[name][6:8] == ["50", "50"]
    assert by_function["tiny"][6:8] == ["1,000", "1,000"]
    assert any(line.startswith("total self time: ") for line in footer)
    document = project.cprof("diff", "a", "--json").json()
    validate(document, "diff-2.json")
    changes = {f["name"]: f for f in document["functions"]}
    assert changes["heavy"]["delta_ns"] > 0 and changes["heavy"]["delta_percent"] > 100
    assert changes["heavy"]["a"]["calls"] == changes["heavy"]["b"]["calls"] == 50
    assert document["a"]["label"] == "a" and document["a"]["runs"] == 1 and document["total_delta_percent"] > 0
    # the other way round, every sign flips
    reverse = project.cprof("diff", "latest", "a", "--json").json()
    assert {f["name"]: f["delta_ns"] < 0 for f in reverse["functions"]}["heavy"]
    assert reverse["total_delta_percent"] < 0


def test_runs_listing_removal_and_pruning(project):
    project.write("tour.c", TOUR)
    assert project.cprof("build", "tour.c").returncode == 0
    for argument in ("1", "2", "3", "4"):
        assert project.cprof("run", "--", argument).returncode == 0
        if argument == "1":
            assert project.cprof("tag", "first").returncode == 0
    header, rows, _ = table(project.cprof("runs").stdout)
    assert header == ["Run", "Started", "Tags", "Group", "Status", "Wall", "Command"]
    ids = [row[0] for row in rows]
    assert ids == sorted(ids) and len(set(ids)) == 4  # run ids sort by time
    assert [row[-1] for row in rows] == ["tour 1", "tour 2", "tour 3", "tour 4"]
    assert [row[2] for row in rows] == ["first", "", "", ""] and {row[4] for row in rows} == {"ok"}
    removed = project.cprof("runs", "rm", ids[1])
    assert removed.returncode == 0 and "removed 1 run" in removed.stderr
    assert [row[0] for row in table(project.cprof("runs").stdout)[1]] == [ids[0], ids[2], ids[3]]
    pruned = project.cprof("runs", "prune", "--keep", "1")
    assert pruned.returncode == 0 and "pruned 1 run" in pruned.stderr
    assert [row[0] for row in table(project.cprof("runs").stdout)[1]] == [ids[0], ids[3]]  # tagged and newest
    assert project.cprof("runs", "prune", "--keep", "0").returncode == 0
    assert [row[0] for row in table(project.cprof("runs").stdout)[1]] == [ids[0]]
    assert report_json(project, "first")["run"]["id"] == ids[0]


def test_merge_sums_calls(project):
    project.write("tour.c", TOUR)
    assert project.cprof("build", "tour.c").returncode == 0
    assert project.cprof("run", "--tag", "one").returncode == 0
    assert project.cprof("run", "--", "2").returncode == 0
    merged = project.cprof("merge", "one", "latest", "--tag", "both")
    assert merged.returncode == 0 and "merged 2 run files from 2 runs" in merged.stderr
    document = report_json(project, "both")
    assert calls_of(document) == {name: 2 * calls for name, calls in TOUR_CALLS.items()}
    assert len(document["run"]["processes"]) == 2
    assert by_name(document)["heavy"]["self_ns"] > by_name(report_json(project, "one"))["heavy"]["self_ns"]
    assert "merged (2)" in project.cprof("runs").stdout


def test_concurrent_runs_never_overwrite_each_other(project):
    project.write("tour.c", TOUR)
    assert project.cprof("build", "tour.c").returncode == 0
    arguments = ["1", "2", "3", "4", "5"]
    processes = [subprocess.Popen([sys.executable, "-m", "cprof", "run", "--", argument], cwd=project.root,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cprof_env(project))
                 for argument in arguments]
    for process in processes:
        assert process.wait(timeout=120) == 0
    rows = table(project.cprof("runs").stdout)[1]
    ids = [row[0] for row in rows]
    assert len(set(ids)) == 5
    seen = []
    for run_id in ids:
        document = report_json(project, run_id)
        assert document["run"]["complete"] and len(document["run"]["processes"]) == 1
        assert calls_of(document) == TOUR_CALLS
        seen.append(document["run"]["command"][-1])
    assert sorted(seen) == arguments


def test_duration_stops_a_program_and_keeps_its_data(project):
    project.write("forever.c", FOREVER)
    assert project.cprof("build", "forever.c").returncode == 0
    result = project.cprof("run", "--duration", "1", timeout=60)
    assert result.returncode == 0, result.stderr  # stopped as asked: not a failure
    assert "stopped after --duration" in result.stderr
    document = report_json(project)
    assert calls_of(document)["spin"] > 0 and calls_of(document)["main"] == 1
    assert document["run"]["stopped"] is True and document["run"]["complete"] is False
    assert "stopped after --duration (SIGTERM)" in project.cprof("report").stdout
    assert table(project.cprof("runs").stdout)[1][0][4] == "stopped"


def test_ctrl_c_reaches_the_program_once(project):
    project.write("count.c", SIGINT_COUNTER)
    assert project.cprof("build", "count.c").returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "cprof", "run"], cwd=project.root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=cprof_env(project))
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)  # to cprof, not to the program
    out, err = process.communicate(timeout=60)
    assert out == "interrupts=1\n"
    assert process.returncode == 3, err  # the program's exit status is cprof's
    document = report_json(project)
    assert document["run"]["exit_status"] == 3 and document["run"]["complete"]
    # the handler's one call is recorded, or counted as lost when the signal came while the runtime's own slow path
    # was running (the spin loop's first call)
    assert calls_of(document).get("on_interrupt", 0) + document["run"]["lost_calls"] == 1


def test_exit_status_passes_through(project):
    project.write("status.c", """\
        #include <stdlib.h>
        int pick(int code) { return code; }
        int main(int argc, char **argv) {
            if (argc > 1 && argv[1][0] == 'a') abort();
            return pick(argc > 1 ? atoi(argv[1]) : 0);
        }
    """)
    assert project.cprof("build", "status.c").returncode == 0
    assert project.cprof("run", "--", "42").returncode == 42
    assert project.cprof("run", "--ignore-exit-code", "--", "42").returncode == 0
    assert project.cprof("run", "--", "abort").returncode == 128 + signal.SIGABRT
    assert "killed by SIGABRT" in project.cprof("report").stdout
    statuses = [row[4] for row in table(project.cprof("runs").stdout)[1]]
    assert statuses == ["exit 42", "exit 42", "killed (SIGABRT)"]
    profiled = project.cprof("profile", "status.c", "--args", "7")
    assert profiled.returncode == 7 and "exit status 7" in profiled.stdout


def test_help_texts(project):
    top = project.cprof("--help")
    assert top.returncode == 0
    for command in ("build", "run", "report", "profile", "tag", "diff", "runs", "merge", "exit codes:"):
        assert command in top.stdout
    report = project.cprof("report", "--help").stdout
    for option in ("--top N", "--all", "--sort", "--threads", "--tree", "--fn PATTERN", "--locations",
                   "--uncorrected", "--json", "--output FILE", "median"):
        assert option in report
