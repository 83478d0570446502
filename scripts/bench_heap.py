#!/usr/bin/env python3
"""What heap tracking costs, and whether what it sees is what heaptrack sees.

- Cost: scripts/bench/heap_pairs.c makes N malloc+free pairs of 16..1023 bytes. Built plain and through `cprof
  build`, it runs plain, instrumented with heap tracking on, instrumented with it switched off (CPROF_HEAP=0, what
  `cprof run --no-heap` sets), and plain under heaptrack, interleaved and repeated. A pair's cost is the slope
  between runs of two sizes (medians), which leaves start-up out; the added cost is a configuration's slope less
  the plain program's. Target: at most a tenth of heaptrack's added cost.
- Agreement: Lua 5.4 (Debian's source) runs scripts/bench/tables.lua, instrumented under `cprof run` and plain
  under heaptrack. Totals (allocations, bytes, frees, peak, leaked) from cprof's report against heaptrack's own
  trace (every allocation and free it recorded, summed exactly); then the functions heaptrack names as making the
  most allocation calls, against the allocations cprof charged to those functions and what they called.

    python scripts/bench_heap.py [--repeat 7] [--only cost,lua]

Writes benchmarks/results/heap.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import glob
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
BENCH = os.path.join(HERE, "bench")
sys.path.insert(0, REPO)

import cprof  # noqa: E402
from scripts.bench_accuracy import FLAGS, Workspace, interleaved, project_workload  # noqa: E402
from scripts.bench_projects import Project  # noqa: E402
from scripts.results import write_results  # noqa: E402

LUA = Project("lua", "lua5.4", ["make", "-j2", "linux"], "src/lua")
SMALL, LARGE = 1_000_000, 5_000_000  # pairs
TOP_FUNCTIONS = 5
# the report's heap totals that are compared with heaptrack's (with peak_bytes)
HEAP_TOTALS = ("alloc_count", "alloc_bytes", "free_count", "free_bytes", "realloc_count", "temporary_count",
               "live_count", "live_bytes")


def _seconds(argv: list[str], env: dict | None = None, cwd: str | None = None) -> float:
    started = time.perf_counter()
    process = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if process.returncode:
        raise SystemExit(f"{argv[0]} failed: {process.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - started


def bench_cost(space: Workspace, repeat: int) -> dict:
    plain = space.plain("heap_pairs.c", "pairs-plain")
    instrumented = space.instrumented("heap_pairs.c", "pairs")
    runs = os.path.join(space.root, "pairs-runs")
    tracked = dict(os.environ, CPROF_RUN_DIR=runs, CPROF_SAMPLE_HZ="0")
    tracked.pop("CPROF_HEAP", None)
    switched_off = dict(tracked, CPROF_HEAP="0")
    heaptrack_dir = os.path.join(space.root, "heaptrack")
    os.makedirs(heaptrack_dir, exist_ok=True)
    configurations = {
        "plain": lambda n: _seconds([plain, str(n)]),
        "cprof, heap tracked": lambda n: _seconds([instrumented, str(n)], tracked),
        "cprof, heap switched off": lambda n: _seconds([instrumented, str(n)], switched_off),
        "heaptrack": lambda n: _seconds(["heaptrack", "-o", os.path.join(heaptrack_dir, "trace"), plain, str(n)]),
    }
    jobs = [(name, size, measure) for name, measure in configurations.items() for size in (SMALL, LARGE)]
    times = interleaved(repeat, *[(lambda m=measure, n=size: m(n)) for _name, size, measure in jobs])
    medians = {(name, size): statistics.median(values) for (name, size, _), values in zip(jobs, times)}
    per_pair = {name: (medians[(name, LARGE)] - medians[(name, SMALL)]) / (LARGE - SMALL) * 1e9
                for name in configurations}
    added = {name: per_pair[name] - per_pair["plain"] for name in configurations if name != "plain"}
    target = added["heaptrack"] / 10
    return {"pairs": [SMALL, LARGE], "per_pair_ns": {k: round(v, 1) for k, v in per_pair.items()},
            "added_ns": {k: round(v, 1) for k, v in added.items()}, "target_ns": round(target, 1),
            "met": added["cprof, heap tracked"] <= target}


def heaptrack_trace_totals(path: str, program: str) -> dict:
    """Every allocation and free in heaptrack's trace, summed exactly ("s" lines are strings, "i IP MODULE ..."
    instruction pointers, "t IP PARENT" backtraces, "a SIZE TRACE" kinds of allocation, "+ KIND" allocates one,
    "- KIND" frees one); the peak is that of the running sum. Allocations with no frame in the program itself are
    heaptrack's own (its preloaded library links libstdc++, whose start-up allocates a 72 KiB pool that the program
    without heaptrack never makes): they are counted apart."""
    strings, ip_modules, traces = [""], [""], [(0, 0)]
    own_kinds: list[bool] = []  # per allocation kind: made by code of the program itself
    sizes: list[int] = []
    totals = {"alloc_count": 0, "alloc_bytes": 0, "free_count": 0, "peak_bytes": 0, "live_bytes": 0}
    excluded = {"alloc_count": 0, "alloc_bytes": 0}
    real_program = os.path.realpath(program)
    text = subprocess.run(["zstdcat", path], capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "s":
            strings.append(rest.split(" ", 1)[1] if " " in rest else "")
        elif kind == "i":
            ip_modules.append(strings[int(rest.split()[1], 16)])
        elif kind == "t":
            ip_index, parent = (int(v, 16) for v in rest.split()[:2])
            traces.append((ip_index, parent))
        elif kind == "a":
            size, trace = (int(v, 16) for v in rest.split()[:2])
            modules = set()
            while trace:
                ip_index, trace = traces[trace]
                modules.add(os.path.realpath(ip_modules[ip_index]) if ip_modules[ip_index] else "")
            sizes.append(size)
            own_kinds.append(real_program in modules)
        elif kind in ("+", "-"):
            index = int(rest, 16)
            if not own_kinds[index]:
                if kind == "+":
                    excluded["alloc_count"] += 1
                    excluded["alloc_bytes"] += sizes[index]
                continue
            if kind == "+":
                totals["alloc_count"] += 1
                totals["alloc_bytes"] += sizes[index]
                totals["live_bytes"] += sizes[index]
                totals["peak_bytes"] = max(totals["peak_bytes"], totals["live_bytes"])
            else:
                totals["free_count"] += 1
                totals["live_bytes"] -= sizes[index]
    return dict(totals, heaptrack_own=excluded)


def heaptrack_top_functions(path: str, program: str, count: int) -> list[tuple[str, int]]:
    """The program's functions heaptrack_print names first under MOST CALLS TO ALLOCATION FUNCTIONS (the innermost
    frame of its backtraces that calls the allocator), with their calls; libc's own are left out."""
    text = subprocess.run(["heaptrack_print", "-f", path], capture_output=True, text=True, check=True).stdout
    section = text.split("MOST CALLS TO ALLOCATION FUNCTIONS", 1)[1].split("PEAK MEMORY CONSUMERS", 1)[0]
    entries = re.findall(r"^(\d+) calls to allocation functions with .* from\n(\S+)\n\s+in (\S+)", section,
                         re.MULTILINE)
    real_program = os.path.realpath(program)
    return [(name, int(calls)) for calls, name, where in entries if os.path.realpath(where) == real_program][:count]


def allocations_by_caller(heap: dict, named: set[str]) -> dict[str, int]:
    """Per function, the allocations cprof charged to it, or to a function it called that heaptrack cannot see: a
    function whose call of the allocator is its last act (Lua's l_alloc returns realloc's result) calls it with a
    jump in the plain build, so its frame is gone from heaptrack's backtraces and its caller is named instead. In
    the instrumented build the guard keeps the frame, and cprof charges the function itself. `heap`: the report's
    heap record with its allocation sites (`report --json --mem`)."""
    result: dict[str, int] = {}
    for site in heap["sites"]:
        path = site["path"]
        if path:
            name = path[-1] if path[-1] in named or len(path) == 1 else path[-2]
            result[name] = result.get(name, 0) + site["alloc_count"]
    return result


def bench_lua(repeat: int, work: str) -> dict:
    pair, [script] = project_workload(LUA, "", [os.path.join(BENCH, "tables.lua")], work)
    heaptrack_dir = os.path.join(work, "heaptrack")
    os.makedirs(heaptrack_dir, exist_ok=True)
    subprocess.run(["heaptrack", "-o", os.path.join(heaptrack_dir, "lua"), pair.plain, script], check=True,
                   capture_output=True, cwd=work)
    [trace] = glob.glob(os.path.join(heaptrack_dir, "lua*.zst"))
    theirs = heaptrack_trace_totals(trace, pair.plain)
    runs = os.path.join(work, "lua-runs")
    env = dict(os.environ, CPROF_RUN_DIR=runs)
    env.pop("CPROF_HEAP", None)
    subprocess.run([pair.instrumented, script], env=env, check=True, capture_output=True, cwd=work)
    heap = cprof.load(runs).to_json(memory=True)["heap"]
    ours = {name: heap[name] for name in (*HEAP_TOTALS, "peak_bytes")}
    differences = {name: round(100.0 * (ours[name] - theirs[name]) / theirs[name], 3) if theirs[name] else None
                   for name in ("alloc_count", "alloc_bytes", "free_count", "peak_bytes", "live_bytes")}
    named = heaptrack_top_functions(trace, pair.plain, TOP_FUNCTIONS)
    ours_by_caller = allocations_by_caller(heap, {name for name, _ in named})
    functions = [{"function": name, "heaptrack_calls": calls, "cprof_allocations": ours_by_caller.get(name, 0),
                  "difference_percent": round(100.0 * (ours_by_caller.get(name, 0) - calls) / calls, 3)}
                 for name, calls in named]
    worst = max(abs(v) for v in differences.values() if v is not None)
    return {"script": os.path.relpath(script, REPO), "heaptrack": theirs, "cprof": ours,
            "difference_percent": differences, "worst_difference_percent": worst,
            "top_functions": functions, "met": worst <= 1.0 and all(abs(f["difference_percent"]) <= 1.0
                                                                     for f in functions)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="cost,lua")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "heap.json"))
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    document: dict = {"repeat": args.repeat, "flags": FLAGS}
    with tempfile.TemporaryDirectory(prefix="cprof-heap-") as root:
        if "cost" in wanted:
            document["cost"] = bench_cost(Workspace(root), args.repeat)
            print(json.dumps(document["cost"]), flush=True)
        if "lua" in wanted:
            document["lua"] = bench_lua(args.repeat, os.path.join(root, "lua"))
            print(json.dumps(document["lua"]), flush=True)
    write_results(args.output, document, " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
