"""`cprof profile`: build, run and report in one command (with --repeat, a group of runs for `cprof diff`)."""

from __future__ import annotations

import copy
import shlex
import sys
from dataclasses import replace

from cprof.api import load, run_program
from cprof.cli.build import perform_build
from cprof.cli.options import add_build_options, add_report_options, add_run_options
from cprof.cli.output import standard_output_to_stderr, wants_json
from cprof.cli.report import render_report
from cprof.cli.run import run_options
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.workspace import validate_tag

USAGE = """cprof profile [options] SOURCE.c... [-o NAME] [--args "PROGRAM ARGS"]
       cprof profile [options] [--bin NAME] [--args "PROGRAM ARGS"] -- BUILD COMMAND..."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("profile", help="build, run and report in one go", usage=USAGE,
                                   description="Build with instrumentation (sources, or a build command after --), "
                                   "run the program it linked, and print the report. With --repeat N the N runs "
                                   "form a group: the report shows per-function medians, and `cprof diff` "
                                   "compares groups by their medians and spread.",
                                   epilog='example: cprof profile prog.c util.c --args "input.txt" --repeat 5 '
                                   "--tag before")
    parser.add_argument("sources", nargs="*", metavar="SOURCE.c",
                        help="C sources to compile and link into one program (or a build command after --)")
    parser.add_argument("-o", dest="output", metavar="NAME", help="program name (direct builds)")
    parser.add_argument("--args", default="", metavar="ARGS",
                        help="arguments for the program (one shell-quoted string)")
    add_build_options(parser)
    add_run_options(parser)
    add_report_options(parser, function_pattern=False)
    parser.set_defaults(run=run)


def learning_pass(args, program_args: list[str], json_on_stdout: bool):
    """For --adaptive: a build with every function timed and one run of it, to learn which functions are too
    cheap to time. The run is stored like any other; what the program prints then goes to standard error."""
    sys.stderr.write("cprof: adaptive: first a run with every function timed, to learn which are too cheap to "
                     "time\n")
    full = copy.copy(args)
    full.adaptive, full.rest = False, list(args.rest)
    with standard_output_to_stderr(json_on_stdout):
        perform_build(full)
    outcome = run_program(program_args, replace(run_options(args, output_to_stderr=True), repeat=1, tag=None))
    if outcome.stored is None:
        raise CprofError("the learning run recorded nothing, so there is nothing to learn from", EXIT_NOT_FOUND)
    return load(outcome.stored)


def run(args) -> int:
    try:
        program_args = shlex.split(args.args)
    except ValueError as error:
        raise CprofError(f"--args: {error}", EXIT_USAGE) from None
    if args.tag is not None:
        validate_tag(args.tag)  # usage mistakes before the build, not after the runs
    options = run_options(args, output_to_stderr=getattr(args, "json", False))
    json_on_stdout = wants_json(args) and not args.output_file
    learned_from = learning_pass(args, program_args, json_on_stdout) if args.adaptive else None
    with standard_output_to_stderr(json_on_stdout):
        perform_build(args, learned_from)  # args.rest (after "--"): the build command, or compiler args for SOURCES
    outcome = run_program(program_args, options)
    if outcome.stored is None:
        raise CprofError("the program recorded nothing, so there is nothing to report", EXIT_NOT_FOUND)
    render_report(load(outcome.stored), args)
    if args.repeat > 1:
        sys.stderr.write(f"cprof: group {outcome.stored} of {outcome.recorded} runs saved\n")
    return outcome.exit_status(options)
