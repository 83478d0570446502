"""The event trace (`cprof run --trace`): every call in time order per thread, nesting perfectly, its filters and
size limit, a killed run's trace, and what is drawn and exported from it (flamechart, chrome, speedscope)."""

from __future__ import annotations

import collections
import glob
import json
import os
import re

import pytest

from conftest import Project
from test_render import _speedscope_schema

from cprof import _native, runfile
from cprof.model.load import load_view
from cprof.model.trace import run_traces
from cprof.workspace import Store

THREADS = """
    #include <pthread.h>
    #include <stdio.h>
    #include <unistd.h>
    volatile long sink;
    __attribute__((noinline)) void leaf(int x) { for (int i = 0; i < x; i++) sink += i; }
    __attribute__((noinline)) void mid(int n) { for (int i = 0; i < n; i++) leaf(50 + i); }
    __attribute__((noinline)) void nap(void) { usleep(3000); }
    void *worker(void *arg) { for (int i = 0; i < 40; i++) mid(20); nap(); return arg; }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, 0, worker, 0);
        for (int i = 0; i < 100; i++) mid(10);
        nap();
        pthread_join(thread, 0);
        printf("%ld\\n", sink);
        return 0;
    }
"""
# per thread (0: main, 1: worker), the calls of each function the program makes
EXPECTED = {0: {"main": 1, "mid": 100, "leaf": 1000, "nap": 1}, 1: {"worker": 1, "mid": 40, "leaf": 800, "nap": 1}}


def traced_run(project: Project, source: str, *run_args: str):
    project.write("prog.c", source)
    built = project.cprof("build", "prog.c", "--", "-O2", "-pthread")
    assert built.returncode == 0, built.stderr
    ran = project.cprof("run", "--trace", *run_args)
    assert ran.returncode == 0, ran.stderr
    return load_view(Store(os.path.join(project.root, ".cprof")), None)


def assert_nested(events) -> None:
    """Each call lies inside the one open at its start, one level deeper, and that one is its caller (a killed
    run's innermost open call may last nothing, at its caller's very end)."""
    open_calls = []
    for event in events:
        while open_calls and (open_calls[-1].end_ns < event.start_ns or
                              open_calls[-1].end_ns == event.start_ns and event.duration_ns > 0):
            open_calls.pop()
        assert event.depth == len(open_calls), event
        if open_calls:
            assert event.end_ns <= open_calls[-1].end_ns
            assert event.node.parent is open_calls[-1].node
        open_calls.append(event)


def test_a_trace_holds_every_call_of_every_thread_in_order_and_nested(project):
    run = traced_run(project, THREADS)
    traces = {trace.thread.index: trace for _, trace in run_traces(run)}
    assert set(traces) == {0, 1}
    for index, trace in traces.items():
        assert collections.Counter(event.key.name for event in trace.events) == EXPECTED[index]
        assert [event.start_ns for event in trace.events] == sorted(event.start_ns for event in trace.events)
        assert_nested(trace.events)
        assert not any(event.cut or event.open for event in trace.events)
        # each call's duration adds up to what the call tree measured for its node
        durations = collections.defaultdict(float)
        for event in trace.events:
            durations[id(event.node)] += event.duration_ns
        for event in trace.events:
            assert durations[id(event.node)] == pytest.approx(event.node.total_ns, rel=1e-6)
        naps = [event for event in trace.events if event.key.name == "nap"]
        assert naps[0].duration_ns >= 3e6
    assert run.processes[0].header["trace_stop_ticks"] == 0 and run.processes[0].header["trace_dropped"] == 0
    # the two readers return the same trace
    path = glob.glob(os.path.join(run.path, "*.cprof"))[0]
    with open(path, "rb") as handle:
        data = handle.read()
    assert _native.read_run(data)["trace"] == runfile.read_run(data)["trace"]
    assert len(_native.read_run(data)["trace"]) == 2


def test_min_duration_leaves_out_short_calls_only(project):
    run = traced_run(project, THREADS, "--min-duration", "1ms")
    for _, trace in run_traces(run):
        names = collections.Counter(event.key.name for event in trace.events)
        assert names["nap"] == 1 and names["leaf"] == 0
        assert all(event.duration_ns >= 1e6 for event in trace.events)
        assert_nested(trace.events)
    assert run.processes[0].header["trace_min_ns"] == 1_000_000
    # the profile itself is untouched by the filter
    functions = {f.key.name: f.calls for f in run.functions()}
    assert functions["leaf"] == 1800 and functions["mid"] == 140


LONG = """
    volatile long sink;
    __attribute__((noinline)) void leaf(int x) { sink += x; }
    __attribute__((noinline)) void mid(int n) { for (int i = 0; i < n; i++) leaf(i); }
    int main(void) { for (int i = 0; i < 2000; i++) mid(10); return 0; }
"""


def test_the_size_limit_stops_the_trace_cleanly_and_the_chart_says_where(project):
    run = traced_run(project, LONG, "--trace-limit", "64K")
    header = run.processes[0].header
    assert header["trace_stop_ticks"] > 0 and header["trace_dropped"] > 0
    assert header["trace_bytes"] <= 2 * 65536  # one table, and one past the limit for the calls cut at the stop
    (_, trace), = run_traces(run)
    stop = trace.stop_ns
    events = trace.events
    assert_nested(events)
    assert 2000 < len(events) < 22000 and all(event.end_ns <= stop + 1e-6 for event in events)
    cut = [event for event in events if event.cut]
    # what ran at the stop: main and the call of mid it was in (and perhaps one leaf), drawn to the stop
    assert [event.key.name for event in cut][:2] == ["main", "mid"] and all(e.end_ns == stop for e in cut)
    # the profile still counts every call
    assert {f.key.name: f.calls for f in run.functions()} == {"main": 1, "mid": 2000, "leaf": 20000}
    drawn = project.cprof("flame", "--chart", "-o", "chart.svg")
    assert drawn.returncode == 0, drawn.stderr
    with open(os.path.join(project.root, "chart.svg")) as handle:
        svg = handle.read()
    assert 'class="mark"' in svg and "size limit" in svg and 'class="f cut"' in svg


KILLED = """
    #include <signal.h>
    #include <unistd.h>
    volatile long sink;
    __attribute__((noinline)) void leaf(int x) { sink += x; }
    __attribute__((noinline)) void die(void) { kill(getpid(), SIGKILL); }
    int main(void) { for (int i = 0; i < 300; i++) leaf(i); die(); return 0; }
"""


def test_a_killed_run_keeps_its_trace_and_its_open_calls(project):
    project.write("prog.c", KILLED)
    assert project.cprof("build", "prog.c", "--", "-O2").returncode == 0
    assert project.cprof("run", "--trace", "--ignore-exit-code").returncode == 0
    run = load_view(Store(os.path.join(project.root, ".cprof")), None)
    assert not run.complete
    (_, trace), = run_traces(run)
    names = collections.Counter(event.key.name for event in trace.events)
    assert names == {"leaf": 300, "main": 1, "die": 1}
    still_open = [event.key.name for event in trace.events if event.open]
    assert still_open == ["main", "die"]
    assert_nested(trace.events)


def test_the_flamechart_draws_one_lane_per_thread_in_time_order(project):
    run = traced_run(project, THREADS)
    drawn = project.cprof("flame", "--chart", "-o", "chart.svg")
    assert drawn.returncode == 0, drawn.stderr
    with open(os.path.join(project.root, "chart.svg")) as handle:
        svg = handle.read()
    assert 'data-kind="chart"' in svg and '<g id="axis">' in svg
    lanes = re.findall(r'<text class="lane"[^>]*>([^<]*)</text>', svg)
    assert len(lanes) == 2 and lanes[0].endswith(f"{sum(EXPECTED[0].values()):,} calls")
    # every nap is wide enough to be drawn on its own, at its place in time
    naps = re.findall(r'<g class="f" id="c\d+" data-x="([\d.]+)" data-w="([\d.]+)" data-d="(\d)" data-l="(\d)" '
                      r'data-v="(\d+)" data-n="nap">', svg)
    assert sorted(int(lane) for *_, lane, _ in naps) == [0, 1]
    width = float(re.search(r'data-whole="(\d+)"', svg).group(1))
    main_nap = next(e for _, t in run_traces(run) if t.thread.index == 0 for e in t.events if e.key.name == "nap")
    x = next(float(x) for x, _, _, lane, _ in naps if lane == "0")
    origin = float(re.search(r'data-origin="(\d+)"', svg).group(1))
    assert x == pytest.approx((main_nap.start_ns - origin) / width * 1200, abs=0.02)
    # narrow leaves are merged, never dropped: the merged blocks and the drawn calls account for every call
    merged = sum(int(n) for n in re.findall(r'data-n="(\d+) narrow calls"', svg))
    drawn_calls = len(re.findall(r'<g class="f( cut)?" id=', svg))
    assert merged + drawn_calls == sum(sum(calls.values()) for calls in EXPECTED.values())


def test_the_flamechart_of_a_run_without_a_trace_is_one_clear_error(project):
    project.write("prog.c", LONG)
    assert project.cprof("profile", "prog.c").returncode == 0
    drawn = project.cprof("flame", "--chart")
    assert drawn.returncode == 2 and "has no trace" in drawn.stderr and "Traceback" not in drawn.stderr
    assert drawn.stderr.count("\n") == 1


def chrome_document(path: str) -> dict:
    """The export, checked against the trace-event format's schema (tests/schemas/chrome-trace.json)."""
    import jsonschema

    with open(path) as handle:
        document = json.load(handle)
    with open(os.path.join(os.path.dirname(__file__), "schemas", "chrome-trace.json")) as handle:
        jsonschema.validate(document, json.load(handle))
    return document


def test_chrome_export_of_a_trace_nests_perfectly_and_holds_every_call(project):
    traced_run(project, THREADS)
    written = project.cprof("export", "--format", "chrome", "-o", "run.trace.json")
    assert written.returncode == 0, written.stderr
    document = chrome_document(os.path.join(project.root, "run.trace.json"))
    calls = [event for event in document["traceEvents"] if event["ph"] == "X"]
    by_thread = collections.defaultdict(list)
    for event in calls:
        by_thread[event["tid"]].append(event)
    assert sorted(collections.Counter(e["name"] for e in events) for events in by_thread.values()) == \
        sorted(collections.Counter(expected) for expected in EXPECTED.values())
    for events in by_thread.values():
        assert_chrome_nesting(events)
    names = {e["args"]["name"] for e in document["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(names) == 2


def assert_chrome_nesting(events: list[dict]) -> None:
    """Complete events of one thread nest perfectly: each lies wholly inside any event it starts in."""
    open_events = []
    for event in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        while open_events and open_events[-1]["ts"] + open_events[-1]["dur"] <= event["ts"] + 1e-9:
            open_events.pop()
        if open_events:
            assert event["ts"] + event["dur"] <= open_events[-1]["ts"] + open_events[-1]["dur"] + 1e-6, event
        open_events.append(event)


def test_chrome_export_without_a_trace_lays_the_call_tree_out_nested(project):
    project.write("prog.c", LONG)
    assert project.cprof("profile", "prog.c").returncode == 0
    written = project.cprof("export", "--format", "chrome", "-o", "tree.trace.json")
    assert written.returncode == 0, written.stderr
    document = chrome_document(os.path.join(project.root, "tree.trace.json"))
    calls = [event for event in document["traceEvents"] if event["ph"] == "X"]
    assert {e["name"]: e["args"]["calls"] for e in calls} == {"main": 1, "mid": 2000, "leaf": 20000}
    assert_chrome_nesting(calls)
    assert "laid out" in document["otherData"]["layout"]


def test_speedscope_export_of_a_trace_is_evented_and_balanced(project):
    import jsonschema

    traced_run(project, THREADS)
    written = project.cprof("export", "-o", "run.speedscope.json")
    assert written.returncode == 0, written.stderr
    with open(os.path.join(project.root, "run.speedscope.json")) as handle:
        document = json.load(handle)
    jsonschema.validate(document, _speedscope_schema())
    frames = [frame["name"] for frame in document["shared"]["frames"]]
    counted = []
    for profile in document["profiles"]:
        assert profile["type"] == "evented"
        stack, opened = [], collections.Counter()
        times = [event["at"] for event in profile["events"]]
        assert times == sorted(times)
        for event in profile["events"]:
            if event["type"] == "O":
                stack.append(event["frame"])
                opened[frames[event["frame"]]] += 1
            else:
                assert stack.pop() == event["frame"]
        assert not stack
        counted.append(dict(opened))
    assert sorted(map(str, counted)) == sorted(map(str, EXPECTED.values()))


FORKS = """
    #include <sys/wait.h>
    #include <unistd.h>
    volatile long sink;
    __attribute__((noinline)) void leaf(int x) { sink += x; }
    __attribute__((noinline)) void child_work(void) { for (int i = 0; i < 7; i++) leaf(i); }
    int main(void) {
        for (int i = 0; i < 5; i++) leaf(i);
        pid_t pid = fork();
        if (pid == 0) { child_work(); _exit(0); }
        waitpid(pid, 0, 0);
        return 0;
    }
"""


def test_a_fork_child_traces_only_its_own_calls(project):
    run = traced_run(project, FORKS)
    counts = {process.pid: collections.Counter(event.key.name for event in trace.events)
              for process, trace in run_traces(run)}
    assert len(counts) == 2
    parent, child = (counts[run.processes[0].pid],
                     next(c for pid, c in counts.items() if pid != run.processes[0].pid))
    assert parent == {"leaf": 5, "main": 1}
    # the child's main is still open when it calls _exit: drawn to its end
    assert child == {"leaf": 7, "child_work": 1, "main": 1}


def test_trace_options_without_trace_are_refused(project):
    project.write("prog.c", LONG)
    assert project.cprof("build", "prog.c").returncode == 0
    refused = project.cprof("run", "--min-duration", "1ms")
    assert refused.returncode == 2 and "apply to --trace" in refused.stderr
    bad = project.cprof("run", "--trace", "--trace-limit", "lots")
    assert bad.returncode == 2 and "not a size" in bad.stderr
