"""`cprof cc`: the compiler wrapper. Compiles C units instrumented, links the runtime into final links, passes
everything else to the real compiler untouched, and never breaks the user's build: a unit we cannot handle is
compiled from its original text, with one warning line.

A build runs this once per compiler call, so the common paths import little: passing a call through needs only
the command-line reader, and a unit found in the cache does not load the parser (see scripts/bench_build.py)."""

from __future__ import annotations

import json
import os
import sys
import time

from cprof.build import compiler_args as ca
from cprof.build.cache import UnitCache, default_cache_dir
from cprof.build.toolchain import GUARD_HEADER, INCLUDE_DIR, find_real_compiler, runtime_link_args

# The build driver talks to wrapper processes through these variables (README, "Environment").
ENV_REAL_CC = "CPROF_REAL_CC"
ENV_BUILD_LOG = "CPROF_BUILD_LOG"
ENV_FILTER = "CPROF_FILTER"
ENV_SHADOW_ROOT = "CPROF_SHADOW_ROOT"
ENV_PROJECT_ROOT = "CPROF_PROJECT_ROOT"
ENV_CACHE_DIR = "CPROF_CACHE_DIR"
ENV_SHIM_DIR = "CPROF_SHIM_DIR"
ENV_INLINE_GUARD = "CPROF_INLINE_GUARD"  # set by --inline-guard: the fast paths inline in every function
ENV_CXX_DRIVER = "CPROF_CXX_DRIVER"  # set by the c++/g++ shims: link the runtime, never touch C++ compiles

EXIT_COMPILER_NOT_FOUND = 127

# Seconds one unit may take to scan and parse before it is compiled plain instead (sqlite3.c, 8.6 MB preprocessed,
# takes about 2 s): a unit that hits it has met a bug of cprof's, and the user's build must go on.
UNIT_TIME_LIMIT = float(os.environ.get("CPROF_UNIT_TIME_LIMIT", "60"))


class UnitTimeout(Exception):
    pass


class _TimeLimit:
    """SIGALRM after `seconds`, raised as UnitTimeout in the instrumenter (this process, or a build worker, runs
    one unit at a time in its main thread)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def _expired(self, *_):
        raise UnitTimeout(f"instrumenting it took over {self.seconds:g} s")

    def __enter__(self):
        import signal

        self.previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)

# True in a fork of the build server (cprof/build/server.py) rather than a process of its own; the log says so.
served_by_build_server = False  # what a shell answers for a missing command, which is what a build expects


class WrapperConfig:
    def __init__(self, real_compiler: str, log_path: str | None = None, function_filter=None,
                 shadow_root: str = "", project_root: str = "", cache_dir: str | None = None,
                 cxx_driver: bool = False, filter_spec: dict | None = None, inline_guard: bool = False):
        self.real_compiler = real_compiler
        self.inline_guard = inline_guard
        self.log_path = log_path
        self.shadow_root = shadow_root
        self.project_root = project_root
        self.cache_dir = cache_dir
        self.cxx_driver = cxx_driver
        self.colour = False  # ask the compiler for colours: its messages pass through a pipe to a terminal
        self.filter_spec = filter_spec or {}
        self._function_filter = None
        if function_filter is not None:
            self.function_filter = function_filter

    @classmethod
    def from_environment(cls, real_compiler: str | None) -> "WrapperConfig":
        env = os.environ
        name = real_compiler or env.get(ENV_REAL_CC) or "cc"
        real = find_real_compiler(name, env.get(ENV_SHIM_DIR)) or name
        cache_dir = env.get(ENV_CACHE_DIR)
        return cls(
            real_compiler=real,
            log_path=env.get(ENV_BUILD_LOG) or None,
            filter_spec=json.loads(env[ENV_FILTER]) if env.get(ENV_FILTER) else {},
            shadow_root=env.get(ENV_SHADOW_ROOT, ""),
            project_root=env.get(ENV_PROJECT_ROOT, ""),
            cache_dir=None if cache_dir == "off" else (cache_dir or default_cache_dir()),
            cxx_driver=bool(env.get(ENV_CXX_DRIVER)),
            inline_guard=bool(env.get(ENV_INLINE_GUARD)),
        )

    @property
    def function_filter(self):
        """The --fn/--file filters, built only when a unit is parsed (a cache hit needs only filter_key)."""
        if self._function_filter is None:
            from cprof.instrument.filters import FunctionFilter

            spec = {k: tuple(v) if isinstance(v, list) else v for k, v in self.filter_spec.items()}
            self._function_filter = FunctionFilter(**spec)
        return self._function_filter

    @function_filter.setter
    def function_filter(self, value) -> None:
        self._function_filter = value
        self.filter_spec = dict(vars(value))

    def filter_key(self) -> str:
        """The filters as cache-key text: the same for a FunctionFilter and the environment's JSON of it."""
        return json.dumps({k: v for k, v in self.filter_spec.items() if v}, sort_keys=True)

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


class CompilerNotFound(Exception):
    """The real compiler is not there: the build gets one line and the shell's status for a missing command."""


def _exec(config: WrapperConfig, argv: list[str]):
    """Hands the call to the real compiler untouched (this process becomes it)."""
    try:
        os.execvp(config.real_compiler, [config.real_compiler] + argv)
    except FileNotFoundError:
        raise CompilerNotFound(config.real_compiler) from None


def _run(config: WrapperConfig, argv: list[str]) -> tuple[int, bytes]:
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


def _forward(stderr: bytes) -> None:
    if stderr:
        sys.stderr.buffer.write(stderr)
        sys.stderr.buffer.flush()


def _warn(message: str) -> None:
    sys.stderr.write(f"cprof: warning: {message}\n")
    sys.stderr.flush()


def _wants_colour(config: WrapperConfig, args: list[str]) -> bool:
    """gcc and clang colour their messages only on a terminal, and theirs now go through our pipe first."""
    if not sys.stderr.isatty() or any("diagnostics-color" in a for a in args):
        return False
    name = os.path.basename(os.path.realpath(config.real_compiler))
    return "gcc" in name or "clang" in name


# gcc's dependency writer (libcpp/mkdeps.cc) wraps a rule's names at this column.
_DEPENDENCY_COLUMNS = 72


def _write_rule(targets: list[str], prerequisites: list[str]) -> str:
    """A make rule written exactly as gcc writes one (same wrapping), from names already escaped for make."""
    out, column = [], 0

    def put(name: str) -> None:
        nonlocal column
        if column:
            if column + len(name) > _DEPENDENCY_COLUMNS:
                out.append(" \\\n")
                column = 0
            column += 1
            out.append(" ")
        out.append(name)
        column += len(name)

    for name in targets:
        put(name)
    out.append(":")
    column += 1
    for name in prerequisites:
        put(name)
    return "".join(out) + "\n"


def _drop_guard_header(dependency_file: str) -> None:
    """Our -E step force-includes the guard header: take it out of the dependency file, which then holds exactly
    what the plain compiler writes (no rule of the user's build should depend on where cprof is installed)."""
    import re  # already loaded by json

    spelled = GUARD_HEADER.replace("$", "$$").replace(" ", "\\ ").replace("#", "\\#")
    try:
        with open(dependency_file, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError:
        return
    rule = re.match(r"(?:[^\n\\]|\\[^\n]|\\\n)*\n", text)  # the first rule, continuation lines joined
    if not rule or spelled not in rule.group():
        return
    names = re.findall(r"(?:\\.|[^\s\\])+", rule.group().replace("\\\n", " "))
    split = next((i for i, name in enumerate(names) if name.endswith(":")), None)
    if split is None:
        return
    targets = names[:split] + [names[split][:-1]]
    prerequisites = [name for name in names[split + 1:] if name != spelled]
    rest = text[rule.end():].replace(spelled + ":\n", "", 1)  # -MP's phony target for it
    with open(dependency_file, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(_write_rule(targets, prerequisites) + rest)


def _plan_of(unit) -> dict:
    """What the cache keeps of an InstrumentedUnit: plain lists, applied later without the parser."""
    return {
        "functions": [[f.name, f.file, f.line, f.static, f.skipped] for f in unit.functions],
        "matched": sorted(unit.matched_filters),
        "sites": [[s.name, s.file, s.line, s.flags, s.body_offset, s.nested] for s in unit.sites],
        "table_offset": unit.table_offset,
    }


class UnitCompiler:
    """Compiles one C source of a command into one object, instrumented if at all possible."""

    def __init__(self, config: WrapperConfig, command: ca.CompilerCommand, workdir: str):
        self.config = config
        self.command = command
        self.workdir = workdir
        self.cache = UnitCache(config.cache_dir, GUARD_HEADER) if config.cache_dir else None
        self._temporaries = 0

    @property
    def paths(self):
        from cprof.instrument.unit import PathMap

        return PathMap(os.getcwd(), self.config.shadow_root, self.config.project_root)

    def temporary(self, source: str, suffix: str) -> str:
        self._temporaries += 1
        return os.path.join(self.workdir, f"{self._temporaries}-{os.path.basename(source)}{suffix}")

    def plain_compile_argv(self, source: str, object_path: str) -> list[str]:
        options = ca.preprocess_options(self.command) + ca.dependency_options(self.command, source)
        return [self.config.real_compiler] + options + ["-c", "-x", "c", source, "-o", object_path]

    def preprocess(self, source: str, object_path: str = "") -> tuple[int, str, bytes]:
        """The unit as the compiler sees it (comments kept, so warnings stay as they are), with the guard header
        force-included. Returns (status, text, compiler messages). (`object_path` is no longer needed: the
        dependency file's names follow from the command.)"""
        preprocessed = self.temporary(source, ".i")
        options = ca.preprocess_options(self.command) + ca.dependency_options(self.command, source)
        status, messages = _run(
            self.config,
            [self.config.real_compiler] + options
            + ["-E", "-C", "-D__CPROF__=1", "-include", GUARD_HEADER, "-idirafter", INCLUDE_DIR]
            + (["-D__CPROF_INLINE_GUARD=1"] if self.config.inline_guard else [])
            + ["-x", "c", source, "-o", preprocessed],
        )
        if status != 0:
            return status, "", messages
        dependency_file = ca.dependency_file(options)
        if dependency_file:
            _drop_guard_header(dependency_file)
        with open(preprocessed, encoding="utf-8", errors="surrogateescape") as handle:
            return 0, handle.read(), messages

    def compile(self, source: str, object_path: str, product: str) -> int:
        """`product` is the file the object ends up in (the object itself, or the program it is linked into)."""
        started = time.monotonic()
        status, text, messages = self.preprocess(source, object_path)
        if status != 0:  # the user's code or flags: let the plain compile say what is wrong
            return self.fallback(source, object_path, product, None, started)
        plan, key, cached, problem = self.plan(text, source)
        if problem:
            return self.fallback(source, object_path, product, problem, started)
        options = ca.compile_options(self.command) + self.debug_prefix_map() + ["-x", "cpp-output", "-c"]
        object_key = None
        if self.cache and ca.object_cacheable(options):
            # the messages are kept with the object: coloured ones only for a terminal
            key_options = options + (["(colour)"] if self.config.colour else [])
            object_key = self.cache.object_key(key, self.config.real_compiler, key_options, os.getcwd())
            compile_messages = self.cache.load_object(object_key, object_path)
            if compile_messages is not None:
                _forward(messages + compile_messages)
                self.log_unit(source, product, "instrumented", plan, cached, None, started, object_cached=True)
                return 0
        instrumented = self.temporary(source, ".instrumented.i")
        with open(instrumented, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(self.apply(plan, text))
        compile_status, compile_messages = _run(
            self.config, [self.config.real_compiler] + options + [instrumented, "-o", object_path]
        )
        if compile_messages and plan["sites"]:
            compile_messages = self.restore_columns(compile_messages, plan, text)
        if compile_status != 0:
            first_error = next(
                (line for line in compile_messages.decode(errors="replace").splitlines() if "error" in line),
                "the compiler rejected it",
            )
            return self.fallback(source, object_path, product, f"{first_error.strip()} (instrumented text)", started)
        if object_key:
            self.cache.store_object(object_key, object_path, compile_messages)
        _forward(messages + compile_messages)
        self.log_unit(source, product, "instrumented", plan, cached, None, started)
        return 0

    def restore_columns(self, messages: bytes, plan: dict, text: str) -> bytes:
        """The compiler's messages with columns on guarded lines pointing where they do without cprof."""
        from cprof.build.diagnostics import guard_shifts, restore_columns
        from cprof.instrument.splice import Site

        real = self.paths.real
        return restore_columns(messages, guard_shifts(text, [Site(*site) for site in plan["sites"]], real), real)

    @staticmethod
    def apply(plan: dict, text: str) -> str:
        from cprof.instrument.splice import Site, splice

        if not plan["sites"]:
            return text
        return splice(text, [Site(*site) for site in plan["sites"]], plan["table_offset"])

    def plan(self, text: str, source: str) -> tuple[dict | None, str, bool, str | None]:
        """(splice plan, its cache key, whether it came from the cache, why the unit cannot be instrumented)."""
        paths = (os.getcwd(), self.config.shadow_root, self.config.project_root)
        key = self.cache.key(text, self.config.filter_key(), paths) if self.cache else ""
        plan = self.cache.load_plan(key) if self.cache else None
        if plan is not None:
            return plan, key, True, None
        from cprof.instrument.unit import InstrumentError

        try:
            with _TimeLimit(UNIT_TIME_LIMIT):
                unit, _ = self.instrument(text)
        except InstrumentError as error:
            location = f"{self.paths.real(error.file) or source}:{error.line}: " if error.line else f"{source}: "
            return None, key, False, location + str(error)
        except Exception as error:  # a bug of cprof's must never break the user's build
            return None, key, False, f"{source}: {self.internal_error(error, source)}"
        plan = _plan_of(unit)
        if self.cache:
            self.cache.store_plan(key, plan)
        return plan, key, False, None

    def internal_error(self, error: Exception, source: str) -> str:
        """What the warning says about a failure of cprof's own, whose details go to a log for a bug report."""
        import traceback

        what = str(error) if isinstance(error, UnitTimeout) else f"internal error {type(error).__name__}: {error}"
        if not self.config.log_path:
            return f"cprof failed on it ({what})"
        log = os.path.join(os.path.dirname(self.config.log_path), "internal-errors.log")
        try:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {os.path.abspath(source)} "
                             f"(cwd {os.getcwd()})\n{''.join(traceback.format_exception(error))}\n")
        except OSError:
            return f"cprof failed on it ({what})"
        return f"cprof failed on it ({what}; details for a bug report in {self.config.to_user_paths(log.encode()).decode()})"

    def instrument(self, text: str):
        """Scans and parses the unit (no cache): (InstrumentedUnit, False). `cprof instrument` prints its result."""
        from cprof.instrument.unit import instrument_unit

        return instrument_unit(text, GUARD_HEADER, self.paths, self.config.function_filter, self.cache), False

    def debug_prefix_map(self) -> list[str]:
        if not self.config.shadow_root:
            return []
        return [f"-fdebug-prefix-map={self.config.shadow_root}={self.config.project_root}"]

    def fallback(self, source: str, object_path: str, product: str, reason: str | None, started: float) -> int:
        status, messages = _run(self.config, self.plain_compile_argv(source, object_path))
        if status == 0 and reason:
            _warn(f"{reason}; compiled uninstrumented")
        _forward(messages)
        if status == 0:
            self.log_unit(source, product, "fallback", None, False, reason or "preprocessing failed", started)
        return status

    def log_unit(self, source: str, product: str, status: str, plan: dict | None, cached: bool,
                 reason: str | None, started: float, object_cached: bool = False) -> None:
        """Paths as this process sees them (in the shadow tree): the driver maps them to the user's files. An object
        is also named by its inode, which a build that renames it (zlib's x.o to x.lo) does not change."""
        file_id = None
        if self.command.compile_only:  # else the product is a program, not linked yet
            try:
                stat = os.stat(product)
                file_id = [stat.st_dev, stat.st_ino]
            except OSError:
                pass
        self.config.log(
            {
                "event": "unit",
                "source": os.path.abspath(source),
                "product": os.path.abspath(product),
                "file_id": file_id,
                "status": status,
                "cached": cached,
                "object_cached": object_cached,
                "reason": reason,
                "functions": plan["functions"] if plan else [],
                "matched": plan["matched"] if plan else [],
                "seconds": round(time.monotonic() - started, 4),
                "served": served_by_build_server,
                "pid": os.getpid(),  # a build worker serves many units (cprof/build/server.py)
            }
        )


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
            config.colour = _wants_colour(config, args)
            return _link(config, command, list(command.args))
        _exec(config, argv)
    if command.passthrough_reason or (not command.c_inputs and command.compile_only):
        _exec(config, argv)
    config.colour = _wants_colour(config, args)
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
            status, messages = _run(config, argv)
            _forward(messages)
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


def main() -> int:
    """Entry point of the build shims. Ctrl-C reaches every compiler of a build at once: quietly, as gcc does."""
    try:
        return run_wrapper(sys.argv[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
