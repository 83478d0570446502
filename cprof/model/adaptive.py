"""Adaptive instrumentation: which functions to count only, learned from a run. A timed call costs the calibrated
guard (tens of ns); timing every call of a call-dense program would mostly measure the profiler, and slow the
program down with it. So timing gets a budget: the functions whose calls do the most work each are timed first
(they cost the least per ns of work), until their guards would cost BUDGET of the program's time; the rest are
counted exactly, and their self time is sampled (samples.py)."""

from __future__ import annotations

from cprof.model.run import FunctionStats, Run, summed_self_err_ns

# Why a budget over the whole program, not a per-function threshold: nested cheap functions each within a
# per-function limit add up (Lua's interpreter loop calls a chain of them), where a budget bounds the sum.
BUDGET = 0.10
MIN_CALLS = 1000  # a function called fewer times costs next to nothing to time: timed, unless it is tiny
# A call that does less work than a timed guard costs is counted however rarely it happens: such a function is what
# the plain build inlines, and a timed guard (a call into the runtime) keeps it out of line in every caller, hot
# loops included, which the budget's guard count does not see. sqlite3's shell timed its rare tiny helpers
# (sqlite3Strlen30, sqlite3VdbeMemSetNull), and its interpreter loop, sqlite3VdbeExec, called them out of line and
# ran markedly slower even with profiling switched off (by hand). Its time is sampled like any counted function's.
FALLBACK_GUARD_NS = 40.0  # an uncalibrated learning run (the clock timer): about what a guard costs here
# ...but only a call whose measured time, guards and all, is within a few guards of it: a tiny helper's is one guard
# and its work (nested tiny calls add a guard each). A calibration read high on a busy machine takes callers of a
# call-dense leaf to nothing once corrected (fib's main and benchmark were counted, by hand), where their raw time
# says what they are. The same choice as without this on runs of sqlite3, Lua, jq, lz4 and fib (by hand).
TINY_RAW_GUARDS = 10


def identity(item: FunctionStats) -> str:
    return f"{item.key.file}:{item.key.line}:{item.key.name}"


def timed_identities(run: Run, counted: list[str]) -> list[str]:
    """Identities of the functions the run called often enough to judge (MIN_CALLS times or more) that are not in
    `counted`: an adaptive build times them. The others it times too, unless they are small leaves
    (instrument/small.py): a run that called a helper ten times, its caches cold, says nothing of what its calls
    cost in another workload (lz4's LZ4_read16: 2.6 us a call learning from compression, 2.8 million 2-ns calls
    decompressing)."""
    chosen = set(counted)
    return sorted(identity(item) for item in run.functions()
                  if item.calls >= MIN_CALLS and identity(item) not in chosen)


def choose_counted(run: Run) -> list[str]:
    """Identities (file:line:name) of the functions to count only, from a run of the same build. A function that
    run already only counted stays counted: it has no total time to judge it by."""
    guard_ns = run.main.calibration.per_call_ns if run.calibrated else FALLBACK_GUARD_NS
    functions = run.functions()
    # The program's own time, as the learning run can bound it from below: a fully timed run of call-dense code
    # overstates it (Lua: 527 ms corrected against 125 ms plain), and a budget taken from that would time far too
    # much. Its lower bound (corrected minus uncertainty) is what a tenth is taken of.
    # Time blocked in waiting calls is no work to compare guards with (zstd's main thread waits for its workers).
    program_ns = sum(max(0.0, item.self_ns - item.wait_ns) for item in functions)
    lower_ns = program_ns - summed_self_err_ns(functions)
    budget = BUDGET * max(lower_ns, 0.1 * program_ns)
    spent = 0.0
    chosen = []
    for item in sorted(functions, key=lambda f: (f.counted_only, -(f.total_ns / f.calls if f.calls else 0.0))):
        cost = item.calls * guard_ns
        smaller_than_its_guard = (item.calls > 0 and item.total_ns < item.calls * guard_ns
                                  and item.raw_total_ns < TINY_RAW_GUARDS * item.calls * guard_ns)
        if item.counted_only or smaller_than_its_guard or (item.calls >= MIN_CALLS and spent + cost > budget):
            chosen.append(identity(item))
        else:
            spent += cost
    return sorted(chosen)
