"""Dependency files (-MD, -MF ...) as the plain compiler writes them: cprof's force-included guard header is taken
out, so that no rule of the user's build depends on where cprof is installed."""

from __future__ import annotations

import re

from cprof.building.toolchain import GUARD_HEADER

# gcc's dependency writer (libcpp/mkdeps.cc) wraps a rule's names at this column.
_DEPENDENCY_COLUMNS = 72


def _write_rule(targets: list[str], prerequisites: list[str]) -> str:
    """A make rule written exactly as gcc writes one (same wrapping), from names already escaped for make."""
    out, column = [], 0

    def put(name: str) -> None:
        nonlocal column
        if column:
            if column + len(name) > _DEPENDENCY_COLUMNS:
                out.append(" \\\n")
                column = 0
            column += 1
            out.append(" ")
        out.append(name)
        column += len(name)

    for name in targets:
        put(name)
    out.append(":")
    column += 1
    for name in prerequisites:
        put(name)
    return "".join(out) + "\n"


def drop_guard_header(dependency_file: str) -> None:
    """Our -E step force-includes the guard header: take it out of the dependency file, which then holds exactly
    what the plain compiler writes (no rule of the user's build should depend on where cprof is installed)."""
    spelled = GUARD_HEADER.replace("$", "$$").replace(" ", "\\ ").replace("#", "\\#")
    try:
        with open(dependency_file, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError:
        return
    rule = re.match(r"(?:[^\n\\]|\\[^\n]|\\\n)*\n", text)  # the first rule, continuation lines joined
    if not rule or spelled not in rule.group():
        return
    names = re.findall(r"(?:\\.|[^\s\\])+", rule.group().replace("\\\n", " "))
    split = next((i for i, name in enumerate(names) if name.endswith(":")), None)
    if split is None:
        return
    targets = names[:split] + [names[split][:-1]]
    prerequisites = [name for name in names[split + 1:] if name != spelled]
    rest = text[rule.end():].replace(spelled + ":\n", "", 1)  # -MP's phony target for it
    with open(dependency_file, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(_write_rule(targets, prerequisites) + rest)
