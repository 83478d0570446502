"""A synced shadow copy of the user's project, where their build runs through the compiler wrapper: their sources
and normal build outputs are never written, and unchanged files keep their times so rebuilds stay incremental."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

# Outputs of the user's own normal build must not be copied: make would find them up to date and never
# build (so never instrument) them in the shadow.
_BUILD_OUTPUT_SUFFIXES = (".o", ".a", ".so", ".lo", ".la", ".obj", ".gcda", ".gcno", ".pyc")
_SKIPPED_DIRS = frozenset((".git", ".hg", ".svn", "CMakeFiles", "__pycache__", ".cprof"))  # .cprof: a run store
_SKIPPED_FILES = frozenset(("CMakeCache.txt",))
# What CMake writes into each directory of its build tree (the one with a CMakeFiles/ beside it). Copied into the
# shadow they would point the shadow build at the user's own tree (they hold absolute paths), so an in-source
# CMake build of the user's is left out like any other build output.
_CMAKE_GENERATED = frozenset(
    """Makefile cmake_install.cmake CTestTestfile.cmake build.ninja rules.ninja .ninja_deps .ninja_log
    compile_commands.json CPackConfig.cmake CPackSourceConfig.cmake install_manifest.txt
    DartConfiguration.tcl""".split()
)


# What marks the top of a project: its version control, or else the files a top-level build starts from.
_VERSION_CONTROL = (".git", ".hg", ".svn", ".bzr", "_darcs", ".fossil")
_BUILD_FILES = ("Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "configure", "configure.ac", "meson.build",
                "Makefile.am", "Makefile.in", "build.ninja", "SConstruct")


def project_root(folder: str) -> str:
    """The project a build started in `folder` belongs to: a subfolder's build usually reaches up into the rest of
    the project (zstd's programs/Makefile includes ../lib/libzstd.mk), so the whole project is shadowed. That is
    the version-control root above `folder`, else the highest folder of the unbroken line of parents that hold
    build files; never the file system's root or the home folder itself."""
    folder = os.path.realpath(folder)
    stop = {os.path.sep, os.path.realpath(os.path.expanduser("~"))}
    path = folder
    while path not in stop:
        if any(os.path.exists(os.path.join(path, marker)) for marker in _VERSION_CONTROL):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    root = folder
    while (parent := os.path.dirname(root)) not in stop and parent != root and \
            any(os.path.isfile(os.path.join(parent, name)) for name in _BUILD_FILES):
        root = parent
    return root


@dataclass
class SyncStats:
    copied: int = 0
    removed: int = 0
    unchanged: int = 0


def _named_like_build_output(name: str) -> bool:
    return name.endswith(_BUILD_OUTPUT_SUFFIXES) or ".so." in name


def _is_build_output(path: str, name: str) -> bool:
    if _named_like_build_output(name):
        return True
    try:
        if os.access(path, os.X_OK):
            with open(path, "rb") as handle:
                return handle.read(4) == b"\x7fELF"
    except OSError:
        pass
    return False


def _walk(root: str, exclude: set[str]):
    """(path relative to `root`, its entry, its kind: "file", "link" or "dir") of everything the shadow holds.
    Folders are named too: an empty one may be what a build checks for (jq's Makefile.am requires
    modules/oniguruma, a git submodule left empty in its release tree)."""
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, relative)))
        except OSError:
            continue
        names = {entry.name for entry in entries}
        if relative and "CMakeCache.txt" in names:
            continue  # a CMake build directory of the user's: all of it is build output
        cmake_output = "CMakeFiles" in names
        for entry in entries:
            rel = os.path.join(relative, entry.name) if relative else entry.name
            full = os.path.join(root, rel)
            if full in exclude or entry.name in _SKIPPED_DIRS and entry.is_dir(follow_symlinks=False):
                continue
            if cmake_output and entry.name in _CMAKE_GENERATED:
                continue
            if entry.is_symlink():
                if not _named_like_build_output(entry.name):  # libz.so -> libz.so.1 of an in-place build
                    yield rel, entry, "link"
            elif entry.is_dir():
                stack.append(rel)
                yield rel, entry, "dir"
            elif entry.is_file() and entry.name not in _SKIPPED_FILES and not _is_build_output(full, entry.name):
                yield rel, entry, "file"


def sync_tree(source: str, shadow: str, exclude: list[str]) -> SyncStats:
    """Make `shadow` hold every source file of `source` as it is now; files the shadow build made are kept."""
    stats = SyncStats()
    state_path = shadow.rstrip("/") + ".state.json"
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    previous = state.get("files", {})
    if state.get("source") != source and os.path.isdir(shadow):
        # a store shared by several projects (CPROF_HOME): the shadow of another one is no start for this one
        shutil.rmtree(shadow)
        previous = {}
    excluded = {os.path.realpath(p) for p in exclude}
    current: dict[str, list] = {}
    os.makedirs(shadow, exist_ok=True)
    for rel, entry, kind in _walk(source, excluded):
        target = os.path.join(shadow, rel)
        if kind == "dir":
            current[rel] = ["dir"]
            if not os.path.isdir(target) or os.path.islink(target):
                if os.path.lexists(target):
                    os.remove(target)
                os.makedirs(target)
            continue
        if kind == "link":
            link = os.readlink(entry.path)
            current[rel] = ["link", link]
            if previous.get(rel) != current[rel] or not os.path.lexists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    os.remove(target)
                os.symlink(link, target)
                stats.copied += 1
            continue
        st = entry.stat()
        current[rel] = [st.st_size, st.st_mtime_ns]
        if previous.get(rel) == current[rel] and os.path.exists(target):
            stats.unchanged += 1
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target) and (os.path.islink(target) or os.path.isdir(target)):
            shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) else os.remove(target)
        shutil.copy2(entry.path, target)
        stats.copied += 1
    # deleted from the project since the last sync: files, then folders, deepest first (one the shadow build
    # wrote into is not empty, and stays)
    for rel in sorted(set(previous) - set(current), key=lambda rel: (previous[rel] == ["dir"], -rel.count(os.sep))):
        target = os.path.join(shadow, rel)
        if previous[rel] == ["dir"]:
            try:
                os.rmdir(target)
                stats.removed += 1
            except OSError:
                pass
        elif os.path.lexists(target) and not os.path.isdir(target):
            os.remove(target)
            stats.removed += 1
    with open(state_path, "w", encoding="utf-8") as handle:
        json.dump({"source": source, "files": current}, handle)
    return stats
