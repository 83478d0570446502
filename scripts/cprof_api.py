"""Builds and runs for the benchmark scripts through cprof's Python API, their output kept apart, a failure fatal."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence

import cprof
from cprof import BuildOptions, RunOptions


def _quietly(what: str, call):
    """call()'s result, with file descriptors 1 and 2 sent to a file meanwhile: the CLI subprocesses these calls
    replace had their output captured, and a program's may be binary (zstd -c). A CprofError exits with it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            return call()
        except cprof.CprofError as error:
            sys.stdout.flush()
            sys.stderr.flush()
            log.seek(0)
            output = log.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{what} failed: {error.message}\n{output}") from None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def build(home: str, sources: list[str], output: str, compiler_args: list[str], **options) -> cprof.BuildResult:
    """`cprof build SOURCES -o OUTPUT -- COMPILER_ARGS` into the store `home` (options: BuildOptions' fields). No
    instrumentation cache unless asked (the CLI ran with CPROF_CACHE_DIR=off): nothing from another build reused."""
    build_options = BuildOptions(**{"cache": False, **options})
    return _quietly(f"cprof build {' '.join(sources)}",
                    lambda: cprof.build(sources, output=output, compiler_args=compiler_args, options=build_options,
                                        home=home))


def run(home: str, program: str, args: Sequence[str] = (), **options) -> cprof.Run:
    """`cprof run --bin PROGRAM -- ARGS` with the store `home` (options: RunOptions' fields): the run it stored. A
    program that fails ends the script, as the CLI's exit status did."""
    run_options = RunOptions(program=program, **options)

    def launch() -> cprof.Run:
        outcome = cprof.run_program(list(args), run_options, home)
        status = outcome.exit_status(run_options)
        if status:
            raise cprof.CprofError(f"{outcome.program} exited with status {status}")
        if outcome.stored is None:
            raise cprof.CprofError(f"{outcome.program} recorded nothing")
        return cprof.load(outcome.stored, home)

    return _quietly(f"cprof run --bin {program}", launch)
