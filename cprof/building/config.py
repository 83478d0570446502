"""The protocol between `cprof build` and the compiler wrappers it starts: the environment variables that carry a
build's settings into every compiler call, and the WrapperConfig a wrapper reads from them."""

from __future__ import annotations

import json
import os

from cprof.building.cache import default_cache_dir
from cprof.building.toolchain import find_real_compiler

# The build driver talks to wrapper processes through these variables (README, "Environment").
ENV_REAL_CC = "CPROF_REAL_CC"
ENV_BUILD_LOG = "CPROF_BUILD_LOG"
ENV_FILTER = "CPROF_FILTER"
ENV_SHADOW_ROOT = "CPROF_SHADOW_ROOT"
ENV_PROJECT_ROOT = "CPROF_PROJECT_ROOT"
ENV_CACHE_DIR = "CPROF_CACHE_DIR"
ENV_SHIM_DIR = "CPROF_SHIM_DIR"
ENV_INLINE_GUARD = "CPROF_INLINE_GUARD"  # set by --inline-guard: the fast paths inline in every function
ENV_OFF_COPIES = "CPROF_OFF_COPIES"  # set by --off-copies: plain copies to run switched off (instrument/offcopy.py)
ENV_CXX_DRIVER = "CPROF_CXX_DRIVER"  # set by the c++/g++ shims: link the runtime, never touch C++ compiles


class WrapperConfig:
    def __init__(self, real_compiler: str, log_path: str | None = None, function_filter=None,
                 shadow_root: str = "", project_root: str = "", cache_dir: str | None = None,
                 cxx_driver: bool = False, filter_spec: dict | None = None, inline_guard: bool = False,
                 off_copies: bool = False):
        self.real_compiler = real_compiler
        self.inline_guard = inline_guard
        self.off_copies = off_copies
        self.log_path = log_path
        self.shadow_root = shadow_root
        self.project_root = project_root
        self.cache_dir = cache_dir
        self.cxx_driver = cxx_driver
        self.colour = False  # ask the compiler for colours: its messages pass through a pipe to a terminal
        self.filter_spec = filter_spec or {}
        self._function_filter = None
        if function_filter is not None:
            self.function_filter = function_filter

    @classmethod
    def from_environment(cls, real_compiler: str | None) -> "WrapperConfig":
        env = os.environ
        name = real_compiler or env.get(ENV_REAL_CC) or "cc"
        real = find_real_compiler(name, env.get(ENV_SHIM_DIR)) or name
        cache_dir = env.get(ENV_CACHE_DIR)
        return cls(
            real_compiler=real,
            log_path=env.get(ENV_BUILD_LOG) or None,
            filter_spec=json.loads(env[ENV_FILTER]) if env.get(ENV_FILTER) else {},
            shadow_root=env.get(ENV_SHADOW_ROOT, ""),
            project_root=env.get(ENV_PROJECT_ROOT, ""),
            cache_dir=None if cache_dir == "off" else (cache_dir or default_cache_dir()),
            cxx_driver=bool(env.get(ENV_CXX_DRIVER)),
            inline_guard=bool(env.get(ENV_INLINE_GUARD)),
            off_copies=bool(env.get(ENV_OFF_COPIES)),
        )

    @property
    def function_filter(self):
        """The --fn/--file filters, built only when a unit is parsed (a cache hit needs only filter_key)."""
        if self._function_filter is None:
            from cprof.instrument.filters import FunctionFilter

            spec = {k: tuple(v) if isinstance(v, list) else v for k, v in self.filter_spec.items()}
            self._function_filter = FunctionFilter(**spec)
        return self._function_filter

    @function_filter.setter
    def function_filter(self, value) -> None:
        self._function_filter = value
        self.filter_spec = dict(vars(value))

    def filter_key(self) -> str:
        """The filters (and whether units get plain copies) as cache-key text: the same for a FunctionFilter and
        the environment's JSON of it."""
        spec = {k: v for k, v in self.filter_spec.items() if v}
        if self.off_copies:
            spec["(off copies)"] = True
        return json.dumps(spec, sort_keys=True)

    def to_user_paths(self, data: bytes) -> bytes:
        """Compiler messages from a shadow tree, pointed back at the user's own files."""
        if not self.shadow_root or not data:
            return data
        return data.replace(self.shadow_root.encode(), self.project_root.encode())

    def log(self, event: dict) -> None:
        if not self.log_path:
            return
        line = json.dumps(event, separators=(",", ":")) + "\n"
        # one O_APPEND write per event: parallel wrappers never interleave within a line
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
