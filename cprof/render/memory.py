"""`report --mem`: the heap as tracked in the run: totals and peak, the top allocation sites by source line, what
was still live at exit by call path (leaks), and the call paths holding the most at the peak."""

from __future__ import annotations

from cprof.model.heap import heap_summary, sites_by_bytes
from cprof.model.load import GroupRun
from cprof.model.run import Run
from cprof.render.base import Renderer, register
from cprof.render.style import Style, render_rows
from cprof.render.table import ReportOptions
from cprof.render.units import format_bytes, format_count, format_ns, plural


def path_text(site, innermost: int = 5) -> str:
    """The call path's innermost functions (where the allocation is decided; the full path is in --json --mem)."""
    if site.node is None:
        return "(outside every recorded call)"
    names = [key.name for key in site.node.path()]
    return " → ".join((["…"] if len(names) > innermost else []) + names[-innermost:])


@register
class MemoryReport(Renderer):
    """The heap: totals, sites by source line, leaks and the peak (`report --mem`)."""

    name = "mem"
    options_type = ReportOptions
    text = True

    def __init__(self, options: ReportOptions | None = None):
        super().__init__(options)
        self.top = self.options.top

    def render(self, view: Run | GroupRun, out) -> None:
        self.run = view.representative if isinstance(view, GroupRun) else view
        style = Style.for_stream(out)
        summary = heap_summary(self.run.processes)
        if summary is None:
            out.write("this run has no heap record (it was made before cprof tracked the heap)\n")
            return
        if not summary.tracked:
            out.write(f"heap: {summary.source_text}\n")
            return
        totals = summary.totals
        out.write(style.bold("heap") + f": {plural(totals['alloc_count'], 'allocation')} "
                  f"({format_bytes(totals['alloc_bytes'])}), {plural(totals['free_count'], 'free')} "
                  f"({format_bytes(totals['free_bytes'])}), {format_count(totals['realloc_count'])} by realloc, "
                  f"{format_count(totals['temporary_count'])} temporary; peak {format_bytes(summary.peak_bytes)} at "
                  f"{format_ns(summary.peak_ns)}; {plural(totals['live_count'], 'block')} "
                  f"({format_bytes(totals['live_bytes'])}) live at the end\n")
        out.write(style.dim(f"seen: {summary.source_text}") + "\n")
        pairs = sites_by_bytes(self.run.processes)
        shown = pairs if self.top is None else pairs[: self.top]
        rows = [[format_count(s.alloc_count), format_bytes(s.alloc_bytes), format_bytes(s.live_bytes),
                 format_count(s.temporary_count), s.location, path_text(s, 3)] for _process, s in shown]
        out.write("\n" + style.bold("allocation sites by bytes allocated") + "\n")
        for line in render_rows(["Allocs", "Bytes", "Live", "Temporary", "Site", "Call path"], rows, {0, 1, 2, 3},
                                style):
            out.write(line + "\n")
        if len(pairs) > len(shown):
            out.write(style.dim(f"({len(pairs) - len(shown)} more sites; --all shows every one)") + "\n")
        self._by_path(out, style, "live at the end, by call path (not freed)", pairs,
                      lambda s: (s.live_bytes, s.live_count))
        snapshot = (f" (per-path figures from a snapshot at {format_bytes(summary.snapshot_bytes)})"
                    if summary.snapshot_bytes != summary.peak_bytes else "")
        self._by_path(out, style, f"at the peak, {format_bytes(summary.peak_bytes)}{snapshot}, by call path", pairs,
                      lambda s: (s.peak_bytes, None))

    def _by_path(self, out, style: Style, title: str, pairs, measure) -> None:
        paths: dict[tuple, list] = {}
        for process, site in pairs:
            size, blocks = measure(site)
            if size <= 0:
                continue
            entry = paths.setdefault((process.pid, id(site.node)), [0, 0, site, []])
            entry[0] += size
            entry[1] += blocks or 0
            entry[3].append(site.location)
        if not paths:
            return
        ordered = sorted(paths.values(), key=lambda e: -e[0])
        shown = ordered if self.top is None else ordered[: self.top]
        out.write("\n" + style.bold(title) + "\n")
        with_blocks = any(blocks for _size, blocks, _site, _locations in shown)  # not known at the peak
        rows = []
        for size, blocks, site, locations in shown:
            rows.append([format_bytes(size)] + ([plural(blocks, "block")] if with_blocks else [])
                        + [path_text(site), ", ".join(dict.fromkeys(locations))])
        headers = ["Bytes"] + (["Blocks"] if with_blocks else []) + ["Call path", "Sites"]
        for line in render_rows(headers, rows, {0, 1} if with_blocks else {0}, style):
            out.write(line + "\n")
