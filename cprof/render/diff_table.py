"""The diff table: functions sorted by the size of their change, each with the noise it has to clear; changes
that clear it are coloured (red slower, green faster), the others dimmed."""

from __future__ import annotations

from dataclasses import dataclass

from cprof.model.diff import RunDiff, Side
from cprof.render.base import DIFF, Renderer, register
from cprof.render.coverage_note import coverage_lines
from cprof.render.style import Style, render_rows
from cprof.render.units import format_bytes, format_count, format_ns, format_signed_percent, plural


def format_delta_ns(ns: float) -> str:
    return ("+" if ns > 0 else "") + format_ns(ns)


def side_label(label: str, runs: int) -> str:
    return f"{label} ({'median of ' + plural(runs, 'run') if runs > 1 else 'one run'})"


def _signed_bytes(delta: float) -> str:
    return ("+" if delta > 0 else "") + format_bytes(delta)


@dataclass
class DiffOptions:
    top: int | None = 20  # None: every function
    only_significant: bool = False
    fail_over: float | None = None  # the --fail-over threshold the JSON reports against


@register
class DiffTable(Renderer):
    """Functions by the size of their change, each with the noise it has to clear."""

    name = "table"
    options_type = DiffOptions
    subject = DIFF
    extensions = (".txt",)
    text = True

    def __init__(self, options: DiffOptions | None = None):
        super().__init__(options)
        self.top = self.options.top
        self.only_significant = self.options.only_significant

    def render(self, view: RunDiff, out) -> None:
        style = Style.for_stream(out)
        diff = self.diff = view
        changes = [c for c in diff.changes if c.significant or not self.only_significant]
        shown = changes if self.top is None else changes[: self.top]
        # the heap's columns when allocations changed somewhere: time-only diffs stay narrow
        allocs = any(c.a.alloc_count != c.b.alloc_count or c.a.alloc_bytes != c.b.alloc_bytes for c in diff.changes)
        out.write(f"A: {side_label(diff.a_label, diff.a_runs)}\nB: {side_label(diff.b_label, diff.b_runs)}\n")
        headers = ["Function", "A self", "B self", "Delta", "Delta %", "Noise", "Calls A", "Calls B"]
        if allocs:
            headers += ["Allocs delta", "Bytes delta"]
        rows, colours = [], []
        for change in shown:
            a, b = change.a, change.b
            row = [
                change.key.name,
                _self(a),
                _self(b),
                format_delta_ns(change.delta_ns),
                format_signed_percent(change.delta_percent) if a.present else "new",
                "±" + format_ns(change.noise_ns),
                format_count(round(a.calls)) if a.present else "-",
                format_count(round(b.calls)) if b.present else "-",
            ]
            if allocs:
                row += [f"{round(b.alloc_count - a.alloc_count):+,}", _signed_bytes(b.alloc_bytes - a.alloc_bytes)]
            rows.append(row)
            if not change.significant:
                colours.append(style.dim)
            else:
                colours.append(style.red if change.delta_ns > 0 else style.green)
        for line in render_rows(headers, rows, set(range(1, len(headers))), style, colours):
            out.write(line + "\n")
        out.write(self.footer(len(changes) - len(shown)) + "\n")
        for side, coverage in (("A", diff.a_coverage), ("B", diff.b_coverage)):
            if coverage is not None and coverage.low:  # a diff of what cprof did not see would mislead
                out.write(f"{side}: " + coverage_lines(coverage, style)[0] + "\n")

    def footer(self, hidden: int) -> str:
        diff = self.diff
        lines = []
        if hidden:
            more = "significant " if self.only_significant else ""
            lines.append(f"{plural(hidden, 'more ' + more + 'function')} not shown (--all shows them)")
        elif self.only_significant and not any(c.significant for c in diff.changes):
            lines.append("no function changed by more than its noise")
        total = diff.total_delta_percent
        verdict = "" if diff.total_significant else ", within noise"
        lines.append(f"total self time: {format_ns(diff.total_a.self_ns)} -> {format_ns(diff.total_b.self_ns)} "
                     f"({format_signed_percent(total) if total is not None else 'n/a'}, "
                     f"noise ±{format_ns(diff.total_noise_ns)}{verdict})")
        if diff.raw_reason:
            lines.append(diff.raw_reason)
        if diff.a_runs > 1 and diff.b_runs > 1:
            lines.append("noise: the two groups' spread (half the range of each) or the correction uncertainty, "
                         "whichever is larger; dimmed changes are within it")
        elif diff.has_spread:
            single = "A" if diff.a_runs == 1 else "B"
            lines.append(f"noise: {single} is one run, so only the other side's spread and the correction "
                         "uncertainty count (profile --repeat N gives both sides a spread); dimmed changes are "
                         "within it")
        elif diff.corrected:
            lines.append("noise: single runs have no spread, so only the correction uncertainty counts (profile "
                         "--repeat N gives groups); dimmed changes are within it")
        else:
            lines.append("noise: single runs have no spread and raw times no correction uncertainty, so no change "
                         "can be told from noise here (profile --repeat N gives groups)")
        return "\n".join(lines)


def _self(side: Side) -> str:
    return format_ns(side.self_ns) if side.present else "-"
