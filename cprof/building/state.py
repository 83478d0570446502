"""What a build tree holds, kept across builds: every unit compiled and program linked there, from the wrappers'
log events, so that an incremental (or no-op) rebuild still knows all of it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from cprof.workspace import read_json


# Where CMake builds its own probes (compiler identification, try_compile), which it keeps after configuring.
_CMAKE_PROBE = re.compile(r"/CMakeFiles/(?:\d[^/]*|CMakeScratch|CMakeTmp)/")


def _file_ids(tree: str) -> set[tuple[int, int]]:
    ids = set()
    for directory, _dirs, names in os.walk(tree):
        for name in names:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            ids.add((stat.st_dev, stat.st_ino))
    return ids


@dataclass
class BuildState:
    """What a build tree holds, kept across builds so that an incremental (or no-op) rebuild still knows every
    unit and program in it: the wrapper's log events, keyed by the file each one produced (and, for units, the
    source). Entries whose file is gone (make clean, a configure probe that deleted its test program) are
    dropped."""

    units: dict[str, dict] = field(default_factory=dict)
    links: dict[str, dict] = field(default_factory=dict)
    build_id: int = 0
    identity: str = ""  # what the tree's objects were instrumented with (see _instrumentation_identity)

    @classmethod
    def load(cls, path: str) -> "BuildState":
        record = read_json(path, {})
        return cls(record.get("units", {}), record.get("links", {}), record.get("build_id", 0),
                   record.get("identity", ""))

    def add_log(self, log_path: str, tree: str | None = None) -> None:
        """Adds one build's events, then forgets what that build (or `make clean`) deleted. A product that was
        renamed, as zlib moves objs/x.o to x.lo, is still found in `tree` by its inode."""
        self.build_id += 1
        try:
            with open(log_path, encoding="utf-8") as handle:
                events = [json.loads(line) for line in handle if line.strip()]
        except OSError:
            events = []
        for event in events:
            if event.get("event") == "link":
                self.links[event["built"]] = event
            else:
                event["build"] = self.build_id
                self.units[event["product"] + "\0" + event["source"]] = event
        # CMake's probes are kept after configuring, in its own directories: they are not the user's
        self.units = {k: e for k, e in self.units.items() if not _CMAKE_PROBE.search(e["product"])}
        self.links = {k: e for k, e in self.links.items() if os.path.exists(k) and not _CMAKE_PROBE.search(k)}
        # (a probe that compiles to /dev/null made no object)
        moved = [e for e in self.units.values() if not os.path.isfile(e["product"])]
        renamed = _file_ids(tree) if tree and any(e.get("file_id") for e in moved) else set()
        # (a probe's source is deleted with its object, whose inode a later object may well get)
        self.units = {k: e for k, e in self.units.items() if os.path.isfile(e["product"])
                      or (tuple(e.get("file_id") or ()) in renamed and os.path.exists(e["source"]))}

    def save(self, path: str) -> None:
        # compact and unsorted, unlike the store's other records: this one lists every function of the build
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"units": self.units, "links": self.links, "build_id": self.build_id,
                       "identity": self.identity}, handle, separators=(",", ":"))
        os.replace(temporary, path)
