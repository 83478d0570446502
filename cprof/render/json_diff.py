"""`cprof diff --json`: schema cprof-diff/2 (cprof/schemas/diff-2.json)."""

from __future__ import annotations

import json

from cprof.model.diff import RunDiff, Side
from cprof.render.base import DIFF, Renderer, register
from cprof.render.diff_table import DiffOptions
from cprof.render.json_report import coverage_record

DIFF_SCHEMA = "cprof-diff/2"


def _side(side: Side, corrected: bool) -> dict | None:
    if not side.present:
        return None
    return {"self_ns": round(side.self_ns), "spread_ns": round(side.spread_ns),
            "err_ns": round(side.err_ns) if corrected else None, "calls": side.calls, "alloc_bytes": side.alloc_bytes}


def diff_document(diff: RunDiff, fail_over: float | None = None) -> dict:
    document = {
        "schema": DIFF_SCHEMA,
        "a": {"label": diff.a_label, "runs": diff.a_runs, "total": _side(diff.total_a, diff.corrected)},
        "b": {"label": diff.b_label, "runs": diff.b_runs, "total": _side(diff.total_b, diff.corrected)},
        "total_delta_percent": diff.total_delta_percent,
        "total_significant": diff.total_significant,
        "total_noise_ns": round(diff.total_noise_ns),
        "corrected": diff.corrected,
        "raw_reason": diff.raw_reason,
        "coverage": {"a": coverage_record(diff.a_coverage), "b": coverage_record(diff.b_coverage)},
        "functions": [
            {"name": c.key.name, "file": c.key.file, "line": c.key.line, "a": _side(c.a, diff.corrected),
             "b": _side(c.b, diff.corrected),
             "delta_ns": round(c.delta_ns), "delta_percent": c.delta_percent, "noise_ns": round(c.noise_ns),
             "significant": c.significant}
            for c in diff.changes
        ],
    }
    if fail_over is not None:
        document["fail_over_percent"] = fail_over
        document["regressions"] = diff.regressions_over(fail_over)
    return document


@register
class JsonDiff(Renderer):
    """The diff as JSON (schema cprof-diff/2)."""

    name = "json"
    subject = DIFF
    extensions = (".json",)
    options_type = DiffOptions

    def render(self, view: RunDiff, out) -> None:
        json.dump(diff_document(view, self.options.fail_over), out, indent=2)
        out.write("\n")
