"""The Python API (`import cprof`) on real runs: loading by every kind of reference, function records with the
JSON's fields, top(), the views the CLI draws, diffs with their noise and regressions, errors and warnings."""

from __future__ import annotations

import json
import os
import warnings

import pytest

import cprof
from conftest import Project, validate

SOURCE = """
    volatile long sink;
    __attribute__((noinline)) void work(int n) { for (int i = 0; i < n * 1000; i++) sink += i; }
    __attribute__((noinline)) void small(void) { work(1); }
    int main(int argc, char **argv) {
        int rounds = argc > 1 ? 2000 : 200;
        for (int i = 0; i < rounds; i++) work(3);
        for (int i = 0; i < 10; i++) small();
        return 0;
    }
"""


@pytest.fixture
def store(project: Project) -> str:
    """Two runs of one program, the second with more work (tagged before and after)."""
    project.write("prog.c", SOURCE)
    assert project.cprof("profile", "prog.c", "--tag", "before").returncode == 0
    assert project.cprof("profile", "prog.c", "--args", "more", "--tag", "after").returncode == 0
    return os.path.join(project.root, ".cprof")


def test_load_gives_the_runs_functions_with_the_reports_fields(project, store):
    run = cprof.load(home=store)
    assert run.id == cprof.load("after", home=store).id == cprof.load("latest", home=store).id
    assert cprof.load("latest~1", home=store).id == cprof.load("before", home=store).id
    assert run.command[-1] == "more" and run.exit_status == 0 and run.complete and not run.is_group
    work = run.function("work")
    assert work.calls == work["calls"] == 2010 and work.name == "work" and work.file.endswith("prog.c")
    # the same records as `cprof report --json --all`
    document = json.loads(project.cprof("report", "--json", "--all").stdout)
    assert run.functions() == document["functions"]
    assert run.to_json()["functions"] == document["functions"]
    validate(run.to_json(), "report-4.json")
    assert [f.name for f in run.top(2, by="calls")] == ["work", "small"]
    assert run.top(1)[0].name == "work"
    assert len(run.threads) == 1 and run.threads[0].root.children
    with pytest.raises(AttributeError, match="no field 'nope'"):
        work.nope


def test_every_view_the_cli_draws_is_one_call_away(store):
    run = cprof.load(home=store)
    assert run.render("table").splitlines()[0].startswith("Function")
    assert "work" in run.render("tree")
    svg = run.flamegraph()
    assert svg.startswith("<?xml") and 'data-n="work"' in svg
    assert run.render("pprof")[:2] == b"\x1f\x8b"  # gzip: a binary format comes back as bytes
    assert "<pre>" in run._repr_html_() and "work" in run._repr_html_()
    with pytest.raises(cprof.CprofError, match="no trace"):
        run.flamegraph(chart=True)


def test_diff_finds_the_regression_and_two_runs_of_the_same_code_pass(store, project):
    grown = cprof.diff("before", "after", home=store)
    rows = {row["name"]: row for row in grown.rows}
    assert rows["work"]["b"]["calls"] == 2010 and rows["work"]["a"]["calls"] == 210
    assert rows["work"]["delta_percent"] > 100
    assert grown.regressions(50) and "work rose" in grown.regressions(50)[0]
    assert grown.to_json()["functions"] == grown.rows
    assert "work" in grown.render("table") and grown.render("flame").startswith("<?xml")
    with pytest.warns(cprof.CprofWarning, match="same run"):
        same = cprof.diff(cprof.load("before", home=store), cprof.load("before", home=store), home=store)
    assert same.regressions(10) == []


def test_errors_are_cprof_errors_and_warnings_are_warnings(store, tmp_path):
    with pytest.raises(cprof.CprofError) as error:
        cprof.load("no-such-tag", home=store)
    assert error.value.exit_code == 3
    with pytest.raises(cprof.CprofError, match="no function 'missing'"):
        cprof.load(home=store).function("missing")
    with pytest.raises(cprof.CprofError, match="cannot sort by 'speed'"):
        cprof.load(home=store).top(by="speed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cprof.diff("before", "before", home=store)
    same = [w for w in caught if "same run" in str(w.message)]
    assert len(same) == 1 and same[0].category is cprof.CprofWarning


def test_to_dataframe_or_one_clear_error(store):
    run = cprof.load(home=store)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(cprof.CprofError, match="needs pandas"):
            run.to_dataframe()
        return
    frame = run.to_dataframe()
    assert list(frame["name"])[:1] == ["work"] and int(frame.set_index("name").loc["work", "calls"]) == 2010


def test_build_run_and_profile_from_python_with_typed_options(tmp_path):
    source = tmp_path / "prog.c"
    source.write_text(SOURCE)
    home = str(tmp_path / "store")
    built = cprof.build([str(source)], compiler_args=["-O1", "-g"], home=home, options=cprof.BuildOptions())
    assert built.summary.units_instrumented == 1 and not built.summary.fallbacks and built.counted == []
    assert built.summary.functions_instrumented == 3
    run = cprof.run(["more"], cprof.RunOptions(tag="first", heap=False), home=home)
    assert run.function("work").calls == 2010 and run.meta.get("status") == "finished"
    assert cprof.load("first", home=home).id == run.id
    group = cprof.profile([str(source)], args=["more"], home=home,
                          run_options=cprof.RunOptions(repeat=3, tag="three"))
    assert group.is_group and len(group.model.runs) == 3 and group.function("work").calls == 2010
    traced = cprof.run(options=cprof.RunOptions(trace=cprof.TraceOptions(min_duration_ns=0)), home=home)
    assert traced.flamegraph(chart=True).count('data-n="work"') >= 1
    with pytest.raises(cprof.CprofError, match="nothing to build"):
        cprof.build(home=home)
    with pytest.raises(cprof.CprofError, match="no program named 'nope'"):
        cprof.run(options=cprof.RunOptions(program="nope"), home=home)


def test_the_store_is_managed_from_python_as_the_cli_manages_it(project, store):
    before, after = cprof.load("before", home=store), cprof.load("after", home=store)
    assert cprof.tags(home=store) == {"before": before.id, "after": after.id}
    assert cprof.tag("best", "before", home=store) == (before.id, None)
    assert cprof.tag("best", home=store) == (after.id, before.id)  # moves to the latest
    assert cprof.untag("best", home=store) == after.id and "best" not in cprof.tags(home=store)
    with pytest.raises(cprof.CprofError, match="invalid tag name"):
        cprof.tag("latest", home=store)
    assert [entry.id for entry in cprof.runs(home=store)] == [before.id, after.id]
    merged = cprof.merge(["before", "after"], tag="both", home=store)
    assert merged.function("work").calls == 210 + 2010 and cprof.load("both", home=store).id == merged.id
    # what `cprof runs` lists, the API lists
    listing = project.cprof("runs").stdout
    assert all(entry.id in listing for entry in cprof.runs(home=store))
    assert cprof.prune(0, home=store) == 0  # every run is tagged
    assert cprof.remove(["both"], home=store) == 1 and "both" not in cprof.tags(home=store)
    with pytest.raises(cprof.CprofError, match="no run or tag named 'gone'"):
        cprof.remove(["after", "gone"], home=store)
    assert len(cprof.runs(home=store)) == 2  # one bad name removes nothing
    assert cprof.fallbacks(home=store) == []


def test_views_stream_into_files(store, tmp_path):
    import io

    run = cprof.load(home=store)
    out = io.StringIO()
    run.write(out, "folded")
    assert out.getvalue() == run.render("folded") and "main;work " in out.getvalue()
    from cprof.render.flame import FlameGraph
    from cprof.render.table import ReportOptions

    out = io.StringIO()
    run.write(out, FlameGraph(ReportOptions(top=None), "my title"))
    assert "my title" in out.getvalue()
    with pytest.warns(cprof.CprofWarning):
        comparison = cprof.diff("after", "after", home=store)
    out = io.StringIO()
    comparison.write(out, "json")
    assert json.loads(out.getvalue())["functions"] == comparison.rows


def test_the_api_is_typed_and_every_public_name_is_reachable():
    import importlib.resources

    assert importlib.resources.files("cprof").joinpath("py.typed").is_file()  # PEP 561: type checkers read the hints
    for name in cprof.__all__:
        assert getattr(cprof, name) is not None
    assert cprof.load.__doc__ and cprof.Run.top.__doc__ and cprof.diff.__doc__


LEAF = """
    volatile long sink;
    __attribute__((noinline)) void leaf_NAME(int i) { sink += i; }
    int main(void) { for (int i = 0; i < 200000; i++) leaf_NAME(i); return 0; }
"""


def test_adaptive_builds_of_two_programs_in_one_process_each_count_their_own(tmp_path):
    """The counted functions reach the instrumenter through a file of the store, rewritten for every adaptive
    build: a process that builds twice (a notebook, a benchmark script) must not keep the first build's list."""
    home = str(tmp_path / "store")
    for name in ("first", "second"):
        source = tmp_path / f"{name}.c"
        source.write_text(LEAF.replace("NAME", name))
        run = cprof.profile([str(source)], output=name, home=home, build_options=cprof.BuildOptions(adaptive=True),
                            run_options=cprof.RunOptions(output_to_stderr=True))
        leaf = run.function(f"leaf_{name}")
        assert leaf.calls == 200000 and not leaf.timed, name
