"""`cprof build`: compile the given sources, or run any build command, with instrumentation."""

from __future__ import annotations

import os
import sys

from cprof.api import build, fallbacks
from cprof.building.summary import fallback_line
from cprof.cli.options import add_build_options, build_options
from cprof.errors import EXIT_USAGE, CprofError
from cprof.paths import display_path

USAGE = """cprof build [options] [-shared] SOURCE.c... [-o NAME] [-- COMPILER AND LINKER ARGS]
       cprof build [options] -- BUILD COMMAND..."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("build", help="build with instrumentation", usage=USAGE,
                                   description="Compile C sources (default flags -O2 -g), or run a build command "
                                   "(make, cmake, ./configure && make ...) with every C compile instrumented. "
                                   "Your sources and normal build outputs are never touched.")
    parser.add_argument("sources", nargs="*", metavar="SOURCE.c",
                        help="C sources to compile and link into one program (or a build command after --)")
    parser.add_argument("-o", dest="output", metavar="NAME", help="program name (direct builds)")
    parser.add_argument("-shared", "--shared", dest="shared", action="store_true",
                        help="link the sources into a shared library (-shared -fPIC; default name libFIRST.so), to "
                        "load from Python with cprof.session()")
    parser.add_argument("--list-fallbacks", action="store_true",
                        help="list every unit compiled without instrumentation, and why (alone: those of the last "
                        "build, without building)")
    add_build_options(parser)
    parser.set_defaults(run=run)


def perform_build(args, learned_from=None):
    """Shared with `cprof profile`: builds through the API and prints what the build did. With --adaptive,
    `learned_from` (a Run) or else the latest run of the last build decides what is only counted."""
    options = build_options(args)
    compiler_args, output = (args.rest if args.sources else []), args.output
    if getattr(args, "shared", False):
        if not args.sources:
            raise CprofError("-shared links the given sources; a build command links its libraries itself", EXIT_USAGE)
        compiler_args = ["-shared", "-fPIC", *compiler_args]
        stem = os.path.splitext(os.path.basename(args.sources[0]))[0]
        output = output or f"lib{stem}.so"
    result = build(args.sources, command=None if args.sources else args.rest, output=output,
                   compiler_args=compiler_args, options=options, learned_from=learned_from)
    summary = result.summary
    if result.learned_from:
        unseen = (f", and {len(summary.small_unseen)} small ones it called rarely or never"
                  if summary.small_unseen else "")
        sys.stderr.write(f"cprof: adaptive: {len(result.counted)} functions only counted, as run "
                         f"{result.learned_from} found them too cheap to time{unseen}\n")
    sys.stderr.write(summary.text() + "\n")
    if options.list_skipped:
        for name, file, line, reason in summary.skipped:
            sys.stdout.write(f"{name}\t{display_path(file)}:{line}\t{reason}\n")
        for source, reason in summary.fallbacks:
            sys.stdout.write(f"(unit)\t{display_path(source)}\tfell back: {reason}\n")
    return summary


def print_fallbacks(fallbacks: list) -> None:
    for source, reason in fallbacks:
        sys.stdout.write(fallback_line(source, reason) + "\n")


def run(args) -> int:
    if args.list_fallbacks and not args.sources and not args.rest:
        skipped = fallbacks()
        print_fallbacks(skipped)
        sys.stderr.write(f"cprof: the last build had {len(skipped)} units compiled without instrumentation\n")
        return 0
    summary = perform_build(args)
    if args.list_fallbacks:
        print_fallbacks(summary.fallbacks)
    return 0
