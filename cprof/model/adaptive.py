"""Adaptive instrumentation: which functions to count only, learned from a run. A timed call costs the calibrated
guard (tens of ns); a function whose calls each do less work than many times that would mostly measure the
profiler, and slow the program down with it. Such functions are counted exactly instead, and their time stays in
their callers."""

from __future__ import annotations

from cprof.model.run import FunctionStats, Run

# A function is counted only when it is called this often and each call (callees included) takes less than this
# many guard costs: then timing it costs more than a twentieth of its time, and its calls add up.
MIN_CALLS = 1000
MIN_GUARDS_OF_WORK = 20
FALLBACK_GUARD_NS = 40.0  # an uncalibrated learning run (the clock timer): about what a guard costs here


def identity(item: FunctionStats) -> str:
    return f"{item.key.file}:{item.key.line}:{item.key.name}"


def choose_counted(run: Run) -> list[str]:
    """Identities (file:line:name) of the functions to count only, from a run of the same build. A function that
    run already only counted stays counted: it has no time to judge it by."""
    guard_ns = run.main.calibration.per_call_ns if run.calibrated else FALLBACK_GUARD_NS
    chosen = []
    for item in run.functions():
        if item.counted_only or (item.calls >= MIN_CALLS and
                                 item.total_ns / item.calls < MIN_GUARDS_OF_WORK * guard_ns):
            chosen.append(identity(item))
    return sorted(chosen)
