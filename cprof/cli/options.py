"""Options shared by several subcommands (build, run, report) and their conversion to stage options."""

from __future__ import annotations

import argparse

from cprof.build.driver import BuildOptions
from cprof.instrument.filters import FunctionFilter
from cprof.render.table import SORT_KEYS, ReportOptions


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def add_build_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("instrumenting")
    group.add_argument("--fn", action="append", default=[], metavar="PATTERN",
                       help="instrument only functions whose name contains PATTERN (repeatable)")
    group.add_argument("--exact", action="store_true", help="--fn and --exclude-fn match whole names")
    group.add_argument("--file", action="append", default=[], metavar="PATH",
                       help="instrument only functions defined in PATH (a path or glob; repeatable)")
    group.add_argument("--exclude-fn", action="append", default=[], metavar="PATTERN")
    group.add_argument("--exclude-file", action="append", default=[], metavar="PATH")
    group.add_argument("--list-skipped", action="store_true", help="print each function not instrumented and why")
    group.add_argument("--no-cache", action="store_true", help="parse every unit again")


def build_options(args) -> BuildOptions:
    return BuildOptions(
        function_filter=FunctionFilter(tuple(args.fn), args.exact, tuple(args.file), tuple(args.exclude_fn),
                                       tuple(args.exclude_file)),
        list_skipped=args.list_skipped,
        cache=not args.no_cache,
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--bin", metavar="NAME", help="which program the last build linked (or a path)")
    group.add_argument("--duration", type=positive_float, metavar="S", help="stop the program after S seconds")
    group.add_argument("--kill-timeout", type=positive_float, default=5.0, metavar="S",
                       help="after --duration's SIGTERM, SIGKILL if still running after S seconds (default 5)")
    group.add_argument("--cpu-time", action="store_true", help="also measure per-thread CPU time (slower guard)")
    group.add_argument("--ignore-exit-code", action="store_true", help="exit 0 even when the program fails")


def add_report_options(parser: argparse.ArgumentParser, function_pattern: bool = True) -> None:
    group = parser.add_argument_group("reporting")
    count = group.add_mutually_exclusive_group()
    count.add_argument("--top", type=positive_int, default=10, metavar="N", help="show the top N (default 10)")
    count.add_argument("--all", action="store_true", help="show every function")
    group.add_argument("--sort", choices=sorted(SORT_KEYS), default="self")
    group.add_argument("--threads", action="store_true", help="break functions down per thread")
    group.add_argument("--tree", action="store_true", help="print the call tree with inclusive times")
    group.add_argument("--min-percent", type=float, default=1.0, metavar="P",
                       help="with --tree: hide call paths under P%% of their thread (default 1)")
    if function_pattern:  # `profile` uses --fn for what to instrument, which also limits the report
        group.add_argument("--fn", dest="report_fn", metavar="PATTERN", help="only functions whose name contains PATTERN")
    group.add_argument("--locations", action="store_true", help="show each function's file:line")
    group.add_argument("--uncorrected", action="store_true", help="raw times, the guard's own cost included")
    group.add_argument("--json", action="store_true", help="machine-readable output (schema cprof-report/1)")


def report_options(args) -> ReportOptions:
    return ReportOptions(
        top=None if args.all else args.top,
        sort=args.sort,
        threads=args.threads,
        corrected=not args.uncorrected,
        function_pattern=getattr(args, "report_fn", None),
        locations=args.locations,
    )
