"""`cprof report`: show a stored run (or a group's medians) as a table, a call tree, or JSON."""

from __future__ import annotations

import argparse
import difflib

from cprof.cli.options import RUN_EPILOG, add_report_options, add_run_reference, report_options
from cprof.cli.output import chosen_renderer, output_stream
from cprof.errors import EXIT_USAGE, CprofError
from cprof.api import Run, load
from cprof.render.base import RUN

DESCRIPTION = """\
Show a stored run (default: the latest) as a table of functions by self time, a call tree (--tree) or JSON.

Self is the time spent in the function itself, Total includes what it called (counted once under recursion),
Calls is exact. Times are corrected for the profiler's own cost; a ~ marks functions whose time is mostly that
correction, and the footer states its uncertainty. For a group (profile --repeat N), every figure is the median
over the group's runs."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="show a run", usage="cprof report [RUN] [options]",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=RUN_EPILOG)
    add_run_reference(parser)
    add_report_options(parser)
    parser.set_defaults(run=run)


def check_function_pattern(view, pattern: str | None) -> None:
    """A --fn that matches nothing is a mistake: say so, with the names closest to it."""
    if not pattern:
        return
    names = sorted({f.name for f in view.functions()})
    if any(pattern in name for name in names):
        return
    close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
    if close:
        hint = f" (closest: {', '.join(close)})"
    else:
        hint = f" (the run has {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
    raise CprofError(f"no function name contains '{pattern}'{hint}", EXIT_USAGE)


def render_report(run: Run, args) -> None:
    """Shared with `cprof profile`: a run or a whole group, as the options ask."""
    options = report_options(args)
    check_function_pattern(run.model, options.function_pattern)
    renderer = chosen_renderer(args, RUN, "tree" if args.tree else "mem" if args.mem else None)
    with output_stream(args, binary=getattr(renderer, "binary", False)) as out:
        run.write(out, renderer(options))


def run(args) -> int:
    chosen_renderer(args, RUN)  # a usage mistake is reported before the store is read
    render_report(load(args.reference), args)
    return 0
