#!/usr/bin/env python3
"""How honest cprof's self times are. Each program is built plain, as its user builds it, and instrumented; both
run side by side (interleaved, repeated, medians).

- 6:3:1 work must report 60/30/10% within 1 point; a ~5 ns leaf and its parent, each within its uncertainty of
  its plain cost (the programs time themselves, scripts/bench/work_timer.h).
- The model error: on qsort+hash, fib(30), Lua 5.4 running scripts/bench/cpu_bound.lua, sqlite3's shell, zlib's
  minigzip and brotli -d, what a call really added to the program (instrumented minus plain process time, both
  timed the same way from outside, per call) against what the runtime calibrated. Its largest deviation is the
  margin cprof/model/correction.py widens every uncertainty by (MODEL_ERROR; a test checks the two agree), and
  the corrected time of each program must lie within its stated uncertainty of the plain program's own.

    python scripts/bench_accuracy.py [--repeat 5] [--only ratio,leaf,qsort,fib,lua,sqlite3,zlib,brotli]

Writes benchmarks/results/accuracy.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BENCH = os.path.join(HERE, "bench")
sys.path.insert(0, REPO)

import cprof  # noqa: E402
from scripts import cprof_api  # noqa: E402
from scripts.bench_projects import BROTLI_BUILD, Project, build_pair, fetch, make_input  # noqa: E402
from scripts.results import write_results  # noqa: E402
# The plain program is built as a user builds it. That the guard turns every call into a real one (no sibling-call
# optimisation) is part of what instrumenting does to a program, so it belongs in the measured error.
FLAGS = ["-O2", "-g"]


def run(argv, cwd, env=None, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, input=stdin)


def work_ns(stderr: str) -> int:
    return int(re.search(r"work_ns (\d+)", stderr).group(1))


class Workspace:
    def __init__(self, root: str):
        self.root = root
        self.home = os.path.join(root, ".cprof")  # the store: builds, and runs under `cprof run`

    def plain(self, source: str, name: str, *flags: str) -> str:
        out = os.path.join(self.root, name)
        subprocess.run(["cc", *FLAGS, *flags, os.path.join(BENCH, source), "-o", out], check=True)
        return out

    def instrumented(self, source: str, name: str, flags: list[str] = FLAGS, adaptive: bool = False,
                     off_copies: bool = False) -> str:
        """`cprof build` of a source (a name in scripts/bench/, or a path): the instrumented program's path."""
        cprof_api.build(self.home, [os.path.join(BENCH, source)], name, flags, adaptive=adaptive,
                        off_copies=off_copies)
        return os.path.join(self.home, "build", "direct", name)

    def profiled_run(self, binary: str, *args: str, uncorrected: bool = False) -> dict:
        """Runs an instrumented binary as `cprof run` does and returns its report as `report --json --all`
        writes it."""
        return cprof_api.run(self.home, binary, args).to_json(corrected=not uncorrected)


def functions(report: dict) -> dict:
    return {f["name"]: f for f in report["functions"]}


def interleaved(repeat: int, *jobs):
    """Runs each job once per round, round after round, so machine noise hits all of them alike."""
    results = [[] for _ in jobs]
    for _ in range(repeat):
        for index, job in enumerate(jobs):
            results[index].append(job())
    return results


def bench_ratio(space: Workspace, repeat: int) -> dict:
    binary = space.instrumented("ratio.c", "ratio")
    shares = {"six": [], "three": [], "one": []}
    for _ in range(repeat):
        report = functions(space.profiled_run(binary))
        whole = sum(report[n]["self_ns"] for n in shares)
        for name in shares:
            shares[name].append(100.0 * report[name]["self_ns"] / whole)
    medians = {n: statistics.median(v) for n, v in shares.items()}
    worst = max(abs(medians["six"] - 60), abs(medians["three"] - 30), abs(medians["one"] - 10))
    return {"name": "6:3:1 work", "shares_percent": medians, "worst_error_points": worst, "target": "<= 1 point",
            "met": worst <= 1.0}


def bench_leaf(space: Workspace, repeat: int) -> dict:
    with_leaf = space.plain("leaf.c", "leaf-plain")
    without_leaf = space.plain("leaf.c", "leaf-none", "-DNO_LEAF_CALL")
    binary = space.instrumented("leaf.c", "leaf")
    plain_times, empty_times, reports = interleaved(
        repeat,
        lambda: work_ns(run([with_leaf], space.root).stderr),
        lambda: work_ns(run([without_leaf], space.root).stderr),
        lambda: functions(space.profiled_run(binary)),
    )
    truth_parent = statistics.median(empty_times)
    truth_leaf = statistics.median(plain_times) - truth_parent
    leaf = {k: statistics.median(r["leaf"][k] for r in reports) for k in ("self_ns", "self_err_ns", "raw_self_ns")}
    parent = {k: statistics.median(r["parent"][k] for r in reports) for k in ("self_ns", "self_err_ns", "raw_self_ns")}
    return {
        "name": "leaf x 10M",
        "leaf_true_ns": truth_leaf,
        "leaf_corrected_ns": leaf["self_ns"],
        "leaf_uncertainty_ns": leaf["self_err_ns"],
        "leaf_raw_ns": leaf["raw_self_ns"],
        "parent_true_ns": truth_parent,
        "parent_corrected_ns": parent["self_ns"],
        "parent_uncertainty_ns": parent["self_err_ns"],
        "parent_raw_ns": parent["raw_self_ns"],
        "leaf_within": abs(leaf["self_ns"] - truth_leaf) <= leaf["self_err_ns"],
        "parent_within": abs(parent["self_ns"] - truth_parent) <= parent["self_err_ns"],
    }


# Real programs for the model error, each built as its user builds it (no flag added on either side).
SQL = """CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
INSERT INTO t SELECT x, printf('row%d', x * 7919 % 100003), x * 0.5 FROM n;
CREATE INDEX tb ON t(b);
SELECT count(*), sum(c) FROM t WHERE b LIKE 'row1%';
SELECT substr(b, 1, 5), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 5;
"""
SQLITE_BUILD = ["cc", "-O2", "-g", "-DSQLITE_THREADSAFE=0", "shell.c", "sqlite3.c", "-o", "sqlite3", "-ldl", "-lm"]
PROGRAMS = [
    # (project, source subfolder of the fetched package, arguments: {input}, {packed}, {sql}, {script} filled in)
    (Project("lua", "lua5.4", ["make", "-j2", "linux"], "src/lua"), "", ["{script}"]),
    (Project("sqlite3 shell", "sqlite3", SQLITE_BUILD, "sqlite3"), "../amalgamation", [":memory:", ".read {sql}"]),
    (Project("zlib minigzip", "zlib", ["sh", "-c", "./configure && make -j2"], "minigzip"), "", ["-c", "{input}"]),
    (Project("brotli -d", "brotli", BROTLI_BUILD, "out/brotli"), "", ["-d", "-c", "{packed}"]),
]


def _wall(argv: list[str], env: dict | None, cwd: str) -> float:
    started = time.perf_counter()
    process = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if process.returncode:
        raise SystemExit(f"{argv[0]} failed: {process.stderr.decode(errors='replace')[-2000:]}")
    return (time.perf_counter() - started) * 1e9


def _main_thread_figures(run_dir: str) -> dict:
    """What the instrumented run measured on its main thread, read with cprof's own model."""
    [process] = cprof.load(run_dir).model.processes
    main = next(t for t in process.threads if t.index == 0)
    nodes = [n for n in main.root.walk() if n.key is not None]
    return {"calls": sum(n.calls for n in nodes), "raw_ns": main.instrumented_ns,
            "slow_ns": sum(n.slow_ns for n in nodes),
            # count-only functions' sampled time was taken out of their callers' nodes: it is counted back here
            "corrected_ns": sum(n.corrected_self_ns + sum(v[1] for v in n.sampled.values()) for n in nodes),
            "err_ns": sum(n.summed_self_err_ns() for n in nodes),
            # count-only calls, and what their increments were taken to cost (in corrected_ns's reckoning)
            "counted_calls": sum(main.counted.values()), "count_cost_ns": main.count_cost_ns,
            "per_call_ns": process.calibration.per_call_ns, "runtime_ns": process.header["runtime_ns"]}


def _timed_pairs(plain: str, instrumented: str, args: list[str], cwd: str, repeat: int) -> tuple[list, list]:
    """Both sides timed the same way, the whole process from outside, interleaved: the plain walls, and for each
    instrumented run its main thread's figures with `wall_ns` less cprof's own calibration work (which the plain
    program does not do)."""
    runs_dir = os.path.join(cwd, "accuracy-runs")
    plain_walls, cases = [], []
    for round_index in range(repeat):
        shutil.rmtree(runs_dir, ignore_errors=True)
        env = dict(os.environ, CPROF_RUN_DIR=runs_dir)
        env.pop("CPROF_DISABLE", None)
        sides = [("plain", plain, None), ("cprof", instrumented, env)]
        for side, program, side_env in (sides if round_index % 2 == 0 else sides[::-1]):
            wall = _wall([program, *args], side_env, cwd)
            if side == "plain":
                plain_walls.append(wall)
            else:
                figures = _main_thread_figures(runs_dir)
                figures["wall_ns"] = wall - figures["runtime_ns"]
                cases.append(figures)
    return plain_walls, cases


def fixed_cost(plain: str, instrumented: str, cwd: str, repeat: int) -> float:
    """What an instrumented process costs however few its calls (loading the runtime, creating its run file),
    from an empty program: instrumented time, its one slow-path entry and calibration aside, over plain time."""
    plain_walls, cases = _timed_pairs(plain, instrumented, [], cwd, repeat)
    return statistics.median(c["wall_ns"] - c["slow_ns"] for c in cases) - statistics.median(plain_walls)


def model_error_case(name: str, plain: str, instrumented: str, args: list[str], cwd: str, repeat: int,
                     fixed_ns: float) -> dict:
    """What a call really cost this program (`actual`: the instrumented time over the plain time, less the slow
    paths' own measured time and the fixed cost, per call), against what the runtime calibrated; and whether the
    corrected time lies within its stated uncertainty of the plain program's time in the same region (its process
    time less what the instrumented process spent outside that region, the fixed cost aside)."""
    plain_walls, cases = _timed_pairs(plain, instrumented, args, cwd, repeat)
    median = {key: statistics.median(c[key] for c in cases) for key in cases[0]}
    plain_wall = statistics.median(plain_walls)
    outsides = [c["wall_ns"] - c["raw_ns"] for c in cases]
    outside = statistics.median(outsides)
    plain_main = plain_wall - (outside - fixed_ns)
    actual = (median["wall_ns"] - plain_wall - median["slow_ns"] - fixed_ns) / median["calls"]
    # how far the reference itself moves from run to run: the plain runs' spread and that of the instrumented
    # runs' time outside the measured region (half ranges)
    noise = (max(plain_walls) - min(plain_walls)) / 2 + (max(outsides) - min(outsides)) / 2
    error = abs(median["corrected_ns"] - plain_main)
    return {
        "name": name, "calls": round(median["calls"]), "plain_ns": round(plain_main),
        "raw_ns": round(median["raw_ns"]), "corrected_ns": round(median["corrected_ns"]),
        "uncertainty_ns": round(median["err_ns"]), "slow_path_ns": round(median["slow_ns"]),
        "fixed_ns": round(fixed_ns), "calibrated_per_call_ns": round(median["per_call_ns"], 2),
        "actual_per_call_ns": round(actual, 2), "model_error": round(actual / median["per_call_ns"] - 1, 4),
        # the guard's cost must stand well clear of the reference's noise for a per-call figure to mean anything
        "conclusive": median["calls"] * median["per_call_ns"] >= 10 * noise,
        "reference_noise_ns": round(noise),
        "corrected_error_percent": round(100.0 * (median["corrected_ns"] - plain_main) / plain_main, 1),
        "within_uncertainty": error <= median["err_ns"] + noise,
        "within_uncertainty_alone": error <= median["err_ns"],
        "uncertainty_below_run_time": median["err_ns"] < plain_main,
    }


def bench_model_error(space: Workspace, repeat: int, wanted: set[str]) -> list[dict]:
    """The model error on the small benchmarks and on real programs, each built exactly as its user builds it."""
    results = []
    empty = os.path.join(space.root, "empty.c")
    with open(empty, "w") as handle:
        handle.write("int main(void) { return 0; }\n")
    fixed = fixed_cost(space.plain(empty, "empty-plain"), space.instrumented(empty, "empty"), space.root,
                       max(repeat, 9))
    for source, key, name, args in (("qsort_hash.c", "qsort", "qsort+hash", []), ("fib.c", "fib", "fib(30)", ["30"])):
        if key in wanted:
            results.append(model_error_case(name, space.plain(source, key + "-plain"),
                                            space.instrumented(source, key), args, space.root, repeat, fixed))
    for project, subfolder, args in PROGRAMS:
        if project.name.split()[0] not in wanted:
            continue
        work = os.path.join(space.root, project.package)
        pair, argv = project_workload(project, subfolder, args, work)
        results.append(model_error_case(project.name, pair.plain, pair.instrumented, argv, work, repeat, fixed))
    return results


def project_workload(project: Project, subfolder: str, args: list[str], work: str, sql: str = SQL):
    """Fetches a project's Debian source, builds it plain and through `cprof build` under `work`
    (bench_projects.build_pair), and fills the workload's arguments in: {script} the CPU-bound Lua script, {sql}
    a file holding `sql`, {input} the input of scripts/bench_projects.py, {packed} that input compressed by the
    plain program (brotli). Returns (the pair, the arguments)."""
    source = fetch(project.package)
    source = os.path.normpath(os.path.join(source, subfolder)) if subfolder else source
    os.makedirs(work, exist_ok=True)
    pair = build_pair(project, source, work)
    values = {"script": os.path.join(BENCH, "cpu_bound.lua"), "sql": os.path.join(work, "bench.sql"),
              "input": os.path.join(work, "input.txt"), "packed": os.path.join(work, "input.br")}
    with open(values["sql"], "w") as handle:
        handle.write(sql)
    if "{input}" in " ".join(args) or "{packed}" in " ".join(args):
        make_input([fetch(p) for p in ("libzstd", "gzip", "brotli", "xz-utils")], values["input"])
    if "{packed}" in " ".join(args):
        with open(values["packed"], "wb") as handle:
            handle.write(subprocess.run([pair.plain, "-q", "9", "-c", values["input"]], check=True,
                                        capture_output=True).stdout)
    return pair, [a.format(**values) for a in args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="ratio,leaf,qsort,fib,lua,sqlite3,zlib,brotli")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "accuracy.json"))
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    document = {"repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="cprof-accuracy-") as root:
        space = Workspace(root)
        if "ratio" in wanted:
            document["ratio"] = bench_ratio(space, args.repeat)
            print(json.dumps(document["ratio"]), flush=True)
        if "leaf" in wanted:
            document["leaf"] = bench_leaf(space, args.repeat)
            print(json.dumps(document["leaf"]), flush=True)
        cases = bench_model_error(space, args.repeat, wanted)
    for case in cases:
        print(json.dumps(case), flush=True)
    conclusive = [c for c in cases if c["conclusive"]]
    if conclusive:
        worst = max(conclusive, key=lambda c: abs(c["model_error"]))
        # the margin: the largest deviation measured where it can be measured, rounded up to a whole percent
        margin = -(-round(abs(worst["model_error"]) * 1000) // 10) / 100
        from cprof.model.correction import MODEL_ERROR

        # the uncertainties above were stated with the margin cprof had while this ran
        document["model_error"] = {"margin": margin, "worst_case": worst["name"], "used": MODEL_ERROR,
                                   "cases": cases}
        print(f"model error margin: {margin} (from {worst['name']})")
    write_results(args.output, document, " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
