"""The instrumentation cache: a unit whose preprocessed text, filters and paths were seen before is not parsed
again (entries hold only the splice plan: sites and offsets, a few KiB even for sqlite3), and an instrumented unit
compiled before with the same compiler and options is not compiled again (the object and the compiler's messages
are kept). Every compile of a build runs in its own short-lived process, so this module imports little."""

from __future__ import annotations

import hashlib
import json
import os

from cprof import __version__

# Bumped whenever what a splice plan holds, or what the instrumenter decides for the same text, changes.
PLAN_FORMAT = 8

# Objects take room (a few MB for Lua, tens for sqlite3): past this, the least recently used go.
DEFAULT_OBJECT_LIMIT = 1 << 30
_TRIM_EVERY = 64  # one store in this many checks the size (a directory walk)


# Segment entries this process has read or written, by path: entries never change once written (their key is a
# hash of what they describe), so a long-lived build worker can keep them. Bounded, so that it never grows without
# end.
_segments_read: dict[str, dict] = {}
_SEGMENTS_KEPT = 50_000


def _remember(path: str, entry: dict) -> None:
    if len(_segments_read) >= _SEGMENTS_KEPT:
        _segments_read.clear()
    _segments_read[path] = entry


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cprof", "units")


def _write_atomically(path: str, data: bytes) -> None:
    # write then rename: parallel compilers of the same unit never see half an entry
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


class UnitCache:
    def __init__(self, directory: str, guard_header: str, object_limit: int = DEFAULT_OBJECT_LIMIT):
        self.directory = directory
        self.object_limit = object_limit
        with open(guard_header, "rb") as handle:
            self._salt = hashlib.sha256(f"{__version__}\0{PLAN_FORMAT}\0".encode() + handle.read()).hexdigest()

    def key(self, text: str, filter_key: str, path_key: tuple) -> str:
        """The splice plan depends on the text, the filters, and how line-marker paths map to the user's files."""
        digest = hashlib.sha256()
        digest.update(self._salt.encode())
        digest.update(repr((filter_key, path_key)).encode())
        digest.update(text.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _path(self, kind: str, key: str, suffix: str) -> str:
        return os.path.join(self.directory, kind, key[:2], key[2:] + suffix)

    def load_plan(self, key: str) -> dict | None:
        try:
            with open(self._path("plans", key, ".json"), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def store_plan(self, key: str, plan: dict) -> None:
        path = self._path("plans", key, ".json")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomically(path, json.dumps(plan).encode())
        except OSError:
            pass  # a cache that cannot be written only costs time

    def load_segment(self, key: str) -> dict | None:
        """What a header segment declares or how an include scans (cprof/instrument/parse.py, scan.py), from an
        earlier unit of any build. A build worker serves many units: what it read once it keeps, decoded."""
        path = self._path("segments", self._salted(key), ".json")
        entry = _segments_read.get(path)
        if entry is not None:
            return entry
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        _remember(path, entry)
        return entry

    def store_segment(self, key: str, entry: dict) -> None:
        path = self._path("segments", self._salted(key), ".json")
        _remember(path, entry)
        if os.path.exists(path):  # the same header text always declares the same: a parallel unit wrote it
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomically(path, json.dumps(entry, separators=(",", ":")).encode())
        except OSError:
            pass

    def _salted(self, key: str) -> str:
        return hashlib.sha256((self._salt + key).encode()).hexdigest()

    @staticmethod
    def object_key(unit_key: str, compiler: str, options: list[str], cwd: str) -> str:
        """An object is the instrumented text (given by the unit key) compiled by one compiler binary with one set
        of options in one directory (the debug info records it)."""
        try:
            real = os.path.realpath(compiler)
            stat = os.stat(real)
            identity = (real, stat.st_size, stat.st_mtime_ns)
        except OSError:
            identity = (compiler,)
        digest = hashlib.sha256(unit_key.encode())
        digest.update(json.dumps([identity, options, cwd]).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def load_object(self, key: str, destination: str) -> bytes | None:
        """Copies a cached object to `destination`; returns the compiler's messages from when it was made, or None
        when there is no such object."""
        path = self._path("objects", key, ".o")
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            os.utime(path)  # recently used: kept longest when the cache is trimmed
        except OSError:
            return None
        try:
            with open(path[:-2] + ".err", "rb") as handle:
                messages = handle.read()
        except OSError:
            messages = b""
        # a copy, not a link: tools such as strip or objcopy may rewrite the build's object in place
        try:
            with open(destination, "wb") as handle:
                handle.write(data)
        except OSError:
            return None  # the compiler will say what is wrong with the destination
        return messages

    def store_object(self, key: str, object_path: str, messages: bytes) -> None:
        path = self._path("objects", key, ".o")
        if not os.path.isfile(object_path):  # `-o /dev/null` (configure probes): there is no object to keep
            return
        try:
            with open(object_path, "rb") as handle:
                data = handle.read()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomically(path[:-2] + ".err", messages)  # before the object: a found object has its messages
            _write_atomically(path, data)
        except OSError:
            return
        if os.urandom(1)[0] % _TRIM_EVERY == 0:
            self.trim()

    def trim(self) -> None:
        """Removes the least recently used objects until the cache is under its limit."""
        entries, total = [], 0
        for root, _dirs, files in os.walk(os.path.join(self.directory, "objects")):
            for name in files:
                path = os.path.join(root, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                total += stat.st_size
                if name.endswith(".o"):
                    entries.append((stat.st_mtime_ns, path, stat.st_size))
        for _mtime, path, size in sorted(entries):
            if total <= self.object_limit * 0.8:  # some headroom, so that trimming is rare
                break
            for victim in (path, path[:-2] + ".err"):
                try:
                    os.remove(victim)
                except OSError:
                    pass
            total -= size
