#!/usr/bin/env python3
"""What adaptive instrumentation buys (issue "Honest time on call-dense code"): each program is built plain,
fully instrumented and adaptively instrumented (`cprof build --adaptive`, learning from a fully timed run), and
run side by side, interleaved, medians. For each: the slowdown of both modes against the plain program, and of the
adaptive build with profiling switched off (CPROF_DISABLE=1), and of that build with plain copies to run
switched off (`--off-copies`), whether every call count of the adaptive run equals
the full run's, and the sum of the adaptive run's self times against the plain program's time in the same region.
Programs: fib(35) (long enough that its work, not the process start, is what is timed), qsort+hash, Lua 5.4
running a CPU-bound script, sqlite3's shell, zstd compressing (all units instrumented), GNU bc computing pi to
1,500 digits, and a csmith program (the
first seed from 1 whose main does 50 µs of work or more, repeated to about half a second: its hot loops are
made of csmith's static inline safe-math helpers; its full mode is run once, it takes minutes).

    python scripts/bench_adaptive.py [--repeat 5] [--only fib,qsort,lua,sqlite3,zstd,bc,csmith]

Writes benchmarks/results/adaptive.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from scripts import cprof_api  # noqa: E402
from scripts.bench_accuracy import (BENCH, FLAGS, PROGRAMS, Workspace, _main_thread_figures, _wall,  # noqa: E402
                                    fixed_cost, project_workload)
from scripts.bench_projects import PROJECTS, Project, fetch  # noqa: E402
from scripts.layouts import LAYOUTS, relaid_builds, spread_percent, time_ratios  # noqa: E402

ZSTD = next(p for p in PROJECTS if p.name == "zstd")
# GNU bc as its user builds it without texinfo, computing pi (scripts/bench/pi.bc): tried first as a program
# nothing here had been tuned on
BC = Project("bc", "bc", ["sh", "-c", "./configure && make -j2 MAKEINFO=true"], "bc/bc")
ADAPTIVE_PROGRAMS = PROGRAMS[:2] + [(ZSTD, "", ["-3", "-q", "-c", "{input}"]),
                                    (BC, "", ["-l", os.path.join(HERE, "bench", "pi.bc")])]
CSMITH_INCLUDE = "/usr/include/csmith"
from scripts.results import write_results  # noqa: E402
from cprof.running.launcher import DEFAULT_SAMPLE_HZ  # noqa: E402


def _cprof(args: list[str], cwd: str, env: dict) -> subprocess.CompletedProcess:
    """The CLI, for builds by a build command: cprof.build would run it in this process's working directory."""
    # a build's output is not ours to read, only its tail when it fails
    result = subprocess.run([sys.executable, "-m", "cprof", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            errors="replace")
    if result.returncode:
        raise SystemExit(f"cprof {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def _functions(home: str, binary: str, args: list[str]) -> dict:
    """Each function's figures, by name, from a run under `cprof run` (kept in the store: the adaptive build learns
    from the latest run)."""
    return {f["name"]: f for f in cprof_api.run(home, binary, args).to_json()["functions"]}


def _side_by_side(plain: str, instrumented: str, args: list[str], cwd: str, repeat: int) -> dict:
    """Medians of interleaved runs: plain wall, instrumented wall (cprof's calibration aside), and what the
    instrumented run measured on its main thread."""
    runs_dir = os.path.join(cwd, "adaptive-runs")
    # sampled, as `cprof run` samples: count-only functions get their self time from the samples
    env = dict(os.environ, CPROF_RUN_DIR=runs_dir, CPROF_SAMPLE_HZ=str(DEFAULT_SAMPLE_HZ))
    env.pop("CPROF_DISABLE", None)
    # one untimed run of each first: a program's first run after its build pays for loading it cold (sqlite3: its
    # instrumented start-up took 9 ms against 2.3 in the runs after, and plain's first run 10% more), which is no
    # noise of the comparison
    _wall([plain, *args], None, cwd)
    _wall([instrumented, *args], env, cwd)
    plain_walls, walls, figures = [], [], []
    for index in range(repeat):
        subprocess.run(["rm", "-rf", runs_dir])
        order = [("plain", plain), ("cprof", instrumented)]
        for side, program in (order if index % 2 == 0 else order[::-1]):
            if side == "plain":
                plain_walls.append(_wall([program, *args], None, cwd))
            else:
                wall = _wall([program, *args], env, cwd)
                measured = _main_thread_figures(runs_dir)
                walls.append(wall - measured["runtime_ns"])
                figures.append(measured)
    # how far the reference moves from run to run (as scripts/bench_accuracy.py states it): the plain runs' spread
    # and that of the instrumented runs' time outside the measured region (half ranges)
    outsides = [wall - f["raw_ns"] for wall, f in zip(walls, figures)]
    return {"plain_ns": statistics.median(plain_walls), "wall_ns": statistics.median(walls),
            "noise_ns": (max(plain_walls) - min(plain_walls)) / 2 + (max(outsides) - min(outsides)) / 2,
            "raw_ns": statistics.median(f["raw_ns"] for f in figures),
            "corrected_ns": statistics.median(f["corrected_ns"] for f in figures),
            # what a counted call cost: the self times' excess over plain with no count cost given back
            "excess_ns": statistics.median(f["corrected_ns"] + f["count_cost_ns"] for f in figures),
            "counted_calls": statistics.median(f["counted_calls"] for f in figures),
            "err_ns": statistics.median(f["err_ns"] for f in figures)}


def _switched_off(plain: str, instrumented: str, args: list[str], cwd: str, repeat: int) -> float:
    """Median of interleaved runs: the instrumented program with profiling switched off, against plain."""
    env = dict(os.environ, CPROF_DISABLE="1")
    _wall([instrumented, *args], env, cwd)  # untimed: a cold first run (see _side_by_side)
    plain_walls, off_walls = [], []
    for index in range(repeat):
        order = [(plain_walls, plain, None), (off_walls, instrumented, env)]
        for walls, program, program_env in (order if index % 2 == 0 else order[::-1]):
            walls.append(_wall([program, *args], program_env, cwd))
    return statistics.median(off_walls) / statistics.median(plain_walls)


CSMITH_MAIN = "int main (int argc, char* argv[])"
CSMITH_GLOBALS = re.compile(r"/\* --- GLOBAL VARIABLES --- \*/(.*?)/\* --- FORWARD DECLARATIONS --- \*/", re.S)
CSMITH_GLOBAL = re.compile(r"^static\b([^=;]*?)\b(g_\d+)\b", re.M)


def _mutable(declarator: str) -> bool:
    """Whether a global declared with this text before its name can be written: `const int16_t` and
    `int16_t * const` cannot (restoring them would write to read-only memory), `const int16_t *` can."""
    return "const" not in declarator.rsplit("*", 1)[-1]


def csmith_driver(text: str) -> str:
    """A csmith program whose main, renamed, runs as many times as its first argument says, each time from the
    initial values of the globals: csmith guarantees a run free of undefined behaviour only from those (a second
    run from the globals the first left dereferences null pointers in seed 2)."""
    declarations = CSMITH_GLOBALS.search(text)
    names = [name for declarator, name in CSMITH_GLOBAL.findall(declarations.group(1) if declarations else "")
             if _mutable(declarator)]
    saved = "".join(f"static unsigned char initial_{name}[sizeof {name}];\n" for name in names)
    save = "".join(f"    __builtin_memcpy(initial_{name}, (const void *)&{name}, sizeof {name});\n" for name in names)
    restore = "".join(f"    __builtin_memcpy((void *)&{name}, initial_{name}, sizeof {name});\n" for name in names)
    return (text.replace(CSMITH_MAIN, "static int csmith_main (int argc, char* argv[])") + f"""
{saved}
int main (int argc, char* argv[])
{{
    int i, times = argc > 1 ? atoi(argv[1]) : 1;
{save}    for (i = 0; i < times; i++) {{
{restore}        csmith_main(1, argv);
    }}
    return 0;
}}
""")


def _plain_seconds(binary: str, args: list[str], root: str, timeout: float) -> float | None:
    """One plain run's wall time; None when it fails or does not end in time (csmith programs may run for ever)."""
    try:
        started = time.perf_counter()
        subprocess.run([binary, *args], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=timeout, check=True)
        return time.perf_counter() - started
    except (subprocess.SubprocessError, OSError):
        return None


def csmith_program(root: str, seeds=range(1, 1000)) -> tuple[int, int, str] | None:
    """The first csmith program (by seed) whose main does 50 µs or more of work, with its main run `repeat` times
    so that the plain program takes about half a second: (seed, repeat, its source, which takes the repeat as its
    argument). csmith's programs end at once (seeds 1-999 all take under 20 ms here with -O2, the process's start
    included) or run for minutes; repeating main keeps what a csmith program is made of, loops of its static inline
    safe-math helpers (csmith_driver). The repeated program is timed again and kept when it ends within 0.2-3 s."""
    for seed in seeds:
        source = os.path.join(root, f"csmith-{seed}.c")
        binary = os.path.join(root, f"csmith-{seed}")
        if subprocess.run(["csmith", "--seed", str(seed), "-o", source], capture_output=True).returncode:
            continue
        with open(source) as handle:
            text = handle.read()
        if CSMITH_MAIN not in text:
            continue
        with open(source, "w") as handle:
            handle.write(csmith_driver(text))
        if subprocess.run(["cc", *FLAGS, "-w", f"-I{CSMITH_INCLUDE}", source, "-o", binary],
                          capture_output=True).returncode:
            continue
        once, hundred = _plain_seconds(binary, ["1"], root, 2), _plain_seconds(binary, ["101"], root, 5)
        if once is None or hundred is None or (hundred - once) / 100 < 50e-6:
            continue
        repeat = max(1, round(0.5 / ((hundred - once) / 100)))
        seconds = _plain_seconds(binary, [str(repeat)], root, 10)
        if seconds is not None and 0.2 <= seconds <= 3:
            return seed, repeat, source
    return None


def measure(name: str, plain: str, relaid: list[str], build_full, build_adaptive, program, args: list[str], cwd: str,
            home: str, repeat: int, fixed_ns: float, full_repeat: int | None = None,
            main_thread_works: bool = True) -> dict:
    """`build_full()` / `build_adaptive(off_copies)` build in place, in the store `home`; `program()` is the
    instrumented binary's path. `relaid`: the plain program laid out otherwise (scripts/layouts.py).
    `fixed_ns`: what any instrumented process costs however few its calls (bench_accuracy.fixed_cost).
    `full_repeat` (default `repeat`): runs of the full mode, which on csmith's code takes minutes a run.
    `main_thread_works`: False for a program whose main thread waits while workers compute (zstd): the main
    thread's self times then say nothing of the program's time, and no sum is compared."""
    build_full()
    full = _side_by_side(plain, program(), args, cwd, full_repeat or repeat)
    # two fully timed runs: a count that differs between them depends on the run, not on the mode; the second is
    # the learning run, kept in the store (with a single full run, only the learning run)
    first_counts = None
    if full_repeat != 1:
        first_counts = {n: f["calls"] for n, f in _functions(home, program(), args).items()}
    full_counts = {n: f["calls"] for n, f in _functions(home, program(), args).items()}
    stable = {n for n, calls in full_counts.items() if first_counts is None or first_counts.get(n) == calls}
    # first with plain copies, switched off only (no run file: the next build learns from the same run)
    started = time.monotonic()
    build_adaptive(True)
    off_copies_build_s = time.monotonic() - started
    off_copies_slowdown = _switched_off(plain, program(), args, cwd, repeat)
    started = time.monotonic()
    build_adaptive(False)
    adaptive_build_s = time.monotonic() - started
    adaptive = _side_by_side(plain, program(), args, cwd, repeat)
    off_slowdown = _switched_off(plain, program(), args, cwd, repeat)
    report = _functions(home, program(), args)
    relaid_ratios = time_ratios(plain, relaid, args, cwd, repeat, _wall)
    counted = sum(1 for f in report.values() if not f["timed"])
    counted_calls = sum(f["calls"] for f in report.values() if not f["timed"])
    adaptive_counts = {n: f["calls"] for n, f in report.items()}
    # the plain program's time in the region cprof measured: its process time less what the adaptive process
    # spent outside it (start-up, loading, exit), the fixed cost of any instrumented process aside
    plain_region = adaptive["plain_ns"] - (adaptive["wall_ns"] - adaptive["raw_ns"] - fixed_ns)
    return {
        "name": name, "functions": len(report), "counted": counted,
        "plain_ms": round(full["plain_ns"] / 1e6, 2),
        "full_slowdown": round(full["wall_ns"] / full["plain_ns"], 2),
        "adaptive_slowdown": round(adaptive["wall_ns"] / adaptive["plain_ns"], 2),
        "off_slowdown": round(off_slowdown, 3),
        "off_copies_slowdown": round(off_copies_slowdown, 3),
        # the adaptive build from scratch (every unit compiled again: the instrumentation changed), without and
        # with the copies: what --off-copies costs a build
        "adaptive_build_s": round(adaptive_build_s, 1),
        "off_copies_build_s": round(off_copies_build_s, 1),
        "stable_functions": len(stable),
        "differing": sorted(f"{n}: {full_counts[n]} -> {adaptive_counts.get(n)}" for n in stable
                            if adaptive_counts.get(n) != full_counts[n])[:10],
        "counts_identical": all(adaptive_counts.get(n) == full_counts[n] for n in stable)
        and set(adaptive_counts) == set(full_counts),
        "self_sum_error_percent": round(100.0 * (adaptive["corrected_ns"] - plain_region) / plain_region, 1)
        if main_thread_works else None,
        # what the run stated as the uncertainty of that sum (scripts/bench_accuracy._main_thread_figures)
        "self_sum_uncertainty_percent": round(100.0 * adaptive["err_ns"] / plain_region, 1)
        if main_thread_works else None,
        "reference_noise_percent": round(100.0 * adaptive["noise_ns"] / plain_region, 1),
        # the plain program's time, laid out otherwise, over its own: how exactly "the plain program's time" is known
        "relaid_ratios": relaid_ratios,
        "layout_spread_percent": spread_percent(relaid_ratios),
        "counted_calls": counted_calls,
        # What a counted call cost this program: the main thread's self times, its timed guards' cost taken out
        # (as calibrated) but nothing given back for its counts, over plain, per counted call. What the report
        # gives back for a count (COUNT_COST_NS) is the median of this over the programs. Not for a program whose
        # main thread waits (zstd): its workers' time is not in those self times.
        "count_cost_ns": round((adaptive["excess_ns"] - plain_region) / adaptive["counted_calls"], 3)
        if main_thread_works and adaptive["counted_calls"] else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="fib,qsort,lua,sqlite3,zstd,bc,csmith")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "adaptive.json"))
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="cprof-adaptive-") as root:
        space = Workspace(root)
        empty = os.path.join(root, "empty.c")
        with open(empty, "w") as handle:
            handle.write("int main(void) { return 0; }\n")
        fixed = fixed_cost(space.plain(empty, "empty-plain"), space.instrumented(empty, "empty"), root,
                           max(args.repeat, 9))
        for source, key, name, program_args in (("fib.c", "fib", "fib(35)", ["35"]),
                                                ("qsort_hash.c", "qsort", "qsort+hash", [])):
            if key not in wanted:
                continue
            binary = os.path.join(space.home, "build", "direct", key)
            relaid = relaid_builds(["cc", *FLAGS, source, "-o", key], BENCH, key, os.path.join(root, "relaid-" + key))
            results.append(measure(
                name, space.plain(source, key + "-plain"), relaid,
                lambda: space.instrumented(source, key),
                lambda off_copies: space.instrumented(source, key, adaptive=True, off_copies=off_copies),
                lambda: binary, program_args, root, space.home, args.repeat, fixed))
            print(json.dumps(results[-1]), flush=True)
        found = csmith_program(root) if "csmith" in wanted else None
        if "csmith" in wanted and not found:
            print("no csmith program of seeds 1-999 does 50 µs of work: csmith left out", flush=True)
        if found:
            seed, repeat, source = found
            flags = [*FLAGS, "-w", f"-I{CSMITH_INCLUDE}"]
            binary = os.path.join(space.home, "build", "direct", "csmith")
            plain = os.path.join(root, "csmith-plain")
            subprocess.run(["cc", *flags, source, "-o", plain], check=True)
            relaid = relaid_builds(["cc", *flags, os.path.basename(source), "-o", "csmith"], source, "csmith",
                                   os.path.join(root, "relaid-csmith"))
            results.append(measure(
                f"csmith (seed {seed}, main x{repeat})", plain, relaid,
                lambda: space.instrumented(source, "csmith", flags),
                lambda off_copies: space.instrumented(source, "csmith", flags, adaptive=True,
                                                      off_copies=off_copies),
                lambda: binary, [str(repeat)], root, space.home, args.repeat, fixed, full_repeat=1))
            outputs = [subprocess.run([program, "3"], capture_output=True, text=True).stdout for program in (plain, binary)]
            if outputs[0] != outputs[1]:
                raise SystemExit(f"the adaptive csmith program's output differs from the plain one's:\n{outputs}")
            print(json.dumps(results[-1]), flush=True)
        for project, subfolder, program_args in ADAPTIVE_PROGRAMS:
            key = project.name.split()[0]
            if key not in wanted:
                continue
            pair, argv = project_workload(project, subfolder, program_args, os.path.join(root, project.package))

            def rebuild(adaptive: bool, off_copies: bool = False, pair=pair, project=project):
                _cprof(["build", *(["--adaptive"] if adaptive else []), *(["--off-copies"] if off_copies else []),
                        "--", *project.build], pair.cprof_dir, pair.env)

            relaid = relaid_builds(project.build, os.path.normpath(os.path.join(fetch(project.package), subfolder)),
                                   project.program, os.path.join(root, "relaid-" + key), project.subfolder)
            results.append(measure(project.name, pair.plain, relaid, lambda: rebuild(False),
                                   lambda off_copies: rebuild(True, off_copies),
                                   lambda pair=pair: pair.instrumented, argv, pair.cprof_dir, pair.env["CPROF_HOME"],
                                   args.repeat, fixed, main_thread_works=project is not ZSTD))
            print(json.dumps(results[-1]), flush=True)
    if os.path.exists(args.output) and set(args.only.split(",")) != set(parser.get_default("only").split(",")):
        with open(args.output) as handle:  # measured again: the other programs keep their results
            fresh = {r["name"]: r for r in results}
            results = [fresh.pop(r["name"], r) for r in json.load(handle)["programs"]] + list(fresh.values())
    write_results(args.output, {"repeat": args.repeat, "fixed_ns": round(fixed),
                                "layouts": [" ".join(flags) for flags in LAYOUTS], "programs": results},
                  " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
