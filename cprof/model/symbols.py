"""Instruction addresses of a run made into functions and source lines: the loaded objects the runtime recorded
(module records), whether each is still the file the run loaded, and binutils' addr2line for inline chains."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

from cprof.errors import CprofWarning


def _base_name(symbol: str) -> str:
    """gcc names split-off copies `name.part.0`, `name.cold`, `name.constprop.0`, `name.isra.0`."""
    return symbol.split(".", 1)[0]


def resolve(ips_by_module: dict[str, set[int]], modules: list[tuple]) -> dict[int, list[tuple[str, str, int]]]:
    """ip -> its inline chain [(function, file, line), ...], innermost first (line 0 when unknown); empty when
    nothing is known (no addr2line, no such file, a stripped object)."""
    chains: dict[int, list[tuple[str, str, int]]] = {}
    tool = shutil.which("addr2line")
    by_path = {module[0]: module[1] for module in modules}
    for path, ips in ips_by_module.items():
        if not tool or not os.path.isfile(path) or not ips:
            continue
        ordered = sorted(ips)
        offsets = "\n".join(hex(ip - by_path[path]) for ip in ordered)
        try:
            output = subprocess.run([tool, "-f", "-i", "-a", "-e", path], input=offsets, capture_output=True,
                                    text=True, errors="replace", timeout=300).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        lines = output.splitlines()
        index, at = -1, 0
        while at < len(lines):
            if lines[at].startswith("0x") and index + 1 < len(ordered):  # the next address begins (-a)
                index += 1
                chains[ordered[index]] = []
                at += 1
                continue
            if index >= 0 and at + 1 < len(lines):
                function, location = lines[at], lines[at + 1]
                if function != "??":
                    file, _, line = location.rpartition(":")
                    number = line.split(" ", 1)[0]  # "12 (discriminator 3)"
                    chains[ordered[index]].append((_base_name(function), file or location,
                                                   int(number) if number.isdigit() else 0))
            at += 2
    return chains


def module_of(ip: int, modules: list[tuple]) -> str | None:
    for path, _base, low, high, *_file in modules:
        if low <= ip < high:
            return path
    return None


def unchanged(module: tuple) -> bool:
    """Whether the object's file is still the one the run loaded (same modification time and size): a rebuilt
    program would resolve the run's instructions to the wrong functions."""
    path, _base, _low, _high, mtime_ns, size = module
    try:
        status = os.stat(path)
    except OSError:
        return False
    return status.st_mtime_ns == mtime_ns and status.st_size == size


_STALE_WARNED: set[tuple[str, str]] = set()  # one warning per file, subject and process


def changed_modules(modules: list[tuple], what: str) -> list[str]:
    """The objects rebuilt since the run (their addresses would resolve to whatever the new build put there),
    with one warning per object and process saying that `what` cannot be resolved."""
    # cprof's own runtime is told by its file name, never by its symbols: a reinstall does not make a run stale
    stale = [m[0] for m in modules if os.path.exists(m[0]) and not unchanged(m)
             and not os.path.basename(m[0]).startswith("libcprofrt")]
    for path in stale[:1]:
        if (path, what) not in _STALE_WARNED:
            _STALE_WARNED.add((path, what))
            warnings.warn(f"{path} changed since the run: {what}", CprofWarning, stacklevel=2)
    return stale
