"""`cprof diff`: what changed between two runs or groups; with --fail-over, a CI gate."""

from __future__ import annotations

import argparse

from cprof.cli.options import non_negative_float, positive_int
from cprof.cli.output import add_output_options, chosen_renderer, output_stream
from cprof.api import diff
from cprof.errors import EXIT_REGRESSION, CprofError
from cprof.render.base import DIFF
from cprof.render.diff_table import DiffOptions

DESCRIPTION = """\
Compare A (default: the run or group before the latest) with B (default: the latest), function by function, by
self time. For groups (profile --repeat N) each side is the median of its runs, and a change counts only when it
is larger than its noise: the runs' spread, or the correction uncertainty, whichever is larger."""


EXAMPLES = """\
examples:
  cprof diff                                  the run before the latest against the latest
  cprof diff before                           the run or group tagged 'before' against the latest
  cprof diff before after --fail-over 10      exit 1 when something got more than 10% slower
  cprof diff before after --output d.svg      a differential flamegraph, as cprof flame --diff draws it
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help="compare two runs or groups", usage="cprof diff [A] [B] [options]",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=EXAMPLES)
    parser.add_argument("a", nargs="?", metavar="A", help="the baseline: a run, group or tag (default: latest~1)")
    parser.add_argument("b", nargs="?", metavar="B", help="compared with A (default: latest)")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--top", type=positive_int, default=20, metavar="N",
                       help="show the N largest changes (default 20)")
    count.add_argument("--all", action="store_true", help="show every function")
    parser.add_argument("--significant", action="store_true", help="only changes larger than their noise")
    parser.add_argument("--fail-over", type=non_negative_float, metavar="PCT",
                        help="exit 1 when a function (of at least 1%% of A's time) or the total got more than PCT "
                        "percent slower, beyond the noise")
    parser.add_argument("--uncorrected", action="store_true", help="compare raw times, the guard's cost included")
    add_output_options(parser, "cprof-diff/2", DIFF)
    parser.set_defaults(run=run)


def run(args) -> int:
    renderer = chosen_renderer(args, DIFF)  # a usage mistake is reported before the store is read
    comparison = diff(args.a, args.b, corrected=not args.uncorrected)
    with output_stream(args) as out:
        comparison.write(out, renderer(DiffOptions(None if args.all else args.top, args.significant, args.fail_over)))
    if args.fail_over is not None:
        reasons = comparison.regressions(args.fail_over)
        if reasons:
            more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            raise CprofError(f"regression over {args.fail_over:g}%: {'; '.join(reasons[:3])}{more}",
                             EXIT_REGRESSION)
    return 0
