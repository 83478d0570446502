"""`cprof build`: runs the user's build (or compiles the files given) through the compiler wrapper, then sums up
what was instrumented and records what was linked, for `cprof run`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from cprof import __version__
from cprof.building import config as wrapper_env
from cprof.building.cache import PLAN_FORMAT, default_cache_dir
from cprof.building.config import WrapperConfig
from cprof.building.server import ENV_SERVER, BuildServer
from cprof.building.shadow import project_root, sync_tree
from cprof.building.shims import write_shims
from cprof.building.state import BuildState
from cprof.building.summary import BuildSummary
from cprof.building.toolchain import GUARD_HEADER, check_installed, find_real_compiler
from cprof.building.wrapper import run_wrapper
from cprof.errors import EXIT_BUILD_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.instrument.filters import FunctionFilter, learned_lines, patterns_no_source_mentions, unmatched_filters
from cprof.instrument.unit import PathMap
from cprof.workspace import Store, read_json, write_json_atomic

DEFAULT_FLAGS = ["-O2", "-g"]


@dataclass
class BuildOptions:
    function_filter: FunctionFilter = field(default_factory=FunctionFilter)
    list_skipped: bool = False
    cache: bool = True
    inline_guard: bool = False  # fastest calls, slower compiles (see csrc/cprof_guard.h)
    off_copies: bool = False  # a plain copy of each function, for profiling switched off (instrument/offcopy.py)
    adaptive: bool = False  # count only what the latest run found too cheap to time (cprof/model/adaptive.py)
    learned_from: str = ""  # with adaptive: the run it learned from


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
    setting = os.environ.get(wrapper_env.ENV_CACHE_DIR)
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
                       options.inline_guard, options.off_copies], sort_keys=True)


def _environment(log_path: str, options: BuildOptions, shadow: str, project: str, shim_dir: str,
                 cache_dir: str | None) -> dict:
    env = dict(os.environ)
    env[wrapper_env.ENV_BUILD_LOG] = log_path
    env[wrapper_env.ENV_FILTER] = json.dumps(_filter_spec(options.function_filter))
    env[wrapper_env.ENV_SHADOW_ROOT] = shadow
    env[wrapper_env.ENV_PROJECT_ROOT] = project
    env[wrapper_env.ENV_CACHE_DIR] = cache_dir or "off"
    env[wrapper_env.ENV_SHIM_DIR] = shim_dir
    env["PATH"] = shim_dir + os.pathsep + env.get("PATH", "")
    env["CPROF_DISABLE"] = "1"  # programs the build itself runs (configure probes, generators) stay quiet
    if options.inline_guard:
        env[wrapper_env.ENV_INLINE_GUARD] = "1"
    if options.off_copies:
        env[wrapper_env.ENV_OFF_COPIES] = "1"
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
        write_shims(shim_dir, cache_dir)
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
    config = WrapperConfig(
        real_compiler=find_real_compiler(os.environ.get("CC", "cc").split()[0]) or "cc",
        log_path=log_path,
        function_filter=options.function_filter,
        cache_dir=_cache_dir(options),
        inline_guard=options.inline_guard,
        off_copies=options.off_copies,
    )
    target = os.path.join(out_dir, os.path.basename(name))
    argv = DEFAULT_FLAGS + [os.path.abspath(s) for s in sources] + ["-o", target] + extra
    status = run_wrapper(argv, config=config)
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
         "adaptive": {"learned_from": options.learned_from, "counted": len(options.function_filter.learned_counted)}
         if options.adaptive else None,
         "fallbacks": [list(fallback) for fallback in summary.fallbacks]},
    )


def adaptive_filter(store: Store, options: BuildOptions, counted: list[str], timed: list[str],
                    run_id: str) -> BuildOptions:
    """The build options with `counted` counted only and `timed` timed (the rest, which the learning run called
    rarely or never, are counted if small: instrument/small.py): kept in a file of the store, which every compiler
    call reads (thousands of identities would not fit the environment that carries the filter)."""
    path = os.path.join(store.build_dir, "learned.txt")
    text = learned_lines(counted, timed)
    os.makedirs(store.build_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    function_filter = dataclasses.replace(options.function_filter, learned_file=path, learned_digest=digest)
    return dataclasses.replace(options, function_filter=function_filter, learned_from=run_id)


def last_build(store: Store) -> dict:
    record = read_json(os.path.join(store.build_dir, "last.json"))
    if not record:
        raise CprofError("nothing built yet: run 'cprof build' first", EXIT_NOT_FOUND)
    return record
