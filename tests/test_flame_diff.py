"""The differential flamegraph on runs built in memory (colours, details, widths, noise, escaping) and on real runs."""

from __future__ import annotations

import io

import pytest

from cprof import runfile
from cprof.model.correction import Calibration, correct_tree
from cprof.model.diff import diff_runs
from cprof.model.run import CallNode, FunctionKey, ProcessData, Run, ThreadData, _derive
from cprof.render.base import DIFF, RUN, renderer_for_file, renderer_named
from cprof.render.flame_diff import FlameDiff, NEUTRAL
from test_errors import assert_error
from test_render import MS, _frames, _node

EVIL = "<script>alert(1)</script>"


def built_run(run_id: str, calls: list[CallNode], calibration: Calibration | None = None) -> Run:
    """One thread running the given calls, built as test_render.memory_run builds its run."""
    calibration = calibration or Calibration()
    header = {name: 0 for name in runfile._PUBLIC_HEADER_FIELDS}
    header.update(ticks_per_second=1e9, end_mono_ns=50 * MS, end_ticks=50 * MS, pid=100, timer_kind=1,
                  features=runfile.FEAT_ALLOCS, cmdline=["prog"], flags=1)
    root = CallNode(None)
    for child in calls:
        child.parent = root
        root.children[child.key] = child
    _derive(root)
    correct_tree(root, calibration)
    thread = ThreadData(0, 200, "t0", root, 0.0, 50 * MS, 0, pid=100)
    process = ProcessData(100, 1, "100.cprof", header, True, [thread], calibration, {})
    return Run(run_id, f"/nonexistent/{run_id}", {"command": ["prog"]}, [process])


def before(lex_ms: float = 2, parse_ms: float = 6, gone: str = "old") -> Run:
    """main calls parse (of it lex), `emit; <b>` (1 ms) and `gone` (0.5 ms)."""
    return built_run("before", [_node("main", 1, (4 + parse_ms) * MS, [
        _node("parse", 2, parse_ms * MS, [_node("lex", 5, lex_ms * MS)]),
        _node("emit; <b>", 1, 1 * MS, alloc_bytes=4096),
        _node(gone, 1, 0.5 * MS)])])


def after(lex_ms: float = 2, parse_ms: float = 8.4, new: str = "flush") -> Run:
    """parse got 40% slower (its own code: lex is unchanged), `emit; <b>` twice as fast, `new` appeared and the
    path A had to `old` is gone."""
    return built_run("after", [_node("main", 1, (3 + parse_ms + 0.5 + 1) * MS, [
        _node("parse", 2, parse_ms * MS, [_node("lex", 5, lex_ms * MS)]),
        _node("emit; <b>", 1, 0.5 * MS, alloc_bytes=4096),
        _node(new, 1, 1 * MS)])])


def drawn(a_runs: list[Run], b_runs: list[Run], weight: str = "time") -> str:
    out = io.StringIO()
    FlameDiff(weight=weight).render(diff_runs(a_runs, b_runs, "A", "B"), out)
    return out.getvalue()


def fill(svg: str, name: str) -> tuple[int, ...]:
    """A frame's fill, as red, green and blue."""
    import xml.etree.ElementTree as ElementTree

    for group in ElementTree.fromstring(svg.encode()).iter("{http://www.w3.org/2000/svg}g"):
        if group.get("data-n") == name:
            rect = group.find("{http://www.w3.org/2000/svg}rect")
            return tuple(int(part) for part in rect.get("fill")[4:-1].split(","))
    raise KeyError(name)


def test_a_grown_frame_is_red_an_unchanged_one_neutral_a_shrunk_one_blue():
    svg = drawn([before()], [after()])
    frames = _frames(svg)
    assert "grew" in frames["parse"]["classes"]
    assert "A 6.00 ms, B 8.40 ms: +40.0%" in frames["parse"]["title"]
    red, green, blue = fill(svg, "parse")
    assert red > green and red > blue
    assert "same" in frames["lex"]["classes"] and fill(svg, "lex") == NEUTRAL
    assert "A 2.00 ms, B 2.00 ms: unchanged" in frames["lex"]["title"]
    assert "shrank" in frames["emit; <b>"]["classes"] and "-50.0%" in frames["emit; <b>"]["title"]
    red, green, blue = fill(svg, "emit; <b>")
    assert blue > red and blue > green
    # the intensity follows the relative change: main (+29%) is paler than parse (+40%)
    assert "+29.0%" in frames["main"]["title"] and fill(svg, "main")[1] > fill(svg, "parse")[1]


def test_a_new_path_is_marked_and_a_missing_one_reported():
    svg = drawn([before()], [after()])
    frames = _frames(svg)
    assert "new" in frames["flush"]["classes"] and "new: not in A (1.00 ms in B)" in frames["flush"]["title"]
    assert "old" not in frames  # B's shape: what A alone had is not drawn
    assert "gone from here (only in A): old (500 µs)" in frames["main"]["title"]
    assert "1 call path of A not in B: main > old (500 µs)" in frames["all"]["title"]
    assert "1 of A's paths gone" in svg.split("<text", 2)[1]  # the title on top


def test_widths_are_those_of_b():
    svg = drawn([before()], [after()])
    frames = _frames(svg)
    whole = 12.9  # main in B: 3 ms of its own, parse 8.4, emit 0.5, flush 1
    assert frames["all"]["w"] == frames["main"]["w"] == 1200.0
    assert frames["parse"]["w"] == pytest.approx(8.4 / whole * 1200, abs=0.01)
    assert frames["flush"]["w"] == pytest.approx(1 / whole * 1200, abs=0.01)
    assert frames["lex"]["depth"] == 3 and frames["lex"]["x"] == pytest.approx(frames["parse"]["x"])
    # the same layout as B's own flamegraph
    plain = _frames(_plain(after()))
    assert {name: (f["x"], f["w"], f["depth"]) for name, f in plain.items()} == \
        {name: (f["x"], f["w"], f["depth"]) for name, f in frames.items()}


def _plain(run: Run) -> str:
    out = io.StringIO()
    renderer_named(RUN, "flame")().render(run, out)
    return out.getvalue()


def test_groups_compare_medians_and_changes_within_their_spread_are_neutral():
    """lex moves +12% between the medians, less than the spread of A's runs: noise, as `cprof diff` says; parse
    moves +40%, far more."""
    a_runs = [before(lex_ms=lex, parse_ms=6 + lex - 2) for lex in (1.5, 2.0, 2.5)]
    b_runs = [after(lex_ms=lex) for lex in (2.2, 2.24, 2.3)]
    diff = diff_runs(a_runs, b_runs, "base", "new")
    out = io.StringIO()
    FlameDiff().render(diff, out)
    frames = _frames(out.getvalue())
    assert "same" in frames["lex"]["classes"] and fill(out.getvalue(), "lex") == NEUTRAL
    assert "A 2.00 ms, B 2.24 ms: +12.0% (within noise, ±550 µs)" in frames["lex"]["title"]
    assert "grew" in frames["parse"]["classes"] and "A 6.00 ms, B 8.40 ms: +40.0%" in frames["parse"]["title"]
    assert "(within noise" not in frames["parse"]["title"]
    assert "base (median of 3) → new (median of 3)" in out.getvalue()
    # `cprof diff` judges lex, a leaf (self time = inclusive time), the same way
    by_name = {change.key.name: change for change in diff.changes}
    assert not by_name["lex"].significant and by_name["parse"].significant


def test_single_runs_count_the_correction_uncertainty_as_noise():
    calibration = Calibration(inner_spread_ns=20_000, measured=True)  # 20 µs a call: lex's 5 calls, 100 µs
    a = built_run("a", [_node("main", 1, 10 * MS, [_node("lex", 5, 2 * MS)])], calibration)
    b = built_run("b", [_node("main", 1, 10 * MS, [_node("lex", 5, 2.06 * MS)])], calibration)
    frames = _frames(drawn([a], [b]))
    assert "same" in frames["lex"]["classes"] and "+3.0% (within noise" in frames["lex"]["title"]


def test_calls_weigh_paths_when_asked():
    svg = drawn([before()], [after()], weight="calls")
    frames = _frames(svg)
    assert "A 7, B 7: unchanged" in frames["parse"]["title"] and "same" in frames["parse"]["classes"]
    assert "new" in frames["flush"]["classes"]
    assert "width B's calls" in svg


def test_names_are_escaped_in_frames_details_and_the_title():
    svg = drawn([before(gone=EVIL)], [after(new=EVIL + "2")])
    assert "<script>alert" not in svg
    frames = _frames(svg)
    assert frames[EVIL + "2"]["label"] == EVIL + "2" and "new" in frames[EVIL + "2"]["classes"]
    assert f"gone from here (only in A): {EVIL} (500 µs)" in frames["main"]["title"]
    out = io.StringIO()
    FlameDiff(title=f"{EVIL} title").render(diff_runs([before()], [after()], "A", "B"), out)
    assert EVIL not in out.getvalue() and "&lt;script&gt;alert(1)&lt;/script&gt; title" in out.getvalue()


def test_the_diff_registry_draws_it_for_an_svg_file():
    assert renderer_for_file(DIFF, "changes.svg") is FlameDiff
    assert renderer_named(DIFF, "flame") is FlameDiff


GROWS = """\
    #include <stdlib.h>
    volatile unsigned long sink;
    void light(long n) { for (long i = 0; i < n; i++) sink += i; }
    void heavy(long n) { for (long i = 0; i < n; i++) sink += i; }
    void extra(long n) { for (long i = 0; i < n; i++) sink += i; }
    void old(long n) { for (long i = 0; i < n; i++) sink += i; }
    int main(int argc, char **argv) {
        long scale = argc > 1 ? atol(argv[1]) : 1;
        for (int r = 0; r < 20; r++) { light(200000); heavy(200000 * scale); }
        if (argc > 1) extra(200000); else old(200000);
        return 0;
    }
"""


def test_flame_diff_of_real_runs(project):
    project.write("grows.c", GROWS)
    assert project.cprof("profile", "grows.c", "--tag", "before").returncode == 0
    assert_error(project.cprof("flame", "--diff"), 3, "diff needs two runs and only one is stored")
    ran = project.cprof("run", "--tag", "after", "--", "8")  # heavy does 8 times the work; extra replaces old
    assert ran.returncode == 0, ran.stderr
    made = project.cprof("flame", "--diff", "before", "after", "-o", "changes.svg")
    assert made.returncode == 0 and "wrote changes.svg" in made.stderr, made.stderr
    with open(f"{project.root}/changes.svg") as handle:
        svg = handle.read()
    frames = _frames(svg)
    assert "grew" in frames["heavy"]["classes"] and "A " in frames["heavy"]["title"]
    assert "new" in frames["extra"]["classes"] and "old" not in frames
    assert "gone from here (only in A): old" in frames["main"]["title"]
    assert "before → after: width B's inclusive time" in svg and "1 of A's paths gone" in svg
    # by calls nothing changed but the new and the missing path
    assert project.cprof("flame", "--diff", "before", "after", "--calls", "-o", "calls.svg").returncode == 0
    with open(f"{project.root}/calls.svg") as handle:
        calls = _frames(handle.read())
    assert "same" in calls["heavy"]["classes"] and "A 20, B 20: unchanged" in calls["heavy"]["title"]
    # `cprof diff` draws it for an .svg file; the table stays the default
    assert project.cprof("diff", "before", "after", "--output", "same.svg").returncode == 0
    with open(f"{project.root}/same.svg") as handle:
        assert "grew" in _frames(handle.read())["heavy"]["classes"]
    assert_error(project.cprof("flame", "--diff", "before", "after", "latest"), 2, "--diff compares two runs")
    assert_error(project.cprof("flame", "--diff", "nosuch", "after"), 3, "nosuch")
