"""`cprof flame --chart`: a traced run (`cprof run --trace`) as a time-ordered flamechart in one self-contained SVG:
one lane per thread, each call where and as long as it ran, a time axis; hover, click to zoom into a call's time
span, search and the URL state work as in the flamegraph. Calls narrower than a pixel are merged into one grey
block per run of neighbouring pixels, so a trace of millions of calls stays a small file."""

from __future__ import annotations

from xml.sax.saxutils import escape

from cprof.errors import EXIT_USAGE, CprofError
from cprof.model.trace import CUT, OPEN, run_traces, traced
from cprof.paths import display_path
from cprof.render.base import Renderer, register
from cprof.render.flame import FRAME_HEIGHT, MIN_WIDTH, TOP, WIDTH, colour_of, document, frame_element
from cprof.render.table import ReportOptions
from cprof.render.units import format_count, format_ns

LANE_GAP = 22  # room above a lane for its thread's name
AXIS = 18  # the time axis under the controls


class _Merged:
    """Neighbouring calls at one depth of a lane, each under a pixel wide: drawn as one block."""

    __slots__ = ("x", "end_x", "calls", "busy_ns", "start_ns", "end_ns")

    def __init__(self, x: float, start_ns: float):
        self.x, self.end_x, self.calls, self.busy_ns = x, x, 0, 0.0
        self.start_ns = self.end_ns = start_ns


@register
class FlameChart(Renderer):
    """The SVG flamechart of a traced run (`cprof flame --chart`)."""

    name = "chart"
    options_type = ReportOptions

    def __init__(self, options: ReportOptions | None = None, title: str | None = None):
        super().__init__(options)
        self.title = title

    def render(self, view, out) -> None:
        run = getattr(view, "representative", view)
        if not traced(run):
            raise CprofError(f"run {run.id} has no trace: record one with `cprof run --trace` (or `cprof profile "
                             "--trace`), then draw it with `cprof flame --chart`", EXIT_USAGE)
        lanes = run_traces(run)
        main_start = run.processes[0].header["start_mono_ns"]
        # processes share CLOCK_MONOTONIC: each lane's times are moved onto the main process's
        offsets = [process.header["start_mono_ns"] - main_start for process, _ in lanes]
        begin = min((trace.thread.start_ns + offset for (_, trace), offset in zip(lanes, offsets)), default=0.0)
        end = max((max(trace.thread.end_ns, max(trace.columns.end_ns, default=0.0)) + offset
                   for (_, trace), offset in zip(lanes, offsets)), default=1.0)
        span = max(end - begin, 1.0)
        scale = WIDTH / span  # pixels per ns
        rows: list[str] = []
        marks: list[str] = []
        y = TOP + AXIS
        calls = 0
        several_processes = len(run.processes) > 1
        for lane, ((process, trace), offset) in enumerate(zip(lanes, offsets)):
            thread = trace.thread
            label = f"{thread.name or 'thread'} [{f'{process.pid}/' if several_processes else ''}{thread.index}]"
            rows.append(f'<text class="lane" x="4" y="{y + LANE_GAP - 7}">{escape(label)}: '
                        f"{format_count(len(trace))} calls</text>")
            top = y + LANE_GAP
            depth_max = self._lane(rows, trace, lane, top, offset - begin, scale)
            calls += len(trace)
            if trace.stop_ns is not None:
                x = (trace.stop_ns + offset - begin) * scale
                marks.append(f'<g class="mark" data-x="{x:.2f}"><line x1="{x:.2f}" x2="{x:.2f}" y1="{top}" '
                             f'y2="{top + (depth_max + 1) * FRAME_HEIGHT}"/><title>the trace reached its size limit '
                             f"here (--trace-limit): calls that began later were not recorded, calls still running "
                             f"end here</title></g>")
            y = top + (depth_max + 1) * FRAME_HEIGHT
        stopped = any(trace.stop_ns is not None for _, trace in lanes)
        title = self.title or (f"cprof run {run.id}: {format_count(calls)} calls in time order"
                               + (" (the trace stopped at its size limit: red line)" if stopped else ""))
        out.write(document(title, y + 24, "time", span, format_ns(span), "\n".join(rows + marks), kind="chart",
                           origin_ns=begin))

    def _lane(self, rows: list[str], trace, lane: int, top: int, shift_ns: float, scale: float) -> int:
        """Draws one thread's calls below `top`; returns its deepest depth. Most calls of a long trace are under a
        pixel: they cost a comparison and an addition each, so millions draw in seconds."""
        merged: dict[int, _Merged] = {}
        columns = trace.columns
        for start, end, depth, node, flags in zip(columns.start_ns, columns.end_ns, columns.depth, columns.node,
                                                   columns.flags):
            x = (start + shift_ns) * scale
            width = (end - start) * scale
            if width >= MIN_WIDTH:
                rows.append(self._call(len(rows), start, end, depth, node, flags, lane, x, top, width))
                continue
            block = merged.get(depth)
            if block is None or x > block.end_x + MIN_WIDTH:
                if block is not None:
                    rows.append(self._merged(len(rows), block, lane, top, depth))
                block = merged[depth] = _Merged(x, start)
            block.end_x = max(block.end_x, x + width)
            block.calls += 1
            block.busy_ns += end - start
            block.end_ns = max(block.end_ns, end)
        for depth, block in sorted(merged.items()):
            rows.append(self._merged(len(rows), block, lane, top, depth))
        return max(columns.depth, default=0)

    @staticmethod
    def _call(index: int, start: float, end: float, depth: int, node, flags: int, lane: int, x: float, top: int,
              width: float) -> str:
        key = node.key
        details = [f"{key.name}  {display_path(key.file)}:{key.line}",
                   f"at {format_ns(start)} for {format_ns(end - start)} (as recorded: the guard's cost included)"]
        if flags & CUT:
            details.append("still running when the trace stopped at its size limit: drawn to that moment")
        elif flags & OPEN:
            details.append("still running when the thread or the program ended")
        return frame_element(f"c{index}", x, top + depth * FRAME_HEIGHT, width, depth, end - start, key.name,
                             colour_of(key.name), "f" + (" cut" if flags else ""), key.name, details, lane)

    @staticmethod
    def _merged(index: int, block: _Merged, lane: int, top: int, depth: int) -> str:
        width = max(block.end_x - block.x, MIN_WIDTH)
        details = [f"{format_count(block.calls)} calls each under a pixel wide, from {format_ns(block.start_ns)} to "
                   f"{format_ns(block.end_ns)}: {format_ns(block.busy_ns)} in all"]
        return frame_element(f"c{index}", block.x, top + depth * FRAME_HEIGHT, width, depth, block.busy_ns,
                             f"{block.calls} narrow calls", "rgb(190,190,190)", "f merged", "", details, lane)
