"""The lines every human-readable report ends with about coverage: how much of the run the instrumented functions
saw, what the build left uninstrumented, and which threads mostly waited (shared by the table, tree and diff)."""

from __future__ import annotations

from cprof.model.coverage import Coverage, ThreadCoverage
from cprof.render.style import Style
from cprof.render.units import format_ns, format_percent, plural


def _fallback_note(coverage: Coverage) -> str:
    if not coverage.fallbacks:
        return ""
    units = f" of {coverage.units}" if coverage.units else ""
    return (f"; {len(coverage.fallbacks)}{units} units of its build were not instrumented "
            "(cprof build --list-fallbacks)")


def coverage_lines(coverage: Coverage, style: Style) -> list[str]:
    if coverage.wall_ns <= 0:
        return []
    share = format_percent(coverage.share, 1.0)
    wall = format_ns(coverage.wall_ns)
    whose = "main thread"
    if coverage.runtime_ns >= 0.01 * coverage.wall_ns:
        whose += f"; cprof's own calibration, {format_ns(coverage.runtime_ns)}, aside"
    if coverage.cpu_share is not None:
        cpu = f", {format_percent(coverage.cpu_share, 1.0)} of its {format_ns(coverage.cpu_ns)} CPU time"
    elif coverage.cpu_ns is not None:
        cpu = f"; CPU {format_ns(coverage.cpu_ns)}"
    else:
        cpu = ""
    if coverage.low:
        lines = [style.red(style.bold(
            f"WARNING: instrumented functions ran only {share} of this run's {wall} ({whose}){cpu}: most of "
            f"its time is in code cprof did not instrument{_fallback_note(coverage)}"))]
    else:
        lines = [f"instrumented functions ran {share} of this run's {wall} ({whose}){cpu}"
                 f"{_fallback_note(coverage)}"]
    waiting = coverage.waiting_threads
    if waiting:
        lifetime = sum(t.lifetime_ns for t in waiting)
        on_cpu = sum(t.cpu_ns or 0.0 for t in waiting)
        lines.append(style.yellow(
            f"{len(waiting)} of {plural(len(coverage.threads), 'thread')} mostly waited (on the CPU "
            f"{format_ns(on_cpu)} of their {format_ns(lifetime)}): their functions' time is mostly blocked, not "
            "work"))
    return lines


def thread_note(thread: ThreadCoverage) -> str:
    """`; the thread ran 3.3 s: 12.1 ms on the CPU, 3.2 s waiting (mostly waiting)` for a thread's heading: the
    whole thread, as it ran with the guard's cost, beside the corrected time of its functions."""
    parts = []
    if thread.cpu_ns is not None:
        parts.append(f"{format_ns(thread.cpu_ns)} on the CPU")
    if thread.wait_ns:
        parts.append(f"{format_ns(thread.wait_ns)} waiting")
    note = f"; the thread ran {format_ns(thread.lifetime_ns)}" + (": " + ", ".join(parts) if parts else "")
    return note + (" (mostly waiting)" if thread.mostly_waiting else "")
