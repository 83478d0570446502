"""Renderers on runs built in memory (a fixed clock, no compiler): the registry, the stacks view and the exports."""

from __future__ import annotations

import io
import json

import pytest

from conftest import validate
from cprof import runfile
from cprof.errors import CprofError
from cprof.model.correction import Calibration, correct_tree
from cprof.model.run import CallNode, FunctionKey, ProcessData, Run, ThreadData, _derive
from cprof.model.stacks import run_stacks
from cprof.render.base import DIFF, RUN, renderer_for_file, renderer_named, renderers
from cprof.render.table import ReportOptions

MS = 1_000_000


def _key(name: str) -> FunctionKey:
    return FunctionKey(name, f"{name.split()[0]}.c", 1)


def _node(name: str, calls: int, total_ns: float, children=(), alloc_bytes: int = 0) -> CallNode:
    node = CallNode(_key(name), calls=calls, total_ns=total_ns, alloc_bytes=alloc_bytes,
                    alloc_count=1 if alloc_bytes else 0)
    for child in children:
        child.parent = node
        node.children[child.key] = child
    return node


def memory_run(threads: int = 1, trees: list | None = None, calibration: Calibration | None = None) -> Run:
    """main (10 ms) calls parse (6 ms, of it lex 2 ms) and the section `emit; <b>` (1 ms, 4 KiB allocated);
    a second thread, when asked for, runs worker (3 ms). `trees` (each thread's top-level nodes) replaces that.
    `calibration` (default: none measured) corrects the trees' times, which are then the raw ones."""
    calibration = calibration or Calibration()
    header = {name: 0 for name in runfile._PUBLIC_HEADER_FIELDS}
    header.update(ticks_per_second=1e9, end_mono_ns=20 * MS, end_ticks=20 * MS, pid=100, timer_kind=1,
                  features=runfile.FEAT_ALLOCS, cmdline=["prog"], flags=1)
    thread_list = []
    trees = trees or [[_node("main", 1, 10 * MS, [_node("parse", 2, 6 * MS, [_node("lex", 5, 2 * MS)]),
                                                   _node("emit; <b>", 1, 1 * MS, alloc_bytes=4096)])],
                      [_node("worker", 1, 3 * MS)]]
    for index, calls in enumerate(trees[:threads]):
        root = CallNode(None)
        for child in calls:
            child.parent = root
            root.children[child.key] = child
        _derive(root)
        correct_tree(root, calibration)
        thread_list.append(ThreadData(index, 200 + index, f"t{index}", root, 0.0, 20 * MS, 0, pid=100))
    process = ProcessData(100, 1, "100.cprof", header, True, thread_list, calibration, {})
    return Run("memory-run", "/nonexistent", {"command": ["prog"]}, [process])


def rendered(name: str, view, options=None, subject: str = RUN) -> str:
    out = io.StringIO()
    renderer_named(subject, name)(options).render(view, out)
    return out.getvalue()


def test_the_registry_knows_every_format_by_name_and_by_extension():
    assert {"table", "tree", "mem", "json", "folded"} <= set(renderers(RUN))
    assert set(renderers(DIFF)) == {"table", "json", "flame"}
    assert renderer_for_file(RUN, "out.json").name == "json"
    assert renderer_for_file(RUN, "OUT.TXT").name == "table"
    assert renderer_for_file(RUN, "stacks.folded").name == "folded"
    assert renderer_for_file(RUN, "picture.png") is None
    with pytest.raises(CprofError, match="unknown format 'png'"):
        renderer_named(RUN, "png")


def test_every_run_renderer_draws_a_run_built_in_memory():
    run = memory_run()
    table = rendered("table", run)
    assert [line.split()[0] for line in table.splitlines()[1:5]] == ["parse", "main", "lex", "emit;"]  # by self
    tree = rendered("tree", run, ReportOptions(min_percent=0))
    assert "└─ 100.0%   10.0 ms  main" in tree and "│  └─  20.0%   2.00 ms  lex  ×5" in tree
    document = json.loads(rendered("json", run))
    validate(document, "report-4.json")
    assert {f["name"]: f["self_ns"] for f in document["functions"]} == {
        "main": 3 * MS, "parse": 4 * MS, "lex": 2 * MS, "emit; <b>": 1 * MS}
    assert rendered("mem", run).startswith("this run has no heap record")


def test_the_stacks_view_gives_every_call_path_its_own_and_inclusive_value():
    run = memory_run()
    by_path = {s.names: (s.self_value, s.total_value, s.calls) for s in run_stacks(run)}
    assert by_path == {("main",): (3 * MS, 10 * MS, 1), ("main", "parse"): (4 * MS, 6 * MS, 2),
                       ("main", "parse", "lex"): (2 * MS, 2 * MS, 5), ("main", "emit; <b>"): (1 * MS, 1 * MS, 1)}
    calls = {s.names: (s.self_value, s.total_value) for s in run_stacks(run, "calls")}
    assert calls[("main",)] == (1, 9) and calls[("main", "parse")] == (2, 7)
    allocated = {s.names: (s.self_value, s.total_value) for s in run_stacks(run, "bytes")}
    assert allocated[("main",)] == (0, 4096) and allocated[("main", "emit; <b>")] == (4096, 4096)


def test_folded_stacks_escape_separators_and_name_threads_when_there_are_several():
    one = rendered("folded", memory_run())
    assert one.splitlines() == ["main 3000000", "main;parse 4000000", "main;parse;lex 2000000",
                                "main;emit: <b> 1000000"]
    # the folded sum is the run's self time: nothing lost, nothing counted twice
    assert sum(int(line.rsplit(" ", 1)[1]) for line in one.splitlines()) == 10 * MS
    two = rendered("folded", memory_run(threads=2)).splitlines()
    assert "t0 [0];main;parse;lex 2000000" in two and "t1 [1];worker 3000000" in two
    by_bytes = rendered("folded", memory_run(), ReportOptions(weight="bytes"))
    assert by_bytes == "main;emit: <b> 4096\n"


def test_export_writes_folded_stacks_of_a_real_run(project):
    from test_cli import TOUR, TOUR_CALLS

    project.write("tour.c", TOUR)
    assert project.cprof("profile", "tour.c").returncode == 0
    folded = project.cprof("export")
    assert folded.returncode == 0, folded.stderr
    lines = folded.stdout.splitlines()
    paths = {line.rsplit(" ", 1)[0] for line in lines}
    assert {"main", "main;heavy", "main;light"} <= paths
    report = json.loads(project.cprof("report", "--json", "--all").stdout)
    # the export's values are the report's self times, path by path, summed per function
    per_function: dict[str, int] = {}
    for line in lines:
        path, value = line.rsplit(" ", 1)
        per_function[path.split(";")[-1]] = per_function.get(path.split(";")[-1], 0) + int(value)
    for function in report["functions"]:
        assert abs(per_function.get(function["name"], 0) - function["self_ns"]) <= 2, function["name"]
    calls = project.cprof("export", "--calls", "-o", "calls.folded")
    assert calls.returncode == 0 and "wrote calls.folded" in calls.stderr
    with open(f"{project.root}/calls.folded") as handle:
        counted = {line.rsplit(" ", 1)[0].split(";")[-1]: int(line.rsplit(" ", 1)[1]) for line in handle}
    assert {name: counted.get(name, 0) for name in TOUR_CALLS} == TOUR_CALLS
    refused = project.cprof("export", "-o", "out.json")
    assert refused.returncode == 2 and "cprof export writes folded" in refused.stderr
    assert project.cprof("report", "--format", "folded").stdout == folded.stdout


def _speedscope_schema() -> dict:
    import os

    with open(os.path.join(os.path.dirname(__file__), "schemas", "speedscope.json")) as handle:
        return json.load(handle)


def test_speedscope_export_follows_the_file_format_and_keeps_every_value():
    import jsonschema

    document = json.loads(rendered("speedscope", memory_run(threads=2)))
    jsonschema.validate(document, _speedscope_schema())
    frames = [frame["name"] for frame in document["shared"]["frames"]]
    first, second = document["profiles"]
    assert first["unit"] == "nanoseconds" and first["endValue"] == sum(first["weights"]) == 10 * MS
    stacks = {tuple(frames[i] for i in sample): weight for sample, weight in zip(first["samples"], first["weights"])}
    assert stacks == {("main",): 3 * MS, ("main", "parse"): 4 * MS, ("main", "parse", "lex"): 2 * MS,
                      ("main", "emit; <b>"): 1 * MS}
    assert [frames[i] for i in second["samples"][0]] == ["worker"] and second["weights"] == [3 * MS]
    bytes_document = json.loads(rendered("speedscope", memory_run(), ReportOptions(weight="bytes")))
    assert bytes_document["profiles"][0]["unit"] == "bytes" and bytes_document["profiles"][0]["weights"] == [4096]


def test_speedscope_export_of_a_real_run_validates(project):
    import jsonschema

    project.write("a.c", """
        #include <stdlib.h>
        void *volatile sink;
        __attribute__((noinline)) void leaf(int i) { sink = malloc(16 + i); free(sink); }
        int main(void) { for (int i = 0; i < 100; i++) leaf(i); return 0; }
    """)
    assert project.cprof("profile", "a.c").returncode == 0
    written = project.cprof("export", "-o", "run.speedscope.json")
    assert written.returncode == 0, written.stderr
    with open(f"{project.root}/run.speedscope.json") as handle:
        document = json.load(handle)
    jsonschema.validate(document, _speedscope_schema())
    frames = [frame["name"] for frame in document["shared"]["frames"]]
    [profile] = document["profiles"]
    assert ["main", "leaf"] in [[frames[i] for i in sample] for sample in profile["samples"]]


SVG = "{http://www.w3.org/2000/svg}"


def _frames(svg_text: str) -> dict[str, dict]:
    """name -> the frame's geometry and details, from the SVG as a browser would parse it (well-formed XML)."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(svg_text.encode())
    frames = {}
    for group in root.iter(f"{SVG}g"):
        frames[group.get("data-n")] = {"x": float(group.get("data-x")), "w": float(group.get("data-w")),
                                       "depth": int(group.get("data-d")), "classes": group.get("class").split(),
                                       "title": group.find(f"{SVG}title").text,
                                       "label": group.find(f"{SVG}text").text}
    return frames


def test_the_flamegraph_draws_each_call_path_as_wide_as_its_inclusive_time():
    svg = rendered("flame", memory_run())
    frames = _frames(svg)
    assert set(frames) == {"all", "main", "parse", "lex", "emit; <b>"}
    assert frames["all"]["w"] == frames["main"]["w"] == 1200.0
    assert frames["parse"]["w"] == pytest.approx(720.0) and frames["lex"]["w"] == pytest.approx(240.0)
    assert frames["lex"]["depth"] == 3 and frames["lex"]["x"] == pytest.approx(frames["parse"]["x"])
    # siblings side by side inside their parent
    assert frames["emit; <b>"]["x"] + frames["emit; <b>"]["w"] <= frames["parse"]["x"] + 0.01 or \
        frames["parse"]["x"] + frames["parse"]["w"] <= frames["emit; <b>"]["x"] + 0.01
    assert "total 6.00 ms (60.00% of the run), self 4.00 ms, 2 calls" in frames["parse"]["title"]
    assert frames["lex"]["title"].startswith("lex  lex.c:1")
    # one file, nothing fetched: the script is inside and no URL is loaded
    assert "<script><![CDATA[" in svg and "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_names_cannot_run_anything_in_the_flamegraph():
    run = memory_run()
    evil = "<script>alert(1)</script>"
    node = run.threads[0].root.children[_key("main")].children[_key("emit; <b>")]
    node.key = FunctionKey(evil, "x.c", 1)
    svg = rendered("flame", run)
    assert evil not in svg  # escaped wherever it appears
    assert _frames(svg)[evil]["label"] == evil  # and still shown as the name it is


def test_frames_under_a_pixel_are_merged_and_the_file_stays_small():
    """A thousand leaves each under a pixel wide become one grey frame that says how many it stands for."""
    run = memory_run()
    main = run.threads[0].root.children[_key("main")]
    for index in range(1000):
        leaf = _node(f"tiny{index}", 1, 1_000)
        leaf.parent = main
        main.children[leaf.key] = leaf
    _derive(run.threads[0].root)
    correct_tree(run.threads[0].root, Calibration())
    svg = rendered("flame", run)
    frames = _frames(svg)
    assert not any(name.startswith("tiny") for name in frames)
    [merged] = [f for f in frames.values() if "merged" in f["classes"]]
    assert merged["title"].startswith("1000 narrow frames") and "1000 call paths each under a pixel wide" in \
        merged["title"]
    assert len(svg) < 20_000


def test_mostly_correction_frames_look_different():
    run = memory_run()
    lex = run.threads[0].root.children[_key("main")].children[_key("parse")].children[_key("lex")]
    lex.corrected_self_ns = lex.corrected_total_ns = 0.4 * lex.self_ns  # the guard took most of it
    frames = _frames(rendered("flame", run))
    assert "approx" in frames["lex"]["classes"] and frames["lex"]["label"] == "~lex"
    assert "mostly the guard's own cost" in frames["lex"]["title"]


def test_flame_writes_an_svg_of_a_real_run(project):
    from test_cli import TOUR

    project.write("tour.c", TOUR)
    assert project.cprof("profile", "tour.c").returncode == 0
    drawn = project.cprof("flame", "-o", "tour.svg")
    assert drawn.returncode == 0, drawn.stderr
    with open(f"{project.root}/tour.svg") as handle:
        frames = _frames(handle.read())
    assert {"main", "heavy", "light"} <= set(frames)
    assert frames["heavy"]["w"] > frames["light"]["w"]
    assert project.cprof("report", "--output", "same.svg").returncode == 0  # the extension picks the renderer
