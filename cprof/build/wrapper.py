"""`cprof cc`: the compiler wrapper. Compiles C units instrumented, links the runtime into final links, passes
everything else to the real compiler untouched, and never breaks the user's build: a unit we cannot handle is
compiled from its original text, with one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from cprof.build import compiler_args as ca
from cprof.build.cache import UnitCache, default_cache_dir
from cprof.build.toolchain import GUARD_HEADER, INCLUDE_DIR, find_real_compiler, runtime_link_args
from cprof.instrument.filters import FunctionFilter
from cprof.instrument.unit import InstrumentedUnit, InstrumentError, PathMap, instrument_unit

# The build driver talks to wrapper processes through these variables (README, "Environment").
ENV_REAL_CC = "CPROF_REAL_CC"
ENV_BUILD_LOG = "CPROF_BUILD_LOG"
ENV_FILTER = "CPROF_FILTER"
ENV_SHADOW_ROOT = "CPROF_SHADOW_ROOT"
ENV_PROJECT_ROOT = "CPROF_PROJECT_ROOT"
ENV_CACHE_DIR = "CPROF_CACHE_DIR"
ENV_SHIM_DIR = "CPROF_SHIM_DIR"


@dataclass
class WrapperConfig:
    real_compiler: str
    log_path: str | None = None
    function_filter: FunctionFilter = field(default_factory=FunctionFilter)
    shadow_root: str = ""
    project_root: str = ""
    cache_dir: str | None = None

    @classmethod
    def from_environment(cls, real_compiler: str | None) -> "WrapperConfig":
        env = os.environ
        name = real_compiler or env.get(ENV_REAL_CC) or "cc"
        real = find_real_compiler(name, env.get(ENV_SHIM_DIR)) or name
        function_filter = FunctionFilter()
        if env.get(ENV_FILTER):
            spec = json.loads(env[ENV_FILTER])
            function_filter = FunctionFilter(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
        cache_dir = env.get(ENV_CACHE_DIR)
        return cls(
            real_compiler=real,
            log_path=env.get(ENV_BUILD_LOG) or None,
            function_filter=function_filter,
            shadow_root=env.get(ENV_SHADOW_ROOT, ""),
            project_root=env.get(ENV_PROJECT_ROOT, ""),
            cache_dir=None if cache_dir == "off" else (cache_dir or default_cache_dir()),
        )

    def to_user_paths(self, data: bytes) -> bytes:
        """Compiler messages from a shadow tree, pointed back at the user's own files."""
        if not self.shadow_root or not data:
            return data
        return data.replace(self.shadow_root.encode(), self.project_root.encode())

    def log(self, event: dict) -> None:
        if not self.log_path:
            return
        line = json.dumps(event, separators=(",", ":")) + "\n"
        # one O_APPEND write per event: parallel wrappers never interleave within a line
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _run(config: WrapperConfig, argv: list[str]) -> tuple[int, bytes]:
    """Runs a compiler step; its stdout passes through, its stderr is returned for the caller to forward."""
    process = subprocess.run(argv, stdout=None, stderr=subprocess.PIPE)
    return process.returncode, config.to_user_paths(process.stderr)


def _forward(stderr: bytes) -> None:
    if stderr:
        sys.stderr.buffer.write(stderr)
        sys.stderr.buffer.flush()


def _warn(message: str) -> None:
    sys.stderr.write(f"cprof: warning: {message}\n")
    sys.stderr.flush()


class UnitCompiler:
    """Compiles one C source of a command into one object, instrumented if at all possible."""

    def __init__(self, config: WrapperConfig, command: ca.CompilerCommand, workdir: str):
        self.config = config
        self.command = command
        self.workdir = workdir
        self.paths = PathMap(os.getcwd(), config.shadow_root, config.project_root)

    def plain_compile_argv(self, source: str, object_path: str) -> list[str]:
        options = ca.preprocess_options(self.command) + ca.dependency_options(self.command, source, object_path)
        return [self.config.real_compiler] + options + ["-c", source, "-o", object_path]

    def preprocess(self, source: str, object_path: str) -> tuple[int, str, bytes]:
        """The unit as the compiler sees it (comments kept, so warnings stay as they are), with the guard header
        force-included. Returns (status, text, compiler messages)."""
        preprocessed = os.path.join(self.workdir, f"{len(os.listdir(self.workdir))}-{os.path.basename(source)}.i")
        status, messages = _run(
            self.config,
            [self.config.real_compiler]
            + ca.preprocess_options(self.command)
            + ca.dependency_options(self.command, source, object_path)
            + ["-E", "-C", "-D__CPROF__=1", "-include", GUARD_HEADER, "-idirafter", INCLUDE_DIR]
            + ["-x", "c", source, "-o", preprocessed],
        )
        if status != 0:
            return status, "", messages
        with open(preprocessed, encoding="utf-8", errors="surrogateescape") as handle:
            return 0, handle.read(), messages

    def compile(self, source: str, object_path: str) -> int:
        started = time.monotonic()
        status, text, messages = self.preprocess(source, object_path)
        if status != 0:  # the user's code or flags: let the plain compile say what is wrong
            return self.fallback(source, object_path, None, started)
        try:
            unit, cached = self.instrument(text)
        except InstrumentError as error:
            location = f"{self.paths.real(error.file) or source}:{error.line}: " if error.line else f"{source}: "
            return self.fallback(source, object_path, location + str(error), started)
        instrumented = os.path.join(self.workdir, f"{len(os.listdir(self.workdir))}-{os.path.basename(source)}.i")
        with open(instrumented, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(unit.apply(text))
        compile_status, compile_messages = _run(
            self.config,
            [self.config.real_compiler]
            + ca.compile_options(self.command)
            + self.debug_prefix_map()
            + ["-x", "cpp-output", "-c", instrumented, "-o", object_path],
        )
        if compile_status != 0:
            first_error = next(
                (line for line in compile_messages.decode(errors="replace").splitlines() if "error" in line),
                "the compiler rejected it",
            )
            return self.fallback(source, object_path, f"{first_error.strip()} (instrumented text)", started)
        _forward(messages + compile_messages)
        self.log_unit(source, "instrumented", unit, cached, None, started)
        return 0

    def instrument(self, text: str) -> tuple[InstrumentedUnit, bool]:
        config = self.config
        cache = UnitCache(config.cache_dir, GUARD_HEADER) if config.cache_dir else None
        key = cache.key(text, config.function_filter.key(), self.paths) if cache else ""
        unit = cache.load(key) if cache else None
        if unit is not None:
            return unit, True
        unit = instrument_unit(text, GUARD_HEADER, self.paths, config.function_filter)
        if cache:
            cache.store(key, unit)
        return unit, False

    def debug_prefix_map(self) -> list[str]:
        if not self.config.shadow_root:
            return []
        return [f"-fdebug-prefix-map={self.config.shadow_root}={self.config.project_root}"]

    def fallback(self, source: str, object_path: str, reason: str | None, started: float) -> int:
        status, messages = _run(self.config, self.plain_compile_argv(source, object_path))
        if status == 0 and reason:
            _warn(f"{reason}; compiled uninstrumented")
        _forward(messages)
        if status == 0:
            self.log_unit(source, "fallback", None, False, reason or "preprocessing failed", started)
        return status

    def log_unit(self, source, status, unit: InstrumentedUnit | None, cached, reason, started) -> None:
        functions = []
        if unit is not None:
            functions = [[f.name, f.file, f.line, f.static, f.skipped] for f in unit.functions]
        self.config.log(
            {
                "event": "unit",
                "source": self.paths.real(source),
                "status": status,
                "cached": cached,
                "reason": reason,
                "functions": functions,
                "matched": sorted(unit.matched_filters) if unit else [],
                "seconds": round(time.monotonic() - started, 4),
            }
        )


def run_wrapper(argv: list[str], real_compiler: str | None = None, config: WrapperConfig | None = None) -> int:
    config = config or WrapperConfig.from_environment(real_compiler)
    args = ca.expand_response_files(argv)
    command = ca.parse_command(args)
    if command.passthrough_reason or (not command.c_inputs and command.compile_only):
        os.execvp(config.real_compiler, [config.real_compiler] + argv)
    with tempfile.TemporaryDirectory(prefix="cprof-cc-") as workdir:
        if command.compile_only:
            return _compile_only(config, command, workdir)
        return _compile_and_link(config, command, workdir)


def _compile_only(config: WrapperConfig, command: ca.CompilerCommand, workdir: str) -> int:
    compiler = UnitCompiler(config, command, workdir)
    for item in command.inputs:
        if item.is_c:
            target = command.output if command.output and len(command.inputs) == 1 else ca.default_object_name(item.path)
            status = compiler.compile(item.path, target)
        else:  # assembler, C++, ...: exactly as the user asked, one input at a time
            argv = [config.real_compiler] + ca.preprocess_options(command) + ["-c"]
            if command.output and len(command.inputs) == 1:
                argv += ["-o", command.output]
            argv += ([f"-x{item.language}"] if item.language != "object" else []) + [item.path]
            status, messages = _run(config, argv)
            _forward(messages)
        if status != 0:
            return status
    return 0


def _compile_and_link(config: WrapperConfig, command: ca.CompilerCommand, workdir: str) -> int:
    compiler = UnitCompiler(config, command, workdir)
    args = list(command.args)
    for item in command.c_inputs:
        object_path = os.path.join(workdir, f"{item.index}-{ca.default_object_name(item.path)}")
        status = compiler.compile(item.path, object_path)
        if status != 0:
            return status
        args[item.index] = object_path
    kind = command.link_kind
    # objects from C sources were compiled above; a `-x c` still in force would make the linker read them as C
    argv = [config.real_compiler] + _reset_language_before_objects(args, command)
    if kind != "relocatable":
        argv += runtime_link_args(static=command.has("-static"))
    status, messages = _run(config, argv)
    _forward(messages)
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


if __name__ == "__main__":  # the build shims call this module directly: no CLI import on the hot path
    sys.exit(run_wrapper(sys.argv[1:]))
