#!/usr/bin/env python3
"""Random-program equivalence: csmith programs built plain and through `cprof build` must print the same checksum
and exit the same way.

Each program gets its own directory and run store, and its run file must be complete with main called once. A
program that, built plain, does not finish within the timeout (csmith programs may loop for ever) is skipped and
counted as such; a mismatch keeps the program, its outputs and cprof's messages in the failures directory for
inspection. Exit status: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cprof  # noqa: E402
from scripts.results import write_results  # noqa: E402

CSMITH_INCLUDE = "/usr/include/csmith"
PLAIN_FLAGS = ["-O2", "-w", f"-I{CSMITH_INCLUDE}"]


@dataclass
class Outcome:
    seed: int
    status: str  # "pass", "fail" or "skip"
    detail: str = ""
    directory: str = ""


def _run(argv, cwd, timeout, env=None):
    """(exit status or None on timeout, stdout, stderr, seconds)."""
    started = time.monotonic()
    try:
        process = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, b"", b"", time.monotonic() - started
    return process.returncode, process.stdout, process.stderr, time.monotonic() - started


def check_program(seed: int, directory: str, run_timeout: float = 10.0) -> Outcome:
    """Generates the program for `seed` in `directory` and compares its plain and instrumented behaviour."""
    os.makedirs(directory, exist_ok=True)
    source = os.path.join(directory, "prog.c")
    status, out, err, _ = _run(["csmith", "--seed", str(seed), "-o", source], directory, 60)
    if status != 0:
        return Outcome(seed, "skip", f"csmith failed: {err.decode(errors='replace').strip()[:200]}", directory)

    status, _, err, _ = _run(["gcc", *PLAIN_FLAGS, source, "-o", "plain"], directory, 300)
    if status != 0:
        return Outcome(seed, "skip", f"plain build failed: {err.decode(errors='replace').strip()[:200]}", directory)
    plain_status, plain_out, _, plain_seconds = _run(["./plain"], directory, run_timeout)
    if plain_status is None:
        return Outcome(seed, "skip", f"plain program ran over {run_timeout:g}s", directory)

    env = dict(os.environ, CPROF_HOME=os.path.join(directory, ".cprof"), CPROF_CACHE_DIR="off")
    env.pop("CPROF_DISABLE", None)
    status, out, err, _ = _run(
        [sys.executable, "-m", "cprof", "build", "prog.c", "-o", "instrumented", "--", "-w", f"-I{CSMITH_INCLUDE}"],
        directory, 600, env,
    )
    messages = err.decode(errors="replace")
    if status != 0:
        return Outcome(seed, "fail", f"cprof build failed ({status}): {messages.strip()[-500:]}", directory)
    if " 0 fell back" not in messages or "cprof: warning" in messages:
        return Outcome(seed, "fail", f"unit not instrumented: {messages.strip()[-500:]}", directory)
    binary = os.path.join(directory, ".cprof", "build", "direct", "instrumented")
    run_dir = os.path.join(directory, "runs")
    os.makedirs(run_dir, exist_ok=True)
    env["CPROF_RUN_DIR"] = run_dir
    # the guard adds tens of ns per call, and csmith programs are mostly calls: allow a generous factor
    status, out, _, _ = _run([binary], directory, max(run_timeout, 30 * plain_seconds + 10), env)
    if status is None:
        return Outcome(seed, "fail", "instrumented program timed out (the plain one did not)", directory)
    if (status, out) != (plain_status, plain_out):
        detail = (f"plain: exit {plain_status}, {plain_out.decode(errors='replace').strip()!r}; "
                  f"instrumented: exit {status}, {out.decode(errors='replace').strip()!r}")
        return Outcome(seed, "fail", detail, directory)
    run_files = os.listdir(run_dir)
    if len(run_files) != 1:
        return Outcome(seed, "fail", f"the instrumented program wrote {len(run_files)} run files", directory)
    try:
        report = cprof.load(os.path.join(run_dir, run_files[0]), home=env["CPROF_HOME"]).to_json()
        problem = ""
    except cprof.CprofError as error:
        report, problem = {}, error.message
    main_calls = [f["calls"] for f in report.get("functions", []) if f["name"] == "main"]
    if not report.get("run", {}).get("complete") or main_calls != [1]:
        return Outcome(seed, "fail", f"the run is not complete with one call of main: {problem[-300:]}", directory)
    return Outcome(seed, "pass", plain_out.decode(errors="replace").strip(), directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=300, help="how many programs (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first program; the next ones count up")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a plain program may run (default 10)")
    parser.add_argument("--failures", default=os.path.join(tempfile.gettempdir(), "cprof-csmith-failures"),
                        help="where failing programs are kept")
    parser.add_argument("--output", help="a results file to write (make csmith-300: benchmarks/results/csmith.json)")
    args = parser.parse_args(argv)
    if not shutil.which("csmith") or not os.path.isdir(CSMITH_INCLUDE):
        print("csmith and its headers are needed: apt-get install csmith libcsmith-dev", file=sys.stderr)
        return 2

    counts = {"pass": 0, "fail": 0, "skip": 0}
    with tempfile.TemporaryDirectory(prefix="cprof-csmith-") as scratch:
        def one(seed: int) -> Outcome:
            outcome = check_program(seed, os.path.join(scratch, str(seed)), args.timeout)
            if outcome.status == "fail":
                kept = os.path.join(args.failures, f"seed-{seed}")
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(outcome.directory, kept, symlinks=True)
                outcome.directory = kept
            shutil.rmtree(os.path.join(scratch, str(seed)), ignore_errors=True)
            return outcome

        seeds = range(args.seed, args.seed + args.programs)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for outcome in pool.map(one, seeds):
                counts[outcome.status] += 1
                if outcome.status != "pass":
                    where = f" (kept in {outcome.directory})" if outcome.status == "fail" else ""
                    print(f"seed {outcome.seed}: {outcome.status.upper()}: {outcome.detail}{where}", flush=True)
    compared = counts["pass"] + counts["fail"]
    rate = 100.0 * counts["pass"] / compared if compared else 0.0
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
          f"(pass rate {rate:.1f}% of {compared} compared programs)")
    if args.output:
        write_results(args.output, {"programs": args.programs, "seed": args.seed, "timeout_s": args.timeout,
                                    "passed": counts["pass"], "failed": counts["fail"], "skipped": counts["skip"]},
                      " ".join(argv if argv is not None else sys.argv[1:]))
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
