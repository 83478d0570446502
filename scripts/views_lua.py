#!/usr/bin/env python3
"""Every view and export of a real traced run, made as a user makes them: Lua 5.4 (Debian's source) built with
`cprof build -- make linux`, running scripts/bench/cpu_bound.lua under `cprof run --trace` (once with the default
trace limit, which a call-dense interpreter reaches, once with --min-duration 10us, which keeps the whole run), and
a second run for the differential flamegraph. Each output's size and the time its command took, and what the other
tools read back from the exports: callgrind_annotate's total, `go tool pprof`'s total, the Chrome JSON's nesting.

    python scripts/views_lua.py [--keep DIR]

Writes benchmarks/results/views_lua.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from cprof import TraceOptions  # noqa: E402
from cprof.model.trace import run_traces  # noqa: E402
from scripts import cprof_api  # noqa: E402
from scripts.bench_projects import fetch  # noqa: E402
from scripts.results import write_results  # noqa: E402

SCRIPT = os.path.join(HERE, "bench", "cpu_bound.lua")


class User:
    """The cprof CLI in a project directory with a store of its own, as a user calls it."""

    def __init__(self, root: str):
        self.root = root
        self.home = os.path.join(root, ".cprof")
        self.env = dict(os.environ, CPROF_HOME=self.home)

    def cprof(self, *args: str) -> float:
        """How long a command took, as a user waits for it (the build, and the views and exports measured)."""
        started = time.perf_counter()
        process = subprocess.run([sys.executable, "-m", "cprof", *args], cwd=self.root, env=self.env,
                                 capture_output=True, text=True)
        if process.returncode:
            raise SystemExit(f"cprof {' '.join(args)} failed:\n{process.stderr[-3000:]}")
        return time.perf_counter() - started


def chrome_nesting(path: str) -> dict:
    """How many complete events the Chrome JSON holds, and how many break the nesting of their thread."""
    with open(path) as handle:
        events = [e for e in json.load(handle)["traceEvents"] if e["ph"] == "X"]
    by_thread = collections.defaultdict(list)
    for event in events:
        by_thread[(event["pid"], event["tid"])].append(event)
    broken = 0
    for thread_events in by_thread.values():
        open_events = []
        for event in sorted(thread_events, key=lambda e: (e["ts"], -e["dur"])):
            while open_events and open_events[-1]["ts"] + open_events[-1]["dur"] <= event["ts"] + 1e-9:
                open_events.pop()
            if open_events and event["ts"] + event["dur"] > open_events[-1]["ts"] + open_events[-1]["dur"] + 1e-6:
                broken += 1
            open_events.append(event)
    return {"events": len(events), "not_nested": broken}


def callgrind_total(path: str) -> int:
    text = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True, check=True, cwd="/").stdout
    return int(re.search(r"^([\d,]+)(?: \([\d.]+%\))?\s+PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))


def pprof_total(path: str) -> int:
    """`go tool pprof -raw`'s samples summed for the time type (the second column)."""
    text = subprocess.run(["go", "tool", "pprof", "-raw", path], capture_output=True, text=True, check=True).stdout
    samples = text.split("Samples:", 1)[1].split("Locations", 1)[0]
    return sum(int(m.group(1)) for m in re.finditer(r"^\s+\d+\s+(\d+)[:\s]", samples, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="copy every output there")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "views_lua.json"))
    args = parser.parse_args()
    source = fetch("lua5.4")
    with tempfile.TemporaryDirectory(prefix="cprof-views-") as root:
        tree = os.path.join(root, "lua")
        shutil.copytree(source, tree, symlinks=True)
        user = User(tree)
        user.cprof("build", "--", "make", "-j2", "linux")
        outputs: dict[str, dict] = {}

        def made(name: str, *command: str) -> None:
            seconds = user.cprof(*command)
            outputs[name] = {"command": "cprof " + " ".join(command), "seconds": round(seconds, 2),
                             "bytes": os.path.getsize(os.path.join(tree, command[command.index("-o") + 1]))}

        # the runs give the views their data; only the views' and exports' commands are timed
        cprof_api.run(user.home, "lua", [SCRIPT], tag="before")
        cprof_api.run(user.home, "lua", [SCRIPT], tag="filtered", trace=TraceOptions(min_duration_ns=10_000))
        made("chart, calls of 10 us and more", "flame", "--chart", "filtered", "-o", "chart-10us.svg")
        run = cprof_api.run(user.home, "lua", [SCRIPT], tag="traced", trace=TraceOptions())
        report = run.to_json()
        header = run.model.processes[0].header
        traced = {"calls_recorded": sum(len(t.events) for _, t in run_traces(run.model)),
                  "calls_made": sum(f["calls"] for f in report["functions"]),
                  "stopped_at_limit": bool(header["trace_stop_ticks"]), "trace_bytes": header["trace_bytes"]}
        made("flamegraph", "flame", "traced", "-o", "flame.svg")
        made("flamechart (default limit)", "flame", "--chart", "traced", "-o", "chart.svg")
        made("differential flamegraph", "flame", "--diff", "before", "traced", "-o", "flame-diff.svg")
        made("folded", "export", "traced", "-o", "lua.folded")
        made("speedscope (evented)", "export", "traced", "-o", "lua.speedscope.json")
        made("chrome trace events", "export", "traced", "-o", "lua.trace.json")
        made("callgrind", "export", "traced", "-o", "lua.callgrind")
        made("pprof", "export", "traced", "-o", "lua.pb.gz")
        total_ns = round(sum(f["self_ns"] for f in report["functions"]))
        checks = {"report_self_ns": total_ns,
                  "callgrind_annotate_total": callgrind_total(os.path.join(tree, "lua.callgrind")),
                  "go_pprof_total": pprof_total(os.path.join(tree, "lua.pb.gz")),
                  "chrome": chrome_nesting(os.path.join(tree, "lua.trace.json"))}
        with gzip.open(os.path.join(tree, "lua.pb.gz")) as handle:
            checks["pprof_uncompressed_bytes"] = len(handle.read())
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for name in os.listdir(tree):
                if name.startswith(("flame", "chart", "lua.")) and os.path.isfile(os.path.join(tree, name)):
                    shutil.copy(os.path.join(tree, name), args.keep)
    document = {"script": os.path.relpath(SCRIPT, REPO), "trace": traced, "outputs": outputs, "checks": checks}
    print(json.dumps(document, indent=1))
    write_results(args.output, document, f"--keep {args.keep}" if args.keep else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
