"""`cprof diff`: what changed between two runs or groups; with --fail-over, a CI gate."""

from __future__ import annotations

import sys

from cprof.errors import EXIT_NOT_FOUND, EXIT_REGRESSION, CprofError
from cprof.model.diff import diff_runs
from cprof.model.load import load_runs
from cprof.render.diff_table import DiffTable
from cprof.render.json_diff import JsonDiff
from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help="compare two runs or groups", usage="cprof diff [A] [B] [options]",
                                   description="Compare A (default: the second latest) with B (default: the "
                                   "latest). Tags, run ids, paths and groups from `profile --repeat` all work.")
    parser.add_argument("a", nargs="?", metavar="A")
    parser.add_argument("b", nargs="?", metavar="B")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--top", type=int, default=20, metavar="N")
    count.add_argument("--all", action="store_true")
    parser.add_argument("--significant", action="store_true", help="only changes that clear the noise")
    parser.add_argument("--fail-over", type=float, metavar="PCT",
                        help="exit 1 when the total or a function regresses by more than PCT percent")
    parser.add_argument("--uncorrected", action="store_true")
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema cprof-diff/1)")
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    if args.a is None:
        a_ref, b_ref = "latest~1", "latest"
    else:
        a_ref, b_ref = args.a, args.b or "latest"
    try:
        a_runs, b_runs = load_runs(store, a_ref), load_runs(store, b_ref)
    except CprofError as error:
        if args.a is None and "goes back too far" in error.message:
            raise CprofError("diff needs two runs; only one is stored", EXIT_NOT_FOUND) from None
        raise
    a_label = args.a or a_runs[0].meta.get("group") or a_runs[0].id
    b_label = args.b or b_runs[0].meta.get("group") or b_runs[0].id
    diff = diff_runs(a_runs, b_runs, a_label, b_label, corrected=not args.uncorrected)
    if args.json:
        JsonDiff(diff, args.fail_over).render(sys.stdout)
    else:
        DiffTable(diff, None if args.all else args.top, args.significant).render(sys.stdout)
    if args.fail_over is not None:
        reasons = diff.regressions_over(args.fail_over)
        if reasons:
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            sys.stderr.write(f"cprof: regression: {reasons[0]}{more}\n")
            return EXIT_REGRESSION
    return 0
