"""Running the real compiler from a wrapper: handing a call over untouched, or running a step and collecting its
messages (pointed at the user's files) to forward."""

from __future__ import annotations

import os
import sys

from cprof.building.config import WrapperConfig

EXIT_COMPILER_NOT_FOUND = 127  # what a shell answers for a missing command, which is what a build expects


class CompilerNotFound(Exception):
    """The real compiler is not there: the build gets one line and the shell's status for a missing command."""


def exec_compiler(config: WrapperConfig, argv: list[str]):
    """Hands the call to the real compiler untouched (this process becomes it)."""
    try:
        os.execvp(config.real_compiler, [config.real_compiler] + argv)
    except FileNotFoundError:
        raise CompilerNotFound(config.real_compiler) from None


def run_compiler(config: WrapperConfig, argv: list[str]) -> tuple[int, bytes]:
    """Runs a compiler step; its stdout passes through, its stderr is returned (pointed at the user's files) for
    the caller to forward. posix_spawn and a pipe rather than subprocess, whose import costs more than this."""
    if config.colour:
        argv = argv[:1] + ["-fdiagnostics-color=always"] + argv[1:]
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 2)])
    except FileNotFoundError:
        os.close(read_end)
        raise CompilerNotFound(argv[0]) from None
    finally:
        os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read1(65536):
            chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(wait_status)
    return (128 - status if status < 0 else status), config.to_user_paths(b"".join(chunks))


def forward(stderr: bytes) -> None:
    if stderr:
        binary = getattr(sys.stderr, "buffer", None)
        if binary is None:  # a text-only stream, as in a Jupyter kernel calling cprof.build
            sys.stderr.write(stderr.decode(errors="replace"))
            sys.stderr.flush()
            return
        binary.write(stderr)
        binary.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"cprof: warning: {message}\n")
    sys.stderr.flush()


def wants_colour(config: WrapperConfig, args: list[str]) -> bool:
    """gcc and clang colour their messages only on a terminal, and theirs now go through our pipe first."""
    if not sys.stderr.isatty() or any("diagnostics-color" in a for a in args):
        return False
    name = os.path.basename(os.path.realpath(config.real_compiler))
    return "gcc" in name or "clang" in name
