"""Compiles one C source of a compiler call into one object, instrumented if at all possible: preprocess, plan the
splices (from the cache, or by scanning and parsing), compile the spliced text, and fall back to the plain compile
with one warning line when anything goes wrong."""

from __future__ import annotations

import os
import time

from cprof.building import compiler_args as ca
from cprof.building.cache import UnitCache
from cprof.building.config import WrapperConfig
from cprof.building.depfiles import drop_guard_header
from cprof.building.process import forward, run_compiler, warn
from cprof.building.toolchain import GUARD_HEADER, INCLUDE_DIR

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

# True in a fork of the build server (cprof/building/server.py) rather than a process of its own; the log says so.
served_by_build_server = False


def _plan_of(unit) -> dict:
    """What the cache keeps of an InstrumentedUnit: plain lists, applied later without the parser."""
    return {
        "functions": [[f.name, f.file, f.line, f.static, f.skipped] for f in unit.functions],
        "matched": sorted(unit.matched_filters),
        "sites": [[s.name, s.file, s.line, s.flags, s.body_offset, s.nested, s.counted, s.recursive, s.dispatch]
                  for s in unit.sites],
        "table_offset": unit.table_offset,
        "copies": unit.copies.to_plan(),
        "small_unseen": unit.small_unseen,
    }


def _first_error(messages: bytes) -> str:
    lines = messages.decode(errors="replace").splitlines()
    return next((line for line in lines if "error:" in line), "the compiler rejected it").strip()


def _without_copies(plan: dict) -> dict:
    """The plan with no plain copies (offcopy.py), for a unit whose copies the compiler would not take."""
    return dict(plan, copies=None, sites=[site[:8] for site in plan["sites"]])


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
        status, messages = run_compiler(
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
            drop_guard_header(dependency_file)
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
                forward(messages + compile_messages)
                self.log_unit(source, product, "instrumented", plan, cached, None, started, object_cached=True)
                return 0
        compile_status, compile_messages = self.compile_plan(plan, text, source, options, object_path)
        dropped = None
        if compile_status != 0 and plan.get("copies"):
            # the plain copies are an extra: a unit whose copies the compiler will not take is still profiled
            dropped = f"plain copies left out ({_first_error(compile_messages)})"
            plan = _without_copies(plan)
            compile_status, compile_messages = self.compile_plan(plan, text, source, options, object_path)
            if compile_status == 0:
                warn(f"{source}: {dropped}; a run switched off runs its guards")
        if compile_status != 0:
            reason = f"{_first_error(compile_messages)} (instrumented text)"
            return self.fallback(source, object_path, product, reason, started)
        if object_key:
            self.cache.store_object(object_key, object_path, compile_messages)
        forward(messages + compile_messages)
        self.log_unit(source, product, "instrumented", plan, cached, dropped, started)
        return 0

    def compile_plan(self, plan: dict, text: str, source: str, options: list[str],
                     object_path: str) -> tuple[int, bytes]:
        """Compiles the text with the plan applied: (status, the compiler's messages, in the user's columns)."""
        instrumented = self.temporary(source, ".instrumented.i")
        with open(instrumented, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(self.apply(plan, text))
        status, messages = run_compiler(
            self.config, [self.config.real_compiler] + options + [instrumented, "-o", object_path]
        )
        if messages and plan["sites"]:
            messages = self.restore_columns(messages, plan, text)
        return status, messages

    def restore_columns(self, messages: bytes, plan: dict, text: str) -> bytes:
        """The compiler's messages with columns on guarded lines pointing where they do without cprof."""
        from cprof.building.diagnostics import guard_shifts, restore_columns
        from cprof.instrument.splice import Site

        real = self.paths.real
        return restore_columns(messages, guard_shifts(text, [Site(*site) for site in plan["sites"]], real), real)

    @staticmethod
    def apply(plan: dict, text: str) -> str:
        from cprof.instrument.offcopy import OffCopies
        from cprof.instrument.splice import Site, splice

        if not plan["sites"]:
            return text
        return splice(text, [Site(*site) for site in plan["sites"]], plan["table_offset"],
                      OffCopies.from_plan(plan.get("copies")))

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

        return instrument_unit(text, GUARD_HEADER, self.paths, self.config.function_filter, self.cache,
                               self.config.off_copies), False

    def debug_prefix_map(self) -> list[str]:
        if not self.config.shadow_root:
            return []
        return [f"-fdebug-prefix-map={self.config.shadow_root}={self.config.project_root}"]

    def fallback(self, source: str, object_path: str, product: str, reason: str | None, started: float) -> int:
        status, messages = run_compiler(self.config, self.plain_compile_argv(source, object_path))
        if status == 0 and reason:
            warn(f"{reason}; compiled uninstrumented")
        forward(messages)
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
                "small_unseen": plan["small_unseen"] if plan else [],
                "seconds": round(time.monotonic() - started, 4),
                "served": served_by_build_server,
                "pid": os.getpid(),  # a build worker serves many units (cprof/building/server.py)
            }
        )
