#!/usr/bin/env python3
"""Does the adaptive mode put the time where a sampling profiler finds it? Each program is built twice with
`-O2 -g -fno-inline -fno-optimize-sibling-calls` (so that both sides have the same functions, and the same frames:
a tail call takes its caller's frame off the stack, and perf then finds the callee's time, libc's snprintf say, under
the caller's caller, while an instrumented function keeps its frame): plain, profiled by `perf record -e cpu-clock`,
and adaptively instrumented by cprof (a fully timed learning run, then `cprof build --adaptive`, then a run). The
top 10 functions of perf's user-space self time are compared with cprof's shares of the sum of all self times
(timed functions measured, count-only functions sampled). Each side is the sum of `--repeat` runs. perf also
profiles the plain program laid out otherwise (scripts/layouts.py): how far its own shares move with the code's
alignment alone is the floor under the comparison, as the instrumented build's code lies elsewhere. perf also
profiles the instrumented program itself, run outside cprof: where its shares differ from plain's, the
instrumentation changed where the program spends its time (a count's increment moves a stall from caller to
callee), and where cprof's differ from them, cprof misread the program it ran.

    python scripts/bench_shares.py [--repeat 8] [--only fib,qsort,lua,sqlite3]

Writes benchmarks/results/shares.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from cprof.model.samples import RUNTIME_PREFIXES  # noqa: E402
from scripts import cprof_api  # noqa: E402
from scripts.bench_accuracy import BENCH, SQL, SQLITE_BUILD, project_workload  # noqa: E402
from scripts.bench_adaptive import _cprof  # noqa: E402
from scripts.bench_projects import Project, fetch  # noqa: E402
from scripts.layouts import LAYOUTS, relaid_builds  # noqa: E402
from scripts.results import write_results  # noqa: E402

FLAGS = ["-O2", "-g", "-fno-inline", "-fno-optimize-sibling-calls"]
TOP = 10
# Longer workloads than the overhead benchmarks: shares need thousands of samples on both sides.
LUA_SCRIPT = "for _ = 1, 8 do dofile('{script}') end"
DIRECT = [("fib.c", "fib", "fib(36)", ["36"]), ("qsort_hash.c", "qsort", "qsort+hash", [])]
PROJECTS = [
    (Project("lua", "lua5.4", ["make", "-j2", "linux", "MYCFLAGS=" + " ".join(FLAGS[2:])], "src/lua"), "",
     ["-e", LUA_SCRIPT]),
    (Project("sqlite3 shell", "sqlite3", ["cc", *FLAGS, *SQLITE_BUILD[3:]], "sqlite3"), "../amalgamation",
     [":memory:", ".read {sql}"]),
]


def perf_shares(argv: list[str], cwd: str, repeat: int, names: set[str], env: dict | None = None) -> dict[str, float]:
    """Self-time shares by function from `perf record -e cpu-clock --call-graph dwarf` over `repeat` runs, each
    sample given to the innermost function of its call chain (inlined frames included) that cprof reports, as
    cprof gives an uninstrumented callee's time (libc's qsort, printf) to its instrumented caller. Samples with no
    such function (the loader, exit) are left out on both sides, and so are those in cprof's runtime (in an
    instrumented program: the guards' and heap tracking's cost, which cprof's figures take out)."""
    counts: dict[str, int] = {}
    for index in range(repeat):
        data = os.path.join(cwd, f"perf-{index}.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "--call-graph", "dwarf,16384",
                        "-o", data, "--", *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, env=env)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "period,ip,sym,dso"], cwd=cwd,
                                capture_output=True, text=True, errors="replace", check=True).stdout
        for block in script.split("\n\n"):  # a sample: its period, then its frames, innermost first
            lines = block.strip("\n").splitlines()
            if not lines or not lines[0].strip().isdigit():
                continue
            for depth, frame in enumerate(lines[1:]):
                match = re.match(r"\s*[0-9a-f]+\s+(\S+)", frame)
                name = match.group(1).split("+", 1)[0].split(".", 1)[0] if match else ""
                # the runtime's own work (libc's clock under its timer set-up too), but not libc's allocator under
                # the runtime's heap wrappers (named as libc's): that is the program's
                if name.startswith(RUNTIME_PREFIXES) or ("libcprofrt" in frame and depth == 0):
                    break
                if "libcprofrt" in frame:
                    continue
                if name in names:
                    counts[name] = counts.get(name, 0) + int(lines[0])
                    break
        os.remove(data)
    total = sum(counts.values()) or 1
    return {name: 100.0 * value / total for name, value in counts.items()}


def cprof_shares(binary: str, args: list[str], home: str, repeat: int) -> tuple[dict, dict]:
    """Self-time shares (timed and sampled) from `repeat` adaptive runs (in the store `home`), and how each
    function's time was got."""
    selves: dict[str, float] = {}
    sources: dict[str, str] = {}
    for _ in range(repeat):
        report = cprof_api.run(home, binary, args).to_json()
        for function in report["functions"]:
            if function["self_ns"] is not None:
                selves[function["name"]] = selves.get(function["name"], 0.0) + function["self_ns"]
            sources[function["name"]] = function["time_source"]
    total = sum(selves.values())
    return {name: 100.0 * value / total for name, value in selves.items()}, sources


def compare(name: str, perf: dict, ours: dict, sources: dict, relaid: list[dict], instrumented: dict) -> dict:
    """perf's top 10 against cprof's shares; against perf's own of the plain program laid out otherwise
    (`relaid`, one per layout); and against perf's of the instrumented program itself (`instrumented`), which
    parts the difference into what the instrumentation does to the program and how cprof reads what it does: the
    largest difference of each, and where."""
    top = sorted(perf, key=lambda n: -perf[n])[:TOP]
    rows = [{"function": n, "perf": round(perf[n], 2), "cprof": round(ours.get(n, 0.0), 2),
             "perf_relaid": [round(other.get(n, 0.0), 2) for other in relaid],
             "perf_instrumented": round(instrumented.get(n, 0.0), 2),
             "time_source": sources.get(n, "not instrumented")} for n in top]

    def largest(first: str, second: str) -> tuple[float, str]:
        return max((abs(r[first] - r[second]), r["function"]) for r in rows)

    worst = largest("perf", "cprof")
    moved = max(((abs(r["perf"] - value), r["function"]) for r in rows for value in r["perf_relaid"]),
                default=(0.0, ""))
    changed, read = largest("perf", "perf_instrumented"), largest("perf_instrumented", "cprof")
    return {"name": name, "top": rows, "max_difference_points": round(worst[0], 2), "worst": worst[1],
            "layout_difference_points": round(moved[0], 2), "layout_worst": moved[1],
            "instrumented_difference_points": round(changed[0], 2), "instrumented_worst": changed[1],
            "reading_difference_points": round(read[0], 2), "reading_worst": read[1],
            "counted": sum(1 for s in sources.values() if s != "measured")}


def scratch_env(env: dict, root: str) -> dict:
    """The environment to run an instrumented program in outside `cprof run`: its run files go to a scratch folder,
    not the store; it is neither sampled (`cprof run` turns sampling on) nor tracking the heap (whose cost cprof's
    figures give back, and which perf would find in libc's allocator, under the program's calls), and does not
    calibrate its guards at start-up (cprof's time, not the program's): perf sees the instrumented program alone."""
    return dict(env, CPROF_RUN_DIR=tempfile.mkdtemp(prefix="runs-", dir=root), CPROF_SAMPLE_HZ="0", CPROF_HEAP="0",
                CPROF_CALIBRATE="0")


def adaptive_build(build: list[str], cwd: str, env: dict, binary: str, args: list[str]) -> None:
    """A fully timed learning run of the full build, then the adaptive build (`build` run in `cwd`)."""
    cprof_api.run(env["CPROF_HOME"], binary, args)
    _cprof(["build", "--adaptive", "--", *build], cwd, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--only", default="fib,qsort,lua,sqlite3")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "shares.json"))
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="cprof-shares-") as root:
        env = dict(os.environ, CPROF_HOME=os.path.join(root, ".cprof"), CPROF_CACHE_DIR="off")
        for source, key, name, program_args in DIRECT:
            if key not in wanted:
                continue
            plain = os.path.join(root, key + "-plain")
            subprocess.run(["cc", *FLAGS, os.path.join(BENCH, source), "-o", plain], check=True)
            build = ["cc", *FLAGS, os.path.join(BENCH, source), "-o", key]
            _cprof(["build", "--", *build], root, env)
            binary = os.path.join(root, ".cprof", "build", "tree", key)
            adaptive_build(build, root, env, binary, program_args)
            ours, sources = cprof_shares(binary, program_args, env["CPROF_HOME"], args.repeat)
            perf = perf_shares([plain, *program_args], root, args.repeat, set(sources))
            relaid = [perf_shares([program, *program_args], root, args.repeat, set(sources)) for program in
                      relaid_builds(["cc", *FLAGS, source, "-o", key], BENCH, key, os.path.join(root, "relaid-" + key))]
            instrumented = perf_shares([binary, *program_args], root, args.repeat, set(sources), scratch_env(env, root))
            results.append(compare(name, perf, ours, sources, relaid, instrumented))
            print(json.dumps(results[-1]), flush=True)
        for project, subfolder, program_args in PROJECTS:
            key = project.name.split()[0]
            if key not in wanted:
                continue
            work = os.path.join(root, project.package)
            pair, argv = project_workload(project, subfolder, program_args, work,
                                          SQL.replace("x < 100000", "x < 400000"))
            adaptive_build(project.build, pair.cprof_dir, pair.env, pair.instrumented, argv)
            ours, sources = cprof_shares(pair.instrumented, argv, pair.env["CPROF_HOME"], args.repeat)
            perf = perf_shares([pair.plain, *argv], work, args.repeat, set(sources))
            relaid = [perf_shares([program, *argv], work, args.repeat, set(sources)) for program in
                      relaid_builds(project.build, os.path.normpath(os.path.join(fetch(project.package), subfolder)),
                                    project.program, os.path.join(work, "relaid"), project.subfolder)]
            instrumented = perf_shares([pair.instrumented, *argv], work, args.repeat, set(sources),
                                       scratch_env(pair.env, work))
            results.append(compare(project.name, perf, ours, sources, relaid, instrumented))
            print(json.dumps(results[-1]), flush=True)
    write_results(args.output, {"repeat": args.repeat, "top": TOP, "flags": " ".join(FLAGS),
                                "layouts": [" ".join(flags) for flags in LAYOUTS], "programs": results},
                  " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
