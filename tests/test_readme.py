"""The README's result tables are exactly what scripts/readme_tables.py prints from the stored results: no figure
there without a script and a stored run behind it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def test_readme_tables_match_the_stored_results():
    with open(os.path.join(REPO, "README.md")) as handle:
        readme = handle.read()
    blocks = re.findall(r"<!-- results:(\w+) -->", readme)
    assert "projects" in blocks  # the tables exist, so that the check below checks something
    check = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "readme_tables.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_model_error_is_the_one_measured():
    """MODEL_ERROR widens every stated uncertainty: it must be the margin scripts/bench_accuracy.py derived, not a
    constant fitted by hand."""
    import json

    from cprof.model.correction import MODEL_ERROR

    with open(os.path.join(REPO, "benchmarks", "results", "accuracy.json")) as handle:
        stored = json.load(handle)
    assert MODEL_ERROR == stored["model_error"]["margin"]
    assert all(case["within_uncertainty"] for case in stored["model_error"]["cases"])


def test_the_count_cost_given_back_is_what_the_benchmarks_real_programs_paid():
    """COUNT_COST_NS is the median over scripts/bench_adaptive.py's programs of their extra time per counted call,
    not a constant fitted by hand: over the programs whose figure that run measured to 0.1 ns or better (plain's
    noise and its layout spread, over its counted calls). qsort+hash's few counted calls in half a second, or bc's
    layout, make theirs swing by more than any count costs, and the median of all moved 0.16-0.22 ns between runs."""
    import json
    import statistics

    from cprof.model.correction import COUNT_COST_NS

    with open(os.path.join(REPO, "benchmarks", "results", "adaptive.json")) as handle:
        stored = json.load(handle)
    measured = [p["count_cost_ns"] for p in stored["programs"] if p.get("count_cost_ns") is not None
                and (p["reference_noise_percent"] + p["layout_spread_percent"]) / 100 * p["plain_ms"] * 1e6
                / p["counted_calls"] <= 0.1]
    assert len(measured) >= 3 and COUNT_COST_NS == round(statistics.median(measured), 2)


def test_every_adaptive_sum_of_self_times_lies_within_its_stated_uncertainty():
    """What a count costs varies by program (cprof/model/correction.py's COUNT_ERROR_NS bounds it): whatever the
    adaptive mode gives back, the sum of self times each benchmark program's run stated must lie within the
    uncertainty the run stated of it, against the plain program's time (scripts/bench_adaptive.py), give or take
    how far that time itself moved between runs and with its code laid out otherwise (scripts/layouts.py: an
    instrumented build's code lies elsewhere, and GNU bc's plain program alone moves by a tenth with it)."""
    import json

    with open(os.path.join(REPO, "benchmarks", "results", "adaptive.json")) as handle:
        stored = json.load(handle)
    compared = [p for p in stored["programs"] if p.get("self_sum_error_percent") is not None]
    assert len(compared) >= 5
    outside = [p["name"] for p in compared if abs(p["self_sum_error_percent"])
               > p["self_sum_uncertainty_percent"] + p["reference_noise_percent"] + p["layout_spread_percent"]]
    assert not outside, outside
