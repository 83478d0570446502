#!/usr/bin/env python3
"""What instrumenting costs a real build, side by side: Lua 5.4's `make -j2 linux` plain and through
`cprof build`, cold (empty instrumentation cache), as a no-op rebuild, and after `make clean` with a warm cache;
medians over interleaved repetitions. Then where the time of a cold build goes, phase by phase, in CPU seconds
summed over Lua's units.

    python scripts/bench_build.py [--repeat 3] [--jobs 2] [--skip-breakdown] [--keep]

Lua's upstream tree comes from scripts/fetch_corpus.sh (Debian's lua5.4 source package, cached). Every run uses
fresh copies of it and a fresh run store and cache under a temporary directory, so anyone can rerun this.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from cprof.building.toolchain import GUARD_HEADER, INCLUDE_DIR  # noqa: E402
from scripts.results import write_results  # noqa: E402

# Lua's own flags for `make linux` (src/Makefile: CFLAGS and MYCFLAGS for the linux target).
LUA_CFLAGS = ["-std=gnu99", "-O2", "-Wall", "-Wextra", "-DLUA_COMPAT_5_3", "-DLUA_USE_LINUX"]


def fetch_lua() -> str:
    process = subprocess.run([os.path.join(HERE, "fetch_corpus.sh"), "lua5.4"], capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"bench_build: could not fetch Lua's sources:\n{process.stderr}")
    return process.stdout.strip().splitlines()[-1]


class Workspace:
    """Fresh copies of the tree, each with its own run store; one instrumentation cache per cold build."""

    def __init__(self, source: str, root: str, jobs: int):
        self.source = source
        self.root = root
        self.make = ["make", f"-j{jobs}", "linux"]
        self.count = 0

    def copy(self, name: str) -> str:
        self.count += 1
        path = os.path.join(self.root, f"{self.count}-{name}")
        shutil.copytree(self.source, path)
        return path

    def env(self, tree: str, cache: str) -> dict:
        return dict(os.environ, CPROF_HOME=os.path.join(tree, ".cprof"), CPROF_CACHE_DIR=cache)

    def cprof_build(self, tree: str, cache: str, command: list[str]) -> tuple[float, float]:
        return timed([sys.executable, "-m", "cprof", "build", "--"] + command, tree, self.env(tree, cache))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cwd: str, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process it ran). CPU time is the steadier figure on a busy machine."""
    cpu_before, started = children_cpu(), time.perf_counter()
    process = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu_before
    if process.returncode != 0:
        sys.exit(f"bench_build: {' '.join(argv)} failed in {cwd}:\n{process.stderr[-2000:]}")
    return elapsed, cpu


def one_round(work: Workspace, plain_first: bool) -> dict[str, tuple[tuple, tuple]]:
    """((wall, CPU) plain, (wall, CPU) cprof) for each scenario; the two sides take turns going first."""
    plain_tree, cprof_tree = work.copy("plain"), work.copy("cprof")
    cache = os.path.join(work.root, f"{work.count}-cache")

    def both(plain_step, cprof_step) -> tuple[tuple, tuple]:
        if plain_first:
            plain = plain_step()
            return plain, cprof_step()
        instrumented = cprof_step()
        return plain_step(), instrumented

    def plain_make():
        return timed(work.make, plain_tree)

    def cprof_make():
        return work.cprof_build(cprof_tree, cache, work.make)

    results = {"cold build (empty cache)": both(plain_make, cprof_make), "no-op rebuild": both(plain_make, cprof_make)}
    timed(["make", "clean"], plain_tree)
    work.cprof_build(cprof_tree, cache, ["make", "clean"])
    results["rebuild after make clean (warm cache)"] = both(plain_make, cprof_make)
    return results


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header] + rows:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        print("  ".join(cells))


def child_cpu(argv: list[str], cwd: str) -> float:
    before = children_cpu()
    process = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if process.returncode != 0:
        sys.exit(f"bench_build: {' '.join(argv)} failed")
    return children_cpu() - before


def shim_call_cpu(tree: str, cache: str) -> tuple[float, float]:
    """CPU seconds that the shims add to one compiler call that passes straight through (`cc --version`): with the
    build server as a build makes it, and with CPROF_BUILD_SERVER=off (a Python wrapper process per call). The
    slope between a build of 10 and one of 60 such calls, so that what `cprof build` itself costs cancels out."""

    def build_cpu(calls: int, mode: str) -> float:
        script = f"for i in $(seq {calls}); do cc --version >/dev/null; done"
        if mode == "direct":
            return timed(["sh", "-c", script], tree)[1]
        env = dict(os.environ, CPROF_HOME=os.path.join(tree, f".cprof-{mode}"), CPROF_CACHE_DIR=cache,
                   CPROF_BUILD_SERVER="off" if mode == "off" else "")
        return timed([sys.executable, "-m", "cprof", "build", "--", "sh", "-c", script], tree, env)[1]

    def per_call(mode: str) -> float:
        return statistics.median((build_cpu(60, mode) - build_cpu(10, mode)) / 50 for _ in range(3))

    direct = per_call("direct")
    return per_call("on") - direct, per_call("off") - direct


def breakdown(work: Workspace, cache: str) -> list[list[str]]:
    """CPU seconds of each phase of a cold instrumented build, summed over Lua's units, next to the plain compile.
    The phases are run one by one here as the build server's forks run them (see cprof/building/wrapper.py); header
    segments come from the units parsed before, as in a build."""
    from cprof.building.cache import UnitCache
    from cprof.instrument.parse import parse
    from cprof.instrument.scan import scan
    from cprof.instrument.unit import PathMap, instrument_unit

    tree = os.path.join(work.copy("phases"), "src")
    scratch = os.path.join(work.root, "phases-scratch")
    os.makedirs(scratch)
    sources = sorted(glob.glob(os.path.join(tree, "*.c")))
    phases = dict.fromkeys(["plain compile (gcc -c)", "preprocess (gcc -E -C + guard header)",
                            "scan (sanitised copy, bodies; includes reused)", "parse (pycparser, declarations; header segments reused)",
                            "splice", "compile the instrumented text", "compile the same text without guards"], 0.0)
    segments = UnitCache(cache, GUARD_HEADER)
    for source in sources:
        name = os.path.splitext(os.path.basename(source))[0]
        plain_i, guarded_i, instrumented_i = (os.path.join(scratch, f"{name}{s}.i") for s in ("", ".g", ".inst"))
        phases["plain compile (gcc -c)"] += child_cpu(
            ["gcc"] + LUA_CFLAGS + ["-c", source, "-o", os.path.join(scratch, "a.o")], tree)
        phases["preprocess (gcc -E -C + guard header)"] += child_cpu(
            ["gcc"] + LUA_CFLAGS + ["-E", "-C", "-D__CPROF__=1", "-include", GUARD_HEADER, "-idirafter", INCLUDE_DIR,
                                    source, "-o", guarded_i], tree)
        subprocess.run(["gcc"] + LUA_CFLAGS + ["-E", "-C", source, "-o", plain_i], cwd=tree, check=True)
        with open(guarded_i, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
        started = time.process_time()
        unit = scan(text, segments)
        scanned = time.process_time()
        parse(unit, segments)
        parsed = time.process_time()
        instrumented = instrument_unit(text, GUARD_HEADER, PathMap(tree), segments=segments)
        planned = time.process_time()
        result = instrumented.apply(text)
        phases["splice"] += time.process_time() - planned
        phases["scan (sanitised copy, bodies; includes reused)"] += scanned - started
        phases["parse (pycparser, declarations; header segments reused)"] += parsed - scanned
        with open(instrumented_i, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(result)
        compile_i = ["gcc"] + LUA_CFLAGS + ["-x", "cpp-output", "-c", "-o", os.path.join(scratch, "b.o")]
        phases["compile the instrumented text"] += child_cpu(compile_i + [instrumented_i], tree)
        phases["compile the same text without guards"] += child_cpu(compile_i + [plain_i], tree)
    plain = phases["plain compile (gcc -c)"]
    served, own_process = shim_call_cpu(tree, os.path.join(work.root, "shim-cache"))
    phases[f"a compiler call through the shim, build server (x {len(sources)} units)"] = served * len(sources)
    phases[f"  the same with CPROF_BUILD_SERVER=off (x {len(sources)})"] = own_process * len(sources)
    return [[phase, f"{seconds:.2f}", f"{seconds / plain:.2f}"] for phase, seconds in phases.items()] + [
        ["(units)", str(len(sources)), ""]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every scenario (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    parser.add_argument("--skip-breakdown", action="store_true", help="only the side-by-side timings")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "build.json"))
    args = parser.parse_args()
    document = {"repeat": args.repeat, "make": None, "scenarios": [], "breakdown": []}

    source = fetch_lua()
    root = tempfile.mkdtemp(prefix="cprof-bench-build-")
    work = Workspace(source, root, args.jobs)
    try:
        rounds = []
        for index in range(args.repeat):
            rounds.append(one_round(work, plain_first=index % 2 == 0))
            print(f"round {index + 1}/{args.repeat}: " + ", ".join(
                f"{name.split(' (')[0]} {p[0]:.2f}s/{c[0]:.2f}s" for name, (p, c) in rounds[-1].items()),
                file=sys.stderr)
        rows = []
        document["make"] = " ".join(work.make)
        for name in rounds[0]:
            row, scenario = [name], {"name": name}
            for measure, what in ((0, "wall"), (1, "cpu")):
                plain = statistics.median(r[name][0][measure] for r in rounds)
                instrumented = statistics.median(r[name][1][measure] for r in rounds)
                row += [f"{plain:.2f} s", f"{instrumented:.2f} s", f"{instrumented / plain:.2f}x"]
                scenario |= {f"plain_{what}_s": round(plain, 3), f"cprof_{what}_s": round(instrumented, 3)}
            rows.append(row)
            document["scenarios"].append(scenario)
        load = os.getloadavg()[0]
        print_table(f"Lua 5.4, {' '.join(work.make)}: median of {args.repeat} interleaved rounds "
                    f"({os.cpu_count()} CPUs, load average {load:.1f} at the end)",
                    ["scenario", "plain wall", "cprof wall", "ratio", "plain CPU", "cprof CPU", "ratio"], rows)
        if not args.skip_breakdown:
            cache = os.path.join(root, "phases-cache")
            phases = breakdown(work, cache)
            print_table("Where a cold instrumented build's time goes: CPU seconds summed over the units",
                        ["phase", "CPU s", "x plain compile"], phases)
            document["breakdown"] = [{"phase": p, "cpu_s": s, "of_plain": x} for p, s, x in phases]
        write_results(args.output, document, " ".join(sys.argv[1:]))
    finally:
        if args.keep:
            print(f"\nwork directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
