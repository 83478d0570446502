"""`cprof report`: show a stored run as a table, a call tree, or JSON."""

from __future__ import annotations

import sys

from cprof.cli.options import add_report_options, report_options
from cprof.model.load import load_runs
from cprof.render.json_report import JsonReport
from cprof.render.table import FunctionTable
from cprof.render.tree import CallTree
from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="show a run", usage="cprof report [RUN|TAG|PATH] [options]",
                                   description="Show a stored run (default: the latest) by self time.")
    parser.add_argument("reference", nargs="?", metavar="RUN|TAG|PATH")
    add_report_options(parser)
    parser.set_defaults(run=run)


def render_report(run, args, out=sys.stdout) -> None:
    """Shared with `cprof profile`."""
    options = report_options(args)
    if args.json:
        JsonReport(run, options).render(out)
    elif args.tree:
        CallTree(run, options.corrected, args.min_percent, options.function_pattern).render(out)
    else:
        FunctionTable(run, options).render(out)


def run(args) -> int:
    runs = load_runs(Store(), args.reference)
    render_report(runs[-1], args)
    return 0
