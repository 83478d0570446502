"""Groups from `profile --repeat` and `run --repeat`: the report shows per-function medians, diff compares medians
with their spread, and --fail-over catches a real regression but not a rerun of the same work.

The work is chosen so that noise is small next to the 20% budget: each run spends well over 200 ms (so that the
runtime calibrates its timer over the whole run) in a few calls of register-only loops (so that the guard's own
cost is negligible), and `varies` does `factor` times `steady`'s work. The two groups of unchanged work run side by
side, so that a machine busy with other work slows them alike; the regression (three times the work) is far larger
than such a change of pace."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from conftest import Project, by_name, validate
from test_cli import cprof_env, report_json
from test_errors import assert_error

from cprof.errors import EXIT_REGRESSION

WORK = """\
    #include <stdio.h>
    #include <stdlib.h>
    /* a multiply-add chain in registers: no memory traffic, so its time hardly moves from run to run */
    unsigned long steady(unsigned long x, long n) {
        for (long i = 0; i < n; i++) x = x * 6364136223846793005UL + 1;
        return x;
    }
    unsigned long varies(unsigned long x, long n) {
        for (long i = 0; i < n; i++) x = x * 6364136223846793005UL + 1;
        return x;
    }
    int main(int argc, char **argv) {
        long factor = atol(argv[1]);
        unsigned long x = 1;
        for (int r = 0; r < 10; r++) { x = steady(x, 20000000); x = varies(x, 20000000 * factor); }
        printf("done %lu\\n", x & 1);
        return 0;
    }
"""
RUNS = 5


def side_by_side(project: Project, groups: dict[str, int]) -> None:
    """`cprof run --repeat RUNS` for each tag -> factor, all at once: a busy machine (other processes) then slows
    every group alike, instead of whichever is measured while it is busiest."""
    processes = [subprocess.Popen([sys.executable, "-m", "cprof", "run", "--repeat", str(RUNS), "--tag", tag, "--",
                                   str(factor)], cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, env=cprof_env(project))
                 for tag, factor in groups.items()]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> Project:
    """Three groups of RUNS runs: `slower` from `profile --repeat`, doing three times the work in `varies`; then
    side by side `base` and `same`, doing the same work."""
    project = Project(str(tmp_path_factory.mktemp("groups")))
    project.write("work.c", WORK)
    result = project.cprof("profile", "work.c", "--args", "3", "--repeat", str(RUNS), "--tag", "slower")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("done ") == RUNS and f"of {RUNS} runs saved" in result.stderr
    side_by_side(project, {"base": 1, "same": 1})
    return project


def per_run(project: Project, group: dict) -> list[dict]:
    """Each run of a group, from its own report: function name -> record."""
    return [by_name(report_json(project, run_id)) for run_id in group["runs"]]


def test_report_of_a_group_shows_medians(groups):
    document = report_json(groups, "slower")
    group = document["group"]
    assert group["statistic"] == "median" and len(group["runs"]) == RUNS and group["complete"]
    assert document["run"]["id"] in group["runs"]  # the structure shown is the median run's
    functions = by_name(document)
    assert {name: f["calls"] for name, f in functions.items()} == {"main": 1, "steady": 10, "varies": 10}
    assert functions["varies"]["self_ns"] > functions["steady"]["self_ns"]  # three times the work
    runs = per_run(groups, group)
    for name in ("steady", "varies"):
        assert abs(functions[name]["self_ns"] - statistics.median(run[name]["self_ns"] for run in runs)) <= 1
    footer = groups.cprof("report", "slower").stdout
    assert f"every figure is the median over its {RUNS} runs" in footer and f"all {RUNS} complete" in footer
    tree = groups.cprof("report", "slower", "--tree").stdout
    assert f"call tree of run {document['run']['id']}, the median of group" in tree


def test_diff_of_groups_reports_medians_and_spread(groups):
    result = groups.cprof("diff", "base", "slower", "--json")
    assert result.returncode == 0
    document = result.json()
    validate(document, "diff-2.json")
    assert document["a"]["runs"] == document["b"]["runs"] == RUNS
    varies = {f["name"]: f for f in document["functions"]}["varies"]
    base = report_json(groups, "base")["group"]
    selves = [run["varies"]["self_ns"] for run in per_run(groups, base)]
    assert abs(varies["a"]["self_ns"] - statistics.median(selves)) <= 1
    assert abs(varies["a"]["spread_ns"] - (max(selves) - min(selves)) / 2) <= 1
    assert varies["noise_ns"] >= varies["a"]["spread_ns"] + varies["b"]["spread_ns"] - 1
    assert varies["delta_ns"] > varies["noise_ns"] and varies["significant"]
    assert varies["a"]["calls"] == varies["b"]["calls"] == 10
    text = groups.cprof("diff", "base", "slower").stdout
    assert text.startswith(f"A: base (median of {RUNS} runs)\nB: slower (median of {RUNS} runs)\n")
    varies_row = next(line.split() for line in text.splitlines() if line.startswith("varies "))
    assert varies_row[5].startswith("+") and float(varies_row[7].rstrip("%")) > 20  # Delta, Delta %
    assert "noise: the two groups' spread" in text


def test_real_regression_fails_the_budget_naming_it(groups):
    result = groups.cprof("diff", "base", "slower", "--fail-over", "20")
    line = assert_error(result, EXIT_REGRESSION)
    assert line.startswith("cprof: error: regression over 20%: varies rose ")  # the function first: where to look
    assert "steady" not in line


def test_unchanged_rerun_passes_the_budget(groups):
    result = groups.cprof("diff", "base", "same", "--fail-over", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    document = groups.cprof("diff", "base", "same", "--fail-over", "20", "--json").json()
    assert document["regressions"] == [] and document["fail_over_percent"] == 20
