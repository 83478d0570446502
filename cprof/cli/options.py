"""Options shared by several subcommands (build, run, report) and their conversion to stage options."""

from __future__ import annotations

import argparse

from cprof.building.driver import BuildOptions
from cprof.instrument.filters import FunctionFilter
from cprof.cli.output import add_output_options
from cprof.render.table import SORT_KEYS, ReportOptions
from cprof.render.tree import TREE_WEIGHTS
from cprof.running.launcher import DEFAULT_TRACE_LIMIT


def _number(convert, what: str, minimum: float, inclusive: bool):
    """An argparse type: a number of the given kind, above (or from) a minimum."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: '{text}'") from None
        if value < minimum or (value == minimum and not inclusive) or value != value:
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {minimum:g}: {text}")
        return value

    return parse


positive_float = _number(float, "a number", 0, inclusive=False)
non_negative_float = _number(float, "a number", 0, inclusive=True)
positive_int = _number(int, "a whole number", 1, inclusive=True)
non_negative_int = _number(int, "a whole number", 0, inclusive=True)


def _with_unit(units: dict[str, int], what: str, example: str):
    """An argparse type: a non-negative number with an optional unit suffix, as a whole number of the base unit."""
    def parse(text: str) -> int:
        lowered = text.strip().lower()
        suffix = next((unit for unit in sorted(units, key=len, reverse=True) if unit and lowered.endswith(unit)), "")
        try:
            value = float(lowered[: len(lowered) - len(suffix)])
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: '{text}' (for example {example})") from None
        if value < 0 or value != value:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return round(value * units[suffix])

    return parse


duration_ns = _with_unit({"": 1, "ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}, "a duration", "10us, 2ms")
size_bytes = _with_unit({"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30},
                        "a size", "64M, 1G")


def add_build_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("instrumenting")
    group.add_argument("--fn", action="append", default=[], metavar="PATTERN",
                       help="instrument only functions whose name contains PATTERN (repeatable)")
    group.add_argument("--exact", action="store_true", help="--fn and --exclude-fn match whole names")
    group.add_argument("--file", action="append", default=[], metavar="PATH",
                       help="instrument only functions defined in PATH (a path or glob; repeatable)")
    group.add_argument("--exclude-fn", action="append", default=[], metavar="PATTERN",
                       help="leave functions whose name contains PATTERN uninstrumented (repeatable)")
    group.add_argument("--exclude-file", action="append", default=[], metavar="PATH",
                       help="leave the functions defined in PATH uninstrumented (a path or glob; repeatable)")
    group.add_argument("--always-inline", action="store_true",
                       help="also instrument functions declared always_inline (left out by default: the guard's "
                       "cost would swamp helpers the compiler must inline, and their time stays in their callers)")
    group.add_argument("--adaptive", action="store_true",
                       help="count only, without timing, the functions the latest run of this build found too "
                       "cheap to time (functions are timed, most work a call first, until their guards would cost "
                       "a tenth of its time; the rest called 1,000 times or more are counted, and so is any "
                       "function whose calls do less work than a guard costs, and any small leaf the run called "
                       "rarely or never): their calls stay "
                       "exact, their self time comes from samples, and the program runs far faster")
    group.add_argument("--count-only", action="append", default=[], metavar="NAME",
                       help="only count the calls of function NAME (or FILE:LINE:NAME), do not time it: its self time "
                       "comes from samples, and its count costs under a nanosecond a call (repeatable)")
    group.add_argument("--list-skipped", action="store_true", help="print each function not instrumented and why")
    group.add_argument("--no-cache", action="store_true", help="parse every unit again")
    group.add_argument("--inline-guard", action="store_true",
                       help="inline the guard's fast paths into every function: a little cheaper per call, "
                       "slower to compile")
    group.add_argument("--off-copies", action="store_true",
                       help="also compile a plain copy of the functions that count, of those that call them, in "
                       "any unit, and of what those call (with --adaptive; else of every function), which a run "
                       "switched off (CPROF_DISABLE=1) runs instead: such a run then runs about as fast as plain, "
                       "and the build takes longer")


def build_options(args) -> BuildOptions:
    return BuildOptions(
        function_filter=FunctionFilter(tuple(args.fn), args.exact, tuple(args.file), tuple(args.exclude_fn),
                                       tuple(args.exclude_file), args.always_inline, tuple(args.count_only)),
        list_skipped=args.list_skipped,
        cache=not args.no_cache,
        inline_guard=args.inline_guard,
        off_copies=args.off_copies,
        adaptive=getattr(args, "adaptive", False),
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--bin", metavar="NAME", help="which program the last build linked, when it linked several "
                       "(or a path to an instrumented program)")
    group.add_argument("--duration", type=positive_float, metavar="S",
                       help="stop the program after S seconds (SIGTERM) and keep what it measured; cprof then "
                       "exits 0")
    group.add_argument("--kill-timeout", type=positive_float, default=5.0, metavar="S",
                       help="after --duration's SIGTERM, SIGKILL if still running after S seconds (default 5)")
    group.add_argument("--cpu-time", action="store_true",
                       help="also measure CPU time per function: two thread CPU clock reads per call (often over "
                       "1 us a call; 'cprof doctor' measures it), times then uncorrected")
    group.add_argument("--no-heap", dest="heap", action="store_false",
                       help="do not track the heap (malloc & co.), without rebuilding: the allocator is then called "
                       "as without cprof, at the cost of one branch")
    group.add_argument("--trace", action="store_true",
                       help="also record each thread's calls in time order, for `cprof flame --chart` and the "
                       "chrome and speedscope exports (costs more per call than the profile alone)")
    group.add_argument("--min-duration", type=duration_ns, default=0, metavar="T",
                       help="with --trace, leave out calls shorter than T (e.g. 10us, 1ms; default 0: every call)")
    group.add_argument("--trace-limit", type=size_bytes, default=DEFAULT_TRACE_LIMIT, metavar="SIZE",
                       help="with --trace, stop recording once the trace takes SIZE of the run file (e.g. 16M, 1G; "
                       "default 64M, about 2.8 million calls): the chart shows where it stopped")
    group.add_argument("--ignore-exit-code", action="store_true",
                       help="exit 0 even when the program fails (by default its exit status is cprof's)")
    group.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                       help="run N times as one group: `cprof report` shows per-function medians, `cprof diff` "
                       "compares groups by their medians and spread")
    group.add_argument("--tag", metavar="NAME", help="tag the run (or the group)")


RUN_EPILOG = ("RUN: a tag, run id (or unique prefix), group id, latest, latest~N, or a path to a run directory or "
              "file")


def add_run_reference(parser: argparse.ArgumentParser) -> None:
    """The optional RUN argument of the commands that show one stored run."""
    parser.add_argument("reference", nargs="?", metavar="RUN", help="which run or group (default: latest)")


def add_weight_options(parser: argparse.ArgumentParser, calls_help: str, bytes_help: str) -> None:
    """What a call path weighs (cprof/model/stacks.py METRICS): time by default, --calls or --bytes; and raw time."""
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--calls", dest="weight", action="store_const", const="calls", default="time",
                        help=calls_help)
    weight.add_argument("--bytes", dest="weight", action="store_const", const="bytes", help=bytes_help)
    parser.add_argument("--uncorrected", action="store_true", help="raw times, the guard's own cost included")


def add_report_options(parser: argparse.ArgumentParser, function_pattern: bool = True) -> None:
    group = parser.add_argument_group("reporting")
    count = group.add_mutually_exclusive_group()
    count.add_argument("--top", type=positive_int, default=10, metavar="N",
                       help="show the N functions first by --sort (default 10)")
    count.add_argument("--all", action="store_true", help="show every function")
    group.add_argument("--sort", choices=list(SORT_KEYS), default="self",
                       help="order by self time (default), total time, calls, allocations, bytes allocated, or bytes "
                       "still live at the end")
    group.add_argument("--threads", action="store_true", help="break each function down per thread")
    group.add_argument("--tree", action="store_true", help="print the call tree of each thread, with inclusive times")
    group.add_argument("--min-percent", type=non_negative_float, default=1.0, metavar="P",
                       help="with --tree: hide call paths under P%% of their thread (default 1)")
    group.add_argument("--by", choices=TREE_WEIGHTS, default="time",
                       help="with --tree: weigh call paths by inclusive time (default) or by bytes allocated")
    group.add_argument("--mem", action="store_true",
                       help="the heap: allocation sites by source line, what was live at the end (leaks) and at "
                       "the peak, by call path")
    if function_pattern:  # `profile` uses --fn for what to instrument, which also limits the report
        group.add_argument("--fn", dest="report_fn", metavar="PATTERN",
                           help="only functions whose name contains PATTERN (with --tree: highlight them)")
    group.add_argument("--locations", action="store_true", help="show each function's file:line")
    group.add_argument("--uncorrected", action="store_true",
                       help="raw times, the guard's own cost included (default: corrected, with its uncertainty)")
    add_output_options(group, "cprof-report/4")


def report_options(args) -> ReportOptions:
    return ReportOptions(
        top=None if args.all else args.top,
        sort=args.sort,
        threads=args.threads,
        corrected=not args.uncorrected,
        function_pattern=getattr(args, "report_fn", None),
        locations=args.locations,
        memory=args.mem,
        min_percent=args.min_percent,
        weight=args.by,
    )
