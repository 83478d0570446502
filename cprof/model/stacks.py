"""The stacks view of a run: every call path of every thread with its own and inclusive value (time, calls or bytes
allocated), which the flamegraph renderers and the exports share."""

from __future__ import annotations

from dataclasses import dataclass

from cprof.model.run import CallNode, FunctionKey, ThreadData

METRICS = ("time", "calls", "bytes")  # what a call path weighs: its time (ns), its calls, the bytes it allocated


@dataclass(frozen=True)
class Stack:
    thread: ThreadData
    keys: tuple[FunctionKey, ...]  # outermost first; a count-only function's sampled time is a leaf of its own
    self_value: float
    total_value: float
    calls: int
    sampled: bool = False  # a count-only function's sampled self time (no frame: no calls, no total of its own)
    mostly_correction: bool = False  # more than half of its raw self time was the guard's cost

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)


def _own(node: CallNode, metric: str, corrected: bool) -> float:
    if metric == "calls":
        return node.calls
    if metric == "bytes":
        return node.alloc_bytes
    return node.corrected_self_ns if corrected else node.self_ns


def thread_stacks(thread: ThreadData, metric: str = "time", corrected: bool = True) -> list[Stack]:
    """Pre-order, iteratively (call trees can be a million frames deep)."""
    order = list(thread.root.walk())
    inclusive: dict[int, float] = {}
    for node in reversed(order):
        if node.key is None:  # the thread root: what its calls add up to
            inclusive[id(node)] = sum(inclusive[id(c)] for c in node.children.values())
        elif metric == "time":  # measured (recursion counted once), the sampled leaves' time inside it
            inclusive[id(node)] = node.corrected_total_ns if corrected else node.total_ns
        else:
            inclusive[id(node)] = _own(node, metric, corrected) + sum(inclusive[id(c)] for c in node.children.values())
    result: list[Stack] = []
    stack: list[tuple[CallNode, tuple[FunctionKey, ...]]] = [(c, (c.key,)) for c in
                                                             reversed(list(thread.root.children.values()))]
    while stack:
        node, keys = stack.pop()
        raw = node.self_ns
        result.append(Stack(thread, keys, _own(node, metric, corrected), inclusive[id(node)], node.calls,
                            mostly_correction=corrected and raw > 0 and raw - node.corrected_self_ns > 0.5 * raw))
        if metric == "time":
            for key, parts in node.sampled.items():
                value = parts[1 if corrected else 0]
                result.append(Stack(thread, keys + (key,), value, value, 0, sampled=True))
        stack.extend((child, keys + (child.key,)) for child in reversed(list(node.children.values())))
    return result


def run_stacks(run, metric: str = "time", corrected: bool = True) -> list[Stack]:
    """Every thread's stacks; a group is drawn from its median run, as its call tree is."""
    representative = getattr(run, "representative", run)
    return [s for thread in representative.threads for s in thread_stacks(thread, metric, corrected)]
