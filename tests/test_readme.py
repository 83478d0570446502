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
