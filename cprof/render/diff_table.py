"""The diff table: functions sorted by the size of their change, with what cleared the noise marked."""

from __future__ import annotations

from cprof.model.diff import RunDiff
from cprof.render.style import Style, render_rows
from cprof.render.units import format_bytes, format_count, format_ns, format_signed_percent


class DiffTable:
    def __init__(self, diff: RunDiff, top: int | None = 20, only_significant: bool = False):
        self.diff = diff
        self.top = top
        self.only_significant = only_significant

    def render(self, out) -> None:
        style = Style.for_stream(out)
        diff = self.diff
        changes = [c for c in diff.changes if c.significant or not self.only_significant]
        shown = changes if self.top is None else changes[: self.top]
        rows, colours = [], []
        for change in shown:
            a, b = change.a, change.b
            spread = f" ±{format_ns(max(a.spread_ns, b.spread_ns))}" if diff.has_spread else ""
            rows.append([
                change.key.name,
                format_ns(a.self_ns) if a.present else "-",
                format_ns(b.self_ns) if b.present else "-",
                ("+" if change.delta_ns > 0 else "") + format_ns(change.delta_ns) + spread,
                format_signed_percent(change.delta_percent) if a.present else "new",
                format_count(int(a.calls)) if a.present else "-",
                format_count(int(b.calls)) if b.present else "-",
                format_bytes(b.alloc_bytes - a.alloc_bytes) if (a.alloc_bytes or b.alloc_bytes) else "",
            ])
            if not change.significant:
                colours.append(style.dim)
            else:
                colours.append(style.red if change.delta_ns > 0 else style.green)
        headers = ["Function", f"A ({diff.a_label})", f"B ({diff.b_label})", "Delta", "Delta %", "Calls A",
                   "Calls B", "Alloc Δ"]
        for line in render_rows(headers, rows, set(range(1, 8)), style, colours):
            out.write(line + "\n")
        total = diff.total_delta_percent
        out.write(
            f"total self time: {format_ns(diff.total_a.self_ns)} -> {format_ns(diff.total_b.self_ns)} "
            f"({format_signed_percent(total) if total is not None else 'n/a'}"
            f"{', within noise' if not diff.total_significant else ''})\n"
        )
        hidden = len(changes) - len(shown)
        if hidden:
            out.write(f"{hidden} more functions not shown (--all shows them)\n")
        if diff.has_spread:
            out.write(f"medians of {diff.a_runs} and {diff.b_runs} runs; dimmed changes are within the runs' spread\n")
        else:
            out.write("single runs: no spread to judge noise by (profile --repeat N gives groups); "
                      "dimmed changes are within the correction uncertainty\n")
