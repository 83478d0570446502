"""The plain program laid out differently: the same source and flags, its code aligned otherwise. How far its time
and its sampled shares move then is a floor under any comparison of an instrumented build with the plain one:
an instrumented build's code lies elsewhere whatever its guards cost (GNU bc's plain program ran 0.90-1.00x its
default build's time with only its alignment changed, by hand; Lua's `partition` took 4.1-6.2% of perf's samples).

Used by scripts/bench_adaptive.py (the time) and scripts/bench_shares.py (the shares).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess

# Each a way to move code without changing what it does: whole functions to another alignment, the loops inside
# them, or every function 8 bytes on (8 bytes of padding before each entry, never run). Not jump targets: padding
# every one of them grows code made of branches (sqlite3's interpreter loop, a switch of hundreds of cases, ran
# 1.28x with -falign-jumps=32 and -falign-loops=32): that measures code size, not where the code lies. The shift:
# aligning fib's functions to 64 bytes left it where it was (it already began on 64), and its time then moved 1%,
# while placed 8 bytes on it ran 0.93x, and 16 bytes either side of where an instrumented build's copy of it lay,
# 0.86x and 1.07x (by hand): a floor the two alignments alone did not show.
LAYOUTS = (["-falign-functions=64"], ["-falign-loops=32"], ["-fpatchable-function-entry=8,8"])
# How the README's tables say each one
LAYOUT_WORDS = {"-falign-functions=64": "its functions aligned to 64 bytes",
                "-falign-loops=32": "its loops aligned to 32",
                "-fpatchable-function-entry=8,8": "every function moved 8 bytes on (padding before its entry)"}


def compiler_env(root: str, flags: list[str]) -> dict:
    """An environment whose `cc` and `gcc` are the system's, with `flags` added at the end of every command line (so
    they win over a build's own): a project's build then compiles as it would, laid out by `flags`."""
    shims = os.path.join(root, "compiler-" + "_".join(f.strip("-").replace("=", "") for f in flags))
    os.makedirs(shims, exist_ok=True)
    for name in ("cc", "gcc"):
        real = shutil.which(name)
        if real is None:
            continue
        with open(os.path.join(shims, name), "w") as handle:
            handle.write(f'#!/bin/sh\nexec {real} "$@" {" ".join(flags)}\n')
        os.chmod(os.path.join(shims, name), 0o755)
    return dict(os.environ, PATH=shims + os.pathsep + os.environ.get("PATH", ""))


def relaid_builds(build: list[str], source: str, program: str, work: str, subfolder: str = "") -> list[str]:
    """The plain program of `build`, run in `subfolder` of a copy of `source` (a tree, or a single file), once per
    layout, under `work`: the programs' paths (`program`, relative to the copy)."""
    programs = []
    for index, flags in enumerate(LAYOUTS):
        tree = os.path.join(work, f"relaid-{index}")
        shutil.rmtree(tree, ignore_errors=True)
        if os.path.isfile(source):
            os.makedirs(tree)
            shutil.copy(source, tree)
        else:
            shutil.copytree(source, tree, symlinks=True)
        process = subprocess.run(build, cwd=os.path.join(tree, subfolder), env=compiler_env(work, flags),
                                 capture_output=True)
        if process.returncode:
            raise SystemExit(f"the build with {' '.join(flags)} failed in {tree}:\n"
                             f"{process.stderr.decode(errors='replace')[-3000:]}")
        programs.append(os.path.join(tree, program))
    return programs


def time_ratios(plain: str, relaid: list[str], args: list[str], cwd: str, repeat: int, wall) -> list[float]:
    """Median time of each relaid program over the plain one's, from interleaved runs (`wall(argv, env, cwd)`: one
    run's wall time)."""
    programs = [plain, *relaid]
    walls: list[list[float]] = [[] for _ in programs]
    for program in relaid:  # untimed: a freshly built program's first run loads it cold
        wall([program, *args], None, cwd)
    for index in range(repeat):
        order = list(range(len(programs)))
        for which in (order if index % 2 == 0 else order[::-1]):
            walls[which].append(wall([programs[which], *args], None, cwd))
    medians = [statistics.median(w) for w in walls]
    return [round(m / medians[0], 3) for m in medians[1:]]


def spread_percent(ratios: list[float]) -> float:
    """How far the plain program's time moved with its layout: the largest departure of a ratio from 1."""
    return round(100.0 * max(abs(r - 1.0) for r in ratios), 1)
