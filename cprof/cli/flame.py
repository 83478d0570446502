"""`cprof flame`: a run's flamegraph as one self-contained SVG that opens in any browser."""

from __future__ import annotations

import argparse

from cprof.cli.options import RUN_EPILOG, add_run_reference, add_weight_options
from cprof.cli.output import output_stream
from cprof.model.load import load_view
from cprof.render.flame import FlameGraph
from cprof.render.table import ReportOptions
from cprof.workspace import Store

DESCRIPTION = """\
Draw a stored run (default: the latest) as a flamegraph: every call path, as wide as its inclusive time
(corrected for the guard's cost, as reports are), or with --calls its calls, with --bytes the bytes it allocated.
One SVG file with its script inside: hover for the details, click to zoom, Search (or Ctrl-F) highlights a regular
expression and says what share of the run it matches, Escape resets; the URL keeps zoom and search. Frames marked
~ are mostly the guard's own cost (their time is an estimate); call paths under a pixel wide are merged."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("flame", help="draw a run as an SVG flamegraph",
                                   usage="cprof flame [RUN] [-o FILE.svg] [--calls | --bytes]", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RUN_EPILOG)
    add_run_reference(parser)
    parser.add_argument("-o", "--output", dest="output_file", default="flame.svg", metavar="FILE",
                        help="where to write the SVG (default flame.svg)")
    add_weight_options(parser, "as wide as their calls", "as wide as the bytes they allocated")
    parser.add_argument("--title", help="the title drawn on top (default: the run and what widths mean)")
    parser.set_defaults(run=run)


def run(args) -> int:
    view = load_view(Store(), args.reference)
    options = ReportOptions(top=None, corrected=not args.uncorrected, weight=args.weight)
    with output_stream(args) as out:
        FlameGraph(options, args.title).render(view, out)
    return 0
