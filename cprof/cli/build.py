"""`cprof build`: compile the given sources, or run any build command, with instrumentation."""

from __future__ import annotations

import sys

from cprof.build.driver import build_sources, build_with_command
from cprof.cli.options import add_build_options, build_options
from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.table import display_path

USAGE = """cprof build [options] SOURCE.c... [-o NAME] [-- COMPILER AND LINKER ARGS]
       cprof build [options] -- BUILD COMMAND..."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("build", help="build with instrumentation", usage=USAGE,
                                   description="Compile C sources (default flags -O2 -g), or run a build command "
                                   "(make, cmake, ./configure && make ...) with every C compile instrumented. "
                                   "Your sources and normal build outputs are never touched.")
    parser.add_argument("sources", nargs="*", metavar="SOURCE.c",
                        help="C sources to compile and link into one program (or a build command after --)")
    parser.add_argument("-o", dest="output", metavar="NAME", help="program name (direct builds)")
    add_build_options(parser)
    parser.set_defaults(run=run)


def perform_build(args):
    """Shared with `cprof profile`."""
    options = build_options(args)
    if args.sources:
        summary = build_sources(args.sources, args.output, args.rest, options)
    elif args.rest:
        summary = build_with_command(args.rest, options)
    else:
        raise CprofError("nothing to build: give C sources, or a build command after --", EXIT_USAGE)
    sys.stderr.write(summary.text() + "\n")
    if options.list_skipped:
        for name, file, line, reason in summary.skipped:
            sys.stdout.write(f"{name}\t{display_path(file)}:{line}\t{reason}\n")
        for source, reason in summary.fallbacks:
            sys.stdout.write(f"(unit)\t{display_path(source)}\tfell back: {reason}\n")
    return summary


def run(args) -> int:
    perform_build(args)
    return 0
