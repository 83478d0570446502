"""The `cprof` command: parses the subcommand and turns every user-caused error into one line and an exit code."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings

from cprof import __version__
from cprof.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_SETUP, EXIT_USAGE, CprofError, CprofWarning
from cprof.workspace import ENV_HOME

# One module per subcommand, each with `register(subparsers)` that sets the parser's `run(args) -> int`.
SUBCOMMANDS = ("build", "run", "report", "profile", "tag", "diff", "flame", "export", "runs", "merge", "instrument",
               "doctor", "cc")
# the subcommands that take arguments after "--" (a program's, a build command, compiler flags)
TAKES_REST = {"build", "run", "profile", "instrument"}

EPILOG = """\
a first profile:
  cprof profile prog.c util.c --args "input.txt"    build, run and report in one go
  cprof build -- make -j2                           or instrument any build, then
  cprof run --bin prog -- input.txt                 run what it linked, and
  cprof report --tree                               look at the latest run

comparing:
  cprof tag before; (change something); cprof profile ...; cprof diff before

A RUN is a tag, a run id (or a unique prefix), a group id, latest, latest~N, or a path to a run directory or file.
The runs are stored in .cprof/ ($CPROF_HOME). 'cprof COMMAND --help' tells more about each command.
exit codes: 0 ok (run/profile: the program's own), 1 diff --fail-over regression, 2 usage, 3 not found,
4 build failed, 5 corrupt run file, 6 program could not start, 7 cprof not installed correctly, 70 internal error
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and EXIT_USAGE, instead of argparse's usage dump
        command = self.prog.removeprefix("cprof").strip()
        where = f"{command}: " if command else ""
        more = f"cprof {command} --help" if command else "cprof --help"
        raise CprofError(f"{where}{message} (see '{more}')", EXIT_USAGE)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and the subcommands' parsers by name."""
    parser = _Parser(prog="cprof", description="An instrumentation profiler for C programs: exact call counts, self "
                     "and total time\nper function, per thread and along call paths.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cprof {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"cprof.cli.{name}").register(subparsers)
    return parser, subparsers.choices


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parses our own arguments; everything after the first "--" belongs to the program or build command."""
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1 :]
    parser, commands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # blamed on the subcommand, whose --help lists what it takes
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest and args.command not in TAKES_REST:
        commands.get(args.command, parser).error(f"takes nothing after '--' (got: {' '.join(rest)})")
    args.rest = rest
    return parser, args


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The API's warnings as the CLI states everything: one line on standard error."""
    if issubclass(category, CprofWarning):
        sys.stderr.write(f"cprof: warning: {message}\n")
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _print_warning
    # cprof's own interpreter may load an instrumented library (LD_LIBRARY_PATH pointing at a build's libz, say):
    # it must not record a run of itself. The launcher clears this for the programs it runs.
    os.environ["CPROF_DISABLE"] = "1"
    try:
        if argv and argv[0] == "cc":  # the compiler wrapper: its arguments are the compiler's, not ours
            from cprof.building.wrapper import run_wrapper

            return run_wrapper(argv[1:])
        parser, args = parse(argv)
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
    except OSError as error:
        if error.filename is None:
            return _internal_error(error)
        # the file system refused: a store that is not writable, a path that is a file...
        sys.stderr.write(f"cprof: error: cannot use {error.filename}: {error.strerror} (is {ENV_HOME} or the "
                         "current directory writable? 'cprof doctor' checks)\n")
        return EXIT_SETUP
    except Exception as error:
        return _internal_error(error)


def _internal_error(error: Exception) -> int:
    """A bug in cprof, not a user error: say so in one line, details on request."""
    if os.environ.get("CPROF_DEBUG"):
        traceback.print_exc()
    sys.stderr.write(f"cprof: internal error: {type(error).__name__}: {error} (set CPROF_DEBUG=1 for details)\n")
    return EXIT_INTERNAL
