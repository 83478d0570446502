"""`cprof run`: run what the last build linked, and store the run."""

from __future__ import annotations

import sys

from cprof.api import run_program
from cprof.cli.options import add_run_options
from cprof.errors import EXIT_USAGE, CprofError
from cprof.running.launcher import DEFAULT_TRACE_LIMIT, TraceOptions
from cprof.running.programs import RunOptions, RunsResult


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the instrumented program",
                                   usage="cprof run [--bin NAME] [options] [-- [PROGRAM] ARGS]",
                                   description="Run a program the last 'cprof build' linked and store what it "
                                   "measured as a new run (with --repeat N, a group of N runs). A first word after "
                                   "-- that names that program (./prog, prog) is taken for it, as perf's is; the "
                                   "rest are its arguments. Standard streams "
                                   "pass through, Ctrl-C reaches the program once, and its exit status becomes "
                                   "cprof's.",
                                   epilog="example: cprof run --bin lua --tag before -- script.lua")
    add_run_options(parser)
    parser.set_defaults(run=run)


def trace_options(args) -> TraceOptions | None:
    if not args.trace:
        if args.min_duration or args.trace_limit != DEFAULT_TRACE_LIMIT:
            raise CprofError("--min-duration and --trace-limit apply to --trace", EXIT_USAGE)
        return None
    return TraceOptions(args.min_duration, args.trace_limit)


def run_options(args, output_to_stderr: bool = False) -> RunOptions:
    """`cprof run`'s (and `cprof profile`'s) options as the run stage takes them."""
    return RunOptions(program=args.bin, duration=args.duration, kill_timeout=args.kill_timeout,
                      cpu_time=args.cpu_time, heap=args.heap, trace=trace_options(args), repeat=args.repeat,
                      tag=args.tag, ignore_exit_code=args.ignore_exit_code, output_to_stderr=output_to_stderr)


def saved_line(outcome: RunsResult, options: RunOptions) -> str:
    stopped = " (stopped after --duration)" if outcome.results[-1].stopped_after_duration else ""
    tagged = f" as '{options.tag}'" if options.tag else ""
    what = f"group {outcome.stored} of {outcome.recorded} runs" if options.repeat > 1 else f"run {outcome.stored}"
    return f"cprof: {what} saved{tagged}{stopped}; see it with 'cprof report'\n"


def run(args) -> int:
    options = run_options(args)
    outcome = run_program(args.rest, options)
    if outcome.stored:
        sys.stderr.write(saved_line(outcome, options))
    return outcome.exit_status(options)
