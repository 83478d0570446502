"""Shared fixtures: an isolated project directory and run store per test, and a way to call the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = os.path.join(REPO, "cprof", "schemas")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


class Project:
    """A scratch project directory with its own .cprof store; `cprof(...)` runs the installed CLI in it."""

    def __init__(self, root: str):
        self.root = root

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(text))
        return path

    def cprof(self, *args: str, stdin: str | None = None, timeout: float = 300, env: dict | None = None) -> Result:
        full_env = dict(os.environ, CPROF_HOME=os.path.join(self.root, ".cprof"),
                        CPROF_CACHE_DIR=os.path.join(self.root, "cache"))
        full_env.pop("NO_COLOR", None)
        full_env.update(env or {})
        process = subprocess.run([sys.executable, "-m", "cprof", *args], cwd=self.root, capture_output=True,
                                 text=True, input=stdin, timeout=timeout, env=full_env)
        return Result(process.returncode, process.stdout, process.stderr)

    def run(self, *argv: str, timeout: float = 120) -> Result:
        process = subprocess.run(list(argv), cwd=self.root, capture_output=True, text=True, timeout=timeout)
        return Result(process.returncode, process.stdout, process.stderr)


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(str(tmp_path))


def validate(document: dict, schema_name: str) -> None:
    import jsonschema

    with open(os.path.join(SCHEMAS, schema_name)) as handle:
        jsonschema.validate(document, json.load(handle))


def by_name(report: dict) -> dict:
    return {f["name"]: f for f in report["functions"]}
