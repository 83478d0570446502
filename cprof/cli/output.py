"""Where a report or a diff goes: standard output, or --output FILE in the format its extension names."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.base import RUN, known_extensions, renderer_for_file, renderer_named, renderers

def output_file(path: str) -> str:
    """An argparse type: a file name whose extension says the format (cprof/render/base.py's registry)."""
    extensions = known_extensions()
    if not any(path.lower().endswith(ext) for ext in extensions):
        *others, last = sorted(extensions)
        raise argparse.ArgumentTypeError(f"unknown format of {path}: name the file "
                                         f"{', '.join(others)}{' or ' if others else ''}{last}")
    return path


def add_output_options(group, schema: str, subject: str = RUN) -> None:
    group.add_argument("--json", action="store_true", help=f"machine-readable output (schema {schema})")
    group.add_argument("--format", choices=list(renderers(subject)), metavar="NAME",
                       help=f"how to draw it: {', '.join(renderers(subject))} (default: from --output's extension, "
                       "else table)")
    group.add_argument("--output", dest="output_file", type=output_file, metavar="FILE",
                       help="write to FILE instead of standard output, in the format its extension names (.txt "
                       "text, .json JSON)")


def chosen_renderer(args, subject: str = RUN, shortcut: str | None = None, default: str = "table"):
    """The renderer asked for: --format (or --json, or a command's own shortcut such as report --tree), else the
    --output file's extension, else `default`. A structured format and a file named for another disagree."""
    explicit = getattr(args, "format", None) or ("json" if getattr(args, "json", False) else None) or shortcut
    by_file = renderer_for_file(subject, args.output_file) if getattr(args, "output_file", None) else None
    if not explicit:
        return by_file or renderer_named(subject, default)
    chosen = renderer_named(subject, explicit)
    if by_file is not None and by_file is not chosen and not (by_file.text and chosen.text):
        flag = "--json" if getattr(args, "json", False) and not getattr(args, "format", None) else f"--format {explicit}"
        hint = f"; name the file {chosen.extensions[0]}" if chosen.extensions else ""
        raise CprofError(f"{flag} and --output {args.output_file} disagree{hint}", EXIT_USAGE)
    return chosen


def wants_json(args, subject: str = RUN) -> bool:
    """Whether the output is the JSON document (which `profile` keeps standard output for)."""
    return chosen_renderer(args, subject).name == "json"


@contextlib.contextmanager
def output_stream(args, binary: bool = False):
    """Standard output, or the --output file (written whole, or not at all when rendering fails). A binary format
    (a renderer's `binary`, such as pprof's gzip) gets a byte stream, and is not sent to a terminal."""
    if not args.output_file and not binary:
        yield sys.stdout
        return
    if not args.output_file:
        if sys.stdout.isatty():
            raise CprofError("this format is binary: write it to a file (-o FILE) or redirect standard output",
                             EXIT_USAGE)
        sys.stdout.flush()  # text written before it comes first
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    temporary = f"{args.output_file}.tmp{os.getpid()}"
    try:
        handle = open(temporary, "wb") if binary else open(temporary, "w", encoding="utf-8")
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
