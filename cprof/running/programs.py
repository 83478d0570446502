"""Running what the last build linked: finding the program, running it once or as a group of repetitions, and
storing (and tagging) what it recorded. `cprof run`, `cprof profile` and the Python API (cprof.run) call this."""

from __future__ import annotations

import os
import signal
import warnings
from dataclasses import dataclass, field

from cprof.building.driver import last_build
from cprof.building.summary import fallback_line
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError, CprofWarning
from cprof.running.launcher import LaunchResult, TraceOptions, launch
from cprof.workspace import Store, new_run_id, validate_tag

# what a program stopped by --duration dies of: our SIGTERM, or the SIGKILL after --kill-timeout
_STOP_STATUSES = {128 + signal.SIGTERM, 128 + signal.SIGKILL}


@dataclass(frozen=True)
class RunOptions:
    """How to run a program (`cprof run`'s options)."""

    program: str | None = None  # which program the last build linked (its name, or a path); None: the only one
    duration: float | None = None  # seconds, then SIGTERM (the run is kept)
    kill_timeout: float = 5.0  # after that SIGTERM, SIGKILL
    cpu_time: bool = False  # also per-function CPU time (two clock reads a call)
    heap: bool = True  # track malloc & co.
    trace: TraceOptions | None = None  # also record every call in time order
    repeat: int = 1  # more than one: a group of runs
    tag: str | None = None  # tag the run or group
    ignore_exit_code: bool = False  # the exit status is 0 even when the program fails
    output_to_stderr: bool = False  # the program's standard output goes to standard error
    extra_meta: dict = field(default_factory=dict)  # stored with each run


@dataclass
class RunsResult:
    results: list[LaunchResult]
    stored: str | None  # the run or group id stored, None when nothing was recorded
    program: str

    @property
    def recorded(self) -> int:
        return sum(recorded(result) for result in self.results)

    def exit_status(self, options: RunOptions) -> int:
        """cprof's exit status after the runs: the program's last, except when asked to ignore it or when
        --duration stopped the program as it was told to."""
        last = self.results[-1]
        if options.ignore_exit_code or (last.stopped_after_duration and last.exit_status in _STOP_STATUSES):
            return 0
        return last.exit_status


def _names(links: list[dict]) -> str:
    return ", ".join(sorted(os.path.basename(link["output"]) for link in links))


def _linked(store: Store, kind: str) -> list[dict]:
    """What the last build linked of a kind ("executable", "shared"); nothing when nothing was built yet."""
    try:
        links = last_build(store)["links"]
    except CprofError:
        return []
    return [link for link in links if link["kind"] == kind]


def _named(links: list[dict], name: str) -> list[dict]:
    """The links `name` names: by file name (`prog`, `./prog` for the program `cprof build -o prog` linked) or by
    path, to the output the build wrote or to the instrumented one it linked."""
    return [link for link in links if os.path.basename(link["output"]) == os.path.normpath(name)
            or os.path.abspath(name) in (link["output"], link["built"])]


def find_program(store: Store, name: str | None) -> str:
    links = _linked(store, "executable")
    found = _named(links, name) if name else links
    if name and not found and os.sep in name and os.path.isfile(name):
        return os.path.abspath(name)  # an instrumented program of some other build
    if not links:
        last_build(store)  # says that nothing was built yet, if so
        raise CprofError("the last build linked no executable", EXIT_NOT_FOUND)
    if not found:
        raise CprofError(f"the last build linked no program named '{name}' (it linked: {_names(links)})",
                         EXIT_NOT_FOUND)
    if len(found) > 1 and not name:
        raise CprofError(f"the last build linked {len(found)} programs ({_names(found)}); pick one with --bin NAME",
                         EXIT_USAGE)
    built = found[-1]["built"]
    if not os.path.exists(built):
        raise CprofError(f"{built} no longer exists; build again", EXIT_NOT_FOUND)
    return built


def program_named_first(store: Store, args: list[str]) -> str | None:
    """The name of the program the last build linked that `args` begins with (./prog, prog), if one does.
    `cprof run -- ./prog ARGS` is how perf and uftrace are called, and there the first word means the program:
    passed to the program as its first argument instead, lz4 -f compressed its own binary over the user's input
    file."""
    return args[0] if args and _named(_linked(store, "executable"), args[0]) else None


def built_library_dirs(store: Store) -> list[str]:
    """Directories of the shared libraries the last build linked, instrumented."""
    return sorted({os.path.dirname(link["built"]) for link in _linked(store, "shared")})


def build_coverage(store: Store, program: str) -> dict | None:
    """What the run should know of the build that linked its program: how many units it had, which fell back."""
    try:
        record = last_build(store)
    except CprofError:
        return None
    if not any(link["built"] == program for link in record.get("links", [])):
        return None  # a program given by path: not known to come from that build
    return {"units": record.get("units"), "fallbacks": record.get("fallbacks", []),
            "functions_instrumented": record.get("functions_instrumented")}


def why_nothing(build: dict | None) -> str:
    """The likeliest reason a program wrote no run file, from what its build did."""
    if build is None:
        return ("it was not linked by the last 'cprof build' and may not be instrumented, or it ended before its "
                "first instrumented call")
    fallbacks = build.get("fallbacks") or []
    if not build.get("functions_instrumented"):
        if fallbacks:
            source, reason = fallbacks[0]
            return (f"none of its build's functions were instrumented: {len(fallbacks)} of {build.get('units')} "
                    f"units fell back to plain compiles (first: {fallback_line(source, reason)}; cprof build "
                    "--list-fallbacks lists them)")
        return "none of its build's functions were instrumented (the filters, or only system-header functions)"
    note = (f"; {len(fallbacks)} units of its build fell back to plain compiles, and what ran may be there "
            "(cprof build --list-fallbacks)") if fallbacks else ""
    return f"it ended before its first instrumented call, or CPROF_DISABLE was set{note}"


def recorded(result: LaunchResult) -> bool:
    """Did the program write a run file (it does from its first instrumented call, or at start)?"""
    path = result.run.path
    return os.path.isdir(path) and any(name.endswith(".cprof") for name in os.listdir(path))


def perform_runs(store: Store, program_args: list[str], options: RunOptions) -> RunsResult:
    """Runs the program options.repeat times (more than once: as a group), tags what was stored, and says which
    run or group that is (None when nothing was recorded, with a warning saying why)."""
    if options.tag is not None:
        validate_tag(options.tag)  # before running, not after a long run
    name = options.program or program_named_first(store, program_args)
    if name and not options.program:
        program_args = program_args[1:]
    program = find_program(store, name)
    build = build_coverage(store, program)
    if options.cpu_time:  # said before a run that may take far longer than the user expects
        warnings.warn("--cpu-time reads the thread's CPU clock twice in every instrumented call (on a virtual machine "
                      "that can be over 1 us a call; 'cprof doctor' measures it here), and times measured so cannot "
                      "be corrected for the guard's cost", CprofWarning, stacklevel=2)
    group = new_run_id() if options.repeat > 1 else None
    results = []
    for index in range(options.repeat):
        meta = dict(options.extra_meta, **({"group": group, "repeat_index": index} if group else {}),
                    program=os.path.basename(program), build=build)
        result = launch([program] + list(program_args), store, duration=options.duration,
                        kill_timeout=options.kill_timeout, cpu_time=options.cpu_time, heap=options.heap,
                        trace=options.trace, meta=meta, stdout_to_stderr=options.output_to_stderr,
                        library_dirs=built_library_dirs(store))
        results.append(result)
        if not recorded(result):
            store.remove([result.run])
        if result.exit_status == 128 + signal.SIGINT:  # Ctrl-C stops the repetitions too
            break
    recorded_runs = [result for result in results if recorded(result)]
    if not recorded_runs:  # said once, not once per repetition
        warnings.warn(f"{program} recorded nothing: {why_nothing(build)}", CprofWarning, stacklevel=2)
        return RunsResult(results, None, program)
    target = group or recorded_runs[-1].run.id
    if options.tag is not None:
        store.tag(options.tag, target)
    return RunsResult(results, target, program)
