"""Removes the guard's own cost from measured times, and says how uncertain that makes each figure.

Every instrumented call costs some time *inside* the callee's measured interval (`inner`: the tail of the entry
guard after its timer read and the head of the exit guard before it) and some time that lands in the *caller*
(`outer`: the rest of both guards). The runtime measures both with the real inline guard at start-up
(calibration.c, cprof_calibrate_guard); here each node gives back calls x inner of its own time and child_calls x outer of
its self time. A call that took the runtime's slow path (its call path's first call, a longjmp repair, a stack
that grew) cost more, in the caller's time: the runtime measures that time itself (node.slow_ticks), and it is
given back too, exactly.

Every corrected figure carries calls x (spread + model error) as its uncertainty. The spread is what the runtime
measured (round-to-round noise and the dependence on the callee's size). The model error is what that calibration
loop, where branch predictors and caches are ideal, cannot see: what a call really added to real programs (their
instrumented process time minus their plain process time, both timed the same way, per call, the slow paths'
own measured time and the fixed cost of an instrumented process aside) against what was calibrated.
scripts/bench_accuracy.py measures it on qsort+hash, fib, Lua, sqlite3's shell, zlib and brotli, each built as
its user builds it, and keeps the result in benchmarks/results/accuracy.json; MODEL_ERROR is the largest deviation
found there (a test checks the two agree). We do not subtract an assumed extra; we widen the uncertainty by it, so
a report never claims more precision than it has."""

from __future__ import annotations

from dataclasses import dataclass


MODEL_ERROR = 0.18  # fraction of the calibrated guard cost: benchmarks/results/accuracy.json, model_error.margin
# Times estimated from samples (samples.py) state a 95% interval (the Wilson score interval's farther side: about
# two standard errors with many samples): the true value lies within it about 95% of the time, like a corrected
# time within calls x (spread + model error).
SAMPLE_Z = 2.0
# What a counted call costs a real program. Not what an increment costs on its own: that is nearly nothing behind
# dependent work, and in calls of no work back to back whatever the places of a few branches make it (the start-up
# calibration's figure there moved severalfold as the runtime's own layout moved). What a program pays is its
# code changed around the count: a load and an increment in every counted function, some no longer inlined
# (sqlite3: some counted functions the plain build inlines keep a copy of their own). scripts/bench_adaptive.py
# measures it per program (count_cost_ns in benchmarks/results/adaptive.json): the main thread's self times with
# the timed guards' calibrated cost taken out and nothing given back for the counts, over the plain program's
# time, per counted call. This is the median over its programs that measure it to 0.1 ns or better (a test
# checks): qsort+hash's few counted calls, or bc's layout, swing theirs by more than a count costs. The whole
# extra time per counted call, used before, held the timed guards' cost a second time, and Lua's self times then
# summed 11% under plain.
COUNT_COST_NS = 0.17
# The most a count-only call may cost, per call: a little over the largest of those figures. Since rare tiny
# functions are counted rather than timed (adaptive.py), they range from nothing (csmith: gcc moves the increments
# of its loops' inlined helpers out of the loops) to sqlite3's 0.3 ns (0.5-0.8 before); jq, tried by hand, about
# 0.27. bc's figure, from -1.5 to over 2 ns over few counted calls, is its time moving with where its code lies, as
# its plain program's does (scripts/layouts.py), which no count explains. A count may cost from nothing to this; a
# test requires the sum of self times of every benchmark run to lie within the uncertainty the run stated, the
# plain program's noise and layout aside.
COUNT_ERROR_NS = 0.35


@dataclass(frozen=True)
class Calibration:
    inner_ns: float = 0.0
    outer_ns: float = 0.0
    inner_spread_ns: float = 0.0
    outer_spread_ns: float = 0.0
    count_ns: float = 0.0  # what a count-only guard adds to a call among work (its increment), and its spread
    count_spread_ns: float = 0.0
    heap_op_ns: float = 0.0  # what heap tracking adds to one allocation or free (csrc/heap.c, calibrate), and its spread
    heap_op_spread_ns: float = 0.0
    # False when the runtime measured no guard cost: the clock timer (CPROF_TIMER=clock, or no invariant TSC) and
    # --cpu-time send every call through the slow path, which is not calibrated. Nothing is then corrected, and
    # no report may claim it was.
    measured: bool = False

    @classmethod
    def from_header(cls, header: dict, heap: dict | None = None) -> "Calibration":
        """From the run file's header, and its heap record when the heap was tracked."""
        scale = 1e9 / (header["ticks_per_second"] or 1e9)
        if not header.get("calibration_rounds"):
            return cls()
        return cls(
            header["guard_inner_ticks"] * scale,
            header["guard_outer_ticks"] * scale,
            header["guard_inner_spread"] * scale,
            header["guard_outer_spread"] * scale,
            header.get("count_guard_ticks", 0.0) * scale,
            header.get("count_guard_spread", 0.0) * scale,
            (heap or {}).get("op_cost_ps", 0) / 1000.0,
            (heap or {}).get("op_spread_ps", 0) / 1000.0,
            measured=True,
        )

    @property
    def per_call_ns(self) -> float:
        return self.inner_ns + self.outer_ns

    @property
    def count_cost_ns(self) -> float:
        """What one counted call is taken to cost: COUNT_COST_NS, what real programs pay per counted call (a
        striped count too: fib, where striping serves, pays about the median); never less than the increment among
        work this machine measured. How far the truth lies from it is in the uncertainty (take_out_count_cost)."""
        return max(self.count_ns, COUNT_COST_NS)


def _heap_operations(node) -> int:
    """Calls into the allocator that heap tracking saw in this node (a realloc is a release and an allocation, and
    costs the tracking of both)."""
    return node.alloc_count + node.free_count


def correct_tree(root, calibration: Calibration) -> None:
    """Fills corrected_self_ns / corrected_total_ns / *_err_ns of every node under `root`. Heap tracking's cost,
    inside the allocator's calls and so in the self time of the function that called it, is given back the same
    way, per allocation and free."""
    order = list(root.walk())
    descendants: dict[int, int] = {}
    slow_below: dict[int, float] = {}  # measured slow-path time of the calls made inside a node
    heap_below: dict[int, int] = {}  # heap operations made inside a node's callees
    for node in reversed(order):
        descendants[id(node)] = sum(c.calls + descendants[id(c)] for c in node.children.values())
        slow_below[id(node)] = sum(c.slow_ns + slow_below[id(c)] for c in node.children.values())
        heap_below[id(node)] = sum(_heap_operations(c) + heap_below[id(c)] for c in node.children.values())
    inner, outer, heap_op = calibration.inner_ns, calibration.outer_ns, calibration.heap_op_ns
    inner_err = calibration.inner_spread_ns + MODEL_ERROR * inner
    outer_err = calibration.outer_spread_ns + MODEL_ERROR * outer
    heap_err = calibration.heap_op_spread_ns + MODEL_ERROR * heap_op
    for node in order:
        child_calls = sum(c.calls for c in node.children.values())
        below = descendants[id(node)]
        slow_children = sum(c.slow_ns for c in node.children.values())
        own_heap, all_heap = _heap_operations(node), _heap_operations(node) + heap_below[id(node)]
        node.corrected_self_ns = max(0.0, node.self_ns - node.calls * inner - child_calls * outer - slow_children
                                     - own_heap * heap_op)
        node.corrected_total_ns = max(0.0, node.total_ns - node.calls * inner - below * (inner + outer)
                                      - slow_below[id(node)] - all_heap * heap_op)
        node.self_err_ns = node.calls * inner_err + child_calls * outer_err + own_heap * heap_err
        node.total_err_ns = node.calls * inner_err + below * (inner_err + outer_err) + all_heap * heap_err


def take_out_count_cost(thread, calibration: Calibration) -> None:
    """Gives back what the count-only functions' increments cost in one thread, out of the self times they ran in
    and the totals above them. A function the samples
    found (node.sampled, samples.py) gives it back out of its own estimate, spread over its call paths in
    proportion. What the samples did not find (all of a function: sampling off, a run too short, a rare function;
    or more cost than they found time: a few samples of a function called millions of times) is in some self time
    of the thread, which one is not known: it comes out of all of them in proportion, so that no share moves for
    it. The uncertainty reaches from nothing to COUNT_ERROR_NS a call."""
    holders: dict = {}
    for node in thread.root.walk():
        for key in node.sampled:
            holders.setdefault(key, []).append(node)
    taken: dict[int, float] = {}  # by node: what came out of its self time, which its total and its callers' hold
    elsewhere_cost = elsewhere_err = 0.0
    thread.count_cost_ns = 0.0
    for key, calls in thread.counted.items():
        owners = holders.get(key, [])
        estimate = sum(node.sampled[key][1] for node in owners)
        per_call = calibration.count_cost_ns
        cost = calls * per_call
        thread.count_cost_ns += cost
        err = calls * max(per_call, COUNT_ERROR_NS - per_call, calibration.count_spread_ns)
        here = min(cost, estimate) if estimate > 0 else 0.0
        if cost > 0:
            elsewhere_cost += cost - here
            elsewhere_err += err * (cost - here) / cost
        if here <= 0:
            continue
        keep = (estimate - here) / estimate
        for node in owners:
            raw_ns, corrected_ns, err_ns = node.sampled[key]
            share = corrected_ns / estimate
            node.sampled[key] = (raw_ns, corrected_ns * keep, err_ns + err * here / cost * share)
            taken[id(node)] = taken.get(id(node), 0.0) + here * share
    _take_out_of_every_self_time(thread, elsewhere_cost, elsewhere_err, taken)
    _take_out_of_totals(thread.root, taken)


def _take_out_of_every_self_time(thread, cost: float, err: float, taken: dict) -> None:
    """Takes `cost` out of every self time of the thread (timed nodes' and count-only functions' sampled ones) in
    proportion to it, and adds `err` to their uncertainties in the same proportion."""
    nodes = [node for node in thread.root.walk() if node.key is not None]
    total = sum(max(0.0, node.corrected_self_ns) + sum(v[1] for v in node.sampled.values()) for node in nodes)
    if cost <= 0 or total <= 0:
        return
    keep = max(0.0, total - cost) / total
    for node in nodes:
        before = max(0.0, node.corrected_self_ns) + sum(v[1] for v in node.sampled.values())
        if node.corrected_self_ns > 0:
            node.self_err_ns += err * node.corrected_self_ns / total
            node.corrected_self_ns *= keep
        for key, (raw_ns, corrected_ns, err_ns) in node.sampled.items():
            node.sampled[key] = (raw_ns, corrected_ns * keep, err_ns + err * corrected_ns / total)
        taken[id(node)] = taken.get(id(node), 0.0) + before * (1 - keep)


def _take_out_of_totals(root, taken: dict) -> None:
    """Each node's total holds its own self time and its callees': what came out of those comes out of it."""
    below: dict[int, float] = {}
    for node in reversed(list(root.walk())):
        below[id(node)] = taken.get(id(node), 0.0) + sum(below[id(child)] for child in node.children.values())
        if node.key is not None:
            node.corrected_total_ns = max(0.0, node.corrected_total_ns - below[id(node)])
