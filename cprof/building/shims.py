"""The compiler shims a build finds first on PATH: executables named like every compiler a build may call, each
handing its call to the build server's client (or, without a server, to the Python wrapper)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from cprof.building import config as wrapper_env
from cprof.building.bootstrap import python_bootstrap
from cprof.building.toolchain import BUILD_CLIENT, find_real_compiler
from cprof.workspace import read_json, write_json_atomic

_COMPILER_NAMES = ("cc", "gcc", "c89", "c99", "clang")
# C++ drivers get shims too: a C++ program that links our C objects needs the runtime (its compiles pass through).
_CXX_COMPILER_NAMES = ("c++", "g++", "clang++")


def _shim_script(real: str, cache_dir: str | None, cxx: bool) -> str:
    """The client hands the call to the build's server; without one it runs the Python wrapper given here."""
    bootstrap = python_bootstrap(cache_dir) + "from cprof.building.wrapper import main; sys.exit(main())"
    variables = f"{wrapper_env.ENV_REAL_CC}={shlex.quote(real)}"
    if cxx:
        variables += f" {wrapper_env.ENV_CXX_DRIVER}=1"
    fallback = shlex.join([sys.executable, "-S", "-c", bootstrap])
    return (
        "#!/bin/sh\n"
        f"# cprof compiler shim for {real}\n"
        f"{variables} exec {shlex.quote(BUILD_CLIENT)} 4 {fallback} \"$@\"\n"
    )


def _gcc_target(gcc: str, memo_path: str) -> tuple[str, str]:
    """gcc's target triple and major version, asked once per gcc binary (two processes cost a no-op rebuild
    a sixth of its time)."""
    stat = os.stat(gcc)
    identity = f"{os.path.realpath(gcc)}:{stat.st_size}:{stat.st_mtime_ns}"
    memo = read_json(memo_path, {}, tolerate_damage=True)  # a memo: asked again when damaged
    if memo.get("gcc") != identity:
        machine = subprocess.run([gcc, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        major = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True).stdout.strip().split(".")[0]
        memo = {"gcc": identity, "machine": machine, "major": major}
        write_json_atomic(memo_path, memo)
    return memo["machine"], memo["major"]


def _compiler_names(shim_dir: str) -> list[tuple[str, bool]]:
    """(name, is a C++ driver) for every compiler name a build may call: plain names, and the target- and
    version-qualified names of the installed gcc."""
    names = [(n, False) for n in _COMPILER_NAMES] + [(n, True) for n in _CXX_COMPILER_NAMES]
    gcc = find_real_compiler("gcc", shim_dir)
    if gcc:
        machine, major = _gcc_target(gcc, os.path.join(shim_dir, "gcc-target.json"))
        for driver, cxx in (("gcc", False), ("g++", True)):
            names += [(f"{machine}-{driver}", cxx), (f"{driver}-{major}", cxx), (f"{machine}-{driver}-{major}", cxx)]
    return names


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def write_shims(shim_dir: str, cache_dir: str | None) -> list[str]:
    """Executables named like the compilers a build may call, placed first on PATH: this catches Makefiles that
    hard-code `gcc` as well as ones that honour $CC, and CMake or configure finding `cc`."""
    os.makedirs(shim_dir, exist_ok=True)
    written = []
    for name, cxx in _compiler_names(shim_dir):
        real = find_real_compiler(name, shim_dir)
        if not real:
            continue
        path = os.path.join(shim_dir, name)
        script = _shim_script(real, cache_dir, cxx)
        if read_text(path) != script:  # an unchanged shim keeps its time: nothing looks like a new compiler
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(script)
            os.chmod(path, 0o755)
        written.append(name)
    return written
