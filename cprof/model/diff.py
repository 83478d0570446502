"""Compares two runs, or two groups of runs (`profile --repeat`), function by function.

With groups, each side is the median of its runs and its noise is the spread (half the range) of those runs: a
change is significant only when it clears both sides' spread and the correction uncertainty. A single run has no
spread to judge by; the renderers say so."""

from __future__ import annotations

from dataclasses import dataclass, field

from cprof.model.coverage import Coverage, median_coverage
from cprof.model.load import function_samples, median_of
from cprof.model.run import (FUNCTION_COUNTERS, FunctionKey, FunctionStats, Run, add_stats, counters_dataclass,
                             raw_reason)

# a side's medians of the counters functions sum (calls, alloc_bytes...)
_SideCounters = counters_dataclass("SideCounters", FUNCTION_COUNTERS, float)


@dataclass
class Side(_SideCounters):
    self_ns: float = 0.0  # median over the side's runs
    spread_ns: float = 0.0  # half the range over the side's runs
    err_ns: float = 0.0  # correction uncertainty (median)
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

    @property
    def noise_ns(self) -> float:
        return noise_ns(self.a, self.b)


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
    a_coverage: Coverage | None = None
    b_coverage: Coverage | None = None
    corrected: bool = True  # both sides corrected for the guard's cost (else both are raw)
    raw_reason: str | None = None  # why they are raw, when the user did not ask for it
    # the runs compared, for renderers that compare more than functions (the differential flamegraph's call paths)
    a_sources: list[Run] = field(default_factory=list, repr=False)
    b_sources: list[Run] = field(default_factory=list, repr=False)

    @property
    def has_spread(self) -> bool:
        """At least one side is a group, so there is a run-to-run spread to judge noise by."""
        return self.a_runs > 1 or self.b_runs > 1

    @property
    def total_delta_percent(self) -> float | None:
        a = self.total_a.self_ns
        return 100.0 * (self.total_b.self_ns - a) / a if a else None

    @property
    def total_noise_ns(self) -> float:
        return noise_ns(self.total_a, self.total_b)

    def regressions_over(self, percent: float) -> list[str]:
        """Reasons the comparison fails a --fail-over PCT budget, functions first (they say where to look), then
        the total; only changes that clear the noise count."""
        reasons = []
        for change in self.changes:
            pct = change.delta_percent
            # functions under 1% of the run move by noise alone; they cannot fail a budget
            if (pct is not None and pct > percent and change.significant
                    and change.a.self_ns >= 0.01 * self.total_a.self_ns):
                reasons.append(f"{change.key.name} rose {pct:.1f}%")
        total = self.total_delta_percent
        if total is not None and total > percent and self.total_significant:
            reasons.append(f"total self time rose {total:.1f}%")
        return reasons


def _side(items: list[FunctionStats | None]) -> Side:
    """The median over a side's runs; a run without the function counts as zero."""
    side = measured_side([item.self_ns if item else None for item in items],
                         [item.self_err_ns if item else 0.0 for item in items])
    if side.present:
        for c in FUNCTION_COUNTERS:
            setattr(side, c.attribute, median_of(getattr(item, c.attribute) if item else 0 for item in items))
    return side


def measured_side(values: list[float | None], errors: list[float]) -> Side:
    """One figure over a side's runs (None where a run does not have it, counted as zero): its median, its spread
    and the median correction uncertainty, in self_ns, spread_ns and err_ns. A function's self time here; the
    differential flamegraph gives a call path's inclusive value (time, calls or bytes) the same treatment."""
    if all(value is None for value in values):
        return Side()
    figures = [0.0 if value is None else value for value in values]
    return Side(self_ns=median_of(figures), spread_ns=(max(figures) - min(figures)) / 2, err_ns=median_of(errors),
                present=True)


def _run_total(run: Run, corrected: bool) -> FunctionStats:
    """Every function's figures added up: self times and counters mean the whole run's (totals overlap, and are
    not read)."""
    total = FunctionStats(FunctionKey("(total)", "", 0))
    for item in run.functions(corrected):
        add_stats(total, item)
    return total


def noise_ns(a: Side, b: Side) -> float:
    """How far apart two sides can be by chance: their runs' spread, or the correction uncertainty, whichever is
    larger."""
    return max(a.spread_ns + b.spread_ns, a.err_ns + b.err_ns)


def clears_noise(a: Side, b: Side) -> bool:
    """Whether B differs from A by more than their noise: what `cprof diff` calls a change, not noise."""
    return abs(b.self_ns - a.self_ns) > noise_ns(a, b)


def diff_runs(a_runs: list[Run], b_runs: list[Run], a_label: str, b_label: str, corrected: bool = True) -> RunDiff:
    """Corrected times only when every run of both sides could be corrected: corrected against raw would show the
    guard's cost as a change."""
    reason = raw_reason([p for run in a_runs + b_runs for p in run.processes]) if corrected else None
    corrected = corrected and reason is None
    total_a = _side([_run_total(run, corrected) for run in a_runs])
    total_b = _side([_run_total(run, corrected) for run in b_runs])
    result = RunDiff(a_label, b_label, len(a_runs), len(b_runs), total_a, total_b, clears_noise(total_a, total_b),
                     a_coverage=median_coverage(a_runs), b_coverage=median_coverage(b_runs), corrected=corrected,
                     raw_reason=reason, a_sources=list(a_runs), b_sources=list(b_runs))
    a_table, b_table = function_samples(a_runs, corrected), function_samples(b_runs, corrected)
    for key in set(a_table) | set(b_table):
        a = _side(a_table.get(key, [None] * len(a_runs)))
        b = _side(b_table.get(key, [None] * len(b_runs)))
        result.changes.append(FunctionChange(key, a, b, clears_noise(a, b)))
    result.changes.sort(key=lambda c: (-abs(c.delta_ns), c.key.name))
    return result
