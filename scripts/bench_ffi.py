#!/usr/bin/env python3
"""What a call into an instrumented C library costs from Python through cprof's binding (libffi, csrc/binding.c),
against ctypes and cffi calling the very same function of the very same library.

Two functions: tests/library/kinds.c's `int add(int, int)` (the call machinery alone) and zlib's
`crc32(crc, buf, len)` on a 64-byte bytes object (a buffer argument too; zlib from Debian's source, built by its own
./configure && make under `cprof build`, skipped when scripts/fetch_corpus.sh cannot fetch it). Each round times
CALLS calls of each caller in turn (side by side, so that a drift of the machine reaches them all alike); the
figures are the medians over --repeat rounds, in ns a call, loop included (a bare `for` loop's cost is given
beside). Profiling is paused while timing: the guard then costs one branch in the callee whoever calls it, so the
difference is the call path's own; a second row per function has it recording, through cprof's binding.

    python scripts/bench_ffi.py [--repeat 7] [--calls 200000]

Writes benchmarks/results/ffi.json (scripts/readme_tables.py prints the README's table from it).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import cprof  # noqa: E402
from results import write_results  # noqa: E402

KINDS = os.path.join(REPO, "tests", "library")
DATA = bytes(range(64))


def cprof_build(cwd: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cprof", "build", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, CPROF_HOME=os.path.join(cwd, ".cprof")))
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def built_library(cwd: str) -> str:
    from cprof.building.driver import last_build
    from cprof.workspace import Store
    return last_build(Store(os.path.join(cwd, ".cprof")))["links"][0]["built"]


def zlib_library(work: str) -> tuple[str, str] | None:
    fetched = subprocess.run([os.path.join(HERE, "fetch_corpus.sh"), "zlib"], capture_output=True, text=True)
    if fetched.returncode != 0:
        return None
    tree = os.path.join(work, "zlib")
    shutil.copytree(fetched.stdout.strip(), tree)
    cprof_build(tree, "--", "sh", "-c", "./configure >/dev/null && make libz.so.1.2.13 >/dev/null")
    return built_library(tree), os.path.join(tree, "zlib.h")


def per_call_ns(call, calls: int) -> float:
    started = time.perf_counter_ns()
    call(calls)
    return (time.perf_counter_ns() - started) / calls


def callers(binding, path: str, name: str) -> dict:
    """Loops of `calls` calls of the function through each caller."""
    import cffi
    ffi = cffi.FFI()
    if name == "add":
        ffi.cdef("int add(int, int);")
        c_add = ctypes.CDLL(path).add
        c_add.argtypes, c_add.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        f_add = ffi.dlopen(path).add
        b_add = binding.add
        assert b_add(2, 3) == c_add(2, 3) == f_add(2, 3) == 5
        return {"cprof": lambda n: [b_add(1, 2) for _ in range(n)], "ctypes": lambda n: [c_add(1, 2) for _ in range(n)],
                "cffi": lambda n: [f_add(1, 2) for _ in range(n)]}
    ffi.cdef("unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);")
    c_crc = ctypes.CDLL(path).crc32
    c_crc.argtypes, c_crc.restype = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint], ctypes.c_ulong
    f_crc = ffi.dlopen(path).crc32
    b_crc = binding.crc32
    size = len(DATA)
    assert b_crc(0, DATA, size) == c_crc(0, DATA, size) == f_crc(0, ffi.from_buffer(DATA), size)
    return {"cprof": lambda n: [b_crc(0, DATA, size) for _ in range(n)],
            "ctypes": lambda n: [c_crc(0, DATA, size) for _ in range(n)],
            # cffi takes bytes only for char *: the buffer is wrapped once, outside the loop (in its favour)
            "cffi": lambda n, wrapped=ffi.from_buffer(DATA): [f_crc(0, wrapped, size) for _ in range(n)]}


def measure(session, binding, path: str, name: str, repeat: int, calls: int) -> dict:
    loops = callers(binding, path, name)
    loops["empty loop"] = lambda n: [None for _ in range(n)]
    times = {caller: [] for caller in loops}
    times["cprof, recording"] = []
    for _ in range(repeat):
        session.pause()
        for caller, loop in loops.items():
            times[caller].append(per_call_ns(loop, calls))
        session.resume()
        times["cprof, recording"].append(per_call_ns(loops["cprof"], calls // 4))
    medians = {caller: round(statistics.median(values), 1) for caller, values in times.items()}
    print(name, medians, flush=True)
    return {"ns_per_call": medians, "all_ns": {c: [round(v, 1) for v in vs] for c, vs in times.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "ffi.json"))
    args = parser.parse_args()
    functions = {}
    with tempfile.TemporaryDirectory(prefix="cprof-ffi-") as work:
        kinds_dir = os.path.join(work, "kinds")
        os.makedirs(kinds_dir)
        cprof_build(kinds_dir, os.path.join(KINDS, "kinds.c"), "-o", "libkinds.so", "--", "-shared", "-fPIC", "-O2",
                    "-pthread")
        kinds = built_library(kinds_dir)
        zlib = zlib_library(work)
        with cprof.session(home=os.path.join(work, ".cprof")) as session:
            binding = session.load_library(kinds, header=os.path.join(KINDS, "kinds.h"))
            functions["add"] = measure(session, binding, kinds, "add", args.repeat, args.calls)
            if zlib:
                z = session.load_library(zlib[0], header=zlib[1])
                functions["crc32"] = measure(session, z, zlib[0], "crc32", args.repeat, args.calls)
        recorded = {f.name: f.calls for f in session.run.functions()}
    met = all(f["ns_per_call"]["cprof"] <= f["ns_per_call"]["ctypes"] for f in functions.values())
    document = {"repeat": args.repeat, "calls": args.calls, "functions": functions, "recorded_calls": recorded,
                "crc32_bytes": len(DATA), "met": met}
    write_results(args.output, document, " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
