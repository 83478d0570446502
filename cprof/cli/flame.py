"""`cprof flame`: a run's flamegraph as one self-contained SVG that opens in any browser."""

from __future__ import annotations

import argparse

from cprof.api import diff, load
from cprof.cli.options import RUN_EPILOG, add_run_reference, add_weight_options
from cprof.cli.output import output_stream
from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.flame import FlameGraph
from cprof.render.flamechart import FlameChart
from cprof.render.flame_diff import FlameDiff
from cprof.render.table import ReportOptions

DESCRIPTION = """\
Draw a stored run (default: the latest) as a flamegraph: every call path, as wide as its inclusive time
(corrected for the guard's cost, as reports are), or with --calls its calls, with --bytes the bytes it allocated.
One SVG file with its script inside: hover for the details, click to zoom, Search (or Ctrl-F) highlights a regular
expression and says what share of the run it matches, Escape resets; the URL keeps zoom and search. Frames marked
~ are mostly the guard's own cost (their time is an estimate); call paths under a pixel wide are merged.

With --diff A B, a differential flamegraph: B drawn as above, each call path coloured by how its value changed
from the same call path in A, red grew and blue shrank (the deeper, the larger the relative change), grey within
the noise `cprof diff` would call noise, orange new in B; A's call paths that B lacks are counted in the title and
named in their callers' details. Groups (profile --repeat) compare medians, as `cprof diff` does.

With --chart, a flamechart of a run recorded with --trace: each thread's calls where and as long as they ran (as
recorded: the guard's cost included), one lane per thread under a time axis; clicking a call zooms time to it.
Calls under a pixel wide are merged into grey blocks; a red line marks where a trace stopped at --trace-limit."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("flame", help="draw a run as an SVG flamegraph",
                                   usage="cprof flame [RUN] [-o FILE.svg] [--calls | --bytes]\n"
                                   "       cprof flame --chart [RUN] [-o FILE.svg]\n"
                                   "       cprof flame --diff [A [B]] [-o FILE.svg] [--calls | --bytes]",
                                   description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RUN_EPILOG)
    add_run_reference(parser)
    parser.add_argument("-o", "--output", dest="output_file", metavar="FILE",
                        help="where to write the SVG (default flame.svg, with --diff flame-diff.svg)")
    parser.add_argument("--diff", nargs="*", metavar="RUN",
                        help="--diff A B: draw B (default: latest) coloured by each call path's change from A "
                        "(default: the run or group before the latest), as `cprof diff A B` compares them")
    parser.add_argument("--chart", action="store_true",
                        help="a flamechart of a traced run (`cprof run --trace`): every call in time order, one "
                        "lane per thread, on a time axis")
    add_weight_options(parser, "as wide as their calls", "as wide as the bytes they allocated")
    parser.add_argument("--title", help="the title drawn on top (default: the run and what widths mean)")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.diff is not None:
        if args.chart:
            raise CprofError("--chart and --diff draw different things: choose one", EXIT_USAGE)
        return _diff(args)
    if args.chart and args.weight != "time":
        raise CprofError("--chart draws calls as long as they ran: --calls and --bytes do not apply", EXIT_USAGE)
    args.output_file = args.output_file or ("chart.svg" if args.chart else "flame.svg")
    run = load(args.reference)
    options = ReportOptions(top=None, corrected=not args.uncorrected, weight=args.weight)
    with output_stream(args) as out:
        run.write(out, (FlameChart if args.chart else FlameGraph)(options, args.title))
    return 0


def _diff(args) -> int:
    # `cprof flame A --diff B` reads as A against B too: the runs named anywhere, in order
    references = ([args.reference] if args.reference else []) + args.diff
    if len(references) > 2:
        raise CprofError(f"--diff compares two runs, A and B, not {len(references)}: {' '.join(references)}",
                         EXIT_USAGE)
    a, b = (references + [None, None])[:2]
    comparison = diff(a, b, corrected=not args.uncorrected)
    args.output_file = args.output_file or "flame-diff.svg"
    with output_stream(args) as out:
        comparison.write(out, FlameDiff(weight=args.weight, title=args.title))
    return 0
