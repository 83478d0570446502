#!/usr/bin/env python3
"""How fast `cprof flame` draws a million call paths and how large its SVG is; the two exports' time and size beside.

The run is synthetic and built in memory (no compiler, no run file), with a fixed seed: one thread whose `main`
reaches PATHS call paths through a few thousand distinct functions. Each new call path is a call from an earlier
one: mostly any earlier one, picked at random; often the newest, so that chains of calls go deep (up to
MAX_DEPTH); sometimes one of the first, so that a few dispatching functions near the top call hundreds of others.
Which function it calls is drawn Zipf-like (a few functions called from everywhere, most rarely); its calls and its
time per call are log-normal, so that a few paths hold most of the time and nearly all are far under a pixel wide.
Times are then derived and corrected for a calibrated guard cost exactly as a loaded run's are
(cprof.model.run._derive, cprof.model.correction.correct_tree). Each output is rendered to a file, the outputs in
turn: the SVG --repeat times, each export --export-repeat times (a tenth as fast as the SVG, so once by default),
and the medians are kept. Targets (the flamegraph issue): the SVG within 5 s and 10 MB.

    python scripts/bench_flame.py [--paths 1000000] [--repeat 5] [--export-repeat 1] [--profile]

Writes benchmarks/results/flame.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import gc
import itertools
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from cprof import runfile  # noqa: E402
from cprof.model.correction import Calibration, correct_tree  # noqa: E402
from cprof.model.run import CallNode, FunctionKey, ProcessData, Run, ThreadData, _derive  # noqa: E402
from cprof.model.stacks import collector_paused  # noqa: E402
from cprof.render.export import FoldedStacks, Speedscope  # noqa: E402
from cprof.render.flame import MIN_WIDTH, WIDTH, FlameGraph  # noqa: E402
from cprof.render.table import ReportOptions  # noqa: E402
from scripts.results import write_results  # noqa: E402

PATHS = 1_000_000
FUNCTIONS = 3_000
MAX_DEPTH = 40
SEED = 20261202
ZIPF = 1.1  # the k-th most popular function is called from weight 1/k^ZIPF of the places
DEEPER = 0.25  # the share of new paths called from the newest one (chains of calls)
NEAR_TOP = 0.15  # the share called from one of the first paths (dispatchers), picked with a bias of TOP_BIAS
TOP_BIAS = 4  # the path number is the count of paths times a uniform draw to this power
# log-normal (mu, sigma) of a path's calls, and of its self time per call in ns (median ~400 ns)
CALLS = (0.7, 1.3)
NS_PER_CALL = (6.0, 2.0)
# a guard cost like the one `cprof doctor` measures on the benchmark machine: a share of the smallest frames is
# mostly that cost and drawn as `~`
CALIBRATION = Calibration(inner_ns=9.0, outer_ns=28.0, inner_spread_ns=0.4, outer_spread_ns=0.8, measured=True)
TARGET_SECONDS, TARGET_BYTES = 5.0, 10_000_000

MODULES = ["parse", "lex", "eval", "vm", "hash", "table", "string", "alloc", "io", "buffer", "btree", "pager",
           "index", "sort", "json", "regex", "net", "crypto", "zlib", "utf8", "log", "config", "sched", "cache"]
VERBS = ["init", "free", "get", "set", "find", "insert", "remove", "read", "write", "flush", "step", "next", "push",
         "pop", "grow", "copy", "compare", "hash", "encode", "decode", "check", "visit", "emit", "resolve", "load"]
NOUNS = ["node", "entry", "page", "cell", "key", "value", "token", "frame", "slot", "block", "chunk", "item",
         "record", "state", "field", "range", "symbol", "header", "cursor", "stack", "list", "map", "tree", "op"]


def function_keys(count: int, rng: random.Random) -> list[FunctionKey]:
    """`count` distinct functions named module_verb_noun, each in its module's file at a line of its own."""
    names = [f"{m}_{v}_{n}" for m in MODULES for v in VERBS for n in NOUNS]
    rng.shuffle(names)
    return [FunctionKey(name, f"src/{name.split('_')[0]}.c", rng.randrange(20, 9000)) for name in names[:count]]


def synthetic_run(paths: int = PATHS, functions: int = FUNCTIONS, max_depth: int = MAX_DEPTH,
                  seed: int = SEED) -> Run:
    """A Run of one thread with `paths` call paths (CallNodes under its root, `main` included), see the module's
    docstring for the shape."""
    with collector_paused():  # a million nodes hold no garbage: collecting while they are made only costs time
        return _synthetic_run(paths, functions, max_depth, seed)


def _synthetic_run(paths: int, functions: int, max_depth: int, seed: int) -> Run:
    rng = random.Random(seed)
    keys = function_keys(functions, rng)
    weights = list(itertools.accumulate(1.0 / rank ** ZIPF for rank in range(1, functions + 1)))
    whole = weights[-1]
    root = CallNode(None)
    main = CallNode(FunctionKey("main", "src/main.c", 12), root, calls=1)
    root.children[main.key] = main
    nodes, depths = [main], [1]
    random_, randrange, lognormal = rng.random, rng.randrange, rng.lognormvariate
    while len(nodes) < paths:
        draw = random_()
        if draw < DEEPER:
            at = len(nodes) - 1
        elif draw < DEEPER + NEAR_TOP:
            at = int(len(nodes) * random_() ** TOP_BIAS)
        else:
            at = randrange(len(nodes))
        parent, depth = nodes[at], depths[at] + 1
        if depth > max_depth:
            continue
        key = keys[bisect.bisect(weights, random_() * whole)]
        if key in parent.children:  # a call path is a function under its caller: draw again
            continue
        calls = 1 + int(lognormal(*CALLS))
        node = CallNode(key, parent, calls=calls, total_ns=calls * lognormal(*NS_PER_CALL))
        parent.children[key] = node
        nodes.append(node)
        depths.append(depth)
    for node in reversed(nodes):  # created after their callers: callees' totals reach them first
        if node.parent is not root:
            node.parent.total_ns += node.total_ns
    _derive(root)
    correct_tree(root, CALIBRATION)
    end = main.total_ns * 1.01
    header = {name: 0 for name in runfile._PUBLIC_HEADER_FIELDS}
    header.update(ticks_per_second=1e9, end_mono_ns=end, end_ticks=end, pid=4242, timer_kind=1, cmdline=["synthetic"],
                  flags=1)
    thread = ThreadData(0, 4242, "main", root, 0.0, end, 0, pid=4242)
    process = ProcessData(4242, 1, "4242.cprof", header, True, [thread], CALIBRATION, {})
    return Run("synthetic", "/nonexistent", {"command": ["synthetic"]}, [process])


def shape(run: Run) -> dict:
    """What the built tree looks like: depths, fan-out, functions, and how many paths are under a pixel wide."""
    root = run.threads[0].root
    whole = sum(child.corrected_total_ns for child in root.children.values())
    depths, fanout, narrow, names = [], [], 0, set()
    stack = [(child, 1) for child in root.children.values()]
    while stack:
        node, depth = stack.pop()
        depths.append(depth)
        names.add(node.key)
        if node.children:
            fanout.append(len(node.children))
        narrow += node.corrected_total_ns / whole * WIDTH < MIN_WIDTH
        stack.extend((child, depth + 1) for child in node.children.values())
    depths.sort()
    return {"paths": len(depths), "functions": len(names), "depth_median": depths[len(depths) // 2],
            "depth_max": depths[-1], "fanout_max": max(fanout), "callers": len(fanout),
            "narrow_share": round(narrow / len(depths), 4)}


def render_seconds(renderer, run: Run, path: str) -> float:
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out:
        renderer.render(run, out)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", type=int, default=PATHS)
    parser.add_argument("--repeat", type=int, default=5, help="SVG renders, of which the median is kept")
    # an export of a million paths takes ten times the SVG's time (and 200 MB of folded text): one run by default,
    # so that the whole benchmark stays within a couple of minutes
    parser.add_argument("--export-repeat", type=int, default=1, help="folded and speedscope exports")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one SVG render, store nothing")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "flame.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    run = synthetic_run(args.paths)
    gc.collect()  # the run's objects to the oldest generation, where a loaded run's are when it is drawn
    built_s = time.perf_counter() - started
    tree = shape(run)
    print(f"built {tree} in {built_s:.1f} s", flush=True)
    options = ReportOptions(top=None)  # what `cprof flame` and `cprof export` pass
    outputs = {"svg": (FlameGraph(options), "flame.svg"), "folded": (FoldedStacks(options), "stacks.folded"),
               "speedscope": (Speedscope(options), "stacks.speedscope.json")}
    with tempfile.TemporaryDirectory(prefix="cprof-flame-") as work:
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            render_seconds(outputs["svg"][0], run, os.path.join(work, "flame.svg"))
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
            return 0
        seconds = {name: [] for name in outputs}
        sizes = {}
        for round_ in range(max(args.repeat, args.export_repeat)):  # in turn, so that a drift reaches all alike
            for name, (renderer, file) in outputs.items():
                if round_ >= (args.repeat if name == "svg" else args.export_repeat):
                    continue
                path = os.path.join(work, file)
                seconds[name].append(render_seconds(renderer, run, path))
                sizes[name] = os.path.getsize(path)
                print(f"{name}: {seconds[name][-1]:.2f} s, {sizes[name]:,} bytes", flush=True)
        with open(os.path.join(work, "flame.svg"), encoding="utf-8") as handle:
            svg = handle.read()
    frames = svg.count('<g class="f')
    merged = svg.count(' merged"')
    results = {name: {"seconds": round(statistics.median(seconds[name]), 3), "bytes": sizes[name],
                      "all_seconds": [round(s, 3) for s in seconds[name]]} for name in outputs}
    results["svg"].update(frames=frames, merged_frames=merged)
    document = {"repeat": args.repeat, "export_repeat": args.export_repeat, "seed": SEED,
                "tree": dict(tree, zipf=ZIPF, built_s=round(built_s, 1)), "outputs": results,
                "target_seconds": TARGET_SECONDS, "target_bytes": TARGET_BYTES,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "met": results["svg"]["seconds"] <= TARGET_SECONDS and results["svg"]["bytes"] <= TARGET_BYTES}
    print({name: (value["seconds"], value["bytes"]) for name, value in results.items()}, flush=True)
    write_results(args.output, document, " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
