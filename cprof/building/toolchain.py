"""Where cprof's runtime and headers are installed, and how to find the user's real compiler."""

from __future__ import annotations

import os

from cprof.errors import CprofError, EXIT_SETUP

RUNTIME_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_runtime")
INCLUDE_DIR = os.path.join(RUNTIME_DIR, "include")
GUARD_HEADER = os.path.join(INCLUDE_DIR, "cprof_guard.h")
SHARED_RUNTIME = os.path.join(RUNTIME_DIR, "libcprofrt.so")
STATIC_RUNTIME = os.path.join(RUNTIME_DIR, "libcprofrt.a")
GUARD_ARCHIVE = os.path.join(RUNTIME_DIR, "libcprofguard.a")  # the guard's fast paths (csrc/guard_fast.c)
BUILD_CLIENT = os.path.join(RUNTIME_DIR, "cprof-build-client")  # what the shims run (cprof/building/server.py)


def check_installed() -> None:
    for path in (GUARD_HEADER, SHARED_RUNTIME, STATIC_RUNTIME, GUARD_ARCHIVE, BUILD_CLIENT):
        if not os.path.exists(path):
            raise CprofError(f"cprof's runtime is missing ({path}); reinstall with 'pip install .'", EXIT_SETUP)


# What a -static link routes through the runtime's heap tracking (csrc/heap_wrapped.c): libc.a defines these itself,
# so the program's calls and libc's own (strdup, fopen) reach the runtime through the linker's --wrap instead.
HEAP_FUNCTIONS = ("malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "aligned_alloc", "posix_memalign",
                  "valloc", "pvalloc", "malloc_usable_size")


def runtime_link_args(static: bool) -> list[str]:
    """Linked once into every final executable and shared library. The shared runtime keeps one copy per process
    however many instrumented libraries it loads; each executable and library gets its own hidden copy of the
    guard's fast paths, so that guarded calls reach them directly; -static links get one archive of both."""
    if static:
        # -u: libc.a's members come after the runtime in the link, and may be the only callers of malloc
        wraps = ",".join(f"--wrap={name}" for name in HEAP_FUNCTIONS)
        return ["-Wl," + wraps, "-Wl,-u,__wrap_malloc", STATIC_RUNTIME, "-pthread"]
    return [GUARD_ARCHIVE, "-L" + RUNTIME_DIR, "-Wl,-rpath," + RUNTIME_DIR, "-lcprofrt", "-pthread"]


def find_real_compiler(name: str, avoid_dir: str | None = None) -> str | None:
    """The first `name` on PATH that is not one of our own shims."""
    if os.path.isabs(name):
        return name
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or (avoid_dir and os.path.realpath(directory) == os.path.realpath(avoid_dir)):
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    import shutil  # rarely reached: the compiler wrapper imports this module on every compile

    return shutil.which(name)
