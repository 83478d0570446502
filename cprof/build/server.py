"""The build server: one warm process per `cprof build` that runs every compiler call of the build in a fork of
itself, so no call pays for starting Python and importing the parser again.

A cold Lua build spent 2 of its 13.6 CPU seconds starting a fresh interpreter and importing the wrapper and
pycparser once per compiler call (scripts/bench_build.py). The shims make the driver's compiler names point at a
small C client (csrc/build_client.c) that hands its call to this server: working directory, arguments,
environment, and its own standard input, output and error as file descriptors. The server forks; the fork becomes
that compiler call exactly as a fresh `cprof cc` process would (it may even exec the real compiler), and the
server sends its exit status back to the client, which exits with it. When no server answers, the client runs the
Python wrapper itself, so the shims work without one.

Protocol (one request per connection): a native-endian u32 length, then that many bytes of NUL-terminated
strings: the working directory, the number of arguments, the arguments, then `NAME=value` environment entries.
The client's fds 0, 1 and 2 ride on the first message (SCM_RIGHTS). The reply is one native-endian i32: the exit
status (128 + N for a call that died of signal N).
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
import traceback

ENV_SERVER = "CPROF_BUILD_SERVER"  # the socket's path, set by the driver for the shims
_LENGTH = struct.Struct("=I")
_STATUS = struct.Struct("=i")
_MAX_REQUEST = 64 << 20  # a compiler call's arguments and environment: far below this


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


def _become_call(fds: list[int], payload: bytes) -> None:
    """In the fork: take on the client's descriptors, directory, environment and arguments, and run the wrapper.
    Never returns."""
    status = 70
    try:
        for target, fd in enumerate(fds):
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
        from cprof.build import wrapper

        wrapper.served_by_build_server = True
        status = wrapper.main()
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # what a crashing `cprof cc` process would print
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status)


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def serve(listener: socket.socket) -> None:
    """Accepts calls until terminated. Children are reaped on SIGCHLD through the wakeup pipe, so one thread
    serves a whole parallel build."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    waiting: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    # Everything imported so far stays shared with the forks: keep the collector from touching (and so copying)
    # those pages in every child.
    gc.freeze()
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                _accept(listener, waiting, (wake_read, wake_write))
            else:
                _drain(wake_read)
        while waiting:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            connection = waiting.pop(pid, None)
            if connection is not None:
                try:
                    connection.sendall(_STATUS.pack(_exit_status(wait_status)))
                except OSError:
                    pass  # the client is gone (make was interrupted): nobody to tell
                connection.close()


def _accept(listener: socket.socket, waiting: dict[int, socket.socket], wake: tuple[int, int]) -> None:
    try:
        connection, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return
    try:
        connection.setblocking(True)
        fds, payload = _read_request(connection)
    except (_BadRequest, OSError, ValueError):
        connection.close()
        return
    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        listener.close()
        connection.close()
        for fd in wake:
            os.close(fd)
        _become_call(fds, payload)
    for fd in fds:
        os.close(fd)
    waiting[pid] = connection


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
            from cprof.build.driver import python_bootstrap

            code = python_bootstrap(None) + f"from cprof.build.server import main; main({listener.fileno()})"
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
    import cprof.build.wrapper  # noqa: F401
    import cprof.instrument.unit  # noqa: F401
    from pycparser import c_parser

    c_parser.CParser().parse("int x;")
    try:
        serve(listener)
    except (KeyboardInterrupt, SystemExit):
        pass
