"""`cprof build`: compile the given sources, or run any build command, with instrumentation."""

from __future__ import annotations

import os
import sys

from cprof.building.driver import adaptive_filter, build_sources, build_with_command, last_build
from cprof.building.summary import fallback_line
from cprof.cli.options import add_build_options, build_options
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.model.adaptive import choose_counted
from cprof.model.load import load_run
from cprof.workspace import Store
from cprof.paths import display_path

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
    parser.add_argument("--list-fallbacks", action="store_true",
                        help="list every unit compiled without instrumentation, and why (alone: those of the last "
                        "build, without building)")
    add_build_options(parser)
    parser.set_defaults(run=run)


def learning_run(store: Store):
    """The latest run of a program the last build linked, to learn from (None when there is none)."""
    try:
        links = {os.path.basename(link["output"]) for link in last_build(store)["links"]}
    except CprofError:
        return None
    for entries in reversed(store.distinct(store.runs())):
        if entries[0].meta.get("program") in links:
            return load_run(entries[-1])
    return None


def perform_build(args, learned_from=None):
    """Shared with `cprof profile`. With --adaptive, `learned_from` (a Run) or else the latest run of the last
    build decides what is only counted."""
    options = build_options(args)
    if options.adaptive:
        store = Store()
        run = learned_from or learning_run(store)
        if run is None:
            raise CprofError("--adaptive learns from a run of this build: build and run it once without "
                             "--adaptive first (cprof profile --adaptive does that by itself)", EXIT_NOT_FOUND)
        counted = choose_counted(run)
        options = adaptive_filter(store, options, counted, run.id)
        sys.stderr.write(f"cprof: adaptive: {len(counted)} functions only counted, as run {run.id} found them too "
                         "cheap to time\n")
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


def print_fallbacks(fallbacks: list) -> None:
    for source, reason in fallbacks:
        sys.stdout.write(fallback_line(source, reason) + "\n")


def run(args) -> int:
    if args.list_fallbacks and not args.sources and not args.rest:
        fallbacks = last_build(Store()).get("fallbacks", [])
        print_fallbacks(fallbacks)
        sys.stderr.write(f"cprof: the last build had {len(fallbacks)} units compiled without instrumentation\n")
        return 0
    summary = perform_build(args)
    if args.list_fallbacks:
        print_fallbacks(summary.fallbacks)
    return 0
