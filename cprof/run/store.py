"""The run store: `.cprof/` in the project (CPROF_HOME overrides). Runs are directories named by sortable ids,
holding one run file per process and a meta.json; tags and groups are small JSON files beside them."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass

from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError

ENV_HOME = "CPROF_HOME"
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}-\d+$")


def home() -> str:
    return os.path.abspath(os.environ.get(ENV_HOME) or ".cprof")


def new_run_id(unix_seconds: float | None = None) -> str:
    """Same format as format_run_id() in csrc/runtime.c: UTC time to the microsecond, then the pid."""
    now = time.time() if unix_seconds is None else unix_seconds
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1e6) % 1000000:06d}-{os.getpid()}"


def write_json_atomic(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(temporary, path)


def read_json(path: str, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


@dataclass
class RunEntry:
    id: str
    path: str
    meta: dict

    @property
    def group(self) -> str | None:
        return self.meta.get("group")


class Store:
    def __init__(self, root: str | None = None):
        self.root = root or home()

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, "runs")

    @property
    def build_dir(self) -> str:
        return os.path.join(self.root, "build")

    def _tags_path(self) -> str:
        return os.path.join(self.root, "tags.json")

    def create_run(self, meta: dict) -> RunEntry:
        os.makedirs(self.runs_dir, exist_ok=True)
        while True:  # ids carry the pid and microseconds; mkdir settles the rare tie between two launchers
            run_id = new_run_id()
            path = os.path.join(self.runs_dir, run_id)
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                time.sleep(0.000001)
        entry = RunEntry(run_id, path, dict(meta))
        self.save_meta(entry)
        return entry

    def save_meta(self, entry: RunEntry) -> None:
        write_json_atomic(os.path.join(entry.path, "meta.json"), entry.meta)

    def runs(self) -> list[RunEntry]:
        try:
            names = sorted(n for n in os.listdir(self.runs_dir) if _RUN_ID.match(n))
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            path = os.path.join(self.runs_dir, name)
            if not any(f.endswith(".cprof") for f in os.listdir(path)):
                continue
            entries.append(RunEntry(name, path, read_json(os.path.join(path, "meta.json"), {}) or {}))
        return entries

    # ---- tags ----

    def tags(self) -> dict[str, str]:
        return read_json(self._tags_path(), {}) or {}

    def tag(self, name: str, run_id: str) -> None:
        validate_tag(name)
        tags = self.tags()
        tags[name] = run_id
        write_json_atomic(self._tags_path(), tags)

    def untag(self, name: str) -> None:
        tags = self.tags()
        if name not in tags:
            raise CprofError(f"no tag named '{name}'", EXIT_NOT_FOUND)
        del tags[name]
        write_json_atomic(self._tags_path(), tags)

    # ---- lookup ----

    def resolve(self, reference: str | None) -> list[RunEntry]:
        """A run or a group of runs from: nothing (the latest), a tag, a run id (or a unique prefix), `latest`,
        `latest~N`, or a path to a run directory or run file. A group (from `profile --repeat`) resolves to
        all its runs."""
        runs = self.runs()
        if reference and os.path.exists(reference) and (os.sep in reference or reference.endswith(".cprof")):
            path = os.path.abspath(reference)
            directory = path if os.path.isdir(path) else os.path.dirname(path)
            meta = read_json(os.path.join(directory, "meta.json"), {}) or {}
            if os.path.isfile(path):
                meta = dict(meta, only_file=os.path.basename(path))
            return [RunEntry(os.path.basename(directory), directory, meta)]
        if not runs:
            raise CprofError(f"no runs yet in {self.runs_dir}; profile something with 'cprof profile'", EXIT_NOT_FOUND)
        if reference is None or reference == "latest":
            return self._with_group(runs, runs[-1])
        match = re.fullmatch(r"latest~(\d+)", reference)
        if match:
            distinct = self._distinct(runs)
            back = int(match.group(1))
            if back >= len(distinct):
                raise CprofError(f"only {len(distinct)} runs are stored; '{reference}' goes back too far", EXIT_NOT_FOUND)
            return distinct[-1 - back]
        tags = self.tags()
        if reference in tags:
            target = tags[reference]
            found = [r for r in runs if r.id == target or r.group == target]
            if not found:
                raise CprofError(f"tag '{reference}' points at run {target}, which was removed", EXIT_NOT_FOUND)
            return found
        found = [r for r in runs if r.group == reference]
        if found:
            return found
        found = [r for r in runs if r.id.startswith(reference)]
        if len(found) == 1:
            return self._with_group(runs, found[0])
        if len(found) > 1:
            raise CprofError(f"'{reference}' matches {len(found)} runs; give more of the id", EXIT_USAGE)
        known = ", ".join(sorted(tags)) or "none"
        raise CprofError(f"no run or tag named '{reference}' (tags: {known})", EXIT_NOT_FOUND)

    @staticmethod
    def _with_group(runs: list[RunEntry], entry: RunEntry) -> list[RunEntry]:
        if entry.group:
            return [r for r in runs if r.group == entry.group]
        return [entry]

    def _distinct(self, runs: list[RunEntry]) -> list[list[RunEntry]]:
        """Runs with groups folded: each element is one run or one whole group, oldest first."""
        out: list[list[RunEntry]] = []
        for run in runs:
            if run.group and out and out[-1][0].group == run.group:
                out[-1].append(run)
            else:
                out.append([run])
        return out

    def remove(self, entries: list[RunEntry]) -> None:
        for entry in entries:
            shutil.rmtree(entry.path, ignore_errors=True)
        removed = {e.id for e in entries} | {e.group for e in entries if e.group}
        tags = {name: target for name, target in self.tags().items() if target not in removed}
        write_json_atomic(self._tags_path(), tags)


def validate_tag(name: str) -> None:
    if not _TAG_NAME.match(name) or _RUN_ID.match(name) or name.startswith("latest"):
        raise CprofError(
            f"invalid tag name '{name}': use letters, digits, '.', '_' or '-' (up to 64, not starting with "
            "'.' or '-', not 'latest' or a run id)",
            EXIT_USAGE,
        )
