"""Which functions to instrument: --fn / --exact / --file / --exclude-fn / --exclude-file."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FunctionFilter:
    functions: tuple[str, ...] = ()
    exact: bool = False
    files: tuple[str, ...] = ()
    exclude_functions: tuple[str, ...] = ()
    exclude_files: tuple[str, ...] = ()
    # always_inline functions are left out unless asked for (see skips.skip_reason)
    always_inline: bool = False
    # functions only counted, not timed: names, or identities "file:line:name"
    counted: tuple[str, ...] = ()
    # what an adaptive build learnt: each function its learning run judged, one per line of a file ("count\t" or
    # "time\t", then its identity: thousands would not fit the environment that carries the filter to every
    # compiler call), and the hash of that file, which cache keys see
    learned_file: str = ""
    learned_digest: str = ""

    def is_empty(self) -> bool:
        return not (self.functions or self.files or self.exclude_functions or self.exclude_files)

    def key(self) -> str:
        """A stable text for cache keys."""
        return repr((self.functions, self.exact, self.files, self.exclude_functions, self.exclude_files,
                     self.always_inline, self.counted, self.learned_digest))

    @property
    def adaptive(self) -> bool:
        """Whether some functions are to be counted only (an adaptive build)."""
        return bool(self.counted or self.learned_file)

    def counts_only(self, name: str, file: str, line: int) -> bool:
        """Whether the function gets a count-only guard."""
        identity = f"{file}:{line}:{name}"
        return (name in self.counted or identity in self.counted
                or identity in self.learned_counted)

    @property
    def learned_counted(self) -> frozenset[str]:
        """The identities an adaptive build's learning run said to count."""
        return _learned(self.learned_file, self.learned_digest)[0]

    def rare_when_learning(self, name: str, file: str, line: int) -> bool:
        """Whether an adaptive build's learning run called the function too rarely to judge it by, if at all
        (model/adaptive.py, timed_identities); small.py counts such a function if it is small."""
        if not self.learned_file:
            return False
        identity = f"{file}:{line}:{name}"
        counted, timed = _learned(self.learned_file, self.learned_digest)
        return identity not in counted and identity not in timed

    def counts_somewhere(self, name: str) -> bool:
        """Whether a function of this name, defined in whichever unit, may get a count-only guard (another unit's
        function a plain copy calls: offcopy.py). One the learning run did not judge may: its own unit counts it
        if it is a small leaf (small.py), which only that unit's text can tell. Taking it for counted costs its
        callers a copy they may not need; taking it for timed would leave their increments running when
        profiling is switched off."""
        # a plain name ("name") and an identity ("file:line:name") both end in the name
        if any(entry.rpartition(":")[2] == name for entry in self.counted):
            return True
        if not self.learned_file:
            return False
        counted, timed = _names(self.learned_file, self.learned_digest)
        return name in counted or name not in timed

    def _name_matches(self, pattern: str, name: str) -> bool:
        return name == pattern if self.exact else pattern in name

    def selects(self, name: str, file: str, matched: set[str] | None = None) -> bool:
        """Whether a function is instrumented; patterns that matched it are added to `matched`."""
        matched = matched if matched is not None else set()
        hits = [p for p in self.functions if self._name_matches(p, name)]
        file_hits = [p for p in self.files if file_matches(p, file)]
        excluded = [p for p in self.exclude_functions if self._name_matches(p, name)]
        excluded_files = [p for p in self.exclude_files if file_matches(p, file)]
        matched.update(f"--fn {p}" for p in hits)
        matched.update(f"--file {p}" for p in file_hits)
        matched.update(f"--exclude-fn {p}" for p in excluded)
        matched.update(f"--exclude-file {p}" for p in excluded_files)
        if self.functions and not hits:
            return False
        if self.files and not file_hits:
            return False
        return not excluded and not excluded_files

    def all_patterns(self) -> list[str]:
        return (
            [f"--fn {p}" for p in self.functions]
            + [f"--file {p}" for p in self.files]
            + [f"--exclude-fn {p}" for p in self.exclude_functions]
            + [f"--exclude-file {p}" for p in self.exclude_files]
        )


LEARNED_COUNT, LEARNED_TIME = "count", "time"
_learned_read: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}


def learned_lines(counted: list[str], timed: list[str]) -> str:
    """A learned_file's text: the identities to count, and those the learning run called and timed."""
    return "".join(f"{verdict}\t{identity}\n" for verdict, identities in ((LEARNED_COUNT, counted),
                   (LEARNED_TIME, timed)) for identity in identities)


def _learned(path: str, digest: str) -> tuple[frozenset[str], frozenset[str]]:
    """The identities a learned_file counts and times, read once per process and content: the store rewrites the
    same file for every adaptive build, and one process (the Python API, a notebook) may make several."""
    if not path:
        return frozenset(), frozenset()
    if (path, digest) not in _learned_read:
        verdicts: dict[str, set[str]] = {LEARNED_COUNT: set(), LEARNED_TIME: set()}
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                verdict, _, identity = line.rstrip("\n").partition("\t")
                if identity and verdict in verdicts:
                    verdicts[verdict].add(identity)
        _learned_read[path, digest] = frozenset(verdicts[LEARNED_COUNT]), frozenset(verdicts[LEARNED_TIME])
    return _learned_read[path, digest]


@functools.lru_cache(maxsize=8)
def _names(path: str, digest: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names of the functions a learned_file counts and times (its identities are "file:line:name")."""
    counted, timed = _learned(path, digest)
    return (frozenset(identity.rpartition(":")[2] for identity in counted),
            frozenset(identity.rpartition(":")[2] for identity in timed))


def file_matches(pattern: str, file: str) -> bool:
    """A path or glob, matched against the whole path, its tail, or its base name."""
    if not file:
        return False
    pattern = pattern.rstrip("/")
    if fnmatch.fnmatchcase(file, pattern) or file.endswith("/" + pattern.lstrip("./")) or file == pattern:
        return True
    if os.path.isabs(pattern):
        return fnmatch.fnmatchcase(file, pattern)
    return fnmatch.fnmatchcase(file, "*/" + pattern) or fnmatch.fnmatchcase(os.path.basename(file), pattern)


_SOURCE_SUFFIXES = (".c", ".h", ".inc", ".def", ".y", ".l")


def patterns_no_source_mentions(function_filter: FunctionFilter, root: str, skip: set[str]) -> list[str]:
    """--fn and --file patterns that no C source or header under `root` mentions at all: before a long build,
    the likeliest typos. (Not proof: macros can paste a name together, and generated sources appear later.)"""
    wanted = {p: False for p in function_filter.functions}
    files = {p: False for p in function_filter.files}
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.join(directory, d) not in skip]
        for name in names:
            if not name.endswith(_SOURCE_SUFFIXES):
                continue
            path = os.path.join(directory, name)
            for pattern in files:
                files[pattern] = files[pattern] or file_matches(pattern, path)
            if not all(wanted.values()):
                try:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        text = handle.read()
                except OSError:
                    continue
                for pattern in wanted:
                    wanted[pattern] = wanted[pattern] or pattern in text
    return [f"--fn {p}" for p, seen in wanted.items() if not seen] + \
        [f"--file {p}" for p, seen in files.items() if not seen]


@dataclass
class UnmatchedFilter:
    pattern: str
    closest: list[str] = field(default_factory=list)


def unmatched_filters(
    function_filter: FunctionFilter, matched: set[str], names: set[str], files: set[str]
) -> list[UnmatchedFilter]:
    """Patterns that selected nothing anywhere in the build, each with the closest names we saw."""
    result = []
    for pattern in function_filter.all_patterns():
        if pattern in matched:
            continue
        flag, _, value = pattern.partition(" ")
        pool = names if flag.endswith("-fn") else {os.path.basename(f) for f in files} | files
        closest = difflib.get_close_matches(value, sorted(pool), n=5, cutoff=0.5)
        if not closest:
            closest = sorted(n for n in pool if value.lower() in n.lower())[:5]
        result.append(UnmatchedFilter(pattern, closest))
    return result
