"""Random programs (csmith, fixed seeds) print the same checksum and exit the same way plain and instrumented;
scripts/csmith_equivalence.py is the long version of this test (make csmith-300)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO

_spec = importlib.util.spec_from_file_location("csmith_equivalence",
                                               os.path.join(REPO, "scripts", "csmith_equivalence.py"))
csmith_equivalence = sys.modules["csmith_equivalence"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(csmith_equivalence)

# Seeds whose programs finish in well under a second here (csmith 2.3.0), so the test stays short.
SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 23, 24, 25, 26]


@pytest.mark.skipif(not shutil.which("csmith") or not os.path.isdir(csmith_equivalence.CSMITH_INCLUDE),
                    reason="csmith is not installed (make deps-test installs it)")
def test_random_programs_behave_the_same_instrumented(tmp_path):
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(lambda seed: csmith_equivalence.check_program(seed, str(tmp_path / str(seed))),
                                 SEEDS))
    failures = [f"seed {o.seed}: {o.detail}" for o in outcomes if o.status == "fail"]
    assert not failures, "\n".join(failures)
    passed = [o for o in outcomes if o.status == "pass"]
    assert len(passed) >= 20, [f"seed {o.seed}: {o.detail}" for o in outcomes if o.status == "skip"]
    assert all(o.detail.startswith("checksum = ") for o in passed)
