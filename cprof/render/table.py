"""The report table: one row per function, top N by a chosen column, with a footer saying what is hidden and
how far the times can be trusted."""

from __future__ import annotations

from dataclasses import dataclass

from cprof.model.coverage import coverage_of
from cprof.model.load import GroupRun
from cprof.model.run import FEAT_ALLOCS, FEAT_CPU_TIME, FN_SECTION, FunctionStats, Run, summed_self_err_ns
from cprof.model.samples import not_sampled_reason, sampling_summary
from cprof.paths import display_path
from cprof.render.base import Renderer, register
from cprof.render.coverage_note import coverage_lines
from cprof.render.style import Style, render_rows
from cprof.render.units import format_bytes, format_count, format_ns, format_percent, plural, signal_name

SORT_KEYS = {
    "self": lambda f: f.self_ns,
    "total": lambda f: f.total_ns,
    "calls": lambda f: f.calls,
    "allocs": lambda f: f.alloc_count,
    "bytes": lambda f: f.alloc_bytes,
    "live": lambda f: f.live_bytes,
}


@dataclass
class ReportOptions:
    top: int | None = 10  # None: all
    sort: str = "self"
    threads: bool = False
    corrected: bool = True
    function_pattern: str | None = None
    locations: bool = False
    memory: bool = False  # the heap's allocation sites, leaks and peak (report --mem; in JSON: every site)
    min_percent: float = 1.0  # the call tree hides call paths under this share of their thread
    weight: str = "time"  # what a call path weighs in the tree: "time" or "bytes" (tree.TREE_WEIGHTS)


def has_feature(run: Run, bit: int) -> bool:
    return any(p.header["features"] & bit for p in run.processes)


def function_label(item: FunctionStats, locations: bool) -> str:
    label = item.name + (" [section]" if item.flags & FN_SECTION else "")
    if item.counted_only:
        label += " [counted, sampled]" if item.sampled else " [counted]"
    if locations:
        label += f"  {display_path(item.key.file)}:{item.key.line}"
    return label


def selected_functions(run: Run, options: ReportOptions) -> tuple[list[FunctionStats], list[FunctionStats]]:
    """(shown, all matching) in display order."""
    functions = run.functions(options.corrected)
    if options.function_pattern:
        functions = [f for f in functions if options.function_pattern in f.name]
    ordered = sorted(functions, key=lambda f: (-SORT_KEYS[options.sort](f), f.name))
    shown = ordered if options.top is None else ordered[: options.top]
    return shown, ordered


@register
class FunctionTable(Renderer):
    """One row per function: the default report."""

    name = "table"
    options_type = ReportOptions
    extensions = (".txt",)
    text = True

    def __init__(self, options: ReportOptions | None = None):
        super().__init__(options)

    def render(self, view: Run | GroupRun, out) -> None:
        self.run = view
        style = Style.for_stream(out)
        run, options = self.run, self.options
        shown, matching = selected_functions(run, options)
        everything = run.functions(options.corrected)
        total_self = sum(f.self_ns for f in everything) or 1.0
        allocs = has_feature(run, FEAT_ALLOCS)
        cpu = has_feature(run, FEAT_CPU_TIME)
        # shown when waiting is a visible part of the time: a blocked worker's self time is not work
        waiting = sum(f.wait_ns for f in everything) >= 0.01 * total_self
        headers = ["Function", "Self", "Self %", "Waiting", "Total", "Calls", "Self/call"]
        if not waiting:
            headers.remove("Waiting")
        if cpu:
            headers.append("CPU")
        if allocs:
            headers += ["Allocs", "Alloc Bytes", "Frees", "Free Bytes"]
        rows, colours = [], []
        for item in shown:
            approximate = "~" if options.corrected and (item.mostly_correction or item.mostly_uncertain) else ""
            row = [
                function_label(item, options.locations),
                approximate + format_ns(item.self_ns),
                format_percent(item.self_ns, total_self),
                format_ns(item.total_ns),
                format_count(item.calls),
                format_ns(item.self_ns / item.calls) if item.calls else "-",
            ]
            if item.counted_only and item.sampled:  # a self time from samples; no frame, so no total
                row[3] = "-"
            elif item.counted_only:  # no time was measured for it: it is in its callers' self time
                row[1:4] = ["-", "-", "-"]
                row[5] = "-"
            if waiting:
                row.insert(3, format_ns(item.wait_ns) if item.wait_ns else "-")
            if cpu:
                row.append(format_ns(item.cpu_ns))
            if allocs:
                row += [format_count(item.alloc_count), format_bytes(item.alloc_bytes),
                        format_count(item.free_count), format_bytes(item.free_bytes)]
            rows.append(row)
            colours.append(style.dim if approximate else None)
            if options.threads and len(run.threads) > 1:  # which thread, even when only one called it
                for (pid, index), part in sorted(item.threads.items()):
                    thread = next(t for t in run.threads if t.pid == pid and t.index == index)
                    part_row = ["  " + _thread_label(run, thread), format_ns(part.self_ns),
                                format_percent(part.self_ns, total_self), format_ns(part.total_ns),
                                format_count(part.calls), format_ns(part.self_ns / part.calls) if part.calls else "-"]
                    if waiting:
                        part_row.insert(3, format_ns(part.wait_ns) if part.wait_ns else "-")
                    rows.append(part_row + [""] * (len(headers) - len(part_row)))
                    colours.append(style.dim)
        right = set(range(1, len(headers)))
        for line in render_rows(headers, rows, right, style, colours):
            out.write(line + "\n")
        out.write(self.footer(shown, matching, everything, total_self, style) + "\n")

    def _run_lines(self) -> list[str]:
        """Which run (or group) this is, how long it took, and how it ended."""
        run = self.run
        threads = plural(len(run.threads), "thread")
        processes = f", {len(run.processes)} processes" if len(run.processes) > 1 else ""
        if not isinstance(run, GroupRun):
            return [f"run {run.id}: wall {format_ns(run.wall_ns)}, {threads}{processes}, {run_status(run)}"]
        low, high = run.wall_range_ns
        count = len(run.runs)
        status = f"{run.incomplete_runs} of {count} runs INCOMPLETE" if run.incomplete_runs else f"all {count} complete"
        if run.exit_status:
            status += f", exit status {run.exit_status}"
        return [f"group {run.id}: every figure is the median over its {count} runs (cprof diff shows their spread)",
                f"wall {format_ns(run.wall_ns)} (runs {format_ns(low)} to {format_ns(high)}), {threads}{processes}, "
                f"{status}"]

    def footer(self, shown, matching, everything, total_self, style: Style) -> str:
        run, options = self.run, self.options
        parts = []
        hidden = len(matching) - len(shown)
        if hidden > 0:
            hidden_self = sum(f.self_ns for f in matching[len(shown):])
            parts.append(f"{plural(hidden, 'more function')} hidden ({format_percent(hidden_self, total_self)} of "
                         "self time; --all shows them)")
        elif options.function_pattern:
            parts.append(f"{plural(len(shown), 'function')} matching '{options.function_pattern}'")
        if not everything:
            parts.append("no instrumented function was called (or the run file lost what it measured)")
        parts.extend(self._run_lines())
        parts.extend(coverage_lines(coverage_of(run), style))
        if options.corrected and not run.calibrated:
            parts.append(run.raw_reason)
        elif options.corrected:
            calibration = run.main.calibration
            error = summed_self_err_ns(everything)
            heap_cost = (f" and heap tracking's ({calibration.heap_op_ns:.1f} ns per allocation or free)"
                         if calibration.heap_op_ns and any(f.alloc_count or f.free_count for f in everything) else "")
            note = (f"times corrected for the guard's cost ({calibration.per_call_ns:.1f} ns/call){heap_cost}: all "
                    f"self times together are {format_ns(sum(f.self_ns for f in everything))} ± {format_ns(error)}")
            if any(f.mostly_correction for f in shown):
                note += "; ~ marks functions whose time is mostly correction"
            parts.append(note + "; --uncorrected shows raw times")
        else:
            parts.append("raw times: the guard's own cost is included")
        sampled = sum(1 for f in everything if f.counted_only and f.sampled)
        counted = sum(1 for f in everything if f.counted_only) - sampled
        if sampled:
            summary = sampling_summary(run.processes)
            period = f" every {format_ns(summary['period_ns'])} of CPU time" if summary else ""
            parts.append(f"{plural(sampled, 'function')} only counted, their self time sampled{period} "
                         "([counted, sampled]): their share of their callers' measured self time, ± a 95% interval "
                         "(JSON: self_err_ns); no total (they have no frame)"
                         + ("; ~ marks those whose interval reaches past half of it (few samples found them)"
                            if any(f.mostly_uncertain for f in shown) else ""))
        if counted:
            reason = not_sampled_reason(run.processes)
            parts.append(f"{plural(counted, 'function')} only counted, not timed ([counted]): their time is in their "
                         "callers' self time" + (f" (not sampled: {reason})" if reason else ""))
        lost = sum(t.lost_frames for t in run.threads)
        if lost:
            parts.append(f"{plural(lost, 'call')} not recorded (signal re-entry or arena full)")
        return "\n".join(parts)


def run_status(run: Run) -> str:
    """How the run ended, in words: complete, stopped by --duration, killed, still running."""
    meta = run.meta
    signal_number = meta.get("signal")
    killed_by = signal_name(signal_number) if signal_number else None
    if meta.get("status") == "running":
        return "INCOMPLETE: still running, or cprof was killed before it ended"
    if meta.get("stopped_after_duration"):
        if killed_by:
            return f"stopped after --duration ({killed_by}); measured up to then"
        return f"stopped after --duration; it then exited with status {run.exit_status}"
    if run.complete:
        return "complete" + (f", exit status {run.exit_status}" if run.exit_status else "")
    if killed_by:
        return f"INCOMPLETE: killed by {killed_by}; measured up to then"
    status = f"; exit status {run.exit_status}" if run.exit_status is not None else ""
    return ("INCOMPLETE: the run file has no end record (the program crashed, called _exit or exec, or the file was "
            f"cut short){status}")


def _thread_label(run: Run, thread) -> str:
    name = thread.name or "?"
    prefix = f"pid {thread.pid} " if len(run.processes) > 1 else ""
    return f"{prefix}thread {thread.index} ({name}, tid {thread.tid})"
