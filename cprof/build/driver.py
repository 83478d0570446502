"""`cprof build`: runs the user's build (or compiles the files given) through the compiler wrapper, then sums up
what was instrumented and records what was linked, for `cprof run`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from cprof.build import wrapper
from cprof.build.cache import default_cache_dir
from cprof.build.shadow import sync_tree
from cprof.build.toolchain import check_installed, find_real_compiler
from cprof.errors import EXIT_BUILD_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.instrument.filters import FunctionFilter, unmatched_filters
from cprof.run.store import Store, read_json, write_json_atomic

_COMPILER_NAMES = ("cc", "gcc", "c89", "c99", "clang")
DEFAULT_FLAGS = ["-O2", "-g"]


@dataclass
class BuildSummary:
    units_instrumented: int = 0
    units_fallen_back: int = 0
    units_cached: int = 0
    functions_instrumented: int = 0
    skipped: list[tuple[str, str, int, str]] = field(default_factory=list)  # name, file, line, reason
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # source, reason
    links: list[dict] = field(default_factory=list)
    matched_filters: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @classmethod
    def from_log(cls, path: str) -> "BuildSummary":
        summary = cls()
        instrumented: set[tuple] = set()
        skipped: dict[tuple, str] = {}
        try:
            with open(path, encoding="utf-8") as handle:
                events = [json.loads(line) for line in handle if line.strip()]
        except OSError:
            events = []
        for event in events:
            if event.get("event") == "link":
                summary.links = [l for l in summary.links if l["built"] != event["built"]] + [event]
                continue
            if event["status"] == "fallback":
                summary.units_fallen_back += 1
                summary.fallbacks.append((event["source"], event["reason"]))
                continue
            summary.units_instrumented += 1
            summary.units_cached += bool(event.get("cached"))
            summary.matched_filters.update(event.get("matched", []))
            for name, file, line, _static, reason in event["functions"]:
                identity = (name, file, line)
                summary.names.add(name)
                summary.files.add(file)
                if reason is None:
                    instrumented.add(identity)
                else:
                    skipped.setdefault(identity, reason)
        summary.functions_instrumented = len(instrumented)
        summary.skipped = sorted((n, f, l, r) for (n, f, l), r in skipped.items() if (n, f, l) not in instrumented)
        return summary

    def text(self) -> str:
        cached = f", {self.units_cached} from cache" if self.units_cached else ""
        programs = ", ".join(os.path.basename(l["output"]) for l in self.links) or "nothing linked"
        return (
            f"cprof: built {programs}: {self.units_instrumented} units instrumented{cached}, "
            f"{self.units_fallen_back} fell back; {self.functions_instrumented} functions instrumented, "
            f"{len(self.skipped)} skipped ({self.seconds:.1f}s)"
        )


@dataclass
class BuildOptions:
    function_filter: FunctionFilter = field(default_factory=FunctionFilter)
    list_skipped: bool = False
    cache: bool = True


def _shim_script(real: str) -> str:
    python = sys.executable
    return (
        "#!/bin/sh\n"
        f"# cprof compiler shim for {real}\n"
        f"CPROF_REAL_CC={shlex.quote(real)} exec {shlex.quote(python)} -m cprof.build.wrapper \"$@\"\n"
    )


def _write_shims(shim_dir: str) -> list[str]:
    """Executables named like the compilers a build may call, placed first on PATH: this catches Makefiles that
    hard-code `gcc` as well as ones that honour $CC, and CMake or configure finding `cc`."""
    os.makedirs(shim_dir, exist_ok=True)
    names = list(_COMPILER_NAMES)
    gcc = find_real_compiler("gcc", shim_dir)
    if gcc:
        machine = subprocess.run([gcc, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        major = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True).stdout.strip().split(".")[0]
        names += [f"{machine}-gcc", f"gcc-{major}", f"{machine}-gcc-{major}"]
    written = []
    for name in names:
        real = find_real_compiler(name, shim_dir)
        if not real:
            continue
        path = os.path.join(shim_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(_shim_script(real))
        os.chmod(path, 0o755)
        written.append(name)
    return written


class _Progress:
    """On a terminal, a line every few seconds so that a long build is visibly alive."""

    def __init__(self, log_path: str):
        self.log_path = log_path
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        if sys.stderr.isatty():
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()

    def _loop(self):
        started = time.monotonic()
        while not self.done.wait(5.0):
            try:
                with open(self.log_path, encoding="utf-8") as handle:
                    units = sum(1 for line in handle if '"event":"unit"' in line)
            except OSError:
                units = 0
            sys.stderr.write(f"cprof: {units} units compiled so far ({time.monotonic() - started:.0f}s)\n")


def _environment(store: Store, log_path: str, options: BuildOptions, shadow: str, project: str) -> dict:
    env = dict(os.environ)
    env[wrapper.ENV_BUILD_LOG] = log_path
    env[wrapper.ENV_FILTER] = json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in vars(options.function_filter).items()}
    )
    env[wrapper.ENV_SHADOW_ROOT] = shadow
    env[wrapper.ENV_PROJECT_ROOT] = project
    if not options.cache:
        env[wrapper.ENV_CACHE_DIR] = "off"
    env["CPROF_DISABLE"] = "1"  # programs the build itself runs (configure probes, generators) stay quiet
    return env


def build_with_command(command: list[str], options: BuildOptions, store: Store | None = None) -> BuildSummary:
    check_installed()
    store = store or Store()
    project = os.path.realpath(os.getcwd())
    shadow = os.path.join(store.build_dir, "tree")
    shim_dir = os.path.join(store.build_dir, "shims")
    log_path = os.path.join(store.build_dir, "log.jsonl")
    started = time.monotonic()
    sync_tree(project, shadow, exclude=[store.root])
    _write_shims(shim_dir)
    if os.path.exists(log_path):
        os.remove(log_path)
    env = _environment(store, log_path, options, os.path.realpath(shadow), project)
    env["PATH"] = shim_dir + os.pathsep + env.get("PATH", "")
    env[wrapper.ENV_SHIM_DIR] = shim_dir
    try:
        with _Progress(log_path):
            status = subprocess.run(command, cwd=shadow, env=env).returncode
    except FileNotFoundError:
        raise CprofError(f"build command not found: {command[0]}", EXIT_NOT_FOUND) from None
    summary = BuildSummary.from_log(log_path)
    summary.seconds = time.monotonic() - started
    if status != 0:
        raise CprofError(f"the build command failed with exit status {status}: {shlex.join(command)}", EXIT_BUILD_FAILED)
    _finish(store, summary, options, command)
    return summary


def build_sources(sources: list[str], output: str | None, extra: list[str], options: BuildOptions,
                  store: Store | None = None) -> BuildSummary:
    """`cprof build prog.c util.c -o NAME -- extra args`: compiled and linked in .cprof/build/direct/."""
    check_installed()
    store = store or Store()
    for source in sources:
        if not os.path.isfile(source):
            raise CprofError(f"no such source file: {source}", EXIT_NOT_FOUND)
    name = output or os.path.splitext(os.path.basename(sources[0]))[0]
    out_dir = os.path.join(store.build_dir, "direct")
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(store.build_dir, "log.jsonl")
    if os.path.exists(log_path):
        os.remove(log_path)
    started = time.monotonic()
    config = wrapper.WrapperConfig(
        real_compiler=find_real_compiler(os.environ.get("CC", "cc").split()[0]) or "cc",
        log_path=log_path,
        function_filter=options.function_filter,
        cache_dir=default_cache_dir() if options.cache else None,
    )
    target = os.path.join(out_dir, os.path.basename(name))
    argv = DEFAULT_FLAGS + [os.path.abspath(s) for s in sources] + ["-o", target] + extra
    status = wrapper.run_wrapper(argv, config=config)
    summary = BuildSummary.from_log(log_path)
    summary.seconds = time.monotonic() - started
    if status != 0:
        raise CprofError(f"compiling {', '.join(sources)} failed (compiler exit status {status})", EXIT_BUILD_FAILED)
    _finish(store, summary, options, ["cprof", "build"] + sources)
    return summary


def _finish(store: Store, summary: BuildSummary, options: BuildOptions, command: list[str]) -> None:
    if not options.function_filter.is_empty():
        missing = unmatched_filters(options.function_filter, summary.matched_filters, summary.names, summary.files)
        if missing:
            first = missing[0]
            hint = f"; closest: {', '.join(first.closest)}" if first.closest else ""
            others = f" (and {len(missing) - 1} more filters)" if len(missing) > 1 else ""
            raise CprofError(f"filter {first.pattern} matched no function{hint}{others}", EXIT_USAGE)
    write_json_atomic(
        os.path.join(store.build_dir, "last.json"),
        {"command": command, "links": summary.links, "time": time.time(),
         "functions_instrumented": summary.functions_instrumented},
    )


def last_build(store: Store) -> dict:
    record = read_json(os.path.join(store.build_dir, "last.json"))
    if not record:
        raise CprofError("nothing built yet: run 'cprof build' first", EXIT_NOT_FOUND)
    return record
