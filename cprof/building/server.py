"""The build server: one warm process per `cprof build` whose workers, forks of it, run every compiler call of
the build, so no call pays for starting Python and importing the parser again.

A cold Lua build spent 2 of its 13.6 CPU seconds starting a fresh interpreter and importing the wrapper and
pycparser once per compiler call (scripts/bench_build.py). The shims make the driver's compiler names point at a
small C client (csrc/build_client.c) that hands its call to this server: working directory, arguments,
environment, and its own standard input, output and error as file descriptors. The server passes the call to an
idle worker, or forks a new one when all are busy; the worker becomes that compiler call exactly as a fresh
`cprof cc` process would (it may even exec the real compiler, and is then gone), gives the descriptors, directory
and environment back, and reports the exit status, which the server sends to the client, which exits with it.
When no server answers, the client runs the Python wrapper itself, so the shims work without one.

Protocol (one request per connection): a native-endian u32 length, then that many bytes of NUL-terminated
strings: the working directory, the number of arguments, the arguments, then `NAME=value` environment entries.
The client's fds 0, 1 and 2 ride on the first message (SCM_RIGHTS). The reply is one native-endian i32: the exit
status (128 + N for a call that died of signal N). The server hands a worker the same request on its control
socket and reads back (status, whether the worker takes another call).
"""

from __future__ import annotations

import gc
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback

ENV_SERVER = "CPROF_BUILD_SERVER"  # the socket's path, set by the driver for the shims
_LENGTH = struct.Struct("=I")
_STATUS = struct.Struct("=i")
_REPLY = struct.Struct("=ii")  # a worker's answer: the call's exit status, and 1 if it will serve another call
_MAX_REQUEST = 64 << 20  # a compiler call's arguments and environment: far below this
_CALLS_PER_WORKER = 200  # then a fresh fork: whatever a call may have left behind does not pile up


class _BadRequest(Exception):
    pass


def _read_request(connection: socket.socket) -> tuple[list[int], bytes]:
    fds: list[int] = []
    data = b""
    while len(data) < _LENGTH.size or len(data) < _LENGTH.size + _LENGTH.unpack_from(data)[0]:
        chunk, new_fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
        fds += new_fds
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise _BadRequest("connection closed mid-request")
        data += chunk
        if len(data) >= _LENGTH.size and _LENGTH.unpack_from(data)[0] > _MAX_REQUEST:
            raise _BadRequest("request too large")
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise _BadRequest("a request carries exactly three file descriptors")
    return fds, data[_LENGTH.size:]


def _serve_call(fds: list[int], payload: bytes) -> tuple[int, bool]:
    """In a worker: take on the client's descriptors, directory, environment and arguments, run the wrapper, and
    give the descriptors back. Returns (exit status, whether this process is still fit to serve another call). A
    call may also exec the real compiler: the worker then becomes it and the server reads its exit status."""
    status, healthy = 70, False
    saved = [os.dup(target) for target in (0, 1, 2)]  # not inheritable: the compilers never see them
    try:
        for target in (0, 1, 2):
            fd = fds.pop(0)
            os.dup2(fd, target)
            os.close(fd)
        fields = payload.split(b"\0")
        cwd, argc = fields[0], int(fields[1])
        args = [os.fsdecode(a) for a in fields[2:2 + argc]]
        environment = [e for e in fields[2 + argc:] if b"=" in e]
        os.chdir(cwd)
        os.environ.clear()
        for entry in environment:
            name, _, value = entry.partition(b"=")
            os.environb[name] = value
        sys.argv = ["cprof-cc"] + args
        from cprof.building import unit_compiler, wrapper

        unit_compiler.served_by_build_server = True
        status, healthy = wrapper.main(), True
    except SystemExit as stop:
        status, healthy = (stop.code if isinstance(stop.code, int) else 1), True
    except BaseException:  # what a crashing `cprof cc` process would print; this worker then retires
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                healthy = False
        for fd in fds:  # what a failure above left unclaimed
            os.close(fd)
        for target, fd in enumerate(saved):
            os.dup2(fd, target)
            os.close(fd)
    return status, healthy


def _work(control: socket.socket, fds: list[int], payload: bytes) -> None:
    """A worker's life: serve the call it was forked for, then every call the server hands it, replying with each
    exit status on its control socket. Never returns."""
    calls = 0
    while True:
        status, healthy = _serve_call(fds, payload)
        calls += 1
        staying = healthy and calls < _CALLS_PER_WORKER
        try:
            control.sendall(_REPLY.pack(status, staying))  # a retiring worker must never be handed another call
        except OSError:
            break
        if not staying:
            break
        try:
            fds, payload = _read_request(control)
        except (_BadRequest, OSError, ValueError):
            break  # the server is gone (end of the build), or no longer wants this worker
    os._exit(0)


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _send_request(sock: socket.socket, fds: list[int], payload: bytes) -> bool:
    """The client's request, as the client sent it, to a worker. False only when nothing reached it (it is gone):
    once its first bytes are sent the worker owns the call, which it may even have exec'd already, and must never
    be handed to a second one (an error after that is the worker's death, which waitpid reports)."""
    data = _LENGTH.pack(len(payload)) + payload
    try:
        sent = socket.send_fds(sock, [data[:1 << 16]], fds)
    except OSError:
        return False
    if sent < len(data):
        try:
            sock.sendall(data[sent:])
        except OSError:
            pass
    return True


class _Worker:
    def __init__(self, pid: int, control: socket.socket):
        self.pid = pid
        self.control = control
        self.client: socket.socket | None = None  # the connection of the call it is serving, if any


class _Pool:
    """The server's workers: forks of the warm server that each serve calls one after another. A fork per call
    paid its copy-on-write faults and a fresh heap every time: 0.4 s of CPU over Lua's 34 units (the same calls
    in one warm process cost 1.6 s of Python, each in a fork of its own 2.0 s). A worker that is busy when the
    next call comes is not waited for: a new one is forked, so a parallel build never queues."""

    def __init__(self, listener: socket.socket, wake: tuple[int, int], selector: selectors.BaseSelector):
        self.listener, self.wake, self.selector = listener, wake, selector
        self.workers: dict[int, _Worker] = {}
        self.idle: list[_Worker] = []

    def accept(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            connection.setblocking(True)
            fds, payload = _read_request(connection)
        except (_BadRequest, OSError, ValueError):
            connection.close()
            return
        try:
            while self.idle:
                worker = self.idle.pop()
                if not _send_request(worker.control, fds, payload):
                    continue  # it died while idle: reaped below
                worker.client = connection
                return
            self._fork(fds, payload, connection)
        finally:
            for fd in fds:
                os.close(fd)

    def _fork(self, fds: list[int], payload: bytes, connection: socket.socket) -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(number, signal.SIG_DFL)
            self.listener.close()
            connection.close()
            ours.close()
            for fd in self.wake:
                os.close(fd)
            for other in self.workers.values():  # else a worker's death would go unseen while a sibling lives
                other.control.close()
                if other.client is not None:
                    other.client.close()
            _work(theirs, list(fds), payload)
        theirs.close()
        worker = _Worker(pid, ours)
        worker.client = connection
        self.workers[pid] = worker
        self.selector.register(ours, selectors.EVENT_READ, worker)

    def replied(self, worker: _Worker) -> None:
        """The worker's control socket is readable: an exit status, or its end (it exited or became a compiler)."""
        try:
            reply = worker.control.recv(_REPLY.size, socket.MSG_WAITALL)
        except OSError:
            reply = b""
        if len(reply) < _REPLY.size:
            self.selector.unregister(worker.control)
            worker.control.close()
            if worker in self.idle:
                self.idle.remove(worker)
            return  # its exit status, if a call is still waiting for it, comes from waitpid
        status, staying = _REPLY.unpack(reply)
        self._answer(worker, status)
        if staying:
            self.idle.append(worker)

    def reap(self) -> None:
        while self.workers:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.reaped(pid, wait_status)

    def retire(self, patience: float = 2.0) -> None:
        """At the end of the build: idle workers see their control socket close and exit; waiting for them (a
        little) hands their CPU time, and their compilers', up to whoever waits for the server."""
        for worker in self.idle:
            worker.control.close()
        deadline = time.monotonic() + patience
        while self.workers and time.monotonic() < deadline:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.005)
                continue
            self.reaped(pid, wait_status)

    def reaped(self, pid: int, wait_status: int) -> None:
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        status = _exit_status(wait_status)
        if worker.control.fileno() >= 0:
            # a worker that retires writes its last call's status, then exits: that status, not the exit's
            try:
                reply = worker.control.recv(_REPLY.size, socket.MSG_DONTWAIT)
            except OSError:
                reply = b""
            if len(reply) == _REPLY.size:
                status = _REPLY.unpack(reply)[0]
            self.selector.unregister(worker.control)
            worker.control.close()
        if worker in self.idle:
            self.idle.remove(worker)
        self._answer(worker, status)

    @staticmethod
    def _answer(worker: _Worker, status: int) -> None:
        if worker.client is None:
            return
        try:
            worker.client.sendall(_STATUS.pack(status))
        except OSError:
            pass  # the client is gone (make was interrupted): nobody to tell
        worker.client.close()
        worker.client = None


def serve(listener: socket.socket) -> None:
    """Accepts calls until terminated. Workers are reaped on SIGCHLD through the wakeup pipe, so one thread
    serves a whole parallel build."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    pool = _Pool(listener, (wake_read, wake_write), selector)
    # Everything imported so far stays shared with the workers: keep the collector from touching (and so copying)
    # those pages in every one of them.
    gc.freeze()
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is listener:
                    pool.accept()
                elif key.fileobj == wake_read:
                    _drain(wake_read)
                else:
                    pool.replied(key.data)
            pool.reap()
    finally:
        pool.retire()




def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


class BuildServer:
    """Started by the driver around one build command: a listening socket in a private directory, and the server
    process. The driver's environment for the build points the shims at it."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled  # CPROF_BUILD_SERVER=off: every compiler call in a process of its own
        self.directory = tempfile.mkdtemp(prefix="cprof-build-") if enabled else ""  # 0700: only this user
        self.path = os.path.join(self.directory, "server") if enabled else "off"
        self.process = None

    def __enter__(self) -> "BuildServer":
        import subprocess

        if not self.enabled:
            return self
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(128)
            listener.setblocking(False)
            from cprof.building.bootstrap import python_bootstrap

            code = python_bootstrap(None) + f"from cprof.building.server import main; main({listener.fileno()})"
            # LD_BIND_NOW: every symbol the interpreter may call is bound once here, not again in every fork (each
            # fork's first calls into libpython would otherwise resolve them anew: ~7% of the forks' CPU on Lua)
            self.process = subprocess.Popen([sys.executable, "-S", "-c", code], pass_fds=[listener.fileno()],
                                            stdin=subprocess.DEVNULL, env=dict(os.environ, LD_BIND_NOW="1"))
        finally:
            # Only the server holds the socket now: if it dies, clients are refused and run the wrapper themselves
            # instead of waiting on a backlog that nobody reads.
            listener.close()
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
        if self.enabled:
            shutil.rmtree(self.directory, ignore_errors=True)


def main(listener_fd: int) -> None:
    listener = socket.socket(fileno=listener_fd)
    # Loaded once here, shared by every fork: what each compiler call would otherwise import again.
    import cprof.building.wrapper  # noqa: F401
    import cprof.instrument.unit  # noqa: F401
    from pycparser import c_parser

    c_parser.CParser().parse("int x;")
    try:
        serve(listener)
    except (KeyboardInterrupt, SystemExit):
        pass
