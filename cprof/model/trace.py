"""A thread's event trace (`cprof run --trace`, csrc/trace.c) as time-ordered calls with their depth: what the
flamechart and the evented exports draw. Decoded only when a view asks for it: a trace holds millions of calls."""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from functools import cached_property

from cprof.model.run import CallNode, FunctionKey, RecordedTrace, ThreadData
from cprof.runfile import FEAT_TRACE, TRACE_CUT

CUT, OPEN = 1, 2  # TraceColumns.flags: cut at the trace's stop; still running at the end of the thread or program


@dataclass(frozen=True, slots=True)
class TraceEvent:
    start_ns: float  # from the process's start, as recorded (the guard's own cost included)
    end_ns: float
    depth: int  # 0: an outermost call of the thread
    node: CallNode = field(repr=False)
    cut: bool = False  # still running when the trace stopped (its end is the stop)
    open: bool = False  # still running when the thread or the process ended (its end is that end)

    @property
    def key(self) -> FunctionKey:
        return self.node.key

    @property
    def duration_ns(self) -> float:
        return self.end_ns - self.start_ns


@dataclass(frozen=True)
class TraceColumns:
    """A thread's calls as parallel lists in start order (outer calls first at equal starts): what renderers and
    exports iterate over, since millions of calls as one object each take far longer to make than to draw."""

    start_ns: list[float]
    end_ns: list[float]
    depth: list[int]
    node: list[CallNode]
    flags: list[int]  # CUT, OPEN

    def __len__(self) -> int:
        return len(self.start_ns)


class ThreadTrace:
    """One thread's traced calls. The run file holds them as the runtime wrote them (by their ends); `columns`
    and `events` order them by start, with the calls still open at the end added."""

    def __init__(self, thread: ThreadData, recorded: RecordedTrace):
        self.thread = thread
        self.recorded = recorded

    @property
    def stop_ns(self) -> float | None:
        """When the trace stopped at its size limit (None: it did not)."""
        return self._ns(self.recorded.stop_ticks) if self.recorded.stop_ticks else None

    def _ns(self, ticks: int) -> float:
        return (ticks - self.recorded.start_ticks) * self.recorded.scale

    @cached_property
    def columns(self) -> TraceColumns:
        recorded = self.recorded
        depth_of = _depths(recorded.nodes)
        depth_by_offset = {offset: depth_of[id(node)] for offset, node in recorded.nodes.items() if node.key is not None}
        raw = array.array("Q")
        raw.frombytes(recorded.events)
        offsets, starts, ends = raw[0::3], list(raw[1::3]), list(raw[2::3])
        flags = [0] * len(starts)
        if recorded.stop_ticks:  # CUT is the runtime's bit: only a trace that stopped has cut calls
            flags = [offset & TRACE_CUT for offset in offsets]
            offsets = array.array("Q", (offset & ~TRACE_CUT for offset in offsets))
        offsets = list(offsets)
        # calls still open at the end: on the stack (drawn to the end, or to the stop if the trace stopped first)
        end = recorded.close_ticks
        if recorded.stop_ticks:
            end = min(end, recorded.stop_ticks)
        for node_offset, start in recorded.open_frames:
            # a killed run ends at its latest recorded moment, which may be the innermost call's start
            if start < end if end == recorded.stop_ticks else start <= end:
                offsets.append(node_offset)
                starts.append(start)
                ends.append(end)
                flags.append(CUT if end == recorded.stop_ticks else OPEN)
        depths = list(map(depth_by_offset.get, offsets))
        # by start, the outer call first when two start on the same tick (a sort key made of plain integers: a
        # million calls sort in a second); calls of nodes the reader did not keep are left out
        known = range(len(depths))
        if None in depths:
            known = [i for i, depth in enumerate(depths) if depth is not None]
            depths = [depth or 0 for depth in depths]
        # depths past 2**20 (never seen: a stack that deep overflows first) would only order calls of one tick
        keys = [start << 20 | depth for start, depth in zip(starts, depths)]
        order = sorted(known, key=keys.__getitem__)
        origin, scale = recorded.start_ticks, recorded.scale
        nodes = recorded.nodes
        return TraceColumns([(starts[i] - origin) * scale for i in order], [(ends[i] - origin) * scale for i in order],
                            [depths[i] for i in order], [nodes[offsets[i]] for i in order], [flags[i] for i in order])

    @property
    def events(self) -> list[TraceEvent]:
        """The calls as objects (convenient for a program reading a trace; renderers use `columns`)."""
        c = self.columns
        return [TraceEvent(start, end, depth, node, cut=bool(flag & CUT), open=bool(flag & OPEN))
                for start, end, depth, node, flag in zip(c.start_ns, c.end_ns, c.depth, c.node, c.flags)]

    def __len__(self) -> int:
        return len(self.columns)


def _depths(nodes: dict[int, CallNode]) -> dict[int, int]:
    """Each node's depth below its thread root (a traced call's depth on the stack: every caller of a timed call
    has a frame, recursion included)."""
    depth: dict[int, int] = {}
    for node in nodes.values():
        chain = []
        while node is not None and id(node) not in depth:
            chain.append(node)
            node = node.parent
        known = depth[id(node)] if node is not None else -2
        for member in reversed(chain):
            known += 1
            depth[id(member)] = known
    return depth


def traced(run) -> bool:
    """Whether any process of the run recorded a trace."""
    representative = getattr(run, "representative", run)
    return any(process.header["features"] & FEAT_TRACE for process in representative.processes)


_decoded: dict[int, ThreadTrace] = {}  # by id of the RecordedTrace: a run's views share one decoding


def run_traces(run) -> list[tuple[object, ThreadTrace]]:
    """(process, trace) for every thread of the run that has one, the main process first; a group's from its
    median run."""
    representative = getattr(run, "representative", run)
    traces = []
    for process in representative.processes:
        for thread in process.threads:
            if thread.trace is not None:
                decoded = _decoded.get(id(thread.trace))
                if decoded is None or decoded.recorded is not thread.trace:
                    decoded = _decoded[id(thread.trace)] = ThreadTrace(thread, thread.trace)
                traces.append((process, decoded))
    return traces
