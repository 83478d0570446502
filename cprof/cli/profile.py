"""`cprof profile`: build, run and report in one command (with --repeat, a group of runs for `cprof diff`)."""

from __future__ import annotations

import shlex
import sys

from cprof.cli.build import perform_build
from cprof.cli.options import add_build_options, add_report_options, add_run_options, positive_int
from cprof.cli.report import render_report
from cprof.cli.run import perform_run
from cprof.model.run import Run
from cprof.run.store import Store, new_run_id

USAGE = """cprof profile [options] SOURCE.c... [-o NAME] [--args "PROGRAM ARGS"]
       cprof profile [options] [--bin NAME] [--args "PROGRAM ARGS"] -- BUILD COMMAND..."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("profile", help="build, run and report in one go", usage=USAGE,
                                   description="Build with instrumentation (sources, or a build command after --), "
                                   "run the program it linked, and print the report.")
    parser.add_argument("sources", nargs="*", metavar="SOURCE.c")
    parser.add_argument("-o", dest="output", metavar="NAME", help="program name (direct builds)")
    parser.add_argument("--args", default="", metavar="ARGS", help="arguments for the program (one shell-quoted string)")
    parser.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                        help="run N times as one group; `cprof diff` compares groups by their medians")
    parser.add_argument("--tag", metavar="NAME", help="tag the run (or the group)")
    add_build_options(parser)
    add_run_options(parser)
    add_report_options(parser, function_pattern=False)
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    program_args = shlex.split(args.args)
    perform_build(args)  # args.rest (after "--") is the build command, or extra compiler args for SOURCES
    args.rest = program_args
    group = new_run_id() if args.repeat > 1 else None
    results = []
    tag, args.tag = args.tag, None
    for index in range(args.repeat):
        meta = {"group": group, "repeat_index": index} if group else {}
        results.append(perform_run(args, store, meta))
    if tag:
        store.tag(tag, group or results[-1].run.id)
    last = results[-1]
    render_report(Run.load(last.run.path, last.run.meta, last.run.id), args)
    if group:
        sys.stderr.write(f"cprof: group {group} of {args.repeat} runs saved\n")
    return 0 if args.ignore_exit_code else last.exit_status
