"""Runs a profiled program: stdio passes through, signals are forwarded, --duration stops it, and its exit status
is recorded in the run (and becomes cprof's)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

from cprof.errors import EXIT_START_FAILED, CprofError
from cprof.runfile import finish_run_file
from cprof.workspace import RunEntry, Store

DEFAULT_SAMPLE_HZ = 1000
DEFAULT_TRACE_LIMIT = 64 * 2**20  # bytes of run file a trace may take (about 2.8 million calls)
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_WATCHED = set(_FORWARDED) | {signal.SIGCHLD}


@dataclass(frozen=True)
class TraceOptions:
    """The event trace (csrc/trace.c): calls shorter than min_duration_ns left out, limit_bytes of run file."""
    min_duration_ns: int = 0
    limit_bytes: int = DEFAULT_TRACE_LIMIT


@dataclass
class LaunchResult:
    run: RunEntry
    exit_status: int  # as a shell reports it: the exit code, or 128 + signal
    wall_ns: int
    stopped_after_duration: bool
    cpu_ns: int = 0  # user + system CPU time of the program (and the children it waited for)


def _exit_status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def launch(argv: list[str], store: Store, *, duration: float | None = None, kill_timeout: float = 5.0,
           cpu_time: bool = False, heap: bool = True, trace: TraceOptions | None = None, meta: dict | None = None,
           stdout_to_stderr: bool = False, library_dirs: list[str] | None = None) -> LaunchResult:
    """Runs argv to completion. With stdout_to_stderr the program's standard output goes to our standard error,
    so that ours can carry a JSON report alone. library_dirs go first on LD_LIBRARY_PATH: a program built next to
    an instrumented shared library must load that one, not the system's copy."""
    entry = store.create_run(dict(meta or {}, command=argv, start_unix=time.time(), status="running"))
    env = dict(os.environ)
    env["CPROF_RUN_DIR"] = entry.path
    env.pop("CPROF_DISABLE", None)
    if library_dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_dirs + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    if cpu_time:
        env["CPROF_CPU_TIME"] = "1"
    if not heap:  # csrc/heap.c: read once, at the program's first allocation
        env["CPROF_HEAP"] = "0"
    for name in ("CPROF_TRACE", "CPROF_TRACE_MIN_NS", "CPROF_TRACE_LIMIT"):
        env.pop(name, None)
    if trace is not None:  # csrc/trace.c
        env.update(CPROF_TRACE="1", CPROF_TRACE_MIN_NS=str(trace.min_duration_ns),
                   CPROF_TRACE_LIMIT=str(trace.limit_bytes))
    # CPU-time samples give count-only functions their time (csrc/sampling.c); a tick-driven timer makes them
    # nearly free, so every run samples unless the user chose otherwise
    env.setdefault("CPROF_SAMPLE_HZ", str(DEFAULT_SAMPLE_HZ))
    # Signals are taken synchronously (sigtimedwait) so that we can tell who sent them: a Ctrl-C from the
    # terminal already reached the program (same process group) and must not be delivered twice.
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    started = time.monotonic_ns()
    try:
        process = subprocess.Popen(argv, env=env, stdout=2 if stdout_to_stderr else None,
                                   preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED))
    except OSError as error:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)
        store.remove([entry])
        raise CprofError(f"cannot start {argv[0]}: {error.strerror}", EXIT_START_FAILED) from None
    stopped = False
    try:
        wait_status, stopped, usage = _supervise(process, duration, kill_timeout)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)
    wall_ns = time.monotonic_ns() - started
    status = _exit_status(wait_status)
    main_file = os.path.join(entry.path, f"{process.pid}.cprof")
    if os.path.exists(main_file):
        finish_run_file(main_file, wait_status)
    cpu_ns = round((usage.ru_utime + usage.ru_stime) * 1e9)
    entry.meta.update(
        status="finished", exit_status=status, wall_ns=wall_ns, cpu_ns=cpu_ns, pid=process.pid,
        stopped_after_duration=stopped, signal=os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None,
    )
    store.save_meta(entry)
    return LaunchResult(entry, status, wall_ns, stopped, cpu_ns)


def _supervise(process: subprocess.Popen, duration: float | None, kill_timeout: float) -> tuple[int, bool, object]:
    """(wait status, whether --duration stopped it, its resource usage: wait4 tells the program's CPU time)."""
    deadline = time.monotonic() + duration if duration else None
    kill_at = None
    stopped = False
    while True:
        pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = _exit_status(wait_status)
            return wait_status, stopped, usage
        now = time.monotonic()
        if deadline is not None and now >= deadline and not stopped:
            stopped = True
            os.kill(process.pid, signal.SIGTERM)  # graceful first: the program may finish cleanly
            kill_at = now + kill_timeout
        if kill_at is not None and now >= kill_at:
            os.kill(process.pid, signal.SIGKILL)
            kill_at = None
        timeout = 0.5
        for moment in (deadline if not stopped else None, kill_at):
            if moment is not None:
                timeout = max(0.0, min(timeout, moment - now))
        info = signal.sigtimedwait(_WATCHED, timeout)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_pid not in (0, process.pid):  # sent by another process, not the terminal: pass it on
            try:
                os.kill(process.pid, info.si_signo)
            except ProcessLookupError:
                pass
