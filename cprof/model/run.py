"""The loaded Run: processes, threads and their call trees, and per-function statistics in nanoseconds.

Raw counters come from the run files; everything derived (self time, totals under recursion, corrections for
the guard's own cost, per-thread views) is computed here, once, for every renderer to share.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass, field, make_dataclass
from operator import mul

from cprof.errors import EXIT_CORRUPT, EXIT_NOT_FOUND, CprofError
from cprof import runfile
from cprof.model import samples as sampling
from cprof.model.correction import Calibration, correct_tree, take_out_count_cost

from cprof.runfile import (FEAT_ALLOCS, FEAT_CPU_TIME, FEAT_SAMPLES, FEAT_THREAD_CPU, FEAT_TRACE,  # noqa: F401 (re-exported)
                           FEAT_WAIT_TIME, FN_COUNTED, FN_INLINE, FN_SECTION, FN_STATIC)
from cprof.model.heap import HEAP_NODE_COUNTERS, ProcessHeap, load_heap
from cprof.runfile import COUNT, NODE_COUNTERS

# every counter of a call-tree node: the run file's, then those its allocation sites give it (model/heap.py)
MODEL_COUNTERS = NODE_COUNTERS + HEAP_NODE_COUNTERS
# the counters a function's statistics sum as they are, under the same names as on CallNode
FUNCTION_COUNTERS = tuple(c for c in MODEL_COUNTERS if c.per_function)
_RECORD_COUNTER_NAMES = tuple(c.attribute for c in NODE_COUNTERS)
_MODEL_COUNTER_NAMES = tuple(c.attribute for c in MODEL_COUNTERS)
_FUNCTION_COUNTER_NAMES = tuple(c.attribute for c in FUNCTION_COUNTERS)


def read_run_file(path: str) -> dict:
    """The native reader when the extension is built, else the pure-Python one (same result)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device named like a run file would block forever
            raise CprofError(f"corrupt run file {path}: not a regular file", EXIT_CORRUPT)
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise CprofError(f"cannot read run file {path}: {error.strerror}", EXIT_NOT_FOUND) from None
    try:
        from cprof import _native

        return _native.read_run(data)
    except ImportError:
        pass
    except ValueError as error:
        raise CprofError(f"corrupt run file {path}: {error}", EXIT_CORRUPT) from None
    try:
        return runfile.read_run(data)
    except (runfile.RunFileError, ValueError) as error:
        raise CprofError(f"corrupt run file {path}: {error}", EXIT_CORRUPT) from None


@dataclass(frozen=True)
class FunctionKey:
    name: str
    file: str
    line: int


def counters_dataclass(name: str, counters, number: type | None = None) -> type:
    """A dataclass holding the given node counters under their model names, all zero, for a class to derive
    from: ints for counts and floats for times, or all of the type `number`. Keyword-only, so that the deriving
    class's own fields keep their places (CallNode(key, parent)); no __eq__, so that CallNode keeps identity."""
    fields = []
    for counter in counters:
        kind = number or (int if counter.unit == COUNT else float)
        fields.append((counter.attribute, kind, field(default=kind(), kw_only=True)))
    return make_dataclass(name, fields, eq=False, namespace={"__module__": __name__})


NodeCounters = counters_dataclass("NodeCounters", MODEL_COUNTERS)
FunctionCounters = counters_dataclass("FunctionCounters", FUNCTION_COUNTERS)


@dataclass(eq=False)
class CallNode(NodeCounters):
    """One calling context. Its counters (NodeCounters: calls, total_ns, cpu_total_ns, wait_ns, alloc_count...,
    named by runfile.NODE_COUNTERS) are the run file's, raw, times in nanoseconds: total_ns and cpu_total_ns include
    the callees, the others count this node alone (csrc/runfile.h says what each holds)."""

    key: FunctionKey | None  # None for a thread root
    parent: "CallNode | None" = None
    children: dict = field(default_factory=dict)  # FunctionKey -> CallNode
    self_ns: float = 0.0  # raw
    cpu_ns: float = 0.0  # thread CPU time, callees excluded (--cpu-time)
    # corrected for the guard's own cost (see correction.py), with the uncertainty of that correction
    corrected_total_ns: float = 0.0
    corrected_self_ns: float = 0.0
    self_err_ns: float = 0.0
    total_err_ns: float = 0.0
    # count-only functions the samples found running in this node's self time, taken out of it:
    # FunctionKey -> (raw ns, corrected ns, uncertainty ns)
    sampled: dict = field(default_factory=dict)
    # the samples' statistical part of those uncertainties and of self_err_ns: the samples only divide a measured
    # self time, so these errors cancel in any sum of self times (FunctionKey -> ns; ns)
    sampled_statistical_err: dict = field(default_factory=dict)
    self_statistical_err_ns: float = 0.0

    def summed_self_err_ns(self) -> float:
        """The uncertainty this node adds to a sum of self times, its sampled parts' included: the corrections'
        errors, without the samples' statistical ones, which cancel in the sum (see summed_self_err_ns)."""
        return self.self_err_ns - self.self_statistical_err_ns + sum(
            parts[2] - self.sampled_statistical_err.get(key, 0.0) for key, parts in self.sampled.items())

    def child(self, key: FunctionKey) -> "CallNode":
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = CallNode(key, self)
        return node

    def path(self) -> list[FunctionKey]:
        keys, node = [], self
        while node is not None and node.key is not None:
            keys.append(node.key)
            node = node.parent
        return keys[::-1]

    def walk(self):
        """Pre-order, iteratively (call trees can be a million frames deep)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children.values())))


@dataclass(eq=False)
class RecordedTrace:
    """A thread's event trace as its run file holds it (csrc/trace.c), with what decoding it takes; decoded only
    when a view asks (cprof/model/trace.py): a trace holds millions of calls."""

    events: bytes  # native u64 triples (node offset | TRACE_CUT, start ticks, end ticks), by their ends
    nodes: dict  # node offset -> CallNode
    scale: float  # ns per tick
    start_ticks: int  # the process's start, where times count from
    open_frames: list  # (node offset, start ticks) still open at the end
    close_ticks: int  # where the open ones end
    stop_ticks: int  # 0, or when the trace stopped at its size limit


@dataclass
class ThreadData:
    index: int
    tid: int
    name: str
    root: CallNode
    start_ns: float
    end_ns: float
    lost_frames: int
    pid: int = 0
    cpu_ns: float | None = None  # the thread's whole CPU time (None: not known, e.g. the process was killed)
    counted: dict = field(default_factory=dict)  # FunctionKey -> calls of the count-only functions (no frames)
    sampled_keys: set = field(default_factory=set)  # count-only functions whose self time the samples estimated
    count_cost_ns: float = 0.0  # what the count-only functions' increments were taken to cost, out of its times
    trace: RecordedTrace | None = None  # the run recorded a trace: cprof/model/trace.py makes it calls in time order

    @property
    def lifetime_ns(self) -> float:
        return max(0.0, self.end_ns - self.start_ns)

    @property
    def instrumented_ns(self) -> float:
        """Wall time inside instrumented functions (outermost activations, raw: the guard's cost included, as
        in the lifetime it is compared with)."""
        return sum(child.total_ns for child in self.root.children.values())

    @property
    def wait_ns(self) -> float:
        """Time blocked in waiting calls, inside instrumented functions or not."""
        return sum(node.wait_ns for node in self.root.walk())


@dataclass
class ProcessData:
    pid: int
    parent_pid: int
    path: str
    header: dict
    complete: bool
    threads: list[ThreadData]
    calibration: Calibration
    flags: dict[FunctionKey, int]  # function flags (static, section...)
    sampled_weight: int = 0  # sampling periods the samples of this process stand for, inside recorded calls
    heap: ProcessHeap | None = None  # what heap tracking saw (None: a run file without a heap record)

    @property
    def fork_child(self) -> bool:
        return bool(self.header["flags"] & 2)

    @property
    def wall_ns(self) -> float:
        header = self.header
        if header["end_mono_ns"]:
            return float(header["end_mono_ns"] - header["start_mono_ns"])
        return max((t.end_ns for t in self.threads), default=0.0)


# the times FunctionStats derives from the nodes; like the counters, they add up over threads
FUNCTION_TIMES = ("self_ns", "total_ns", "self_err_ns", "total_err_ns", "raw_self_ns", "raw_total_ns", "cpu_ns",
                  "self_statistical_err_ns")


@dataclass
class FunctionStats(FunctionCounters):
    """A function's figures over its nodes: the counters (FunctionCounters: calls, wait_ns, which is part of the
    self time, alloc_count...) summed, and the times below."""

    key: FunctionKey
    flags: int = 0
    self_ns: float = 0.0  # corrected unless the run was loaded uncorrected
    total_ns: float = 0.0
    self_err_ns: float = 0.0
    total_err_ns: float = 0.0
    raw_self_ns: float = 0.0
    raw_total_ns: float = 0.0
    cpu_ns: float = 0.0
    # the part of self_err_ns that is the samples' statistical error, which cancels in a sum of self times
    self_statistical_err_ns: float = 0.0
    sampled: bool = False  # a count-only function whose self time the samples estimated (no total: no frame)
    threads: dict = field(default_factory=dict)  # (pid, thread index) -> FunctionStats for that thread

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def mostly_correction(self) -> bool:
        """More than half of the raw time was the guard's own cost: the corrected figure is an estimate."""
        return self.raw_self_ns > 0 and (self.raw_self_ns - self.self_ns) > 0.5 * self.raw_self_ns

    @property
    def mostly_uncertain(self) -> bool:
        """A self time from samples whose 95% interval reaches past half of it: few samples found it (a short run,
        a rare function)."""
        return self.counted_only and self.sampled and self.self_err_ns > 0.5 * self.self_ns

    @property
    def counted_only(self) -> bool:
        """Only counted, never timed (no frame): its self time is sampled, or else in its callers' self time."""
        return bool(self.flags & FN_COUNTED)

    @property
    def time_source(self) -> str:
        """How its time was obtained: "measured" (timed, corrected for the guards), "sampled" (a count-only
        function: its self time estimated from CPU-time samples, its total not known), or "none" (a count-only
        function in a run that did not sample: its time is in its callers')."""
        if not self.counted_only:
            return "measured"
        return "sampled" if self.sampled else "none"


def load_process(path: str) -> ProcessData:
    raw = read_run_file(path)
    header = raw["header"]
    tps = header["ticks_per_second"] or 1e9
    scale = 1e9 / tps
    start_ticks = header["start_ticks"]
    functions = {fid: (FunctionKey(name, file, line), flags) for fid, name, file, line, flags in raw["functions"]}
    flags = {key: f for key, f in functions.values()}

    # nodes by offset; attach each to its parent (offsets of roots are known from the thread records)
    nodes: dict[int, CallNode] = {}
    pending = []
    factors = [counter.factor(scale) for counter in NODE_COUNTERS]
    for offset, parent, function_id, *counters in raw["nodes"]:
        entry = functions.get(function_id)
        node = CallNode(entry[0] if entry else None)
        vars(node).update(zip(_RECORD_COUNTER_NAMES, map(mul, counters, factors)))  # half the cost of keywords
        nodes[offset] = node
        pending.append((node, parent))
    heap = load_heap(raw, nodes, header)
    for node, parent in pending:
        parent_node = nodes.get(parent) if parent >= 0 else None
        if parent_node is None or node.key is None:
            continue
        existing = parent_node.children.get(node.key)
        if existing is None:
            node.parent = parent_node
            parent_node.children[node.key] = node
        else:  # the same function reached twice under one node (a repaired file): merge
            _merge_into(existing, node)

    end_of_process = header["end_ticks"]
    traces = dict(raw.get("trace", ()))
    threads = []
    for index, tid, name, root_offset, t_start, t_end, last, lost, open_frames in raw["threads"]:
        root = nodes.get(root_offset)
        if root is None:
            continue
        # open frames (the thread or process ended inside them, or the process died) close where it ended
        close_at = t_end or end_of_process or max([last] + [s for _, s in open_frames])
        for node_offset, frame_start in open_frames:
            node = nodes.get(node_offset)
            if node is not None and close_at > frame_start:
                node.total_ns += (close_at - frame_start) * scale
        # a root's cpu_ns is its thread's whole CPU time (not a sum over calls): taken out before derived figures
        ended = bool(t_end) or raw["complete"]  # else the root still holds the thread's CPU clock at its start
        thread_cpu = root.cpu_total_ns if header["features"] & FEAT_THREAD_CPU and ended else None
        root.cpu_total_ns = 0.0
        thread = ThreadData(index, tid, name, root, (t_start - start_ticks) * scale,
                            ((t_end or close_at) - start_ticks) * scale, lost, header["pid"], thread_cpu)
        if header["features"] & FEAT_TRACE:
            thread.trace = RecordedTrace(traces.get(index, b""), nodes, scale, start_ticks, open_frames, close_at,
                                         header.get("trace_stop_ticks", 0))
        threads.append(thread)
    threads.sort(key=lambda t: t.index)
    by_index = {t.index: t for t in threads}
    for thread_index, function_id, calls in raw.get("counts", ()):
        entry = functions.get(function_id)
        if entry is not None and thread_index in by_index:
            counted = by_index[thread_index].counted
            counted[entry[0]] = counted.get(entry[0], 0) + calls
    calibration = Calibration.from_header(header, raw.get("heap"))
    for thread in threads:
        _derive(thread.root)
        correct_tree(thread.root, calibration)
    if header["features"] & FEAT_SAMPLES:
        sampling.apply_samples(raw, nodes, threads, flags, calibration)
    for thread in threads:  # sampled or not, the count increments' cost is in the thread's measured times
        take_out_count_cost(thread, calibration)
    return ProcessData(header["pid"], header["parent_pid"], path, header, raw["complete"], threads, calibration, flags,
                       sum(sample[4] for sample in raw.get("samples", ())), heap)


def _merge_into(target: CallNode, source: CallNode) -> None:
    for name in _MODEL_COUNTER_NAMES:
        setattr(target, name, getattr(target, name) + getattr(source, name))
    for key, child in source.children.items():
        if key in target.children:
            _merge_into(target.children[key], child)
        else:
            child.parent = target
            target.children[key] = child


def _derive(root: CallNode) -> None:
    """Self time = inclusive time minus the children's inclusive time; a thread root's total is its children's."""
    order = list(root.walk())
    for node in reversed(order):
        children_total = sum(c.total_ns for c in node.children.values())
        if node.key is None:
            node.total_ns = children_total
            node.calls = 0
        node.self_ns = max(0.0, node.total_ns - children_total)
        node.cpu_ns = max(0.0, node.cpu_total_ns - sum(c.cpu_total_ns for c in node.children.values()))


class Run:
    """One run: a directory of per-process run files (a fork creates one per child) and its metadata."""

    def __init__(self, run_id: str, path: str, meta: dict, processes: list[ProcessData]):
        self.id = run_id
        self.path = path
        self.meta = meta
        self.processes = processes
        self._functions: dict[bool, list[FunctionStats]] = {}

    @classmethod
    def load(cls, path: str, meta: dict | None = None, run_id: str | None = None) -> "Run":
        meta = meta or {}
        if os.path.isfile(path):
            files = [path]
            path = os.path.dirname(path)
        else:
            files = sorted(glob.glob(os.path.join(path, "*.cprof")))
            if meta.get("only_file"):
                files = [os.path.join(path, meta["only_file"])]
        if not files:
            raise CprofError(f"no run files in {path} (did the program run any instrumented code?)", EXIT_NOT_FOUND)
        processes = [load_process(f) for f in files]
        main_pid = meta.get("pid")
        processes.sort(key=lambda p: (p.pid != main_pid, p.header["start_unix_ns"]))
        return cls(run_id or os.path.basename(path), path, meta, processes)

    @property
    def main(self) -> ProcessData:
        return self.processes[0]

    @property
    def threads(self) -> list[ThreadData]:
        return [t for p in self.processes for t in p.threads]

    @property
    def complete(self) -> bool:
        return all(p.complete for p in self.processes)

    @property
    def wall_ns(self) -> float:
        return float(self.meta.get("wall_ns") or self.main.wall_ns)

    @property
    def exit_status(self) -> int | None:
        return self.meta.get("exit_status")

    @property
    def command(self) -> list[str]:
        return self.meta.get("command") or self.main.header["cmdline"]

    @property
    def calibrated(self) -> bool:
        """Whether the guard's cost was measured in every process, so that times can be corrected for it."""
        return all(p.calibration.measured for p in self.processes)

    @property
    def raw_reason(self) -> str | None:
        """Why this run's times cannot be corrected (None when they can)."""
        return raw_reason(self.processes)

    def functions(self, corrected: bool = True) -> list[FunctionStats]:
        """Per-function totals over all processes and threads. A function's total counts only its outermost
        activations on each path, so recursion does not count time twice. `corrected` is honoured only where the
        guard's cost was measured (see `calibrated`): otherwise the figures are raw."""
        corrected = corrected and self.calibrated
        if corrected in self._functions:
            return self._functions[corrected]
        stats: dict[FunctionKey, FunctionStats] = {}
        flags: dict[FunctionKey, int] = {}
        for process in self.processes:
            flags.update(process.flags)
        for thread in self.threads:
            per_thread: dict[FunctionKey, FunctionStats] = {}
            _accumulate(thread.root, per_thread, corrected)
            for key, calls in thread.counted.items():  # count-only functions: calls, and sampled self time
                part = per_thread.setdefault(key, FunctionStats(key, flags.get(key, 0)))
                part.calls += calls
                part.sampled = key in thread.sampled_keys
            for key, item in per_thread.items():
                total = stats.setdefault(key, FunctionStats(key, flags.get(key, 0)))
                item.flags = total.flags
                add_stats(total, item)
                total.threads[(thread.pid, thread.index)] = item
                total.sampled = total.sampled or item.sampled
        result = [s for s in stats.values() if s.calls or s.total_ns]
        self._functions[corrected] = result
        return result


TIMER_MONOTONIC = 2  # csrc/runfile.h CPROF_TIMER_MONOTONIC


def raw_reason(processes: list[ProcessData]) -> str | None:
    uncalibrated = [p for p in processes if not p.calibration.measured]
    if not uncalibrated:
        return None
    header = uncalibrated[0].header
    if header["features"] & FEAT_CPU_TIME:
        mode = "--cpu-time"
    elif header["timer_kind"] == TIMER_MONOTONIC:
        mode = "the clock_gettime timer (CPROF_TIMER=clock, or a CPU without an invariant TSC)"
    else:
        mode = "this run's timer mode"
    return (f"times are raw: with {mode} every call goes through the runtime's slow path, whose cost is not "
            "calibrated, so each call's guard cost is included; compare such runs only with each other")


def _accumulate(root: CallNode, out: dict[FunctionKey, FunctionStats], corrected: bool) -> None:
    active: dict[FunctionKey, int] = {}
    stack: list[tuple[CallNode, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = node.key
        if leaving:
            active[key] -= 1
            continue
        if key is not None:
            item = out.get(key)
            if item is None:
                item = out[key] = FunctionStats(key)
            for name in _FUNCTION_COUNTER_NAMES:
                setattr(item, name, getattr(item, name) + getattr(node, name))
            item.raw_self_ns += node.self_ns
            item.self_ns += node.corrected_self_ns if corrected else node.self_ns
            item.self_err_ns += node.self_err_ns if corrected else 0.0
            item.self_statistical_err_ns += node.self_statistical_err_ns if corrected else 0.0
            item.cpu_ns += node.cpu_ns
            for counted_key, (raw_ns, corrected_ns, err_ns) in node.sampled.items():
                part = out.get(counted_key)
                if part is None:
                    part = out[counted_key] = FunctionStats(counted_key)
                part.raw_self_ns += raw_ns
                part.self_ns += corrected_ns if corrected else raw_ns
                part.self_err_ns += err_ns if corrected else 0.0
                part.self_statistical_err_ns += node.sampled_statistical_err.get(counted_key, 0.0) if corrected else 0.0
            if not active.get(key):
                item.raw_total_ns += node.total_ns
                item.total_ns += node.corrected_total_ns if corrected else node.total_ns
                item.total_err_ns += node.total_err_ns if corrected else 0.0
            active[key] = active.get(key, 0) + 1
            stack.append((node, True))
        stack.extend((child, False) for child in node.children.values())


def summed_self_err_ns(functions) -> float:
    """The uncertainty of a sum of self times: the corrections' errors add up (they share one calibration), the
    samples' statistical errors cancel (the samples divide measured self times among functions)."""
    return sum(item.self_err_ns - item.self_statistical_err_ns for item in functions)


def add_stats(total: FunctionStats, item: FunctionStats) -> None:
    for name in FUNCTION_TIMES + _FUNCTION_COUNTER_NAMES:
        setattr(total, name, getattr(total, name) + getattr(item, name))
