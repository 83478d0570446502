"""Profiling a C library in-process from Python: a session loads libraries built instrumented (`cprof build` of a
shared library), calls their functions through libffi (csrc/ffi_call.c, csrc/binding.c) with the prototypes of
their header, and stores what the calls recorded as a run, like a program's.

    with cprof.session() as s:
        z = s.load_library("libz.so", header="zlib.h")
        z.compress(dst, dst_len, src, len(src))
    s.run.top()

The runtime the libraries carry (libcprofrt.so) is one per process: the first session starts it in its own run
directory, every later one cuts the run there (cprof_session_begin / cprof_session_end in csrc/process.c)."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Sequence

from cprof import _native
from cprof.api import Run
from cprof.building.driver import last_build
from cprof.errors import EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE, CprofError
from cprof.library.prototypes import (Array, CType, Enum, Function, Pointer as PointerType, Record, Scalar,
                                      Unsupported, Void, read_header)
from cprof.library.values import Callback, Pointer, StructValue, member_property
from cprof.model.load import load_view
from cprof.workspace import Store

ARG_CONST, ARG_CHAR = 1, 2
_SCALAR_TYPES: dict[str, tuple] = {}
_lock = threading.Lock()
_runtime: int | None = None  # the handle of the first library that carried the runtime: sessions go through it
_active: "Session | None" = None
_sessions = 0


def _scalar_type(code: str):
    if code not in _SCALAR_TYPES:
        _SCALAR_TYPES[code] = _native.ffi_scalar(code)
    return _SCALAR_TYPES[code]


def _too_big(kind: CType) -> str | None:
    """Why a type cannot be laid out (None when it can)."""
    if isinstance(kind, Unsupported):
        return kind.reason
    if isinstance(kind, Record):
        if kind.fields is None:
            return f"{kind.spelling} is incomplete in the header (only pointers to it can be passed)"
        if kind.problem:
            return kind.problem
        for _, member in kind.fields:
            reason = _too_big(member)
            if reason:
                return reason
    if isinstance(kind, Array):
        return _too_big(kind.element)
    return None


class Library:
    """A loaded library: its functions as attributes (C functions called through libffi), its structs through
    struct(), its function-pointer types through callback()."""

    def __init__(self, session: "Session", path: str, handle: int, header):
        self._session, self._path, self._handle, self._header = session, path, handle, header
        self._records: dict[int, type] = {}
        self._types: dict[int, tuple] = {}

    def __repr__(self) -> str:
        return f"<cprof library {os.path.basename(self._path)}: {len(self._header.functions)} functions declared>"

    def __dir__(self):
        return list(super().__dir__()) + list(self._header.functions)

    @property
    def constants(self) -> dict[str, int]:
        """Every enumerator the header declares."""
        return dict(self._header.constants)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        function = self._header.functions.get(name)
        if function is None:
            if name in self._header.constants:  # an enumerator or an integer macro
                return self._header.constants[name]
            raise AttributeError(f"{os.path.basename(self._header.path)} declares no function or constant '{name}'")
        made = self._function(function)
        setattr(self, name, made)  # the next lookup is a plain attribute
        return made

    # ---- types ----

    def type_named(self, name: str) -> CType:
        from cprof.library.prototypes import _SCALARS
        words = tuple(name.split())
        if words in _SCALARS:
            return Scalar(_SCALARS[words], name)
        if name.endswith("*"):
            return PointerType(self.type_named(name[:-1].strip()), False, name)
        return self._header.type_named(name)

    def ffi_type(self, kind: CType) -> tuple:
        """(libffi type, size, alignment, offsets) of a type that can be laid out."""
        if isinstance(kind, (Scalar, Enum)):
            return (*_scalar_type(kind.code), [])
        if isinstance(kind, PointerType):
            return (*_scalar_type("P"), [])
        if isinstance(kind, Void):
            return (_scalar_type("v")[0], 0, 1, [])
        reason = _too_big(kind)
        if reason:
            raise CprofError(reason, EXIT_USAGE)
        key = id(kind)
        if key not in self._types:
            members, firsts = [], []
            for _, member in kind.fields:
                firsts.append(len(members))
                if isinstance(member, Array):
                    members.extend([self.ffi_type(member.element)[0]] * (member.length or 0))
                else:
                    members.append(self.ffi_type(member)[0])
            if not members:
                raise CprofError(f"{kind.spelling} has no members cprof can lay out", EXIT_USAGE)
            capsule, size, align, offsets = _native.ffi_aggregate(members, kind.kind == "union")
            self._types[key] = (capsule, size, align, [offsets[i] if i < len(offsets) else size for i in firsts])
        return self._types[key]

    def record_class(self, kind: Record) -> type:
        """The StructValue subclass of a struct or union type."""
        if id(kind) not in self._records:
            _, size, _, offsets = self.ffi_type(kind)
            name = kind.spelling.replace("struct ", "").replace("union ", "") or kind.tag
            namespace = {"__slots__": (), "size": size, "ctype": kind,
                         "members": tuple(member for member, _ in kind.fields)}
            cls = type(name, (StructValue,), namespace)
            self._records[id(kind)] = cls
            for (member, member_type), offset in zip(kind.fields, offsets):
                setattr(cls, member, member_property(self, member, member_type, offset))
        return self._records[id(kind)]

    def struct(self, name: str, fields: dict | None = None, /, **named) -> StructValue:
        """A zeroed struct or union value of the type `name` (a typedef name, `struct TAG` or a tag), with the
        given members set."""
        kind = self._header.type_named(name)
        if not isinstance(kind, Record):
            raise CprofError(f"'{name}' is not a struct or union type ({kind.spelling or type(kind).__name__})",
                             EXIT_USAGE)
        return self.record_class(kind)(fields, **named)

    def callback(self, type_name: str | CType, function) -> Callback:
        """A C function pointer of type `type_name` (a function-pointer typedef) that calls `function`. Keep the
        returned object as long as the library may call it."""
        kind = self.type_named(type_name) if isinstance(type_name, str) else type_name
        if isinstance(kind, PointerType):
            kind = kind.target
        if not isinstance(kind, Function):
            raise CprofError(f"'{type_name}' is not a function-pointer type", EXIT_USAGE)
        if not callable(function):
            raise TypeError(f"a callback needs a callable, not {type(function).__name__}")
        if kind.variadic:
            raise CprofError(f"'{type_name}' is variadic: cprof makes no variadic callbacks", EXIT_USAGE)
        label = kind.spelling or str(type_name)
        result = self._spec(kind.result, f"the result of a {label} callback")
        params = tuple(self._spec(t, f"argument {i + 1} ({n}) of a {label} callback", receiving=True)
                       for i, (n, t) in enumerate(kind.params))
        return Callback(_native.ffi_closure(function, result, params), function, label)

    # ---- values the C side hands over ----

    def pointer_value(self, kind: PointerType, address: int):
        return Pointer(address, kind.spelling or "void *", self)

    def pointer_member(self, kind: PointerType, value, name: str) -> tuple[int, object]:
        """(address, what to keep alive) for a pointer member set to `value`."""
        if value is None:
            return 0, None
        if isinstance(value, Pointer):
            return value.address, value
        if isinstance(kind.target, Function) and callable(value):
            made = self.callback(kind.target, value)
            return made.address, made
        if isinstance(value, str) and isinstance(kind.target, Scalar) and kind.target.is_char:
            value = value.encode() + b"\0"
        try:
            return _native.ffi_buffer_address(value, not kind.const_target), value
        except (TypeError, BufferError):
            raise TypeError(f"member '{name}' ({kind.spelling}) takes None, a Pointer, a buffer"
                            f"{' (writable: it is not const)' if not kind.const_target else ''}"
                            f"{', a callable' if isinstance(kind.target, Function) else ''}, not "
                            f"{type(value).__name__}") from None

    # ---- functions ----

    def _spec(self, kind: CType, label: str, receiving: bool = False) -> tuple:
        """What csrc/binding.c needs to pass one value of `kind` to C, or with `receiving` to make one from C (a
        result, a callback's argument): see its struct arg_spec."""
        if isinstance(kind, Array):
            kind = PointerType(kind.element, False, kind.spelling)
        if isinstance(kind, Void):
            return ("v", _scalar_type("v")[0], 0, "", 0, None, None, None, label)
        if isinstance(kind, (Scalar, Enum)):
            names = kind.names if isinstance(kind, Enum) else None
            return (kind.code, _scalar_type(kind.code)[0], 0, "", 0, None, names, None, label)
        if isinstance(kind, Record):
            capsule, size, _, _ = self.ffi_type(kind)
            cls = self.record_class(kind)
            if receiving:
                return ("S", capsule, 0, "", size, cls, None, cls._from_raw, label)
            return ("S", capsule, 0, "", size, cls, None, self._struct_converter(cls, label), label)
        if isinstance(kind, PointerType):
            target = kind.target
            pointer_type = _scalar_type("P")[0]
            if isinstance(target, Function):
                return ("F", pointer_type, 0, "", 0, None, None,
                        (lambda address: self.pointer_value(kind, address) if address else None) if receiving
                        else (lambda function: self.callback(target, function)), label)
            flags = (ARG_CONST if kind.const_target else 0) | (
                ARG_CHAR if isinstance(target, Scalar) and target.is_char else 0)
            pointee, size, expected, names, convert = "", 0, None, None, None
            if isinstance(target, (Scalar, Enum)) and target.code != "g":
                pointee, size = target.code, _scalar_type(target.code)[1]
                names = target.names if isinstance(target, Enum) else None
            elif isinstance(target, PointerType):
                size = 8
            elif isinstance(target, Record) and _too_big(target) is None:
                expected = self.record_class(target)
                size = expected.size
                convert = self._struct_converter(expected, label)
            if receiving:  # a const char * result is a string; any other pointer stays one
                text = flags == ARG_CONST | ARG_CHAR and label.startswith("the result")
                convert = (lambda address: _native.ffi_string(address).decode("utf-8", "replace") if address else None) \
                    if text else (lambda address: self.pointer_value(kind, address) if address else None)
            return ("P", pointer_type, flags, pointee, size, expected, names, convert, label)
        reason = _too_big(kind) or f"'{kind.spelling}' cannot be passed"
        raise CprofError(reason, EXIT_USAGE)

    @staticmethod
    def _struct_converter(cls: type, label: str):
        def convert(value):
            if isinstance(value, dict):
                return cls(value)
            raise TypeError(f"{label} takes a {cls.__name__} (or a dict of its members), not {type(value).__name__}")
        return convert

    def _function(self, function: Function):
        name = os.path.basename(self._header.path)
        if function.variadic:
            raise CprofError(f"{function.signature} is variadic: cprof calls only functions with fixed parameters "
                             "(libffi needs every argument's type)", EXIT_USAGE)
        address = _native.ffi_symbol(self._handle, function.name)
        if address is None:
            raise CprofError(f"{os.path.basename(self._path)} does not define {function.name} (which {name} "
                             "declares)", EXIT_NOT_FOUND)
        try:
            result = self._spec(function.result, f"the result of {function.name}", receiving=True)
            params = tuple(self._spec(t, f"argument {i + 1} of {function.name} ({n}: {t.spelling or '?'})")
                           for i, (n, t) in enumerate(function.params))
        except CprofError as error:
            raise CprofError(f"cannot call {function.name}: {error.message}", EXIT_USAGE) from None
        return _native.ffi_function(address, function.signature, result, params)


def _script() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.basename(path) if path else "<interactive>"


def _find_library(path: str, store: Store) -> str:
    """A path, or the name of a shared library the last `cprof build` linked (its instrumented copy)."""
    if os.path.exists(path):
        return os.path.abspath(path)
    if os.sep not in path:
        try:
            links = [link for link in last_build(store)["links"] if link["kind"] == "shared"]
        except CprofError:
            links = []
        for link in reversed(links):
            if os.path.basename(link["output"]) == path and os.path.exists(link["built"]):
                return link["built"]
    raise CprofError(f"no library {path} (neither a path nor a shared library the last 'cprof build' linked)",
                     EXIT_NOT_FOUND)


class Session:
    """One run of calls into instrumented libraries from this process (see the module's docstring)."""

    def __init__(self, home: str | None = None, tag: str | None = None):
        self.store = Store(home)
        self.tag = tag
        self.entry = None
        self.libraries: list[Library] = []
        self._run: Run | None = None
        self._begun = False
        self._started_ns = 0
        self.number = 0

    def __repr__(self) -> str:
        state = "active" if self.entry is not None and self._run is None else "ended" if self._run else "not started"
        return f"<cprof session {self.number} ({state})>"

    def __enter__(self) -> "Session":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Session":
        global _active, _sessions
        with _lock:
            if _active is not None:
                raise CprofError("another cprof session is active in this process: stop it first (the runtime "
                                 "records one run at a time)", EXIT_USAGE)
            _sessions += 1
            self.number = _sessions
            _active = self
        command = [f"python: session {self.number} of {_script()}"]
        self.entry = self.store.create_run({"command": command, "start_unix": time.time(), "status": "running",
                                           "pid": os.getpid(), "kind": "library-session"})
        self._started_ns = time.monotonic_ns()
        if _runtime is not None:
            self._begin(_runtime)
        return self

    def _begin(self, handle: int) -> None:
        if _native.runtime_session(handle, self.entry.path, -1) != 0:
            raise CprofError(f"the runtime could not start a run in {self.entry.path} (is the store writable? is "
                             "CPROF_DISABLE set?)", EXIT_SETUP)
        self._begun = True

    def _check_active(self) -> None:
        if self.entry is None or self._run is not None:
            raise CprofError("this session is not active: use it inside `with cprof.session() as s:` (or call "
                             "start())", EXIT_USAGE)

    def load_library(self, path: str, header: str | None = None, include_dirs: Sequence[str] | None = (),
                     defines: Sequence[str] | None = ()) -> Library:
        """Loads a library built instrumented (a path, or a shared library's name from the last `cprof build`)
        with the prototypes of `header` (include_dirs and defines as for the compiler)."""
        global _runtime
        self._check_active()
        if header is None:
            raise CprofError("load_library needs the library's header (header=...): its prototypes say how to call "
                             "each function", EXIT_USAGE)
        found = _find_library(path, self.store)
        declarations = read_header(header, [os.path.dirname(os.path.abspath(header)), *(include_dirs or ())],
                                   defines or ())
        try:
            handle = _native.ffi_open(found)
        except OSError as error:
            raise CprofError(f"cannot load {found}: {error}", EXIT_SETUP) from None
        if _native.ffi_symbol(handle, "cprof_session_begin") is None:
            raise CprofError(f"{found} carries no cprof runtime: build it with cprof (cprof build SOURCES -o "
                             "libNAME.so -- -shared -fPIC, or cprof build -- make)", EXIT_USAGE)
        if _runtime is None:
            _runtime = handle
        if not self._begun:
            self._begin(_runtime)
        library = Library(self, found, handle, declarations)
        self.libraries.append(library)
        if "program" not in self.entry.meta:
            self.entry.meta["program"] = os.path.basename(found)
            self.store.save_meta(self.entry)
        return library

    def struct(self, name: str, fields: dict | None = None, /, **named) -> StructValue:
        """A struct value of a type any loaded library's header declares (see Library.struct)."""
        for library in self.libraries:
            try:
                return library.struct(name, fields, **named)
            except CprofError:
                continue
        raise CprofError(f"no loaded library's header declares a struct '{name}'", EXIT_USAGE)

    def pause(self) -> None:
        """Calls from now on are not recorded (the guard costs one branch), until resume()."""
        self._check_active()
        if _runtime is not None and self._begun:
            _native.runtime_session(_runtime, None, 0)

    def resume(self) -> None:
        self._check_active()
        if _runtime is not None and self._begun:
            _native.runtime_session(_runtime, None, 1)

    @contextlib.contextmanager
    def paused(self):
        """`with s.paused(): ...` — calls inside are not recorded."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    def stop(self) -> Run | None:
        """Ends the session's run and stores it; returns it (None when no library was loaded)."""
        global _active
        if self.entry is None or self._run is not None or _active is not self:
            return self._run
        try:
            if self._begun:
                _native.runtime_session(_runtime, None, -1)
            self.entry.meta.update(status="finished", exit_status=0, wall_ns=time.monotonic_ns() - self._started_ns)
            self.store.save_meta(self.entry)
            if not self._begun or not any(n.endswith(".cprof") for n in os.listdir(self.entry.path)):
                self.store.remove([self.entry])
                return None
            if self.tag:
                self.store.tag(self.tag, self.entry.id)
            self._run = Run(load_view(self.store, self.entry.path))
            return self._run
        finally:
            with _lock:
                _active = None

    @property
    def run(self) -> Run:
        """The stored run (the session ends first if it is still active)."""
        if self._run is None:
            if self.entry is None:
                raise CprofError("this session was never started", EXIT_USAGE)
            if self.stop() is None:
                raise CprofError("this session recorded nothing: it loaded no instrumented library",
                                 EXIT_NOT_FOUND)
        return self._run


def session(home: str | None = None, tag: str | None = None) -> Session:
    """A profiling session of calls into instrumented C libraries: `with cprof.session() as s: ...`."""
    return Session(home, tag)


@atexit.register
def _end_active() -> None:
    """A session left open when Python exits still ends its run and stores it."""
    if _active is not None:
        _active.stop()
