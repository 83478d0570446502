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


def test_the_count_error_covers_every_measured_count_cost():
    """COUNT_ERROR_NS bounds what a count-only call may cost beyond its calibration: it must cover the largest
    cost per counted call that scripts/bench_adaptive.py measured."""
    import json

    from cprof.model.correction import COUNT_ERROR_NS

    with open(os.path.join(REPO, "benchmarks", "results", "adaptive.json")) as handle:
        stored = json.load(handle)
    measured = [p["count_cost_ns"] for p in stored["programs"] if p.get("count_cost_ns") is not None]
    assert measured and COUNT_ERROR_NS >= max(measured)
