"""The stacks view of a run: every call path of every thread with its own and inclusive value (time, calls or bytes
allocated), which the flamegraph renderers and the exports share."""

from __future__ import annotations

import contextlib
import gc
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
    inclusive = _inclusive(thread.root, metric, corrected) if metric != "time" else None
    result: list[Stack] = []
    add = result.append
    # two stacks side by side, the nodes and their callers' keys, rather than a pair per node
    nodes = list(reversed(thread.root.children.values()))
    callers: list[tuple[FunctionKey, ...]] = [()] * len(nodes)
    while nodes:
        node = nodes.pop()
        keys = callers.pop() + (node.key,)
        raw = node.self_ns
        # a measured time is the node's own inclusive time (recursion counted once, the sampled leaves inside)
        total = (node.corrected_total_ns if corrected else node.total_ns) if inclusive is None else inclusive[id(node)]
        add(Stack(thread, keys, _own(node, metric, corrected), total, node.calls,
                  mostly_correction=corrected and raw > 0 and raw - node.corrected_self_ns > 0.5 * raw))
        if inclusive is None:
            for key, parts in node.sampled.items():
                value = parts[1 if corrected else 0]
                add(Stack(thread, keys + (key,), value, value, 0, sampled=True))
        children = node.children
        if children:
            nodes.extend(reversed(children.values()))
            callers.extend([keys] * len(children))
    return result


def _inclusive(root: CallNode, metric: str, corrected: bool) -> dict[int, float]:
    """id(node) -> its own calls or bytes plus its callees', at any depth."""
    order, pending = [], [root]
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(node.children.values())
    inclusive: dict[int, float] = {}
    for node in reversed(order):  # callees first
        below = sum(inclusive[id(c)] for c in node.children.values())
        inclusive[id(node)] = below if node.key is None else _own(node, metric, corrected) + below
    return inclusive


@contextlib.contextmanager
def collector_paused():
    """Python's cycle collector paused while a million objects without cycles are made (stacks, frames): each
    full collection they would set off walks every object of the loaded run again, which costs more than
    making them. Collection resumes afterwards, as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_stacks(run, metric: str = "time", corrected: bool = True) -> list[Stack]:
    """Every thread's stacks; a group is drawn from its median run, as its call tree is."""
    representative = getattr(run, "representative", run)
    with collector_paused():
        return [s for thread in representative.threads for s in thread_stacks(thread, metric, corrected)]
