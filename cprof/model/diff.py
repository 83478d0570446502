"""Compares two runs, or two groups of runs (`profile --repeat`), function by function.

With groups, each side is the median of its runs and its noise is the spread of those runs: a change is reported
as significant only when it clears both sides' spread and the correction uncertainty. With single runs there is
no spread to judge by; every change is shown and the report says so."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from cprof.model.run import FunctionKey, Run


@dataclass
class Side:
    self_ns: float = 0.0  # median over the side's runs
    spread_ns: float = 0.0  # half the range over the side's runs
    err_ns: float = 0.0  # correction uncertainty (median)
    calls: float = 0.0
    alloc_bytes: float = 0.0
    present: bool = False


@dataclass
class FunctionChange:
    key: FunctionKey
    a: Side
    b: Side
    significant: bool

    @property
    def delta_ns(self) -> float:
        return self.b.self_ns - self.a.self_ns

    @property
    def delta_percent(self) -> float | None:
        return 100.0 * self.delta_ns / self.a.self_ns if self.a.self_ns else None


@dataclass
class RunDiff:
    a_label: str
    b_label: str
    a_runs: int
    b_runs: int
    total_a: Side
    total_b: Side
    total_significant: bool
    changes: list[FunctionChange] = field(default_factory=list)

    @property
    def has_spread(self) -> bool:
        return self.a_runs > 1 and self.b_runs > 1

    @property
    def total_delta_percent(self) -> float | None:
        a = self.total_a.self_ns
        return 100.0 * (self.total_b.self_ns - a) / a if a else None

    def regressions_over(self, percent: float) -> list[str]:
        """Reasons the comparison fails a --fail-over PCT budget (total first), only counting changes that
        clear the noise."""
        reasons = []
        total = self.total_delta_percent
        if total is not None and total > percent and self.total_significant:
            reasons.append(f"total self time rose {total:.1f}% (over {percent:g}%)")
        for change in self.changes:
            pct = change.delta_percent
            # functions under 1% of the run move by noise alone; they cannot fail a budget
            if (pct is not None and pct > percent and change.significant
                    and change.a.self_ns >= 0.01 * self.total_a.self_ns):
                reasons.append(f"{change.key.name} rose {pct:.1f}% (over {percent:g}%)")
        return reasons


def _side(values: list[tuple[float, float, float, float]]) -> Side:
    """values: (self_ns, err_ns, calls, alloc_bytes) per run; absent runs are missing from the list."""
    if not values:
        return Side()
    selves = [v[0] for v in values]
    return Side(
        self_ns=statistics.median(selves),
        spread_ns=(max(selves) - min(selves)) / 2,
        err_ns=statistics.median(v[1] for v in values),
        calls=statistics.median(v[2] for v in values),
        alloc_bytes=statistics.median(v[3] for v in values),
        present=True,
    )


def _clears_noise(a: Side, b: Side, has_spread: bool) -> bool:
    delta = abs(b.self_ns - a.self_ns)
    if delta <= a.err_ns + b.err_ns:
        return False
    return delta > a.spread_ns + b.spread_ns if has_spread else True


def diff_runs(a_runs: list[Run], b_runs: list[Run], a_label: str, b_label: str, corrected: bool = True) -> RunDiff:
    def per_function(runs: list[Run]) -> dict[FunctionKey, list]:
        table: dict[FunctionKey, list] = {}
        for run in runs:
            for item in run.functions(corrected):
                table.setdefault(item.key, []).append((item.self_ns, item.self_err_ns, item.calls, item.alloc_bytes))
        return table

    def totals(runs: list[Run]) -> Side:
        return _side([
            (sum(f.self_ns for f in run.functions(corrected)), sum(f.self_err_ns for f in run.functions(corrected)),
             sum(f.calls for f in run.functions(corrected)), 0.0)
            for run in runs
        ])

    a_table, b_table = per_function(a_runs), per_function(b_runs)
    result = RunDiff(a_label, b_label, len(a_runs), len(b_runs), totals(a_runs), totals(b_runs), False)
    result.total_significant = _clears_noise(result.total_a, result.total_b, result.has_spread)
    for key in set(a_table) | set(b_table):
        a, b = _side(a_table.get(key, [])), _side(b_table.get(key, []))
        result.changes.append(FunctionChange(key, a, b, _clears_noise(a, b, result.has_spread)))
    result.changes.sort(key=lambda c: (-abs(c.delta_ns), c.key.name))
    return result
