"""The run store: `.cprof/` in the project (CPROF_HOME overrides). Runs are directories named by sortable ids,
holding one run file per process and a meta.json; tags and groups are small JSON files beside them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass

from cprof.errors import EXIT_CORRUPT, EXIT_NOT_FOUND, EXIT_USAGE, CprofError

ENV_HOME = "CPROF_HOME"
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}-\d+$")
_LATEST = re.compile(r"^latest(?:~(\d+))?$")


def home() -> str:
    return os.path.abspath(os.environ.get(ENV_HOME) or ".cprof")


def new_run_id(unix_seconds: float | None = None) -> str:
    """Same format as format_run_id() in csrc/process.c: UTC time to the microsecond, then the pid."""
    now = time.time() if unix_seconds is None else unix_seconds
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1e6) % 1000000:06d}-{os.getpid()}"


def write_json_atomic(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(temporary, path)


def read_json(path: str, default=None, tolerate_damage: bool = False):
    """A store file's content, or `default` when there is none. A file that is there but cannot be read or is not
    a JSON object is an error (exit 5) naming it: read as empty, the next write would replace everything it held
    (every other tag, say). Only files that are a cache of something else pass tolerate_damage."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
        if isinstance(value, dict):
            return value
        reason = f"holds a JSON {type(value).__name__}, not an object"
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else f"not valid JSON ({error})"
    if tolerate_damage:
        return default
    raise CprofError(f"damaged store file {path}: {reason}; it was left as it is (repair or remove it)",
                     EXIT_CORRUPT)


@dataclass
class RunEntry:
    id: str
    path: str
    meta: dict
    whole_group: bool = False  # resolved as part of a whole group (a tag on it then names the group)

    @property
    def group(self) -> str | None:
        return self.meta.get("group")


def target_of(entries: list[RunEntry]) -> str:
    """What a tag on these entries points at: the group when they are a whole group, else the run."""
    if entries[0].group and entries[0].whole_group:
        return entries[0].group
    return entries[0].id


class Store:
    def __init__(self, root: str | None = None):
        self.root = root or home()

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, "runs")

    @property
    def build_dir(self) -> str:
        return os.path.join(self.root, "build")

    def problem(self) -> str | None:
        """Why runs cannot be stored here (None when they can): the store is made if need be, and a file is
        written and removed in it, as `cprof run` would."""
        try:
            os.makedirs(self.runs_dir, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.runs_dir, prefix=".probe-")
            os.close(fd)
            os.remove(probe)
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            return f"{error.strerror}{where}; set {ENV_HOME} to a writable folder"
        return None

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
        """Stored runs, oldest first. A directory without a run file yet (a program still starting, or one
        that was not instrumented) is not a run."""
        try:
            names = sorted(n for n in os.listdir(self.runs_dir) if _RUN_ID.match(n))
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            path = os.path.join(self.runs_dir, name)
            try:
                if not any(f.endswith(".cprof") for f in os.listdir(path)):
                    continue
            except (FileNotFoundError, NotADirectoryError):  # removed by a concurrent `cprof runs rm`
                continue
            entries.append(RunEntry(name, path, read_json(os.path.join(path, "meta.json"), {})))
        return entries

    # ---- tags ----

    @contextlib.contextmanager
    def _tags_locked(self):
        """Tags are read, changed and written back; the lock keeps concurrent cprof commands from losing tags."""
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "tags.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tags = self.tags()
            yield tags
            write_json_atomic(self._tags_path(), tags)

    def tags(self) -> dict[str, str]:
        tags = read_json(self._tags_path(), {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise CprofError(f"damaged store file {self._tags_path()}: tags must map names to run ids; it was left "
                             "as it is (repair or remove it)", EXIT_CORRUPT)
        return tags

    def tag(self, name: str, target: str) -> str | None:
        """Points tag `name` at a run or group id; returns what it pointed at before, if anything."""
        validate_tag(name)
        with self._tags_locked() as tags:
            previous = tags.get(name)
            tags[name] = target
        return previous

    def untag(self, name: str) -> str:
        with self._tags_locked() as tags:
            if name not in tags:
                known = ", ".join(sorted(tags)) or "none"
                raise CprofError(f"no tag named '{name}' (tags: {known})", EXIT_NOT_FOUND)
            return tags.pop(name)

    # ---- lookup ----

    def resolve(self, reference: str | None) -> list[RunEntry]:
        """A run or a group of runs from: nothing (the latest), a tag, a run id (or a unique prefix), a group id,
        `latest`, `latest~N`, or a path to a run directory or run file. `latest` and tags name whole groups (from
        `profile --repeat`); a run id names that one run."""
        if reference == "":  # would otherwise prefix-match every run: `cprof runs rm ""` must not remove them all
            raise CprofError("an empty name names no run", EXIT_USAGE)
        if reference is not None and (os.sep in reference or reference.endswith(".cprof")):
            return [self._from_path(reference)]
        runs = self.runs()
        if not runs:
            raise CprofError(f"no runs yet in {self.runs_dir}; profile something with 'cprof profile'", EXIT_NOT_FOUND)
        latest = _LATEST.match(reference or "latest")
        if latest:
            distinct = self.distinct(runs)
            back = int(latest.group(1) or 0)
            if back >= len(distinct):
                stored = f"{len(distinct)} run{' is' if len(distinct) == 1 else 's are'}"
                raise CprofError(f"only {stored} stored; '{reference}' goes back too far", EXIT_NOT_FOUND)
            return distinct[-1 - back]
        tags = self.tags()
        if reference in tags:
            target = tags[reference]
            found = [r for r in runs if r.id == target or r.group == target]
            if not found:
                raise CprofError(f"tag '{reference}' points at {target}, which was removed", EXIT_NOT_FOUND)
            return _whole_group(found)
        found = [r for r in runs if r.group == reference]
        if found:
            return _whole_group(found)
        found = [r for r in runs if r.id.startswith(reference)]
        if len(found) == 1:
            return found
        if len(found) > 1:
            raise CprofError(f"'{reference}' matches {len(found)} runs; give more of the id", EXIT_USAGE)
        known = ", ".join(sorted(tags)) or "none"
        raise CprofError(f"no run or tag named '{reference}' (tags: {known})", EXIT_NOT_FOUND)

    def _from_path(self, reference: str) -> RunEntry:
        path = os.path.abspath(reference)
        if not os.path.exists(path):
            raise CprofError(f"no such run directory or file: {reference}", EXIT_NOT_FOUND)
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        meta = read_json(os.path.join(directory, "meta.json"), {})
        if directory != path:
            meta = dict(meta, only_file=os.path.basename(path))
        return RunEntry(os.path.basename(directory), directory, meta)

    @staticmethod
    def distinct(runs: list[RunEntry]) -> list[list[RunEntry]]:
        """Runs with groups folded: each element is one run or one whole group, oldest first."""
        out: list[list[RunEntry]] = []
        for run in runs:
            if run.group and out and out[-1][0].group == run.group:
                out[-1].append(run)
            else:
                out.append([run])
        return [_whole_group(unit) for unit in out]

    def remove(self, entries: list[RunEntry]) -> None:
        # the tags are read (and a damaged tags file refused) before anything is deleted
        with self._tags_locked() as tags:
            for entry in entries:
                shutil.rmtree(entry.path, ignore_errors=True)
            gone = {e.id for e in entries}
            remaining_groups = {r.group for r in self.runs() if r.group}
            removed = gone | {e.group for e in entries if e.group and e.group not in remaining_groups}
            for name in [name for name, target in tags.items() if target in removed]:
                del tags[name]


def _whole_group(entries: list[RunEntry]) -> list[RunEntry]:
    """Marks entries that stand for a whole group, so that tagging them tags the group."""
    for entry in entries:
        entry.whole_group = bool(entry.group)
    return entries


def validate_tag(name: str) -> None:
    if not _TAG_NAME.match(name) or _RUN_ID.match(name) or _LATEST.match(name):
        raise CprofError(
            f"invalid tag name '{name}': use letters, digits, '.', '_' or '-' (up to 64, not starting with "
            "'.' or '-', not 'latest' or a run id)",
            EXIT_USAGE,
        )
