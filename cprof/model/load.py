"""Loading runs from the store by reference (latest, tag, id, path) into Run objects, recovering what a damaged run
directory still holds, and seeing a group from `profile --repeat` as one run of per-function medians."""

from __future__ import annotations

import glob
import os
import statistics
import warnings

from cprof.errors import EXIT_CORRUPT, EXIT_NOT_FOUND, CprofError, CprofWarning
from cprof.model.run import (FUNCTION_COUNTERS, FUNCTION_TIMES, FunctionKey, FunctionStats, ProcessData, Run,
                             load_process, raw_reason)
from cprof.runfile import COUNT
from cprof.workspace import RunEntry, Store

# the FunctionStats fields a group reports the median of; counts stay whole numbers
_COUNT_FIELDS = tuple(c.attribute for c in FUNCTION_COUNTERS if c.unit == COUNT)
_TIME_FIELDS = FUNCTION_TIMES + tuple(c.attribute for c in FUNCTION_COUNTERS if c.unit != COUNT)


def _warn(message: str) -> None:
    warnings.warn(message, CprofWarning, stacklevel=3)


def run_files(entry: RunEntry) -> list[str]:
    """The paths of a run's run files (one per process), or the one file a path reference named."""
    if entry.meta.get("only_file"):
        return [os.path.join(entry.path, entry.meta["only_file"])]
    return sorted(glob.glob(os.path.join(entry.path, "*.cprof")))


def _load_file(path: str) -> ProcessData:
    if not os.path.isfile(path):  # a FIFO would block the reader forever
        raise CprofError(f"corrupt run file {path}: not a regular file", EXIT_CORRUPT)
    process = load_process(path)
    # a file cut short (copied while written, disk full) can still carry the "complete" trailer at its start
    size, used = os.path.getsize(path), process.header["used_bytes"]
    if size < used:
        _warn(f"{path} is truncated ({size:,} of {used:,} bytes); showing what it holds")
        process.complete = False
    return process


def load_run(entry: RunEntry) -> Run:
    """Every readable process of a run; a corrupt run file among good ones is skipped with a warning, and only a
    run with nothing readable is an error."""
    files = run_files(entry)
    if not files:
        raise CprofError(f"no run files in {entry.path} (did the program run any instrumented code?)", EXIT_NOT_FOUND)
    processes, skipped = [], []
    for path in files:
        try:
            processes.append(_load_file(path))
        except CprofError as error:
            if error.exit_code != EXIT_CORRUPT:
                raise
            skipped.append(error)
    if not processes:
        raise skipped[0]
    for error in skipped:
        _warn(f"skipped {error.message}")
    main_pid = entry.meta.get("pid")
    processes.sort(key=lambda p: (p.pid != main_pid, p.header["start_unix_ns"]))  # the main process first
    return Run(entry.id, entry.path, entry.meta, processes)


def load_runs(store: Store, reference: str | None) -> list[Run]:
    """All runs a reference names: one run, or every run of a `profile --repeat` group."""
    return [load_run(entry) for entry in store.resolve(reference)]


def load_view(store: Store, reference: str | None) -> "Run | GroupRun":
    """What `cprof report` shows for a reference: the run, or a whole group as one GroupRun."""
    runs = load_runs(store, reference)
    return GroupRun(runs) if len(runs) > 1 else runs[0]


def function_samples(runs: list[Run], corrected: bool) -> dict[FunctionKey, list[FunctionStats | None]]:
    """Each function's statistics in every run, None where a run never called it."""
    samples: dict[FunctionKey, list[FunctionStats | None]] = {}
    for index, run in enumerate(runs):
        for item in run.functions(corrected):
            samples.setdefault(item.key, [None] * len(runs))[index] = item
    return samples


def median_of(values) -> float:
    return float(statistics.median(values))


class GroupRun:
    """A group of runs seen as one run: each per-function figure is the median over the runs (a run that never
    called the function counts as zero), and the structure (processes, threads, call tree, timer) is that of the
    group's median run by total self time."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.id = runs[0].meta.get("group") or runs[0].id
        totals = [sum(f.self_ns for f in run.functions()) for run in runs]
        middle = sorted(range(len(runs)), key=lambda i: totals[i])[(len(runs) - 1) // 2]
        self.representative = runs[middle]
        self._functions: dict[bool, list[FunctionStats]] = {}

    # the structure of the median run
    @property
    def meta(self) -> dict:
        return self.representative.meta

    @property
    def path(self) -> str:
        return self.representative.path

    @property
    def processes(self):
        return self.representative.processes

    @property
    def main(self):
        return self.representative.main

    @property
    def threads(self):
        return self.representative.threads

    @property
    def command(self) -> list[str]:
        return self.representative.command

    # over the whole group
    @property
    def complete(self) -> bool:
        return all(run.complete for run in self.runs)

    @property
    def incomplete_runs(self) -> int:
        return sum(not run.complete for run in self.runs)

    @property
    def exit_status(self) -> int | None:
        """The first non-zero exit status in the group, else the common one."""
        statuses = [run.exit_status for run in self.runs]
        return next((s for s in statuses if s), statuses[0])

    @property
    def wall_ns(self) -> float:
        return median_of(run.wall_ns for run in self.runs)

    @property
    def wall_range_ns(self) -> tuple[float, float]:
        walls = [run.wall_ns for run in self.runs]
        return min(walls), max(walls)

    @property
    def calibrated(self) -> bool:
        return all(run.calibrated for run in self.runs)

    @property
    def raw_reason(self) -> str | None:
        return raw_reason([p for run in self.runs for p in run.processes])

    def functions(self, corrected: bool = True) -> list[FunctionStats]:
        corrected = corrected and self.calibrated
        if corrected not in self._functions:
            self._functions[corrected] = [self._median(key, items)
                                          for key, items in function_samples(self.runs, corrected).items()]
        return self._functions[corrected]

    def _median(self, key: FunctionKey, items: list[FunctionStats | None]) -> FunctionStats:
        present = [item for item in items if item is not None]
        stats = FunctionStats(key, present[0].flags)
        for name in _TIME_FIELDS + _COUNT_FIELDS:
            value = median_of(getattr(item, name) if item else 0 for item in items)
            setattr(stats, name, round(value) if name in _COUNT_FIELDS else value)
        stats.sampled = any(item.sampled for item in present)
        stats.threads = self._thread_medians(items)
        return stats

    def _thread_medians(self, items: list[FunctionStats | None]) -> dict:
        """Per-thread medians, threads matched across runs by process order and thread index (tids differ from
        run to run), and labelled with the median run's threads."""
        by_place: dict[tuple[int, int], list[FunctionStats]] = {}
        for run, item in zip(self.runs, items):
            if item is None:
                continue
            positions = {process.pid: at for at, process in enumerate(run.processes)}
            for (pid, index), part in item.threads.items():
                by_place.setdefault((positions[pid], index), []).append(part)
        known = {(at, t.index): (t.pid, t.index) for at, p in enumerate(self.processes) for t in p.threads}
        out = {}
        for place, parts in by_place.items():
            if place not in known:  # a thread the median run did not have
                continue
            parts = parts + [None] * (len(self.runs) - len(parts))
            median = FunctionStats(parts[0].key)
            for name in ("calls", "self_ns", "total_ns"):
                value = median_of(getattr(part, name) if part else 0 for part in parts)
                setattr(median, name, round(value) if name == "calls" else value)
            out[known[place]] = median
        return out
