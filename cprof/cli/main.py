"""The `cprof` command: parses the subcommand and turns every user-caused error into one line and an exit code."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from cprof import __version__
from cprof.errors import EXIT_INTERRUPTED, EXIT_USAGE, CprofError

# One module per subcommand, each with `register(subparsers)` that sets the parser's `run(args) -> int`.
SUBCOMMANDS = ("build", "run", "report", "profile", "tag", "diff", "runs", "merge", "instrument", "doctor", "cc")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and EXIT_USAGE, instead of argparse's usage dump
        raise CprofError(f"{self.prog}: {message}", EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cprof", description="Instrumentation profiler for C programs.")
    parser.add_argument("--version", action="version", version=f"cprof {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"cprof.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "cc":  # the compiler wrapper: its arguments are the compiler's, not ours
            from cprof.build.wrapper import run_wrapper

            return run_wrapper(argv[1:])
        # everything after the first "--" belongs to the program or build command, never to our parser
        rest: list[str] = []
        if "--" in argv:
            at = argv.index("--")
            argv, rest = argv[:at], argv[at + 1 :]
        parser = build_parser()
        args = parser.parse_args(argv)
        args.rest = rest
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_USAGE
        return args.run(args)
    except CprofError as error:
        sys.stderr.write(f"cprof: error: {error.message}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("cprof: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cprof report | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug in cprof, not a user error: say so in one line, details on request
        if os.environ.get("CPROF_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"cprof: internal error: {type(error).__name__}: {error} (set CPROF_DEBUG=1 for details)\n")
        return 70
