"""`cprof export`: a stored run in a format other tools read (folded stacks, speedscope, callgrind, pprof)."""

from __future__ import annotations

import argparse

from cprof.cli.options import RUN_EPILOG, add_run_reference, add_weight_options
from cprof.cli.output import chosen_renderer, output_file, output_stream
from cprof.errors import EXIT_USAGE, CprofError
from cprof.api import load
from cprof.render.base import RUN, renderers
from cprof.render.table import ReportOptions

DESCRIPTION = """\
Write a stored run (default: the latest) for other tools. Every call path of every thread with its own value:
self time in ns (corrected for the guard's cost, as reports are), or with --calls its calls, or with --bytes the
bytes it allocated. A group is exported from its median run.

formats (also picked by -o's extension, given here):
  folded      .folded: one line per call path, `main;parse;lex 1234` (flamegraph.pl, inferno)
  speedscope  .speedscope.json: speedscope's JSON, one profile per thread (evented, in time order, from a run
              recorded with --trace)
  chrome      .trace.json: Chrome's trace-event JSON for Perfetto and chrome://tracing: from a trace, every
              recorded call where and as long as it ran; else the call tree laid out as nested events
  callgrind   .callgrind: KCachegrind's and callgrind_annotate's format, each function's self cost and its calls
              with their inclusive cost (threads merged)
  pprof       .pb.gz or .pprof: gzipped protobuf for `go tool pprof`, one sample per call path with its calls,
              time and bytes allocated (the weight asked for is the default type), its thread as labels"""


def export_formats() -> list[str]:
    """The registry's export formats, the default (folded) first."""
    names = [name for name, cls in renderers(RUN).items() if getattr(cls, "export", False)]
    return sorted(names, key=lambda name: name != "folded")


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run for other tools (folded, speedscope, callgrind, pprof)",
                                   usage="cprof export [RUN] [--format NAME] [-o FILE]", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RUN_EPILOG)
    add_run_reference(parser)
    parser.add_argument("--format", choices=export_formats(), metavar="NAME",
                        help=f"{', '.join(export_formats())} (default: from -o's extension, else folded)")
    parser.add_argument("-o", "--output", dest="output_file", type=output_file, metavar="FILE",
                        help="write to FILE (default: standard output)")
    add_weight_options(parser, "weigh call paths by their calls", "weigh call paths by the bytes they allocated")
    parser.set_defaults(run=run)


def run(args) -> int:
    renderer = chosen_renderer(args, RUN, default="folded")
    if not getattr(renderer, "export", False):
        raise CprofError(f"--output {args.output_file}: cprof export writes {', '.join(export_formats())}; "
                         "cprof report writes the other formats", EXIT_USAGE)
    run = load(args.reference)
    options = ReportOptions(top=None, corrected=not args.uncorrected, weight=args.weight)
    with output_stream(args, binary=getattr(renderer, "binary", False)) as out:
        run.write(out, renderer(options))
    return 0
