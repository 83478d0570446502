"""The instrumentation cache: a unit whose preprocessed text, filters and paths were seen before is not parsed
again. Entries hold only the splice plan (sites and offsets), a few KiB even for sqlite3."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict

from cprof import __version__
from cprof.instrument.unit import FunctionEntry, InstrumentedUnit, PathMap
from cprof.instrument.splice import Site


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cprof", "units")


class UnitCache:
    def __init__(self, directory: str, guard_header: str):
        self.directory = directory
        with open(guard_header, "rb") as handle:
            self._salt = hashlib.sha256(__version__.encode() + handle.read()).hexdigest()

    def key(self, text: str, filter_key: str, paths: PathMap) -> str:
        digest = hashlib.sha256()
        digest.update(self._salt.encode())
        digest.update(repr((filter_key, paths.cwd, paths.shadow_root, paths.project_root)).encode())
        digest.update(text.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key[2:] + ".json")

    def load(self, key: str) -> InstrumentedUnit | None:
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                plan = json.load(handle)
            return InstrumentedUnit(
                functions=[FunctionEntry(*f) for f in plan["functions"]],
                matched_filters=set(plan["matched"]),
                sites=[Site(*s) for s in plan["sites"]],
                table_offset=plan["table_offset"],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, unit: InstrumentedUnit) -> None:
        plan = {
            "functions": [list(asdict(f).values()) for f in unit.functions],
            "matched": sorted(unit.matched_filters),
            "sites": [list(asdict(s).values()) for s in unit.sites],
            "table_offset": unit.table_offset,
        }
        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # write then rename: parallel compilers of the same unit never see half an entry
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(plan, handle)
            os.replace(temporary, path)
        except OSError:
            pass  # a cache that cannot be written only costs time
