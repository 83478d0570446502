"""Performance assertions for a C project's test suite, each failing with the table that says why.

No regression against a baseline, call budgets, no heap allocations: each raises AssertionError (what pytest and
unittest report as a failure) with the diff table, the call paths or the allocations in its message. A check that
cannot judge (single runs, whose noise is unknown; a run without heap tracking; a function the run never had; a
count-only function) raises CprofError instead: a broken check must neither pass nor fail silently."""

from __future__ import annotations

from cprof.api import Diff, Run, diff
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.model.heap import SOURCES
from cprof.render.style import Style, render_rows
from cprof.render.units import format_bytes, format_count, plural

__all__ = ["assert_allocates_nothing", "assert_calls_at_most", "assert_no_regression"]


def assert_no_regression(current: Run | str, baseline: Run | str = "before", percent: float = 10.0,
                         function: str | None = None, home: str | None = None) -> Diff:
    """Fails when `current` got more than `percent` slower than `baseline` in self time, beyond the noise that
    `cprof diff` judges by: every function (of at least 1% of the baseline's time) and the total, or only
    `function` (FILE:NAME for a static one) when given. Both are runs or references (a tag, an id...) in the store
    `home`; at least one must be a group (RunOptions(repeat=N)), whose spread is the noise. Returns the diff."""
    __tracebackhide__ = True  # pytest shows the failing line of the test, not this helper's
    compared = diff(baseline, current, home=home)
    if not compared.model.has_spread:
        raise CprofError("assert_no_regression compares two single runs, which have no spread to judge noise by: "
                         "profile them with RunOptions(repeat=5) (or --cprof-repeat 5)", EXIT_USAGE)
    if function is None:
        reasons = compared.regressions(percent)
    else:
        row = _diff_row(compared, function)
        grew = row["delta_percent"]
        # the same criterion regressions() applies to every function, without its 1%-of-the-run floor: a function
        # named on purpose is judged however small it is
        reasons = [f"{row['name']} rose {grew:.1f}%"] if grew is not None and grew > percent and row["significant"] \
            else []
    if reasons:
        raise AssertionError(f"performance regression against {compared.model.a_label}, over {percent:g}% beyond "
                             f"the noise: {'; '.join(reasons)}\n{compared.render('table')}")
    return compared


def _diff_row(compared: Diff, function: str) -> dict:
    file, _, name = function.rpartition(":") if ":" in function else ("", "", function)
    rows = [row for row in compared.rows if row["name"] == name and (not file or row["file"].endswith(file))]
    if not rows:
        raise CprofError(f"neither {compared.model.a_label} nor {compared.model.b_label} has a function "
                         f"'{function}'", EXIT_NOT_FOUND)
    if len(rows) > 1:
        raise CprofError(f"'{function}' names {len(rows)} functions: name one as FILE:NAME", EXIT_USAGE)
    return rows[0]


def _runs(run: Run) -> list:
    """The model's runs behind a Run: a group's every run, so that what happened in one of them is not hidden by
    the group's medians."""
    return list(run.model.runs) if run.is_group else [run.model]


def _path(node) -> str:
    return " > ".join(key.name for key in node.path())


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(render_rows(headers, rows, set(range(len(headers) - 1)), Style(False)))


def assert_calls_at_most(run: Run, caller: str, callee: str, n: int) -> int:
    """Fails when `caller` makes more than `n` calls of `callee`. Counted: the calls `caller` makes of `callee`
    directly, in every call path of every thread and process (in a group: the run with the most). Under recursion
    each activation of `caller` counts only its own direct calls, so nothing is counted twice, and
    caller == callee counts the recursive calls. A callee never called counts 0. Returns the count."""
    __tracebackhide__ = True
    caller_key, callee_key = _key(run, caller), _key(run, callee, may_be_absent=True)
    worst: tuple[int, dict] = (0, {})
    for model in _runs(run):
        _require_frames(model, caller_key, caller, "whom it calls")
        _require_frames(model, callee_key, callee, "who calls it")
        paths: dict[str, int] = {}
        for thread in model.threads:
            for node in thread.root.walk():
                child = node.children.get(callee_key) if node.key == caller_key else None
                if child is not None and child.calls:
                    paths[_path(child)] = paths.get(_path(child), 0) + child.calls
        if sum(paths.values()) >= worst[0]:
            worst = (sum(paths.values()), paths)
    count, paths = worst
    if count > n:
        rows = [[format_count(calls), path] for path, calls in sorted(paths.items(), key=lambda p: -p[1])]
        where = " (the group's run with the most)" if run.is_group else ""
        raise AssertionError(f"{caller} made {count:,} calls of {callee}{where}, more than {n:,}:\n"
                             + _table(["Calls", "Call path"], rows))
    return count


def assert_allocates_nothing(run: Run, function: str, inclusive: bool = False) -> None:
    """Fails when `function` made a heap allocation (malloc, calloc, realloc...) in the run (in a group: in any of
    its runs); with `inclusive`, also what it called: the call tree under each of its outermost activations."""
    __tracebackhide__ = True
    key = _key(run, function)
    for model in _runs(run):
        _require_frames(model, key, function, "what it allocated")
        for process in model.processes:
            if process.heap is None or not process.heap.tracked:
                seen = SOURCES.get(process.heap.source, "unknown") if process.heap else "no heap record"
                raise CprofError(f"run {model.id} cannot say what {function} allocated, as heap tracking saw nothing: "
                                 f"{seen}; run with heap tracking on (RunOptions(heap=True))", EXIT_USAGE)
        rows = []
        for thread in model.threads:
            for node in _activations(thread.root, key, outermost=inclusive):
                for part in (node.walk() if inclusive else [node]):
                    if part.alloc_count:
                        rows.append((part.alloc_count, part.alloc_bytes, _path(part)))
        if rows:
            total = sum(count for count, _, _ in rows)
            what = f"{function} (with what it calls)" if inclusive else function
            group = f" in run {model.id} of the group" if run.is_group else ""
            raise AssertionError(f"{what} made {plural(total, 'heap allocation')}{group}:\n"
                                 + _table(["Allocs", "Bytes", "Call path"],
                                          [[format_count(c), format_bytes(b), path] for c, b, path in rows]))


def _require_frames(model, key, name: str, what: str) -> None:
    """A count-only function (--adaptive, --count-only) has no frame of its own: its calls are in no call path and
    its allocations are charged to its caller, so a check on it would pass whatever it did."""
    if key is not None and any(key in thread.counted for thread in model.threads):
        raise CprofError(f"{name} is only counted (--adaptive or --count-only), so {what} is not known: check a "
                         "build that times it", EXIT_USAGE)


def _activations(root, key, outermost: bool):
    """The nodes of `key` under root; with `outermost`, not those under another of its own (a recursive function's
    inner calls are already in its outer call's tree)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.key == key:
            yield node
            if outermost:
                continue
        stack.extend(node.children.values())


def _key(run: Run, name: str, may_be_absent: bool = False):
    """The model's key of the function `name` (FILE:NAME for a static one) in the run; None for an absent
    function when that may be (a callee never called)."""
    try:
        record = run.function(name)
    except CprofError as error:
        if may_be_absent and error.exit_code == EXIT_NOT_FOUND:
            return None
        raise
    return next(item.key for item in run.model.functions() if item.name == record.name and item.key.file ==
                record.file and item.key.line == record.line)
