#!/usr/bin/env python3
"""Real projects as a new user meets them: zstd (top-level `make`, and from `programs/`), gzip (`./configure &&
make`), brotli (CMake) and xz-utils, from Debian's source packages (upstream tarballs). Each is built plain and
through `cprof build`, then both programs compress and decompress the same input: the outputs must be
byte-identical, the report must name the functions a C developer expects, and its coverage must be near 100% of
the main thread. Records units and fallbacks, functions instrumented, the slowdown of each workload (medians of
interleaved runs, the instrumented program run directly so both sides are timed the same way) and the coverage.

    python scripts/bench_projects.py [--repeat 3] [--only zstd,gzip] [--keep]

Writes benchmarks/results/projects.json (with the machine and the date); scripts/readme_tables.py prints the
README's table from it. Exit status 1 when a project falls short of what it must show (a fallback, an output that
differs, an expected function missing, coverage under 90% of a run of 100 ms or more).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from scripts import cprof_api  # noqa: E402
from scripts.results import write_results  # noqa: E402

CMAKE_POLICY = "-DCMAKE_POLICY_VERSION_MINIMUM=3.5"  # cmake 4 refuses brotli's old CMakeLists without it


@dataclass
class Workload:
    name: str
    args: list[str]  # {input} is the input file, {packed} the input compressed by the plain program
    expected: list[str]  # function names (a trailing _: any name starting so) its report must show


@dataclass
class Project:
    name: str
    package: str  # Debian source package
    build: list[str]  # the build command, as a user types it
    program: str  # the program the workloads run, relative to the tree
    subfolder: str = ""  # where the build is started
    cprof_options: list[str] = field(default_factory=list)  # for `cprof build`
    packed_with: list[str] = field(default_factory=list)  # how the plain program compresses the input
    workloads: list[Workload] = field(default_factory=list)


def _codec(compress: list[str], compress_expected: list[str], decompress: list[str],
           decompress_expected: list[str]) -> list[Workload]:
    return [Workload("compress", compress + ["{input}"], ["main"] + compress_expected),
            Workload("decompress", decompress + ["{packed}"], ["main"] + decompress_expected)]


ZSTD = _codec(["-3", "-q", "-c"], ["ZSTD_compressBlock_", "HUF_", "FSE_"],
              ["-d", "-q", "-c"], ["ZSTD_decompressStream", "HUF_", "FSE_"])
BROTLI_BUILD = ["sh", "-c", f"cmake -B out -DCMAKE_BUILD_TYPE=Release {CMAKE_POLICY} && cmake --build out -j2"]
BROTLI = _codec(["-q", "9", "-c"], ["BrotliEncoderCompressStream"],
                ["-d", "-c"], ["BrotliDecoderDecompressStream"])
PROJECTS = [
    Project("zstd", "libzstd", ["make", "-j2"], "programs/zstd", packed_with=["-3", "-q", "-c"], workloads=ZSTD),
    Project("zstd (from programs/)", "libzstd", ["make", "-j2", "zstd"], "programs/zstd", subfolder="programs",
            packed_with=["-3", "-q", "-c"], workloads=ZSTD),
    Project("gzip", "gzip", ["sh", "-c", "./configure && make -j2"], "gzip", packed_with=["-c"],
            workloads=_codec(["-c"], ["deflate", "longest_match"], ["-d", "-c"], ["inflate"])),
    Project("brotli", "brotli", BROTLI_BUILD, "out/brotli", packed_with=["-q", "9", "-c"], workloads=BROTLI),
    # the same, with its force-inlined helpers (BROTLI_INLINE) instrumented too: what leaving them out saves
    Project("brotli (--always-inline)", "brotli", BROTLI_BUILD, "out/brotli", cprof_options=["--always-inline"],
            packed_with=["-q", "9", "-c"], workloads=BROTLI),
    Project("xz-utils", "xz-utils", ["sh", "-c", "./configure --disable-shared --disable-doc && make -j2"],
            "src/xz/xz", packed_with=["-3", "-c"],
            workloads=_codec(["-3", "-c"], ["lzma_code", "lzma_lzma_encode", "lz_encode"],
                             ["-d", "-c"], ["lzma_code", "lzma_decode"])),
]


def _version(source: str) -> str:
    """The upstream version, from the tarball fetch_corpus.sh extracted (NAME_VERSION.orig.tar.*)."""
    tarballs = glob.glob(os.path.join(os.path.dirname(source.rstrip("/")), "download", "*.orig.tar.*"))
    return os.path.basename(tarballs[0]).split("_")[1].split(".orig")[0] if tarballs else "?"


def fetch(package: str) -> str:
    process = subprocess.run([os.path.join(HERE, "fetch_corpus.sh"), package], capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"bench_projects: could not fetch {package}:\n{process.stderr}")
    return process.stdout.strip().splitlines()[-1]


def make_input(sources: list[str], path: str) -> int:
    """The same input for every program: every C file of the four source trees, in path order."""
    files = sorted(f for source in sources for f in glob.glob(os.path.join(source, "**", "*.c"), recursive=True))
    with open(path, "wb") as out:
        for name in files:
            with open(name, "rb") as handle:
                out.write(handle.read())
    return os.path.getsize(path)


def run(argv: list[str], cwd: str, env: dict | None = None, what: str = "") -> subprocess.CompletedProcess:
    process = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
    if process.returncode != 0:
        sys.exit(f"bench_projects: {what or ' '.join(argv)} failed in {cwd}:\n"
                 f"{process.stderr.decode(errors='replace')[-3000:]}")
    return process


def timed_output(argv: list[str], env: dict | None = None) -> tuple[float, bytes, int]:
    started = time.perf_counter()
    process = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, process.stdout, process.returncode


def cprof(args: list[str], cwd: str, env: dict) -> subprocess.CompletedProcess:
    """The CLI, for the build: its time is measured as a user meets it, and the build command runs in `cwd`."""
    return run([sys.executable, "-m", "cprof", *args], cwd, env, what=f"cprof {' '.join(args)}")


def found(expected: str, names: set[str]) -> bool:
    return any(n.startswith(expected) for n in names) if expected.endswith("_") else expected in names


@dataclass
class Pair:
    """A project built both ways: the plain program, the instrumented one, and how to run cprof on the latter."""

    plain: str
    instrumented: str
    cprof_dir: str  # the instrumented tree's build folder: where `cprof build` runs its build command
    env: dict
    last_build: dict
    build_seconds: float
    build_summary: str


def build_pair(project: Project, source: str, work: str) -> Pair:
    """Copies the source tree twice under `work`, builds it plainly in one and through `cprof build` in the other."""
    plain_tree, cprof_tree = os.path.join(work, "plain"), os.path.join(work, "cprof")
    for tree in (plain_tree, cprof_tree):
        shutil.copytree(source, tree, symlinks=True)
    env = dict(os.environ, CPROF_HOME=os.path.join(cprof_tree, project.subfolder, ".cprof"),
               CPROF_CACHE_DIR=os.path.join(work, "cache"))
    run(project.build, os.path.join(plain_tree, project.subfolder), what=f"plain build of {project.name}")
    started = time.perf_counter()
    built = cprof(["build", *project.cprof_options, "--", *project.build], os.path.join(cprof_tree, project.subfolder),
                  env)
    build_seconds = time.perf_counter() - started
    with open(os.path.join(env["CPROF_HOME"], "build", "last.json")) as handle:
        last = json.load(handle)
    plain_program = os.path.join(plain_tree, project.program)
    # the program as its build linked it (zstd links obj/conf_*/zstd, then copies it to programs/zstd)
    name = os.path.basename(project.program)
    program = next(l["built"] for l in last["links"] if l["kind"] == "executable"
                   and os.path.basename(l["output"]) == name)
    return Pair(plain_program, program, os.path.join(cprof_tree, project.subfolder), env, last, build_seconds,
                next(line for line in built.stderr.decode(errors="replace").splitlines()
                     if line.startswith("cprof: built")))


def measure(project: Project, source: str, work: str, input_path: str, repeat: int) -> dict:
    pair = build_pair(project, source, work)
    plain_program, program, env, last = pair.plain, pair.instrumented, pair.env, pair.last_build
    packed = os.path.join(work, "packed")
    with open(packed, "wb") as handle:
        handle.write(run([plain_program, *project.packed_with, input_path], work).stdout)
    result = {"name": project.name, "package": project.package, "version": _version(source),
              "build": shlex.join(["cprof", "build", *project.cprof_options, "--", *project.build]),
              "subfolder": project.subfolder,
              "units": last["units"], "fell_back": len(last["fallbacks"]), "fallbacks": last["fallbacks"],
              "functions_instrumented": last["functions_instrumented"],
              "build_summary": pair.build_summary,
              "build_seconds": round(pair.build_seconds, 1), "workloads": [],
              "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    runs_dir = os.path.join(work, "runs")
    for workload in project.workloads:
        args = [a.format(input=input_path, packed=packed) for a in workload.args]
        plain_times, cprof_times, identical = [], [], True
        for round_index in range(repeat):
            sides = [("plain", [plain_program, *args], None),
                     ("cprof", [program, *args], dict(os.environ, CPROF_RUN_DIR=runs_dir))]
            for side, argv, side_env in (sides if round_index % 2 == 0 else sides[::-1]):
                seconds, output, status = timed_output(argv, side_env)
                (plain_times if side == "plain" else cprof_times).append(seconds)
                if side == "plain":
                    expected_output, expected_status = output, status
                else:
                    cprof_output, cprof_status = output, status
            identical = identical and (cprof_output, cprof_status) == (expected_output, expected_status)
            shutil.rmtree(runs_dir, ignore_errors=True)
        # the run a user would make, for its report
        report = cprof_api.run(env["CPROF_HOME"], os.path.basename(project.program), args).to_json()
        names = {f["name"] for f in report["functions"] if f["calls"]}
        plain_s, cprof_s = statistics.median(plain_times), statistics.median(cprof_times)
        top = sorted(report["functions"], key=lambda f: -f["self_ns"])[:5]
        result["workloads"].append({
            "name": workload.name, "args": args[:-1], "plain_s": round(plain_s, 4), "cprof_s": round(cprof_s, 4),
            "slowdown": round(cprof_s / plain_s, 1), "identical": identical,
            "coverage_share": report["coverage"]["share"], "coverage_low": report["coverage"]["low"],
            "covered_run_ms": round((report["coverage"]["wall_ns"] - report["coverage"]["runtime_ns"]) / 1e6, 1),
            "functions_called": len(names),
            "expected": {name: found(name, names) for name in workload.expected},
            "top_self": [f["name"] for f in top],
        })
    return result


def shortfalls(result: dict) -> list[str]:
    problems = []
    if result["fell_back"]:
        problems.append(f"{result['fell_back']} units fell back")
    for workload in result["workloads"]:
        if not workload["identical"]:
            problems.append(f"{workload['name']}: output differs from the plain build's")
        missing = [name for name, seen in workload["expected"].items() if not seen]
        if missing:
            problems.append(f"{workload['name']}: no {', '.join(missing)} in the report")
        # start-up (exec, the dynamic loader) is outside any function: only a run long enough to dwarf it must
        # come near 100%
        if workload["coverage_low"] or (workload["coverage_share"] < 0.9 and workload["covered_run_ms"] >= 100):
            problems.append(f"{workload['name']}: coverage {workload['coverage_share']:.0%}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated project names (zstd, gzip, brotli, xz-utils); their "
                        "results replace theirs in the results file, the others' are kept")
    parser.add_argument("--keep", action="store_true", help="keep the build trees (their path is printed)")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "projects.json"))
    args = parser.parse_args()
    chosen = [p for p in PROJECTS if not args.only or p.name.split(" ")[0] in args.only.split(",")]
    sources = {p.package: fetch(p.package) for p in PROJECTS}
    root = tempfile.mkdtemp(prefix="cprof-projects-")
    input_path = os.path.join(root, "input.txt")
    size = make_input(sorted(set(sources.values())), input_path)
    results, failed = [], False
    for index, project in enumerate(chosen):
        work = os.path.join(root, f"{index}-{project.package}")
        os.makedirs(work)
        print(f"== {project.name}", flush=True)
        result = measure(project, sources[project.package], work, input_path, args.repeat)
        problems = shortfalls(result)
        result["problems"] = problems
        failed = failed or bool(problems)
        results.append(result)
        for workload in result["workloads"]:
            print(f"   {workload['name']}: {workload['plain_s']:.3f} s plain, {workload['cprof_s']:.3f} s "
                  f"instrumented ({workload['slowdown']}x), identical={workload['identical']}, coverage "
                  f"{workload['coverage_share']:.1%}, expected {workload['expected']}", flush=True)
        print(f"   {result['build_summary']}" + (f"\n   PROBLEMS: {'; '.join(problems)}" if problems else ""))
    if args.only and os.path.exists(args.output):  # measured again: the other projects keep their results
        with open(args.output) as handle:
            kept = json.load(handle)["projects"]
        fresh = {r["name"]: r for r in results}
        results = [fresh.pop(r["name"], r) for r in kept] + list(fresh.values())
    write_results(args.output, {"input_bytes": size, "repeat": args.repeat, "projects": results},
                  " ".join(sys.argv[1:]))
    if not args.keep:
        shutil.rmtree(root)
    else:
        print(f"trees kept in {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
