"""`cprof run`: run what the last build linked, and store the run."""

from __future__ import annotations

import os
import sys

from cprof.build.driver import last_build
from cprof.cli.options import add_run_options
from cprof.errors import EXIT_NOT_FOUND, EXIT_USAGE, CprofError
from cprof.run.launcher import LaunchResult, launch
from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the instrumented program",
                                   usage="cprof run [--bin NAME] [options] [-- PROGRAM ARGS]",
                                   description="Run a program the last 'cprof build' linked; standard streams pass "
                                   "through and its exit status becomes cprof's.")
    add_run_options(parser)
    parser.add_argument("--tag", metavar="NAME", help="tag the new run")
    parser.set_defaults(run=run)


def find_program(store: Store, name: str | None) -> str:
    if name and os.sep in name and os.path.isfile(name):
        return os.path.abspath(name)
    links = [l for l in last_build(store)["links"] if l["kind"] == "executable"]
    if not links:
        raise CprofError("the last build linked no executable", EXIT_NOT_FOUND)
    if name:
        found = [l for l in links if os.path.basename(l["output"]) == name or l["output"] == os.path.abspath(name)]
        if not found:
            known = ", ".join(sorted(os.path.basename(l["output"]) for l in links))
            raise CprofError(f"the last build linked no program named '{name}' (it linked: {known})", EXIT_NOT_FOUND)
        links = found[-1:]
    if len(links) > 1:
        known = ", ".join(sorted(os.path.basename(l["output"]) for l in links))
        raise CprofError(f"the last build linked {len(links)} programs ({known}); pick one with --bin NAME", EXIT_USAGE)
    built = links[0]["built"]
    if not os.path.exists(built):
        raise CprofError(f"{built} no longer exists; build again", EXIT_NOT_FOUND)
    return built


def perform_run(args, store: Store, meta: dict | None = None) -> LaunchResult:
    program = find_program(store, args.bin)
    result = launch([program] + args.rest, store, duration=args.duration, kill_timeout=args.kill_timeout,
                    cpu_time=args.cpu_time, meta=dict(meta or {}, program=os.path.basename(program)),
                    stdout_to_stderr=getattr(args, "json", False))
    if getattr(args, "tag", None):
        store.tag(args.tag, result.run.id)
    return result


def run(args) -> int:
    store = Store()
    result = perform_run(args, store)
    stopped = " (stopped after --duration)" if result.stopped_after_duration else ""
    sys.stderr.write(f"cprof: run {result.run.id} saved{stopped}; see it with 'cprof report'\n")
    return 0 if args.ignore_exit_code else result.exit_status
