"""The callgrind and pprof exports, read back by the tools they are for: valgrind's callgrind_annotate and Go's
`go tool pprof` (make deps-test installs both), on a run built in memory and on a real threaded run."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import Project
from cprof.errors import EXIT_SETUP, CprofError
from cprof.render.base import RUN, renderer_for_file, renderer_named
from cprof.render.export import frame_name
from cprof.render.table import ReportOptions
from test_render import MS, memory_run, rendered

needs_callgrind_annotate = pytest.mark.skipif(shutil.which("callgrind_annotate") is None,
                                              reason="valgrind's callgrind_annotate is not installed (make deps-test)")
needs_go_pprof = pytest.mark.skipif(shutil.which("go") is None,
                                    reason="go tool pprof is not installed (Debian's golang-go; make deps-test)")

# --- callgrind_annotate ----------------------------------------------------------------------------------------------

_FIGURE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?)\s*$")
_CALLEE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+>\s+(.*) \((\d+)x\) \[.*\]$")


def annotate(path: str, *flags: str) -> tuple[int, dict[str, int]]:
    """callgrind_annotate's PROGRAM TOTALS and its figure for every function ("file:function"), none hidden. Run
    from / so that it strips no directory from the file names (it strips its own working directory from fl= names
    but not from cfi= ones, and would then count one function under two names)."""
    result = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", *flags, path], cwd="/",
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr  # no line it found malformed
    total, functions = None, {}
    for line in result.stdout.splitlines():
        match = _FIGURE.match(line)
        if match and match.group(2) == "PROGRAM TOTALS":
            total = int(match.group(1).replace(",", ""))
        elif match and total is not None:
            functions[match.group(2)] = int(match.group(1).replace(",", ""))
    return total, functions


def annotated_calls(path: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(caller, callee) -> (calls, inclusive cost of those calls), from callgrind_annotate's call tree."""
    result = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", "--tree=calling", path], cwd="/",
                            capture_output=True, text=True, check=True)
    arcs, caller = {}, None
    for line in result.stdout.splitlines():
        if re.match(r"^\s*[\d,]+ \(.*\)\s+\*\s+", line):
            caller = line.split("*", 1)[1].strip()
        elif (match := _CALLEE.match(line)) is not None:
            arcs[(caller, match.group(2))] = (int(match.group(3)), int(match.group(1).replace(",", "")))
    return arcs


def callgrind_name(key) -> str:
    return f"{key.file}:{frame_name(key.name)}"


# --- go tool pprof ---------------------------------------------------------------------------------------------------

_LOCATION = re.compile(r"^\s*(\d+): 0x[0-9a-f]+ M=\d+ (.*?) (\S+):(\d+) s=(\d+)(?:\((.*)\))?\s*$")


def go_pprof(*args: str) -> str:
    result = subprocess.run(["go", "tool", "pprof", "-symbolize=none", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pprof_raw(path: str) -> dict:
    """What `go tool pprof -raw` decodes: the sample types ("type/unit", the default one marked), each sample's values,
    locations (leaf first) and labels, and each location's function name (the full one), file and line."""
    text = go_pprof("-raw", path)
    section, types, default, samples, locations = None, [], None, [], {}
    for line in text.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            section = line
        elif section == "Samples:" and not types:
            for item in line.split():
                types.append(item.removesuffix("[dflt]"))
                default = item.removesuffix("[dflt]") if item.endswith("[dflt]") else default
        elif section == "Samples:" and re.match(r"^\s*-?\d[\d\s-]*:", line):
            values, ids = line.split(":")
            samples.append({"values": dict(zip(types, map(int, values.split()))),
                            "locations": [int(i) for i in ids.split()], "labels": {}})
        elif section == "Samples:" and samples:
            for key, value in re.findall(r"(\w+):\[([^\]]*)\]", line):
                samples[-1]["labels"][key] = value
        elif section == "Locations" and (match := _LOCATION.match(line)) is not None:
            name = match.group(6) or match.group(2)  # pprof shortens names (drops <...>); the system name is whole
            locations[int(match.group(1))] = (name, match.group(3), int(match.group(4)))
    return {"types": types, "default": default, "samples": samples, "locations": locations}


def pprof_flat(raw: dict, sample_type: str) -> dict[str, int]:
    """Each function's own value of one sample type: the samples whose leaf it is."""
    flat: dict[str, int] = {}
    for sample in raw["samples"]:
        name = raw["locations"][sample["locations"][0]][0]
        flat[name] = flat.get(name, 0) + sample["values"][sample_type]
    return {name: value for name, value in flat.items() if value}


def decode(data: bytes):
    """The profile decoded with the protobuf package, for exact checks of fields pprof's text output leaves out."""
    from cprof.render.pprof import profile_class

    assert data[:2] == b"\x1f\x8b"  # gzipped, as the format requires on disk
    return profile_class().FromString(gzip.decompress(data))


def rendered_bytes(name: str, view, options=None) -> bytes:
    out = io.BytesIO()
    renderer_named(RUN, name)(options).render(view, out)
    return out.getvalue()


# --- the registry and the CLI's help ---------------------------------------------------------------------------------

def test_the_new_formats_are_picked_by_name_and_by_extension():
    assert renderer_for_file(RUN, "out.callgrind").name == "callgrind"
    assert renderer_for_file(RUN, "cpu.pb.gz").name == "pprof" and renderer_for_file(RUN, "x.PPROF").name == "pprof"
    assert renderer_named(RUN, "callgrind").export and renderer_named(RUN, "pprof").export
    help_text = subprocess.run([sys.executable, "-m", "cprof", "export", "--help"], capture_output=True,
                               text=True).stdout
    for name in ("folded", "speedscope", "callgrind", "pprof"):
        assert re.search(rf"^  {name}\s+\.", help_text, re.M), name  # each format described, with its extension


def test_protobuf_is_imported_only_when_a_pprof_file_is_made():
    check = ("import sys; from cprof.render.base import RUN, renderers; renderers(RUN); "
             "print('google.protobuf' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.strip() == "False"


def test_pprof_without_protobuf_is_one_clear_error(monkeypatch):
    from cprof.render.pprof import profile_class

    profile_class.cache_clear()
    monkeypatch.setitem(sys.modules, "google.protobuf", None)  # what an import of a missing package meets
    try:
        with pytest.raises(CprofError, match="needs the protobuf package: pip install protobuf") as error:
            rendered_bytes("pprof", memory_run())
        assert error.value.exit_code == EXIT_SETUP
    finally:
        profile_class.cache_clear()


# --- callgrind on a run built in memory ------------------------------------------------------------------------------

def test_callgrind_export_compresses_names_and_states_its_totals():
    text = rendered("callgrind", memory_run(threads=2))
    lines = text.splitlines()
    assert lines[:2] == ["# callgrind format", "version: 1"]
    assert "summary: 13000000" in lines and lines[-1] == "totals: 13000000"
    assert "desc: Thread 0: t0 (pid 100, tid 200): 10000000 ns" in lines
    assert "desc: Thread 1: t1 (pid 100, tid 201): 3000000 ns" in lines
    # every name is written once, with its id; after that only the id
    for kind, kinds in (("fl", ("fl", "cfi")), ("fn", ("fn", "cfn"))):
        defined = {}
        for line in lines:
            spec, _, value = line.partition("=")
            if spec in kinds:
                match = re.fullmatch(r"\((\d+)\)(?: (.+))?", value)
                assert match, line
                if match.group(2) is not None:
                    assert match.group(1) not in defined and match.group(2) not in defined.values(), line
                    defined[match.group(1)] = match.group(2)
                else:
                    assert match.group(1) in defined, line  # a reference after its definition
        assert defined, kind
    assert re.search(r"^fn=\(\d+\) main$", text, re.M) and re.search(r"^cfn=\(\d+\) lex$", text, re.M)
    # main's own cost on main's line, then its call of parse: calls=2 at parse's line, inclusive 6 ms
    assert "fn=(1) main\n1 3000000\ncfi=(2) parse.c\ncfn=(2) parse\ncalls=2 1\n1 6000000\n" in text


@needs_callgrind_annotate
def test_callgrind_annotate_reads_the_memory_runs_totals_and_functions(tmp_path):
    run = memory_run(threads=2)
    path = str(tmp_path / "memory.callgrind")
    with open(path, "w") as handle:
        handle.write(rendered("callgrind", run))
    functions = run.functions()
    total, self_costs = annotate(path)
    assert total == 13 * MS == round(sum(f.self_ns for f in functions))
    assert self_costs == {callgrind_name(f.key): round(f.self_ns) for f in functions}
    assert self_costs["parse.c:parse"] == 4 * MS and self_costs["emit;.c:emit: <b>"] == 1 * MS
    _, inclusive = annotate(path, "--inclusive=yes")
    assert inclusive == {callgrind_name(f.key): round(f.total_ns) for f in functions}
    assert inclusive["main.c:main"] == 10 * MS and inclusive["parse.c:parse"] == 6 * MS
    assert annotated_calls(path) == {("main.c:main", "parse.c:parse"): (2, 6 * MS),
                                     ("main.c:main", "emit;.c:emit: <b>"): (1, 1 * MS),
                                     ("parse.c:parse", "lex.c:lex"): (5, 2 * MS)}

    with open(path, "w") as handle:
        handle.write(rendered("callgrind", run, ReportOptions(weight="calls")))
    total, calls = annotate(path)
    assert total == 10 and calls == {callgrind_name(f.key): f.calls for f in functions}
    with open(path, "w") as handle:
        handle.write(rendered("callgrind", run, ReportOptions(weight="bytes")))
    assert annotate(path) == (4096, {"emit;.c:emit: <b>": 4096})  # nothing else allocated: nothing else written


def sampled_run():
    """memory_run whose lex spent 0.4 ms of its self time in `tiny`, a count-only function (9 calls, no frame) the
    samples found there, taken out of lex's self time as cprof/model/samples.py does."""
    from cprof.model.run import FunctionKey

    run = memory_run()
    thread = run.threads[0]
    lex = thread.root.children[FunctionKey("main", "main.c", 1)].children[FunctionKey("parse", "parse.c", 1)] \
        .children[FunctionKey("lex", "lex.c", 1)]
    tiny = FunctionKey("tiny", "tiny.c", 7)
    lex.sampled[tiny] = (0.4 * MS, 0.4 * MS, 0.0)
    lex.self_ns -= 0.4 * MS
    lex.corrected_self_ns -= 0.4 * MS
    thread.counted[tiny] = 9
    thread.sampled_keys.add(tiny)
    return run


@needs_callgrind_annotate
def test_a_count_only_functions_sampled_time_is_its_own_cost_without_an_arc(tmp_path):
    run = sampled_run()
    path = str(tmp_path / "sampled.callgrind")
    with open(path, "w") as handle:
        handle.write(rendered("callgrind", run))
    total, self_costs = annotate(path)
    assert total == 10 * MS and self_costs["tiny.c:tiny"] == 0.4 * MS and self_costs["lex.c:lex"] == 1.6 * MS
    assert self_costs == {callgrind_name(f.key): round(f.self_ns) for f in run.functions()}
    # its calls are known per thread, not per caller: no arc claims them; lex's own arc still holds its time
    assert annotated_calls(path)[("parse.c:parse", "lex.c:lex")] == (5, 2 * MS)
    assert not any(callee == "tiny.c:tiny" for _, callee in annotated_calls(path))
    profile = decode(rendered_bytes("pprof", run))
    names = {f.id: profile.string_table[f.name] for f in profile.function}
    [tiny] = [s for s in profile.sample if names[s.location_id[0]] == "tiny"]
    assert [names[i] for i in tiny.location_id] == ["tiny", "lex", "parse", "main"] and list(tiny.value) == \
        [0, 0.4 * MS, 0]


# --- pprof on a run built in memory ----------------------------------------------------------------------------------

def test_pprof_export_holds_every_call_path_with_its_values_and_thread():
    profile = decode(rendered_bytes("pprof", memory_run(threads=2)))
    strings = profile.string_table
    assert strings[0] == ""
    assert [(strings[t.type], strings[t.unit]) for t in profile.sample_type] == [
        ("calls", "count"), ("time", "nanoseconds"), ("alloc_space", "bytes")]  # the heap was tracked
    assert strings[profile.default_sample_type] == "time" and profile.period == 1
    assert (strings[profile.period_type.type], strings[profile.period_type.unit]) == ("time", "nanoseconds")
    assert profile.duration_nanos == 20 * MS
    functions = {f.id: f for f in profile.function}
    location_function = {loc.id: functions[loc.line[0].function_id] for loc in profile.location}
    assert {strings[f.name]: (strings[f.filename], f.start_line) for f in functions.values()} == {
        "main": ("main.c", 1), "parse": ("parse.c", 1), "lex": ("lex.c", 1), "emit; <b>": ("emit;.c", 1),
        "worker": ("worker.c", 1)}
    paths = {}
    for sample in profile.sample:
        names = tuple(strings[location_function[i].name] for i in reversed(sample.location_id))  # stored leaf first
        labels = {strings[label.key]: strings[label.str] if label.str else label.num for label in sample.label}
        paths[names] = (list(sample.value), labels)
    t0, t1 = {"thread": "t0", "pid": 100, "tid": 200}, {"thread": "t1", "pid": 100, "tid": 201}
    assert paths == {("main",): ([1, 3 * MS, 0], t0), ("main", "parse"): ([2, 4 * MS, 0], t0),
                     ("main", "parse", "lex"): ([5, 2 * MS, 0], t0), ("main", "emit; <b>"): ([1, 1 * MS, 4096], t0),
                     ("worker",): ([1, 3 * MS, 0], t1)}
    by_calls = decode(rendered_bytes("pprof", memory_run(), ReportOptions(weight="calls")))
    assert by_calls.string_table[by_calls.default_sample_type] == "calls"
    assert rendered_bytes("pprof", memory_run()) == rendered_bytes("pprof", memory_run())  # no timestamp inside


@needs_go_pprof
def test_go_pprof_reads_the_memory_runs_totals_functions_and_threads(tmp_path):
    run = memory_run(threads=2)
    path = str(tmp_path / "memory.pb.gz")
    with open(path, "wb") as handle:
        handle.write(rendered_bytes("pprof", run))
    raw = pprof_raw(path)
    assert raw["types"] == ["calls/count", "time/nanoseconds", "alloc_space/bytes"] and raw["default"] == \
        "time/nanoseconds"
    functions = run.functions()
    totals = {t: sum(s["values"][t] for s in raw["samples"]) for t in raw["types"]}
    assert totals == {"calls/count": 10, "time/nanoseconds": 13 * MS, "alloc_space/bytes": 4096}
    assert pprof_flat(raw, "time/nanoseconds") == {f.name: round(f.self_ns) for f in functions}
    assert pprof_flat(raw, "calls/count") == {f.name: f.calls for f in functions}
    assert pprof_flat(raw, "alloc_space/bytes") == {"emit; <b>": 4096}
    assert {(s["labels"]["thread"], s["labels"]["tid"]) for s in raw["samples"]} == {("t0", "200"), ("t1", "201")}
    assert {raw["locations"][s["locations"][0]][0] for s in raw["samples"] if s["labels"]["thread"] == "t1"} == \
        {"worker"}
    top = go_pprof("-top", path)
    assert "Type: time" in top and re.search(r"Total samples = 13ms", top)
    assert re.search(r"^\s+3ms\s+23\.08%\s+\S+\s+10ms\s+76\.92%\s+main$", top, re.M)  # flat and cumulative
    tags = go_pprof("-tags", path)
    assert re.search(r"10\.0ms \(76\.92%\): t0", tags) and re.search(r"3\.0ms \(23\.08%\): t1", tags)


# --- a real run, built and run through the CLI -----------------------------------------------------------------------

THREADED = """\
    #include <pthread.h>
    #include <stdlib.h>
    volatile unsigned long sink;
    void *volatile keep;
    __attribute__((noinline)) void leaf(long n) { for (long i = 0; i < n; i++) sink += i; }
    __attribute__((noinline)) void grab(int i) { keep = malloc(100 + i); free(keep); }
    __attribute__((noinline)) void work(long n) { for (int i = 0; i < 20; i++) { leaf(n); grab(i); } }
    static void *worker(void *arg) { work((long)arg); return NULL; }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, NULL, worker, (void *)30000L);
        work(10000);
        pthread_join(thread, NULL);
        return 0;
    }
"""
CALLS = {"main": 1, "work": 2, "worker": 1, "leaf": 40, "grab": 40}


@pytest.fixture(scope="module")
def threaded(tmp_path_factory) -> tuple[Project, dict, dict]:
    """THREADED profiled once; its report (JSON) corrected and raw, by function name."""
    project = Project(str(tmp_path_factory.mktemp("threaded")))
    project.write("threaded.c", THREADED)
    result = project.cprof("profile", "threaded.c")
    assert result.returncode == 0, result.stderr
    report = json.loads(project.cprof("report", "--json", "--all", "--threads").stdout)
    raw = json.loads(project.cprof("report", "--json", "--all", "--uncorrected").stdout)
    assert {f["name"]: f["calls"] for f in report["functions"]} == CALLS
    return project, report, {f["name"]: f for f in raw["functions"]}


def _export(project: Project, *args: str) -> str:
    result = project.cprof("export", *args)
    assert result.returncode == 0 and "cprof: wrote" in result.stderr, result.stderr
    return os.path.join(project.root, args[args.index("-o") + 1])


@needs_callgrind_annotate
def test_callgrind_annotate_reads_a_real_runs_totals_functions_and_calls(threaded):
    project, report, raw = threaded
    functions = {f["name"]: f for f in report["functions"]}
    source = os.path.join(project.root, "threaded.c")
    path = _export(project, "-o", "run.callgrind")
    total, self_costs = annotate(path)
    # the summary is the run's self time, both threads together (each function within rounding)
    assert abs(total - sum(f["self_ns"] for f in functions.values())) <= len(functions)
    assert set(self_costs) == {f"{source}:{name}" for name in CALLS}
    for name, function in functions.items():
        assert abs(self_costs[f"{source}:{name}"] - function["self_ns"]) <= 1, name
    _, inclusive = annotate(path, "--inclusive=yes")
    for name, function in functions.items():
        assert abs(inclusive[f"{source}:{name}"] - function["total_ns"]) <= 2, name
    arcs = annotated_calls(path)
    called = {}
    for (_, callee), (calls, _) in arcs.items():
        called[callee.rsplit(":", 1)[1]] = called.get(callee.rsplit(":", 1)[1], 0) + calls
    assert called == {name: calls for name, calls in CALLS.items() if name not in ("main", "worker")}
    assert arcs[(f"{source}:main", f"{source}:work")][0] == 1 and arcs[(f"{source}:worker", f"{source}:work")][0] == 1
    with open(path) as handle:  # one line per thread, its own total
        threads = re.findall(r"^desc: Thread (\d+): .* \(pid (\d+), tid (\d+)\): (\d+) ns$", handle.read(), re.M)
    assert {(int(i), int(t)) for i, _, t, _ in threads} == {(t["index"], t["tid"]) for t in report["run"]["threads"]}
    assert abs(sum(int(value) for *_, value in threads) - total) <= len(threads)  # each rounded on its own

    total, calls = annotate(_export(project, "--calls", "-o", "calls.callgrind"))
    assert total == sum(CALLS.values()) and calls == {f"{source}:{name}": n for name, n in CALLS.items()}
    total, allocated = annotate(_export(project, "--bytes", "-o", "bytes.callgrind"))
    assert total == sum(f["alloc_bytes"] for f in functions.values())
    assert allocated[f"{source}:grab"] == functions["grab"]["alloc_bytes"] == sum(100 + i for i in range(20)) * 2
    raw_path = _export(project, "--uncorrected", "-o", "raw.callgrind")
    total, uncorrected = annotate(raw_path)
    assert abs(total - sum(f["self_ns"] for f in raw.values())) <= len(raw)
    assert abs(uncorrected[f"{source}:leaf"] - raw["leaf"]["self_ns"]) <= 1
    with open(path) as corrected_file, open(raw_path) as raw_file:
        assert "desc: Times: corrected for cprof's own cost\n" in corrected_file.read()
        assert "desc: Times: raw\n" in raw_file.read()


@needs_go_pprof
def test_go_pprof_reads_a_real_runs_totals_functions_and_threads(threaded):
    project, report, _ = threaded
    functions = {f["name"]: f for f in report["functions"]}
    path = _export(project, "-o", "run.pb.gz")
    raw = pprof_raw(path)
    assert raw["types"] == ["calls/count", "time/nanoseconds", "alloc_space/bytes"]
    assert raw["default"] == "time/nanoseconds"
    totals = {t: sum(s["values"][t] for s in raw["samples"]) for t in raw["types"]}
    assert totals["calls/count"] == sum(CALLS.values())
    assert totals["alloc_space/bytes"] == sum(f["alloc_bytes"] for f in functions.values())
    self_time = sum(f["self_ns"] for f in functions.values())
    assert abs(totals["time/nanoseconds"] - self_time) <= len(raw["samples"])  # each path's value rounded
    flat = pprof_flat(raw, "time/nanoseconds")
    for name, function in functions.items():
        # a function's paths are rounded one by one (work and leaf have one per thread)
        assert abs(flat.get(name, 0) - function["self_ns"]) <= 2, name
    assert pprof_flat(raw, "calls/count") == CALLS
    assert pprof_flat(raw, "alloc_space/bytes")["grab"] == functions["grab"]["alloc_bytes"]
    source = os.path.join(project.root, "threaded.c")
    assert {name: (file, line) for name, file, line in raw["locations"].values()} == {
        name: (source, functions[name]["line"]) for name in CALLS}
    # each sample's thread: the run's threads by tid, the worker's paths in the second thread only
    threads = {t["tid"]: t for t in report["run"]["threads"]}
    assert {int(s["labels"]["tid"]) for s in raw["samples"]} == set(threads)
    assert {s["labels"]["pid"] for s in raw["samples"]} == {str(report["run"]["processes"][0]["pid"])}
    worker_tids = {int(s["labels"]["tid"]) for s in raw["samples"]
                   if "worker" in (raw["locations"][i][0] for i in s["locations"])}
    assert worker_tids == {t["tid"] for t in threads.values() if t["index"] == 1}

    assert "Type: calls" in go_pprof("-top", _export(project, "--calls", "-o", "calls.pprof"))
    assert "Type: alloc_space" in go_pprof("-top", _export(project, "--bytes", "-o", "bytes.pprof"))
    # report writes the same file when asked for it by name
    written = project.cprof("report", "--output", "report.pb.gz")
    assert written.returncode == 0, written.stderr
    with open(os.path.join(project.root, "report.pb.gz"), "rb") as one, open(path, "rb") as other:
        assert decode(one.read()) == decode(other.read())


@pytest.mark.parametrize("err_ms, marked", [(0.3, True), (0.05, False)])
def test_the_table_marks_a_sampled_time_whose_interval_reaches_past_half_of_it(err_ms, marked):
    """Few samples (a short run, a rare function) give a count-only function's self time a wide interval: the table
    marks it ~, as it marks a time that is mostly the guards' correction, and its footer says why."""
    from cprof.model.correction import Calibration
    from cprof.model.run import FunctionKey
    from cprof.runfile import FN_COUNTED

    run = sampled_run()
    lex = run.threads[0].root.children[FunctionKey("main", "main.c", 1)] \
        .children[FunctionKey("parse", "parse.c", 1)].children[FunctionKey("lex", "lex.c", 1)]
    tiny = FunctionKey("tiny", "tiny.c", 7)
    lex.sampled[tiny] = (0.4 * MS, 0.4 * MS, err_ms * MS)
    run.processes[0].flags[tiny] = FN_COUNTED
    run.processes[0].calibration = Calibration(measured=True)  # a run whose figures are corrected, and stated with ±
    text = rendered("table", run)
    row = next(line for line in text.splitlines() if line.startswith("tiny"))
    assert ("~400 µs" in row) == marked and ("400 µs" in row)
    assert ("few samples found them" in text) == marked
