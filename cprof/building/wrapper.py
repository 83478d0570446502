"""`cprof cc`: the compiler wrapper. Compiles C units instrumented, links the runtime into final links, passes
everything else to the real compiler untouched, and never breaks the user's build: a unit we cannot handle is
compiled from its original text, with one warning line.

A build runs this once per compiler call, so the common paths import little: passing a call through needs only
the command-line reader, and a unit found in the cache does not load the parser (see scripts/bench_build.py)."""

from __future__ import annotations

import os
import sys
import time

from cprof.building import compiler_args as ca
from cprof.building.config import WrapperConfig
from cprof.building.process import (EXIT_COMPILER_NOT_FOUND, CompilerNotFound, exec_compiler, forward, run_compiler,
                                    wants_colour)
from cprof.building.toolchain import runtime_link_args
from cprof.building.unit_compiler import UnitCompiler


class _Workdir:
    """A private scratch directory for one compiler call (tempfile costs more to import than this)."""

    def __enter__(self) -> str:
        base = os.environ.get("TMPDIR") or "/tmp"
        while True:
            path = os.path.join(base, f"cprof-cc-{os.getpid()}-{os.urandom(4).hex()}")
            try:
                os.mkdir(path, 0o700)
                self.path = path
                return path
            except FileExistsError:
                continue

    def __exit__(self, *exc) -> None:
        for name in os.listdir(self.path):
            os.remove(os.path.join(self.path, name))
        os.rmdir(self.path)


def run_wrapper(argv: list[str], real_compiler: str | None = None, config: WrapperConfig | None = None) -> int:
    config = config or WrapperConfig.from_environment(real_compiler)
    try:
        return _wrap(config, argv)
    except CompilerNotFound as error:
        sys.stderr.write(f"cprof: error: compiler not found: {error}\n")
        return EXIT_COMPILER_NOT_FOUND


def _wrap(config: WrapperConfig, argv: list[str]) -> int:
    args = ca.expand_response_files(argv)
    command = ca.parse_command(args)
    if config.cxx_driver:  # C++ is not ours to instrument, but its final links may hold our C objects
        if command.links:
            config.colour = wants_colour(config, args)
            return _link(config, command, list(command.args))
        exec_compiler(config, argv)
    if command.passthrough_reason or (not command.c_inputs and command.compile_only):
        exec_compiler(config, argv)
    config.colour = wants_colour(config, args)
    with _Workdir() as workdir:
        if command.compile_only:
            return _compile_only(config, command, workdir)
        return _compile_and_link(config, command, workdir)


def _compile_only(config: WrapperConfig, command: ca.CompilerCommand, workdir: str) -> int:
    compiler = UnitCompiler(config, command, workdir)
    for item in command.inputs:
        if item.is_c:
            single = bool(command.output) and len(command.inputs) == 1
            target = command.output if single else ca.default_object_name(item.path)
            status = compiler.compile(item.path, target, target)
        else:  # assembler, C++, ...: exactly as the user asked, one input at a time
            argv = [config.real_compiler] + ca.preprocess_options(command) + ["-c"]
            if command.output and len(command.inputs) == 1:
                argv += ["-o", command.output]
            argv += ([f"-x{item.language}"] if item.language != "object" else []) + [item.path]
            status, messages = run_compiler(config, argv)
            forward(messages)
        if status != 0:
            return status
    return 0


def _compile_and_link(config: WrapperConfig, command: ca.CompilerCommand, workdir: str) -> int:
    compiler = UnitCompiler(config, command, workdir)
    args = list(command.args)
    program = command.output or "a.out"
    for item in command.c_inputs:
        object_path = os.path.join(workdir, f"{item.index}-{ca.default_object_name(item.path)}")
        status = compiler.compile(item.path, object_path, program)
        if status != 0:
            return status
        args[item.index] = object_path
    # objects from C sources were compiled above; a `-x c` still in force would make the linker read them as C
    return _link(config, command, _reset_language_before_objects(args, command))


def _link(config: WrapperConfig, command: ca.CompilerCommand, args: list[str]) -> int:
    """A link, with the runtime added to final links (executables and shared libraries), recorded for the driver."""
    kind = command.link_kind
    argv = [config.real_compiler] + args
    if kind != "relocatable":
        argv += runtime_link_args(static=command.has("-static"))
    status, messages = run_compiler(config, argv)
    forward(messages)
    if status == 0 and kind != "relocatable":
        output = os.path.abspath(command.output or "a.out")
        config.log({"event": "link", "output": config.to_user_paths(output.encode()).decode(), "built": output,
                    "kind": kind, "cwd": os.getcwd(), "time": time.time()})
    return status


def _reset_language_before_objects(args: list[str], command: ca.CompilerCommand) -> list[str]:
    c_indexes = {i.index for i in command.c_inputs}
    if not any(a == "-x" or (a.startswith("-x") and len(a) > 2) for a in args):
        return args
    out = []
    for i, arg in enumerate(args):
        if i in c_indexes:
            out += ["-x", "none", arg]
        else:
            out.append(arg)
    return out


def main() -> int:
    """Entry point of the build shims. Ctrl-C reaches every compiler of a build at once: quietly, as gcc does."""
    try:
        return run_wrapper(sys.argv[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
