"""Where a report or a diff goes: standard output, or --output FILE in the format its extension names."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from cprof.errors import EXIT_USAGE, CprofError

_FORMATS = {".json": "json", ".txt": "text"}


def _format_of(path: str) -> str:
    return _FORMATS.get(os.path.splitext(path)[1].lower(), "")


def output_file(path: str) -> str:
    """An argparse type: a file name whose extension says the format."""
    if not _format_of(path):
        raise argparse.ArgumentTypeError(f"unknown format of {path}: name the file .json or .txt")
    return path


def add_output_options(group, schema: str) -> None:
    group.add_argument("--json", action="store_true", help=f"machine-readable output (schema {schema})")
    group.add_argument("--output", dest="output_file", type=output_file, metavar="FILE",
                       help="write to FILE instead of standard output: JSON for FILE.json, text for FILE.txt")


def wants_json(args) -> bool:
    """--json, or an --output file whose extension asks for JSON."""
    if not args.output_file:
        return args.json
    kind = _format_of(args.output_file)
    if args.json and kind != "json":
        raise CprofError(f"--json and --output {args.output_file} disagree; name the file .json", EXIT_USAGE)
    return kind == "json"


@contextlib.contextmanager
def output_stream(args):
    """Standard output, or the --output file (written whole, or not at all when rendering fails)."""
    if not args.output_file:
        yield sys.stdout
        return
    temporary = f"{args.output_file}.tmp{os.getpid()}"
    try:
        handle = open(temporary, "w", encoding="utf-8")
    except OSError as error:
        raise CprofError(f"cannot write {args.output_file}: {error.strerror}", EXIT_USAGE) from None
    try:
        with handle:
            yield handle
        os.replace(temporary, args.output_file)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    sys.stderr.write(f"cprof: wrote {args.output_file}\n")


@contextlib.contextmanager
def standard_output_to_stderr(enabled: bool = True):
    """Everything written to standard output meanwhile, by us or by any process we start (a build's make and
    compilers), goes to standard error instead: `profile --json` keeps standard output for the JSON alone."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
