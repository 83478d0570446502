"""Which functions --adaptive counts only (cprof/model/adaptive.py), chosen from runs built in memory."""

from __future__ import annotations

from cprof.model.adaptive import FALLBACK_GUARD_NS, choose_counted, identity
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
