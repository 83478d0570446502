"""A thread's event trace (`cprof run --trace`, csrc/trace.c) as time-ordered calls with their depth: what the
flamechart and the evented exports draw. Decoded only when a view asks for it: a trace holds millions of calls."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cached_property

from cprof.model.run import CallNode, FunctionKey, RecordedTrace, ThreadData
from cprof.runfile import FEAT_TRACE, TRACE_CUT

_EVENT = struct.Struct("=3Q")


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


class ThreadTrace:
    """One thread's traced calls. The run file holds them as the runtime wrote them (by their ends); `events`
    orders them by start, outer calls before the calls they made, with the calls still open at the end added."""

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
    def events(self) -> list[TraceEvent]:
        recorded = self.recorded
        nodes, depth_of = recorded.nodes, _depths(recorded.nodes)
        events = []
        for node_value, start, end in _EVENT.iter_unpack(recorded.events):
            node = nodes.get(node_value & ~TRACE_CUT)
            if node is not None and node.key is not None:
                events.append(TraceEvent(self._ns(start), self._ns(end), depth_of[id(node)], node,
                                         cut=bool(node_value & TRACE_CUT)))
        # calls still open at the end: on the stack (drawn to the end, or to the stop if the trace stopped first)
        end = recorded.close_ticks
        if recorded.stop_ticks:
            end = min(end, recorded.stop_ticks)
        for node_offset, start in recorded.open_frames:
            node = nodes.get(node_offset)
            # a killed run ends at its latest recorded moment, which may be the innermost call's start
            began = start < end if end == recorded.stop_ticks else start <= end
            if node is not None and node.key is not None and began:
                events.append(TraceEvent(self._ns(start), self._ns(end), depth_of[id(node)], node,
                                         cut=end == recorded.stop_ticks, open=end != recorded.stop_ticks))
        events.sort(key=lambda event: (event.start_ns, event.depth))
        return events


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
