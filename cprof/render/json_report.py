"""`--json` output of report and profile: schema cprof-report/1 (cprof/schemas/report-1.json)."""

from __future__ import annotations

import json

from cprof.model.load import GroupRun
from cprof.model.run import FEAT_ALLOCS, FEAT_CPU_TIME, FN_SECTION, FN_STATIC, Run
from cprof.render.table import ReportOptions, has_feature, selected_functions

REPORT_SCHEMA = "cprof-report/1"
_TIMERS = {1: "tsc", 2: "clock_gettime", 3: "cntvct"}


def run_metadata(run: Run) -> dict:
    main = run.main
    calibration = main.calibration
    features = ["wall_time"]
    if has_feature(run, FEAT_CPU_TIME):
        features.append("cpu_time")
    if has_feature(run, FEAT_ALLOCS):
        features.append("allocations")
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
        "threads": [{"pid": t.pid, "index": t.index, "tid": t.tid, "name": t.name} for t in run.threads],
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


def function_record(item, with_threads: bool) -> dict:
    record = {
        "name": item.name,
        "file": item.key.file,
        "line": item.key.line,
        "static": bool(item.flags & FN_STATIC),
        "section": bool(item.flags & FN_SECTION),
        "calls": item.calls,
        "self_ns": round(item.self_ns),
        "total_ns": round(item.total_ns),
        "self_err_ns": round(item.self_err_ns),
        "total_err_ns": round(item.total_err_ns),
        "raw_self_ns": round(item.raw_self_ns),
        "raw_total_ns": round(item.raw_total_ns),
        "mostly_correction": item.mostly_correction,
        "cpu_ns": round(item.cpu_ns),
        "alloc_count": item.alloc_count,
        "alloc_bytes": item.alloc_bytes,
        "free_count": item.free_count,
        "free_bytes": item.free_bytes,
    }
    if with_threads:
        record["threads"] = [
            {"pid": pid, "index": index, "calls": part.calls, "self_ns": round(part.self_ns),
             "total_ns": round(part.total_ns)}
            for (pid, index), part in sorted(item.threads.items())
        ]
    return record


def report_document(run: Run | GroupRun, options: ReportOptions) -> dict:
    """For a group, `run` describes the group's median run and every function figure is a median over the group."""
    shown, matching = selected_functions(run, options)
    document = {
        "schema": REPORT_SCHEMA,
        "run": run_metadata(run.representative if isinstance(run, GroupRun) else run),
        "corrected": options.corrected,
        "sort": options.sort,
        "functions": [function_record(f, options.threads) for f in shown],
        "hidden_functions": len(matching) - len(shown),
    }
    if isinstance(run, GroupRun):
        document["group"] = {"id": run.id, "statistic": "median", "runs": [r.id for r in run.runs],
                             "wall_ns": round(run.wall_ns), "complete": run.complete}
    return document


class JsonReport:
    def __init__(self, run: Run | GroupRun, options: ReportOptions):
        self.document = report_document(run, options)

    def render(self, out) -> None:
        json.dump(self.document, out, indent=2)
        out.write("\n")
