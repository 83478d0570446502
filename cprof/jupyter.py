"""Jupyter support (`%load_ext cprof`): the `%%cprof` cell magic, which builds and profiles a cell of C, and the
`%cprof report` / `%cprof diff` line magics, all through the Python API (cprof/api.py) and its renderers.

Runs go to the store the CLI uses from the same directory: $CPROF_HOME, else .cprof in the kernel's working
directory (Jupyter starts a notebook's kernel in the notebook's directory), so `cprof report` in a terminal there
sees them too. A cell's source is kept as .cprof/cells/cell.c: one file name for every cell, so that a run of an
edited cell and a run of the cell before it compare function by function (functions are keyed by file and line)."""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import shlex
import sys
import tempfile
import warnings

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from cprof.api import Run, RunOptions, TraceOptions, build, diff, load, run
from cprof.errors import EXIT_USAGE, CprofError, CprofWarning
from cprof.render.table import ReportOptions
from cprof.workspace import Store

CELL_FILE = "cell.c"
DEFAULT_VARIABLE = "cprof_run"


class _Parser(argparse.ArgumentParser):
    """argparse that raises a CprofError (one line in the cell) instead of exiting the kernel."""

    def error(self, message: str):
        raise CprofError(f"%{self.prog}: {message}", EXIT_USAGE)


def _cell_parser() -> _Parser:
    # allow_abbrev off: a compiler flag such as -o or --o... must never be taken for one of ours
    parser = _Parser(prog="%cprof", add_help=False, allow_abbrev=False)
    parser.add_argument("--args", default="", help="the program's arguments, as one shell-quoted string")
    parser.add_argument("--out", default=DEFAULT_VARIABLE, help="the variable the Run is stored in")
    parser.add_argument("--repeat", type=int, default=1, help="run N times, as a group")
    parser.add_argument("--tag", default=None, help="tag the run or group in the store")
    parser.add_argument("--trace", action="store_true", help="also record every call in time order")
    return parser


def _html_text(text: str) -> None:
    """A renderer's text, shown as it is in a terminal (the HTML keeps its columns aligned)."""
    display({"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True)


@contextlib.contextmanager
def _output_into_the_cell(directory: str):
    """The program's and compiler's output, taken from file descriptors 1 and 2 and then written to the cell: child
    processes write there, not to the kernel's sys.stdout, and what the kernel forwards from them arrives too late
    to land in the cell."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = [os.dup(1), os.dup(2)]
        streams = sys.stdout, sys.stderr
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            # cprof's own messages too, in order with the compiler's (the kernel's streams are not on 1 and 2)
            sys.stdout, sys.stderr = (open(fd, "w", closefd=False, errors="replace") for fd in (1, 2))
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.close()  # flushed, leaving the descriptor open
            sys.stdout, sys.stderr = streams
            for fd, original in zip((1, 2), saved):
                os.dup2(original, fd)
                os.close(original)
            for stream, handle in ((sys.stdout, out), (sys.stderr, err)):
                handle.seek(0)
                stream.write(_shorter(handle.read().decode(errors="replace"), directory))


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:  # an unbalanced quote
        raise CprofError(f"cannot split '{text}' into words: {error}", EXIT_USAGE) from None


@contextlib.contextmanager
def _one_line_errors(replace_path: str | None = None):
    """CprofErrors end the cell with one line and no traceback; CprofWarnings print as the CLI prints them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CprofWarning)
        try:
            yield
        except CprofError as error:
            line = f"cprof: error: {_shorter(error.message, replace_path)}"
            # IPython shows what _render_traceback_ returns instead of the traceback, and still fails the cell
            error._render_traceback_ = lambda: [line]
            raise error.with_traceback(None) from None
        finally:
            for warning in caught:
                if issubclass(warning.category, CprofWarning):
                    print(f"cprof: warning: {_shorter(str(warning.message), replace_path)}", file=sys.stderr)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _shorter(text: str, directory: str | None) -> str:
    """Paths in the cells directory named as the cell's file alone (the compiler's cell.c:3:5: error...)."""
    return text.replace(directory + os.sep, "") if directory else text


@magics_class
class CprofMagics(Magics):
    @cell_magic
    def cprof(self, line: str, cell: str):
        """%%cprof [COMPILER FLAGS] [--args "PROGRAM ARGS"] [--out NAME] [--repeat N] [--tag TAG] [--trace]:
        builds the cell's C source (default flags -O2 -g), runs it, shows its table and flamegraph, and stores the
        Run in NAME (default cprof_run)."""
        cells = os.path.join(Store().root, "cells")
        with _one_line_errors(cells):
            options, compiler_args = _cell_parser().parse_known_args(_words(line))
            if not options.out.isidentifier():
                raise CprofError(f"--out {options.out}: not a Python variable name", EXIT_USAGE)
            if options.repeat < 1:
                raise CprofError("--repeat must be at least 1", EXIT_USAGE)
            os.makedirs(cells, exist_ok=True)
            source = os.path.join(cells, CELL_FILE)
            with open(source, "w", encoding="utf-8") as handle:
                handle.write(cell)
            with _output_into_the_cell(cells):
                build([source], output="cell", compiler_args=compiler_args)
            run_options = RunOptions(repeat=options.repeat, tag=options.tag,
                                     trace=TraceOptions() if options.trace else None)
            with _output_into_the_cell(cells):
                result = run(_words(options.args), run_options)
            if result.exit_status:
                print(f"cprof: the program exited with status {result.exit_status}", file=sys.stderr)
            self.shell.user_ns[options.out] = result
            display(result)
            display({"image/svg+xml": result.flamegraph()}, raw=True)

    @line_magic("cprof")
    def cprof_line(self, line: str):
        """%cprof report [RUN] [--top N]: a run's table (RUN: a variable holding a Run, or a run id, tag, latest...).
        %cprof diff [A B]: A against B (default: the run before the latest against the latest)."""
        with _one_line_errors():
            words = _words(line)
            command, rest = (words[0], words[1:]) if words else ("", [])
            if command == "report":
                parser = _Parser(prog="cprof report", add_help=False, allow_abbrev=False)
                parser.add_argument("run", nargs="?", default="latest")
                parser.add_argument("--top", type=int, default=15)
                options = parser.parse_args(rest)
                _html_text(self._run(options.run).render("table", ReportOptions(top=options.top)))
            elif command == "diff":
                parser = _Parser(prog="cprof diff", add_help=False, allow_abbrev=False)
                parser.add_argument("a", nargs="?")
                parser.add_argument("b", nargs="?")
                options = parser.parse_args(rest)
                display(diff(self._run_or_reference(options.a), self._run_or_reference(options.b)))
            else:
                raise CprofError("usage: %cprof report [RUN] [--top N] | %cprof diff [A B] (and %%cprof for a "
                                 "cell of C)", EXIT_USAGE)

    def _run_or_reference(self, name: str | None) -> Run | str | None:
        """A variable of the notebook holding a Run, else the name as a store reference."""
        value = self.shell.user_ns.get(name) if name and name.isidentifier() else None
        return value if isinstance(value, Run) else name

    def _run(self, name: str) -> Run:
        found = self._run_or_reference(name)
        return found if isinstance(found, Run) else load(found)


def load_ipython_extension(ipython) -> None:
    """`%load_ext cprof`."""
    ipython.register_magics(CprofMagics)
