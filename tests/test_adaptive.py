"""Which functions --adaptive counts only: chosen from runs built in memory (cprof/model/adaptive.py), and from the
text of those the run called rarely or never (cprof/instrument/small.py)."""

from __future__ import annotations

import re

from cprof.instrument.small import small_leaves
from cprof.model.adaptive import FALLBACK_GUARD_NS, choose_counted, identity
from cprof.model.correction import Calibration
from test_render import MS, _node, memory_run


def test_a_budget_times_the_most_work_per_call_and_a_call_smaller_than_its_guard_is_never_timed():
    """main (100 ms) calls: `busy` a million times (60 ns each: timing it all would cost 40% of the run, over the
    10% budget), `rare_heavy` 5 times (1 ms each), `rare_tiny` 5 times (20 ns each, less than a guard: the plain
    build would likely inline it, and a timed guard would keep it out of line in its callers, a cost the budget
    does not see) and `few` 999 times (100 ns each: too rare to cost anything when timed)."""
    run = memory_run(trees=[[_node("main", 1, 100 * MS, [
        _node("busy", 1_000_000, 60 * MS), _node("rare_heavy", 5, 5 * MS), _node("rare_tiny", 5, 100),
        _node("few", 999, 999 * 100)])]])
    assert run.processes[0].calibration.per_call_ns == 0 and FALLBACK_GUARD_NS > 20  # judged by the fallback
    names = {identity(f): f.key.name for f in run.functions()}
    assert sorted(names[i] for i in choose_counted(run)) == ["busy", "rare_tiny"]


def test_a_calibration_read_high_does_not_count_the_callers_of_a_call_dense_leaf():
    """fib's learning run on a busy machine: a guard read at 70 ns where the leaf's calls measured 60 ns each, guard
    and all, takes `benchmark` and `main` to nothing once corrected. Their raw time (60 ms a call) is far more
    than a few guards: they stay timed, and only the leaf is counted."""
    leaf = _node("fib", 1_000_000, 60 * MS)
    run = memory_run(trees=[[_node("main", 1, 61 * MS, [_node("benchmark", 1, 60.5 * MS, [leaf])])]],
                     calibration=Calibration(inner_ns=35.0, outer_ns=35.0, measured=True))
    functions = {f.key.name: f for f in run.functions()}
    assert functions["main"].total_ns < 70 and functions["benchmark"].total_ns < 70  # corrected to nothing
    names = {identity(f): f.key.name for f in run.functions()}
    assert sorted(names[i] for i in choose_counted(run)) == ["fib"]


def test_small_leaves_are_loop_free_and_call_only_small_leaves_or_what_gcc_expands():
    """instrument/small.py, on text as the preprocessor leaves it: which functions an adaptive build counts when its
    learning run called them rarely or never."""
    text = """
    static int add(int a, int b) { return a + b; }
    static unsigned read32(const void *p) { unsigned v; memcpy(&v, p, sizeof v); return __builtin_bswap32(v); }
    static int uses_small(int a) { if (a) return add(a, 1); return (int)read32(&a); }
    static int loops(int n) { int s = 0; for (int i = 0; i < n; i++) s += i; return s; }
    static int calls_loop(int n) { return loops(n); }
    static int calls_libc(const char *s) { return (int)strlen(s); }
    static int recursive(int n) { return n ? recursive(n - 1) : 0; }
    static int through_pointer(int (*f)(int)) { return (*f)(1); }
    static int jumps(int a) { again: if (a--) goto again; return a; }
    """ + "    static int long_one(int a) { " + "a++; " * 16 + "return a; }\n"  # 17 statements
    bodies = {}  # each definition is one line: its name is the first before a `(`, its body from ") {" to "}"
    for match in re.finditer(r"static \w+ (\w+)\(.*\) \{.*\}$", text, re.MULTILINE):
        bodies[match.group(1)] = (text.index(") {", match.start()) + 2, match.end() - 1)
    assert len(bodies) == 10
    assert small_leaves(text, bodies) == {"add", "read32", "uses_small"}
