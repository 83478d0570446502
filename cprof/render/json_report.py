"""`--json` output of report and profile: schema cprof-report/4 (cprof/schemas/report-4.json)."""

from __future__ import annotations

import json

from cprof.model.coverage import Coverage, coverage_of
from cprof.model.load import GroupRun
from cprof.model.run import (FEAT_ALLOCS, FEAT_CPU_TIME, FEAT_THREAD_CPU, FEAT_WAIT_TIME, FN_SECTION, FN_STATIC,
                             FUNCTION_COUNTERS, Run)
from cprof.model.heap import SOURCE_NAMES, heap_summary, sites_by_bytes
from cprof.model.samples import sampling_summary
from cprof.render.base import Renderer, register
from cprof.render.table import ReportOptions, has_feature, selected_functions

REPORT_SCHEMA = "cprof-report/4"
_TIMERS = {1: "tsc", 2: "clock_gettime", 3: "cntvct"}


def _optional_ns(value: float | None) -> int | None:
    return None if value is None else round(value)


def run_metadata(run: Run) -> dict:
    main = run.main
    calibration = main.calibration
    coverage = coverage_of(run)
    features = ["wall_time"]
    for bit, name in ((FEAT_CPU_TIME, "cpu_time"), (FEAT_ALLOCS, "allocations"), (FEAT_THREAD_CPU, "thread_cpu"),
                      (FEAT_WAIT_TIME, "wait_time")):
        if has_feature(run, bit):
            features.append(name)
    return {
        "id": run.id,
        "command": run.command,
        "exit_status": run.exit_status,
        "wall_ns": round(run.wall_ns),
        "complete": run.complete,
        "stopped": bool(run.meta.get("stopped_after_duration")),
        "start_unix_ns": main.header["start_unix_ns"],
        "features": features,
        "processes": [{"pid": p.pid, "parent_pid": p.parent_pid, "complete": p.complete, "fork_child": p.fork_child}
                      for p in run.processes],
        "threads": [{"pid": t.thread.pid, "index": t.thread.index, "tid": t.thread.tid, "name": t.thread.name,
                     "lifetime_ns": round(t.lifetime_ns), "instrumented_ns": round(t.instrumented_ns),
                     "cpu_ns": _optional_ns(t.cpu_ns), "wait_ns": round(t.wait_ns),
                     "mostly_waiting": t.mostly_waiting} for t in coverage.threads],
        "timer": {
            "kind": _TIMERS.get(main.header["timer_kind"], "unknown"),
            "ticks_per_second": main.header["ticks_per_second"],
            "guard_inner_ns": calibration.inner_ns,
            "guard_outer_ns": calibration.outer_ns,
            "guard_inner_spread_ns": calibration.inner_spread_ns,
            "guard_outer_spread_ns": calibration.outer_spread_ns,
        },
        "lost_calls": sum(t.lost_frames for t in run.threads),
    }


def _uncertainty(value: float, corrected: bool) -> int | None:
    """An uncertainty that was not measured is null, never a zero that would read as exact."""
    return round(value) if corrected else None


def function_record(item, with_threads: bool, corrected: bool = True) -> dict:
    timed = not item.counted_only
    has_self = timed or item.sampled  # a sampled count-only function has a self time and no total
    record = {
        "name": item.name,
        "file": item.key.file,
        "line": item.key.line,
        "static": bool(item.flags & FN_STATIC),
        "section": bool(item.flags & FN_SECTION),
        "timed": timed,
        "time_source": item.time_source,
        "self_ns": _optional_ns(item.self_ns if has_self else None),
        "total_ns": _optional_ns(item.total_ns if timed else None),
        "self_err_ns": _uncertainty(item.self_err_ns, corrected and has_self),
        "total_err_ns": _uncertainty(item.total_err_ns, corrected and timed),
        "raw_self_ns": _optional_ns(item.raw_self_ns if has_self else None),
        "raw_total_ns": _optional_ns(item.raw_total_ns if timed else None),
        "mostly_correction": item.mostly_correction,
        "cpu_ns": round(item.cpu_ns),
    }
    # calls, wait_ns, alloc_count...: every counter a function sums, each a whole number (of ns for times)
    record.update((c.attribute, round(getattr(item, c.attribute))) for c in FUNCTION_COUNTERS)
    if with_threads:
        record["threads"] = [
            {"pid": pid, "index": index, "calls": part.calls, "self_ns": round(part.self_ns),
             "total_ns": round(part.total_ns)}
            for (pid, index), part in sorted(item.threads.items())
        ]
    return record


def correction_record(calibration, reason: str | None) -> dict:
    """Whether times had the guard's cost removed, by how much per call, and if not, why."""
    return {"applied": calibration is not None, "reason": reason,
            "per_call_ns": round(calibration.per_call_ns, 2) if calibration is not None else None,
            "heap_op_ns": round(calibration.heap_op_ns, 2) if calibration is not None else None}


def coverage_record(coverage: Coverage) -> dict:
    return {
        "wall_ns": round(coverage.wall_ns),
        "runtime_ns": round(coverage.runtime_ns),
        "main_thread_ns": round(coverage.main_ns),
        "share": round(coverage.share, 4),
        "low": coverage.low,
        "cpu_ns": _optional_ns(coverage.cpu_ns),
        "instrumented_cpu_ns": _optional_ns(coverage.instrumented_cpu_ns),
        "cpu_share": None if coverage.cpu_share is None else round(coverage.cpu_share, 4),
        "waits_tracked": coverage.waits_tracked,
        "units": coverage.units,
        "units_fallen_back": len(coverage.fallbacks),
        "fallbacks": [{"source": source, "reason": reason} for source, reason in coverage.fallbacks],
        "threads_mostly_waiting": len(coverage.waiting_threads),
    }


def heap_record(processes, with_sites: bool) -> dict | None:
    summary = heap_summary(processes)
    if summary is None:
        return None
    record = {"source": SOURCE_NAMES.get(summary.source, "off"), "tracked": summary.tracked}
    record.update((name, summary.totals.get(name, 0)) for name in (
        "alloc_count", "alloc_bytes", "free_count", "free_bytes", "realloc_count", "temporary_count", "live_count",
        "live_bytes"))
    record.update(peak_bytes=summary.peak_bytes, peak_ns=round(summary.peak_ns), snapshot_bytes=summary.snapshot_bytes,
                  foreign_frees=summary.foreign_frees, untracked=summary.untracked)
    if with_sites:
        record["sites"] = [site_record(process, site) for process, site in sites_by_bytes(processes)]
    return record


def site_record(process, site) -> dict:
    return {"pid": process.pid, "path": [key.name for key in site.node.path()] if site.node is not None else [],
            "function": site.function, "file": site.file, "line": site.line, "module": site.module,
            "alloc_count": site.alloc_count, "alloc_bytes": site.alloc_bytes, "live_count": site.live_count,
            "live_bytes": site.live_bytes, "realloc_count": site.realloc_count,
            "temporary_count": site.temporary_count, "peak_bytes": site.peak_bytes}


def report_document(run: Run | GroupRun, options: ReportOptions) -> dict:
    """For a group, `run` describes the group's median run and every function figure is a median over the group."""
    shown, matching = selected_functions(run, options)
    corrected = options.corrected and run.calibrated
    document = {
        "schema": REPORT_SCHEMA,
        "coverage": coverage_record(coverage_of(run)),
        "run": run_metadata(run.representative if isinstance(run, GroupRun) else run),
        "corrected": corrected,
        "correction": correction_record(run.main.calibration if corrected else None,
                                        None if corrected else run.raw_reason or "raw times were asked for"),
        "sort": options.sort,
        "sampling": sampling_summary((run.representative if isinstance(run, GroupRun) else run).processes),
        "heap": heap_record((run.representative if isinstance(run, GroupRun) else run).processes, options.memory),
        "functions": [function_record(f, options.threads, corrected) for f in shown],
        "hidden_functions": len(matching) - len(shown),
    }
    if isinstance(run, GroupRun):
        document["group"] = {"id": run.id, "statistic": "median", "runs": [r.id for r in run.runs],
                             "wall_ns": round(run.wall_ns), "complete": run.complete}
    return document


@register
class JsonReport(Renderer):
    """The report as JSON (schema cprof-report/4); with options.memory, every allocation site too."""

    name = "json"
    extensions = (".json",)
    options_type = ReportOptions

    def render(self, view: Run | GroupRun, out) -> None:
        json.dump(report_document(view, self.options), out, indent=2)
        out.write("\n")
