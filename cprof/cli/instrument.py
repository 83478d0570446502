"""`cprof instrument`: print one translation unit as cprof compiles it (preprocessed, guards spliced in)."""

from __future__ import annotations

import os
import sys
import tempfile

from cprof.api import learn_counted
from cprof.building import compiler_args as ca
from cprof.building.toolchain import check_installed
from cprof.building.config import WrapperConfig
from cprof.building.unit_compiler import UnitCompiler
from cprof.cli.options import add_build_options, build_options
from cprof.paths import display_path
from cprof.errors import EXIT_BUILD_FAILED, EXIT_NOT_FOUND, CprofError
from cprof.instrument.unit import InstrumentError


def register(subparsers) -> None:
    parser = subparsers.add_parser("instrument", help="print one instrumented translation unit",
                                   usage="cprof instrument SOURCE.c [options] [-- COMPILER FLAGS]")
    parser.add_argument("source", metavar="SOURCE.c")
    add_build_options(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    check_installed()
    if not os.path.isfile(args.source):
        raise CprofError(f"no such source file: {args.source}", EXIT_NOT_FOUND)
    config = WrapperConfig.from_environment(None)
    # with --adaptive, what `cprof build --adaptive` would count only, from the latest run of the last build
    options = build_options(args)
    config.function_filter = learn_counted(options)[0].function_filter
    config.off_copies = options.off_copies
    config.cache_dir = None
    command = ca.parse_command(args.rest + ["-c", args.source])
    with tempfile.TemporaryDirectory(prefix="cprof-instrument-") as workdir:
        compiler = UnitCompiler(config, command, workdir)
        status, text, messages = compiler.preprocess(args.source, ca.default_object_name(args.source))
        sys.stderr.buffer.write(messages)
        if status != 0:
            raise CprofError(f"preprocessing {args.source} failed", EXIT_BUILD_FAILED)
        try:
            unit, _ = compiler.instrument(text)
        except InstrumentError as error:
            where = f"{error.file}:{error.line}: " if error.line else ""
            raise CprofError(f"{where}{error}; cprof would compile this unit uninstrumented",
                             EXIT_BUILD_FAILED) from None
    sys.stdout.write(unit.apply(text))
    sys.stderr.write(f"cprof: {len(unit.instrumented)} functions instrumented, "
                     f"{len(unit.functions) - len(unit.instrumented)} skipped\n")
    for file, line, what in unit.repairs:  # declarations pycparser could not read, left out of the parse
        sys.stderr.write(f"cprof: {display_path(file)}:{line}: {what}\n")
    return 0
