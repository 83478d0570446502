"""How much of a run the instrumented functions saw: the share of the process's time spent inside them, what the
build left uninstrumented, and which threads mostly waited rather than worked. Every report states it, so that a
profile whose functions cover 2% of the run can never pass for the whole story."""

from __future__ import annotations

from dataclasses import dataclass, field

from cprof.model.run import FEAT_CPU_TIME, FEAT_WAIT_TIME, Run, ThreadData

# Below this share of the main thread's time the report warns loudly: most of the run is out of sight. A very
# short run is spared the warning: starting any process (exec, the dynamic loader) takes a few ms of its own.
LOW_SHARE = 0.5
LOW_UNSEEN_NS = 20e6
# A thread on the CPU for less than this share of its life mostly waited (a pool worker, an I/O thread).
WAITING_CPU_SHARE = 0.2


@dataclass
class ThreadCoverage:
    thread: ThreadData
    lifetime_ns: float
    instrumented_ns: float
    cpu_ns: float | None
    wait_ns: float

    @property
    def mostly_waiting(self) -> bool:
        if self.lifetime_ns <= 0:
            return False
        if self.cpu_ns is not None:
            return self.cpu_ns < WAITING_CPU_SHARE * self.lifetime_ns
        return self.wait_ns > (1 - WAITING_CPU_SHARE) * self.lifetime_ns


@dataclass
class Coverage:
    wall_ns: float  # the whole process, as the launcher timed it (or the runtime, for a run started by hand)
    runtime_ns: float  # of it, cprof's own start-up and exit work (calibration): not the program's
    main_ns: float  # of it, the main thread inside instrumented functions (raw: the guard's cost is in both)
    cpu_ns: float | None  # the process's CPU time, when known
    instrumented_cpu_ns: float | None  # CPU time inside instrumented functions (--cpu-time runs only)
    waits_tracked: bool  # waiting calls were timed (not in a -static link)
    threads: list[ThreadCoverage] = field(default_factory=list)
    units: int | None = None  # units the build compiled, when the run knows its build
    fallbacks: list[list[str]] = field(default_factory=list)  # [source, reason] of each unit compiled plain

    @property
    def program_ns(self) -> float:
        """The process's time but for cprof's own start-up and exit work: what the program itself took."""
        return max(0.0, self.wall_ns - self.runtime_ns)

    @property
    def share(self) -> float:
        return min(1.0, self.main_ns / self.program_ns) if self.program_ns > 0 else 0.0

    @property
    def cpu_share(self) -> float | None:
        if self.instrumented_cpu_ns is None or not self.cpu_ns:
            return None
        return min(1.0, self.instrumented_cpu_ns / self.cpu_ns)

    @property
    def low(self) -> bool:
        return self.share < LOW_SHARE and self.program_ns - self.main_ns >= LOW_UNSEEN_NS

    @property
    def waiting_threads(self) -> list[ThreadCoverage]:
        return [t for t in self.threads if t.mostly_waiting]


def median_coverage(runs: list[Run]) -> Coverage:
    """One side of a diff: the coverage of its median run by share."""
    coverages = sorted((coverage_of(run) for run in runs), key=lambda c: c.share)
    return coverages[(len(coverages) - 1) // 2]


def coverage_of(run: Run) -> Coverage:
    """A group's coverage is that of its median run."""
    run = getattr(run, "representative", run)
    main_process = run.main
    features = main_process.header["features"]
    threads = [ThreadCoverage(t, t.lifetime_ns, t.instrumented_ns, t.cpu_ns, t.wait_ns) for t in run.threads]
    main_threads = [t for t in main_process.threads if t.index == 0] or main_process.threads[:1]
    main_ns = main_threads[0].instrumented_ns if main_threads else 0.0
    cpu_ns = run.meta.get("cpu_ns")
    if not cpu_ns and threads and all(t.cpu_ns is not None for t in threads):
        cpu_ns = sum(t.cpu_ns for t in threads)  # a run not started by cprof: its threads' own clocks
    instrumented_cpu = None
    if features & FEAT_CPU_TIME:
        instrumented_cpu = sum(child.cpu_total_ns for t in run.threads for child in t.root.children.values())
    build = run.meta.get("build") or {}
    return Coverage(
        wall_ns=run.wall_ns, runtime_ns=float(main_process.header.get("runtime_ns", 0)), main_ns=main_ns, cpu_ns=float(cpu_ns) if cpu_ns else None,
        instrumented_cpu_ns=instrumented_cpu, waits_tracked=bool(features & FEAT_WAIT_TIME), threads=threads,
        units=build.get("units"), fallbacks=list(build.get("fallbacks") or []),
    )
