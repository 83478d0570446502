"""Which functions --adaptive counts only (cprof/model/adaptive.py), chosen from runs built in memory."""

from __future__ import annotations

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
