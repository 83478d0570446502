#!/usr/bin/env python3
"""What an instrumented call costs, side by side in one run: the plain program, the floor (-finstrument-functions
with a minimal two-rdtsc thread-local shadow-stack runtime, scripts/bench/floor_runtime.c), gprof (-pg), uftrace
(record, -pg build) and cprof. Each program times its own measured loop, so start-up and trace writing are left
out; ns per call = (variant - plain) / calls, medians over interleaved repetitions.

    python scripts/bench_overhead.py [--repeat 7] [--functions 1,100,10000] [--calls 4000000] [--skip-large gprof]

Writes benchmarks/results/overhead.json: every row of the README's table comes from one invocation.

Programs: a loop calling N distinct tiny functions round-robin (cost flat in N?), and recursive fib(30). cprof
runs as built by default and with --inline-guard, each with the default ordered timer and CPROF_TIMER=fast.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BENCH = os.path.join(HERE, "bench")
sys.path.insert(0, REPO)

from scripts.results import write_results  # noqa: E402

LARGE = 10_000  # --skip-large applies from this many functions on
# every variant gets -fno-optimize-sibling-calls: instrumentation turns tail calls into real calls anyway, and
# the plain reference must make the same calls as the instrumented programs
CFLAGS = ["-O2", "-g", "-fno-optimize-sibling-calls"]


def generate_calls(path: str, functions: int, calls: int) -> None:
    """N tiny functions called round-robin through a table, `calls` calls in all, timed from inside."""
    lines = ["#include <stdio.h>", "#include <time.h>", "static volatile unsigned sink;"]
    for i in range(functions):
        lines.append(f"__attribute__((noinline)) unsigned f{i}(unsigned x) {{ return x * {2 * i + 3}u + {i}u; }}")
    lines.append("typedef unsigned (*fn)(unsigned);")
    lines.append("static fn table[] = {" + ", ".join(f"f{i}" for i in range(functions)) + "};")
    lines.append(f"""
__attribute__((noinline)) void benchmark(void) {{
    unsigned x = sink, i, at = 0;
    for (i = 0; i < {calls}u; i++) {{
        x = table[at](x);
        if (++at == {functions}u) at = 0;
    }}
    sink = x;
}}
int main(void) {{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    benchmark();
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "work_ns %lld\\n", (long long)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec)));
    return 0;
}}""")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def work_ns(stderr: str) -> int:
    match = re.search(r"work_ns (\d+)", stderr)
    if not match:
        raise SystemExit(f"no timing in output:\n{stderr[-2000:]}")
    return int(match.group(1))


class Variants:
    """Builds one source in every variant and knows how to run each."""

    def __init__(self, root: str, source: str, name: str):
        self.root, self.source, self.name = root, source, name
        self.env = dict(os.environ, CPROF_HOME=os.path.join(root, ".cprof"), CPROF_CACHE_DIR="off")
        self.binaries: dict[str, str] = {}

    def _cc(self, out: str, *flags: str, extra: list[str] | None = None) -> str:
        path = os.path.join(self.root, f"{self.name}-{out}")
        subprocess.run(["cc", *CFLAGS, *flags, self.source, *(extra or []), "-o", path], check=True)
        return path

    def build(self, with_uftrace: bool, skip: set[str] = frozenset()) -> None:
        self.binaries["plain"] = self._cc("plain")
        floor_object = os.path.join(self.root, "floor_runtime.o")
        if not os.path.exists(floor_object):
            subprocess.run(["cc", "-O2", "-c", os.path.join(BENCH, "floor_runtime.c"), "-o", floor_object], check=True)
        self.binaries["floor"] = self._cc("floor", "-finstrument-functions", extra=[floor_object])
        self.binaries["gprof"] = self._cc("gprof", "-pg")
        if with_uftrace:
            self.binaries["uftrace"] = self.binaries["gprof"]
        self.binaries["cprof"] = self._cprof_build("cprof")
        self.binaries["cprof-fast"] = self.binaries["cprof"]  # CPROF_TIMER=fast: plain rdtsc reads
        self.binaries["cprof-off"] = self.binaries["cprof"]  # CPROF_DISABLE=1: the guard's one branch
        self.binaries["cprof-inline"] = self._cprof_build("cprof-inline", "--inline-guard")
        self.binaries["cprof-inline-fast"] = self.binaries["cprof-inline"]
        for name in skip:
            self.binaries.pop(name, None)

    def _cprof_build(self, out: str, *options: str) -> str:
        result = subprocess.run([sys.executable, "-m", "cprof", "build", *options, self.source, "-o",
                                 f"{self.name}-{out}", "--", "-fno-optimize-sibling-calls"], cwd=self.root,
                                env=self.env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(result.stderr)
        return os.path.join(self.root, ".cprof", "build", "direct", f"{self.name}-{out}")

    def run(self, variant: str, args: list[str]) -> int:
        binary = self.binaries[variant]
        env = dict(self.env, CPROF_RUN_DIR=os.path.join(self.root, "runs"))
        if variant == "cprof-off":
            env["CPROF_DISABLE"] = "1"
        if variant.endswith("-fast"):
            env["CPROF_TIMER"] = "fast"
        if variant == "uftrace":
            trace = os.path.join(self.root, "uftrace.data")
            shutil.rmtree(trace, ignore_errors=True)
            argv = ["uftrace", "record", "-d", trace, binary, *args]
        else:
            argv = [binary, *args]
        result = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True)
        shutil.rmtree(os.path.join(self.root, "runs"), ignore_errors=True)
        return work_ns(result.stderr)


def measure(variants: Variants, calls: int, args: list[str], repeat: int) -> dict:
    names = list(variants.binaries)
    times: dict[str, list[int]] = {n: [] for n in names}
    for _ in range(repeat):
        for name in names:
            times[name].append(variants.run(name, args))
    plain = statistics.median(times["plain"])
    return {name: round((statistics.median(t) - plain) / calls, 2) for name, t in times.items() if name != "plain"} | {
        "plain_ns_per_call": round(plain / calls, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--functions", default="1,100,10000")
    parser.add_argument("--calls", type=int, default=4_000_000)
    parser.add_argument("--no-uftrace", action="store_true")
    parser.add_argument("--skip", default="", help="variants to leave out everywhere")
    parser.add_argument("--skip-large", default="gprof", help=f"variants to leave out from {LARGE:,} functions on "
                        "(default gprof: it spends tens of us a call there, minutes a run)")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "overhead.json"))
    args = parser.parse_args()
    with_uftrace = not args.no_uftrace and shutil.which("uftrace") is not None
    skip = {name for name in args.skip.split(",") if name}
    skip_large = {name for name in args.skip_large.split(",") if name}
    rows = []
    with tempfile.TemporaryDirectory(prefix="cprof-overhead-") as root:
        for count in [int(n) for n in args.functions.split(",")]:
            source = os.path.join(root, f"calls{count}.c")
            generate_calls(source, count, args.calls)
            variants = Variants(root, source, f"calls{count}")
            variants.build(with_uftrace, skip | (skip_large if count >= LARGE else set()))
            rows.append({"program": f"{count} functions, {args.calls:,} calls"} |
                        measure(variants, args.calls, [], args.repeat))
        variants = Variants(root, os.path.join(BENCH, "fib.c"), "fib")
        variants.build(with_uftrace, skip)
        fib_calls = 2692537  # calls of fib(30) and benchmark(): 2 * fib(31) - 1 + 1
        rows.append({"program": "fib(30)"} | measure(variants, fib_calls, ["30"], args.repeat))
    columns = ["program", "plain_ns_per_call", "floor", "gprof", "uftrace", "cprof", "cprof-fast", "cprof-inline",
               "cprof-inline-fast", "cprof-off"]
    print("ns per call over the plain program (medians of %d interleaved runs)" % args.repeat)
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row.get(c, "-")) for c in columns))
    write_results(args.output, {"repeat": args.repeat, "calls": args.calls, "skip": sorted(skip),
                                "skip_large": sorted(skip_large), "large": LARGE, "rows": rows},
                  " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
