"""`cprof doctor`: is this machine ready, and what does a guarded call cost here."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

from cprof import __version__
from cprof.building.toolchain import GUARD_HEADER, RUNTIME_DIR, SHARED_RUNTIME, find_real_compiler
from cprof.errors import EXIT_SETUP
from cprof.workspace import Store

_LOOP = textwrap.dedent("""\
    #include <stdio.h>
    #include <stdlib.h>
    #include <time.h>
    __attribute__((noinline)) int leaf(int x) { __asm__ volatile(""); return x + 1; }
    int main(int argc, char **argv) {
        long n = atol(argv[1]), i; int v = 0; struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (i = 0; i < n; i++) v = leaf(v);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.3f %d\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, v);
        return 0;
    }
""")


def register(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check the setup and measure the cost of a guarded call")
    parser.add_argument("--calls", type=int, default=5_000_000, help="calls to time (default 5,000,000)")
    parser.set_defaults(run=run)


def _line(label: str, value: str, ok: bool = True) -> bool:
    sys.stdout.write(f"{'ok  ' if ok else 'FAIL'}  {label:<22} {value}\n")
    return ok


def _measure(compiler: str, calls: int) -> tuple[float, float, float] | None:
    """ns per call of a loop calling an empty function, plain, instrumented, and instrumented with --cpu-time
    (on a tenth of the calls: it costs far more), best of three each."""
    from cprof.building.config import WrapperConfig
    from cprof.building.wrapper import run_wrapper

    with tempfile.TemporaryDirectory(prefix="cprof-doctor-") as work:
        source = os.path.join(work, "loop.c")
        with open(source, "w") as handle:
            handle.write(_LOOP)
        plain, instrumented = os.path.join(work, "plain"), os.path.join(work, "instrumented")
        if subprocess.run([compiler, "-O2", source, "-o", plain]).returncode:
            return None
        config = WrapperConfig(real_compiler=compiler, cache_dir=None)
        if run_wrapper(["-O2", source, "-o", instrumented], config=config):
            return None
        env = dict(os.environ, CPROF_RUN_DIR=os.path.join(work, "runs"))
        env.pop("CPROF_DISABLE", None)  # main() sets it for cprof itself

        def best(program, calls=calls, extra=None):
            times = []
            for _ in range(3):
                out = subprocess.run([program, str(calls)], capture_output=True, text=True,
                                     env=dict(env, **(extra or {}))).stdout
                times.append(float(out.split()[0]))
            return min(times)

        return best(plain), best(instrumented), best(instrumented, max(1, calls // 10), {"CPROF_CPU_TIME": "1"})


def _sampling_rate(cpu_seconds: float = 0.3) -> float:
    """Signals per second of CPU time that a 1 ms CPU-time timer really delivers here: the kernel checks such timers
    at its scheduler tick, which bounds what cprof's samplers (csrc/sampling.c) get."""
    import signal
    import time

    signals = 0

    def count(_number, _frame):
        nonlocal signals
        signals += 1

    previous = signal.signal(signal.SIGPROF, count)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    started = time.process_time()
    try:
        while time.process_time() - started < cpu_seconds:
            pass
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    return signals / (time.process_time() - started)


def run(args) -> int:
    ok = _line("cprof", __version__)
    ok &= _line("runtime", RUNTIME_DIR, os.path.exists(SHARED_RUNTIME) and os.path.exists(GUARD_HEADER))
    compiler = find_real_compiler(os.environ.get("CPROF_REAL_CC", "cc"))
    version = ""
    if compiler:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    ok &= _line("compiler", f"{compiler} ({version})" if compiler else "no C compiler on PATH", bool(compiler))
    try:
        import pycparser

        ok &= _line("pycparser", pycparser.__version__)
    except ImportError:
        ok &= _line("pycparser", "not installed", False)
    try:
        from cprof import _native

        info = _native.timer_info()
        timer = info["timer"] + (" (invariant)" if info["invariant_tsc"] else "") + (", ordered reads (rdtscp)" if info["ordered"] else "")
        ok &= _line("timer", f"{timer}, {info['ticks_per_second'] / 1e9:.4f} GHz")
    except ImportError:
        ok &= _line("timer", "the C extension is not built", False)
    rate = _sampling_rate()
    ok &= _line("sampling", f"{rate:.0f} samples per CPU second at most (a 1 ms CPU timer, checked at the kernel's "
                "tick); count-only functions' self times rest on them", rate > 0)
    store = Store()
    problem = store.problem()
    ok &= _line("run store", store.root + (f": {problem}" if problem else ""), problem is None)
    if compiler:
        measured = _measure(compiler, args.calls)
        if measured:
            plain, instrumented, cpu_time = measured
            _line("cost per call", f"{instrumented - plain:.1f} ns ({plain:.1f} ns plain, {instrumented:.1f} ns "
                  "instrumented, loop of an empty function)")
            _line("with --cpu-time", f"{cpu_time - plain:.1f} ns per call (two thread CPU clock reads each; "
                  "times then stay uncorrected)")
        else:
            ok &= _line("cost per call", "could not build the measuring program", False)
    return 0 if ok else EXIT_SETUP
