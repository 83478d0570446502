#!/usr/bin/env python3
"""What the event trace (`cprof run --trace`) costs per recorded call, and per call it leaves out.

scripts/bench/trace_calls.c calls a ~5 ns leaf a million times per round (the rounds its argument). Built
through `cprof build`, it runs without a trace, with a trace of every call (--trace, a limit large enough that it
never stops), and with a trace whose --min-duration leaves every leaf call out (what the filter itself costs),
interleaved and repeated. A call's cost is the slope between runs of two sizes (medians), which leaves start-up
out; the added cost is a configuration's slope less the untraced one's. The trace's size per call comes from the
run file.

    python scripts/bench_trace.py [--repeat 7]

Writes benchmarks/results/trace.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import cprof  # noqa: E402
from scripts.bench_accuracy import FLAGS, Workspace, interleaved  # noqa: E402
from scripts.results import write_results  # noqa: E402

SMALL, LARGE = 1, 4  # rounds of a million leaf calls
CALLS_PER_ROUND = 1_000_000


def _seconds(argv: list[str], env: dict) -> float:
    runs = env["CPROF_RUN_DIR"]
    shutil.rmtree(runs, ignore_errors=True)
    os.makedirs(runs)
    started = time.perf_counter()
    process = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{argv[0]} failed: {process.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def _trace_header(runs: str) -> dict:
    return cprof.load(runs).model.processes[0].header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "trace.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cprof-trace-") as root:
        space = Workspace(root)
        binary = space.instrumented("trace_calls.c", "trace_calls")
        base = dict(os.environ, CPROF_SAMPLE_HZ="0", CPROF_HEAP="0")
        for name in ("CPROF_TRACE", "CPROF_TRACE_MIN_NS", "CPROF_TRACE_LIMIT"):
            base.pop(name, None)
        configurations = {
            "no trace": dict(base),
            "--trace (every call)": dict(base, CPROF_TRACE="1", CPROF_TRACE_LIMIT=str(1 << 40)),
            "--trace --min-duration 10us": dict(base, CPROF_TRACE="1", CPROF_TRACE_MIN_NS="10000"),
        }
        for index, env in enumerate(configurations.values()):
            env["CPROF_RUN_DIR"] = os.path.join(root, f"runs-{index}")
        jobs = [(name, rounds) for name in configurations for rounds in (SMALL, LARGE)]
        times = interleaved(args.repeat, *[(lambda n=name, r=rounds: _seconds([binary, str(r)], configurations[n]))
                                           for name, rounds in jobs])
        medians = {job: statistics.median(values) for job, values in zip(jobs, times)}
        calls = (LARGE - SMALL) * CALLS_PER_ROUND
        per_call = {name: (medians[(name, LARGE)] - medians[(name, SMALL)]) / calls * 1e9 for name in configurations}
        added = {name: round(per_call[name] - per_call["no trace"], 1) for name in configurations if name != "no trace"}
        # the last run of the full trace is still in its directory: what a call takes of the run file
        _seconds([binary, str(LARGE)], configurations["--trace (every call)"])
        header = _trace_header(configurations["--trace (every call)"]["CPROF_RUN_DIR"])
        recorded_bytes = header["trace_bytes"]  # whole tables: the last one partly filled
        document = {"repeat": args.repeat, "flags": FLAGS,
                    "calls": [SMALL * CALLS_PER_ROUND, LARGE * CALLS_PER_ROUND],
                    "per_call_ns": {k: round(v, 1) for k, v in per_call.items()}, "added_ns": added,
                    "bytes_per_call": round(recorded_bytes / (LARGE * CALLS_PER_ROUND), 1),
                    "trace_dropped": header["trace_dropped"]}
        print(json.dumps(document, indent=1))
    write_results(args.output, document, f"--repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
