"""`cprof run`: run what the last build linked, and store the run."""

from __future__ import annotations

import os
import signal
import sys

from cprof.building.driver import last_build
from cprof.building.summary import fallback_line
from cprof.cli.options import add_run_options
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.run.launcher import DEFAULT_TRACE_LIMIT, LaunchResult, TraceOptions, launch
from cprof.workspace import Store, new_run_id, validate_tag

# what a program stopped by --duration dies of: our SIGTERM, or the SIGKILL after --kill-timeout
_STOP_STATUSES = {128 + signal.SIGTERM, 128 + signal.SIGKILL}


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the instrumented program",
                                   usage="cprof run [--bin NAME] [options] [-- PROGRAM ARGS]",
                                   description="Run a program the last 'cprof build' linked and store what it "
                                   "measured as a new run (with --repeat N, a group of N runs). Standard streams "
                                   "pass through, Ctrl-C reaches the program once, and its exit status becomes "
                                   "cprof's.",
                                   epilog="example: cprof run --bin lua --tag before -- script.lua")
    add_run_options(parser)
    parser.set_defaults(run=run)


def _names(links: list[dict]) -> str:
    return ", ".join(sorted(os.path.basename(link["output"]) for link in links))


def find_program(store: Store, name: str | None) -> str:
    if name and os.sep in name and os.path.isfile(name):
        return os.path.abspath(name)
    links = [link for link in last_build(store)["links"] if link["kind"] == "executable"]
    if not links:
        raise CprofError("the last build linked no executable", EXIT_NOT_FOUND)
    if name:
        found = [link for link in links
                 if os.path.basename(link["output"]) == name or link["output"] == os.path.abspath(name)]
        if not found:
            raise CprofError(f"the last build linked no program named '{name}' (it linked: {_names(links)})",
                             EXIT_NOT_FOUND)
        links = found[-1:]
    if len(links) > 1:
        raise CprofError(f"the last build linked {len(links)} programs ({_names(links)}); pick one with --bin NAME",
                         EXIT_USAGE)
    built = links[0]["built"]
    if not os.path.exists(built):
        raise CprofError(f"{built} no longer exists; build again", EXIT_NOT_FOUND)
    return built


def built_library_dirs(store: Store) -> list[str]:
    """Directories of the shared libraries the last build linked, instrumented."""
    try:
        links = last_build(store)["links"]
    except CprofError:
        return []
    return sorted({os.path.dirname(link["built"]) for link in links if link["kind"] == "shared"})


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


def count_recorded(results: list[LaunchResult]) -> int:
    return sum(recorded(result) for result in results)


def trace_options(args) -> TraceOptions | None:
    if not args.trace:
        if args.min_duration or args.trace_limit != DEFAULT_TRACE_LIMIT:
            raise CprofError("--min-duration and --trace-limit apply to --trace", EXIT_USAGE)
        return None
    return TraceOptions(args.min_duration, args.trace_limit)


def perform_runs(args, store: Store) -> tuple[list[LaunchResult], str | None]:
    """Shared with `cprof profile`: runs the program --repeat times (more than once: as a group), tags what was
    stored, and returns the results and the id of the run or group stored (None when nothing was recorded)."""
    if args.tag is not None:
        validate_tag(args.tag)  # before running, not after a long run
    program = find_program(store, args.bin)
    build = build_coverage(store, program)
    if args.cpu_time:  # said before a run that may take far longer than the user expects
        sys.stderr.write("cprof: note: --cpu-time reads the thread's CPU clock twice in every instrumented call "
                         "(on a virtual machine that can be over 1 us a call; 'cprof doctor' measures it here), and "
                         "times measured so cannot be corrected for the guard's cost\n")
    group = new_run_id() if args.repeat > 1 else None
    results = []
    for index in range(args.repeat):
        meta = dict({"group": group, "repeat_index": index} if group else {}, program=os.path.basename(program),
                    build=build)
        result = launch([program] + args.rest, store, duration=args.duration, kill_timeout=args.kill_timeout,
                        cpu_time=args.cpu_time, heap=args.heap, trace=trace_options(args), meta=meta,
                        stdout_to_stderr=getattr(args, "json", False),
                        library_dirs=built_library_dirs(store))
        results.append(result)
        if not recorded(result):
            store.remove([result.run])
        if result.exit_status == 128 + signal.SIGINT:  # Ctrl-C stops the repetitions too
            break
    recorded_runs = [result for result in results if recorded(result)]
    if not recorded_runs:  # said once, not once per repetition
        sys.stderr.write(f"cprof: warning: {program} recorded nothing: {why_nothing(build)}\n")
        return results, None
    target = group or recorded_runs[-1].run.id
    if args.tag is not None:
        store.tag(args.tag, target)
    return results, target


def exit_status(result: LaunchResult, args) -> int:
    """cprof's exit status after a run: the program's, except when asked to ignore it or when --duration stopped
    the program as it was told to."""
    if args.ignore_exit_code or (result.stopped_after_duration and result.exit_status in _STOP_STATUSES):
        return 0
    return result.exit_status


def run(args) -> int:
    results, target = perform_runs(args, Store())
    if target:
        stopped = " (stopped after --duration)" if results[-1].stopped_after_duration else ""
        tagged = f" as '{args.tag}'" if args.tag else ""
        what = f"group {target} of {count_recorded(results)} runs" if args.repeat > 1 else f"run {target}"
        sys.stderr.write(f"cprof: {what} saved{tagged}{stopped}; see it with 'cprof report'\n")
    return exit_status(results[-1], args)
