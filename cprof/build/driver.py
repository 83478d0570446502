"""`cprof build`: runs the user's build (or compiles the files given) through the compiler wrapper, then sums up
what was instrumented and records what was linked, for `cprof run`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from cprof import __version__
from cprof.build import wrapper
from cprof.build.cache import PLAN_FORMAT, default_cache_dir
from cprof.build.server import ENV_SERVER, BuildServer
from cprof.build.shadow import project_root, sync_tree
from cprof.build.toolchain import BUILD_CLIENT, GUARD_HEADER, check_installed, find_real_compiler
from cprof.errors import EXIT_BUILD_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.instrument.filters import FunctionFilter, patterns_no_source_mentions, unmatched_filters
from cprof.instrument.unit import UNREADABLE, PathMap
from cprof.paths import display_path
from cprof.run.store import Store, read_json, write_json_atomic

_COMPILER_NAMES = ("cc", "gcc", "c89", "c99", "clang")
# C++ drivers get shims too: a C++ program that links our C objects needs the runtime (its compiles pass through).
_CXX_COMPILER_NAMES = ("c++", "g++", "clang++")
DEFAULT_FLAGS = ["-O2", "-g"]


@dataclass
class BuildSummary:
    units_instrumented: int = 0
    units_fallen_back: int = 0
    units_compiled: int = 0  # by this build (the others were up to date)
    units_cached: int = 0  # of those, found in the instrumentation cache
    functions_instrumented: int = 0
    skipped: list[tuple[str, str, int, str]] = field(default_factory=list)  # name, file, line, reason
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # source, reason
    links: list[dict] = field(default_factory=list)
    matched_filters: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @classmethod
    def from_state(cls, state: BuildState, paths: PathMap) -> "BuildSummary":
        """Everything the build tree now holds: units compiled by this build and by earlier ones."""
        summary = cls(links=sorted(state.links.values(), key=lambda link: link["output"]))
        instrumented: set[tuple] = set()
        skipped: dict[tuple, str] = {}
        for event in state.units.values():
            summary.units_compiled += event.get("build") == state.build_id
            if event["status"] == "fallback":
                summary.units_fallen_back += 1
                summary.fallbacks.append((paths.real(event["source"]), event["reason"]))
                continue
            summary.units_instrumented += 1
            if event.get("build") == state.build_id:
                summary.units_cached += bool(event.get("cached") or event.get("object_cached"))
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
        total = self.units_instrumented + self.units_fallen_back
        if self.units_compiled == 0 and total:
            progress = " (all up to date)"
        elif self.units_compiled < total:
            progress = f" ({self.units_compiled} recompiled)"
        else:
            progress = ""
        cached = f", {self.units_cached} from cache" if self.units_cached else ""
        programs = ", ".join(os.path.basename(l["output"]) for l in self.links) or "nothing linked"
        lines = [
            f"cprof: built {programs}: {self.units_instrumented} units instrumented{progress}{cached}, "
            f"{self.units_fallen_back} fell back; {self.functions_instrumented} functions instrumented, "
            f"{len(self.skipped)} skipped ({self.seconds:.1f}s)"
        ]
        unreadable = sum(1 for name, *_ in self.skipped if name == UNREADABLE)
        if unreadable:
            lines.append(f"cprof: {unreadable} function definitions could not be read and are not measured "
                         "(--list-skipped says where)")
        if self.fallbacks:
            lines.append(f"cprof: {self.units_fallen_back} units fell back to plain compiles; their functions are not "
                         "measured:")
            lines += [f"  {fallback_line(source, reason)}" for source, reason in self.fallbacks[:_FALLBACKS_SHOWN]]
            if len(self.fallbacks) > _FALLBACKS_SHOWN:
                lines.append(f"  ... and {len(self.fallbacks) - _FALLBACKS_SHOWN} more (cprof build --list-fallbacks)")
        return "\n".join(lines)


# The build summary lists this many fallbacks; `cprof build --list-fallbacks` lists them all.
_FALLBACKS_SHOWN = 10


def fallback_line(source: str, reason: str | None) -> str:
    """`src/x.c: why`: the reason usually starts with the file:line it is about, which then says it all."""
    reason = reason or "preprocessing failed"
    for path in (source, display_path(source)):
        if reason.startswith(path + ":"):
            return display_path(source) + reason[len(path):]
    return f"{display_path(source)}: {reason}"


# Where CMake builds its own probes (compiler identification, try_compile), which it keeps after configuring.
_CMAKE_PROBE = re.compile(r"/CMakeFiles/(?:\d[^/]*|CMakeScratch|CMakeTmp)/")


def _file_ids(tree: str) -> set[tuple[int, int]]:
    ids = set()
    for directory, _dirs, names in os.walk(tree):
        for name in names:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            ids.add((stat.st_dev, stat.st_ino))
    return ids


@dataclass
class BuildState:
    """What a build tree holds, kept across builds so that an incremental (or no-op) rebuild still knows every
    unit and program in it: the wrapper's log events, keyed by the file each one produced (and, for units, the
    source). Entries whose file is gone (make clean, a configure probe that deleted its test program) are
    dropped."""

    units: dict[str, dict] = field(default_factory=dict)
    links: dict[str, dict] = field(default_factory=dict)
    build_id: int = 0
    identity: str = ""  # what the tree's objects were instrumented with (see _instrumentation_identity)

    @classmethod
    def load(cls, path: str) -> "BuildState":
        record = read_json(path, {})
        return cls(record.get("units", {}), record.get("links", {}), record.get("build_id", 0),
                   record.get("identity", ""))

    def add_log(self, log_path: str, tree: str | None = None) -> None:
        """Adds one build's events, then forgets what that build (or `make clean`) deleted. A product that was
        renamed, as zlib moves objs/x.o to x.lo, is still found in `tree` by its inode."""
        self.build_id += 1
        try:
            with open(log_path, encoding="utf-8") as handle:
                events = [json.loads(line) for line in handle if line.strip()]
        except OSError:
            events = []
        for event in events:
            if event.get("event") == "link":
                self.links[event["built"]] = event
            else:
                event["build"] = self.build_id
                self.units[event["product"] + "\0" + event["source"]] = event
        # CMake's probes are kept after configuring, in its own directories: they are not the user's
        self.units = {k: e for k, e in self.units.items() if not _CMAKE_PROBE.search(e["product"])}
        self.links = {k: e for k, e in self.links.items() if os.path.exists(k) and not _CMAKE_PROBE.search(k)}
        # (a probe that compiles to /dev/null made no object)
        moved = [e for e in self.units.values() if not os.path.isfile(e["product"])]
        renamed = _file_ids(tree) if tree and any(e.get("file_id") for e in moved) else set()
        # (a probe's source is deleted with its object, whose inode a later object may well get)
        self.units = {k: e for k, e in self.units.items() if os.path.isfile(e["product"])
                      or (tuple(e.get("file_id") or ()) in renamed and os.path.exists(e["source"]))}

    def save(self, path: str) -> None:
        # compact and unsorted, unlike the store's other records: this one lists every function of the build
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"units": self.units, "links": self.links, "build_id": self.build_id,
                       "identity": self.identity}, handle, separators=(",", ":"))
        os.replace(temporary, path)


@dataclass
class BuildOptions:
    function_filter: FunctionFilter = field(default_factory=FunctionFilter)
    list_skipped: bool = False
    cache: bool = True
    inline_guard: bool = False  # fastest calls, slower compiles (see csrc/cprof_guard.h)


def python_bootstrap(cache_dir: str | None) -> str:
    """Python code that makes a bare interpreter (-S: no site, no .pth files, no site-packages scan: a third of the
    start-up time of every compile) find our imports, and keep their bytecode in the cache even when
    PYTHONDONTWRITEBYTECODE is set (else every compile would compile the wrapper's modules again)."""
    import cprof
    import pycparser

    package_paths = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in (cprof, pycparser)]
    code = f"import sys; sys.path[:0] = {list(dict.fromkeys(package_paths))!r}; "
    if cache_dir:
        code += f"sys.dont_write_bytecode = False; sys.pycache_prefix = {os.path.join(cache_dir, 'pycache')!r}; "
    return code


def _shim_script(real: str, cache_dir: str | None, cxx: bool) -> str:
    """The client hands the call to the build's server; without one it runs the Python wrapper given here."""
    bootstrap = python_bootstrap(cache_dir) + "from cprof.build.wrapper import main; sys.exit(main())"
    variables = f"{wrapper.ENV_REAL_CC}={shlex.quote(real)}"
    if cxx:
        variables += f" {wrapper.ENV_CXX_DRIVER}=1"
    fallback = shlex.join([sys.executable, "-S", "-c", bootstrap])
    return (
        "#!/bin/sh\n"
        f"# cprof compiler shim for {real}\n"
        f"{variables} exec {shlex.quote(BUILD_CLIENT)} 4 {fallback} \"$@\"\n"
    )


def _gcc_target(gcc: str, memo_path: str) -> tuple[str, str]:
    """gcc's target triple and major version, asked once per gcc binary (two processes cost a no-op rebuild
    a sixth of its time)."""
    stat = os.stat(gcc)
    identity = f"{os.path.realpath(gcc)}:{stat.st_size}:{stat.st_mtime_ns}"
    memo = read_json(memo_path, {}, tolerate_damage=True)  # a memo: asked again when damaged
    if memo.get("gcc") != identity:
        machine = subprocess.run([gcc, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        major = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True).stdout.strip().split(".")[0]
        memo = {"gcc": identity, "machine": machine, "major": major}
        write_json_atomic(memo_path, memo)
    return memo["machine"], memo["major"]


def _compiler_names(shim_dir: str) -> list[tuple[str, bool]]:
    """(name, is a C++ driver) for every compiler name a build may call: plain names, and the target- and
    version-qualified names of the installed gcc."""
    names = [(n, False) for n in _COMPILER_NAMES] + [(n, True) for n in _CXX_COMPILER_NAMES]
    gcc = find_real_compiler("gcc", shim_dir)
    if gcc:
        machine, major = _gcc_target(gcc, os.path.join(shim_dir, "gcc-target.json"))
        for driver, cxx in (("gcc", False), ("g++", True)):
            names += [(f"{machine}-{driver}", cxx), (f"{driver}-{major}", cxx), (f"{machine}-{driver}-{major}", cxx)]
    return names


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _write_shims(shim_dir: str, cache_dir: str | None) -> list[str]:
    """Executables named like the compilers a build may call, placed first on PATH: this catches Makefiles that
    hard-code `gcc` as well as ones that honour $CC, and CMake or configure finding `cc`."""
    os.makedirs(shim_dir, exist_ok=True)
    written = []
    for name, cxx in _compiler_names(shim_dir):
        real = find_real_compiler(name, shim_dir)
        if not real:
            continue
        path = os.path.join(shim_dir, name)
        script = _shim_script(real, cache_dir, cxx)
        if read_text(path) != script:  # an unchanged shim keeps its time: nothing looks like a new compiler
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(script)
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


def _cache_dir(options: BuildOptions) -> str | None:
    """The instrumentation cache a build uses: CPROF_CACHE_DIR (`off`: none), else the default."""
    setting = os.environ.get(wrapper.ENV_CACHE_DIR)
    if not options.cache or setting == "off":
        return None
    return os.path.abspath(setting) if setting else default_cache_dir()


def _filter_spec(function_filter: FunctionFilter) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(function_filter).items()}


def _instrumentation_identity(options: BuildOptions) -> str:
    """What every object of a build tree was instrumented with. Objects made with other filters or another guard
    would look up to date to the user's build system, which knows nothing of either."""
    with open(GUARD_HEADER, "rb") as handle:
        guard = hashlib.sha256(handle.read()).hexdigest()
    return json.dumps([__version__, PLAN_FORMAT, guard, _filter_spec(options.function_filter),
                       options.inline_guard], sort_keys=True)


def _environment(log_path: str, options: BuildOptions, shadow: str, project: str, shim_dir: str,
                 cache_dir: str | None) -> dict:
    env = dict(os.environ)
    env[wrapper.ENV_BUILD_LOG] = log_path
    env[wrapper.ENV_FILTER] = json.dumps(_filter_spec(options.function_filter))
    env[wrapper.ENV_SHADOW_ROOT] = shadow
    env[wrapper.ENV_PROJECT_ROOT] = project
    env[wrapper.ENV_CACHE_DIR] = cache_dir or "off"
    env[wrapper.ENV_SHIM_DIR] = shim_dir
    env["PATH"] = shim_dir + os.pathsep + env.get("PATH", "")
    env["CPROF_DISABLE"] = "1"  # programs the build itself runs (configure probes, generators) stay quiet
    if options.inline_guard:
        env[wrapper.ENV_INLINE_GUARD] = "1"
    return env


def build_with_command(command: list[str], options: BuildOptions, store: Store | None = None) -> BuildSummary:
    """Runs the build command in the shadow tree. The tree persists between builds, so the user's build system
    rebuilds only what changed; the build state remembers what earlier builds compiled and linked there."""
    check_installed()
    store = store or Store()
    here = os.path.realpath(os.getcwd())
    project = project_root(here)
    if project != here:
        sys.stderr.write(f"cprof: building in a shadow copy of {project}, the project around this folder\n")
    unseen = patterns_no_source_mentions(options.function_filter, project, {store.root})
    if unseen:  # said before a build that may take minutes; the build itself still decides
        sys.stderr.write(f"cprof: warning: no source file mentions {', '.join(unseen)}: if that is a typo, stop now "
                         "(Ctrl-C); names that macros paste together only show once the build has run\n")
    shadow = os.path.realpath(os.path.join(store.build_dir, "tree"))
    shim_dir = os.path.join(store.build_dir, "shims")
    log_path = os.path.join(store.build_dir, "log.jsonl")
    state_path = os.path.join(store.build_dir, "state.json")
    cache_dir = _cache_dir(options)
    started = time.monotonic()
    state = BuildState.load(state_path)
    identity = _instrumentation_identity(options)
    if state.identity != identity:
        if os.path.isdir(shadow):
            sys.stderr.write("cprof: instrumenting differently from the last build (filters or cprof changed): "
                             "building from scratch\n")
            shutil.rmtree(shadow)
        state = BuildState(identity=identity)
    # the server starts first: its interpreter and imports (~0.15 s) overlap the tree sync instead of holding up
    # the build's first compiler calls
    with BuildServer(enabled=os.environ.get(ENV_SERVER) != "off") as server:
        sync_tree(project, shadow, exclude=[store.root] + ([cache_dir] if cache_dir else []))
        _write_shims(shim_dir, cache_dir)
        if os.path.exists(log_path):
            os.remove(log_path)
        env = _environment(log_path, options, shadow, project, shim_dir, cache_dir)
        env[ENV_SERVER] = server.path
        try:
            workdir = os.path.join(shadow, os.path.relpath(here, project))
            os.makedirs(workdir, exist_ok=True)
            with _Progress(log_path):
                status = subprocess.run(command, cwd=workdir, env=env).returncode
        except FileNotFoundError:
            raise CprofError(f"build command not found: {command[0]}", EXIT_NOT_FOUND) from None
        except PermissionError:
            raise CprofError(f"build command not executable: {command[0]}", EXIT_NOT_FOUND) from None
    state.add_log(log_path, shadow)
    state.save(state_path)
    summary = BuildSummary.from_state(state, PathMap("/", shadow, project))
    summary.seconds = time.monotonic() - started
    if status != 0:
        raise CprofError(f"the build command failed with exit status {status}: {shlex.join(command)}",
                         EXIT_BUILD_FAILED)
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
        cache_dir=_cache_dir(options),
        inline_guard=options.inline_guard,
    )
    target = os.path.join(out_dir, os.path.basename(name))
    argv = DEFAULT_FLAGS + [os.path.abspath(s) for s in sources] + ["-o", target] + extra
    status = wrapper.run_wrapper(argv, config=config)
    state = BuildState()
    state.add_log(log_path)
    summary = BuildSummary.from_state(state, PathMap(os.getcwd()))
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
         "functions_instrumented": summary.functions_instrumented,
         "units": summary.units_instrumented + summary.units_fallen_back,
         "fallbacks": [list(fallback) for fallback in summary.fallbacks]},
    )


def last_build(store: Store) -> dict:
    record = read_json(os.path.join(store.build_dir, "last.json"))
    if not record:
        raise CprofError("nothing built yet: run 'cprof build' first", EXIT_NOT_FOUND)
    return record
