"""Writes the guard into the original preprocessed text: the site table, and one declaration per body."""

from __future__ import annotations

from dataclasses import dataclass

# The same declaration runtime.c calibrates with (tests/test_scan.py checks the two agree).
GUARD = (
    "int __cprof_guard __attribute__((cleanup(__cprof_leave), unused)) = "
    "__cprof_enter(&__cprof_sites[{index}], &__cprof_guard);"
)


# A nested function's guard has a name of its own: one that shadowed the enclosing function's guard would warn
# under -Wshadow (and -Werror would then break the user's build).
NESTED_GUARD = GUARD.replace("__cprof_guard ", "__cprof_guard_nested{index} ").replace(
    "&__cprof_guard)", "&__cprof_guard_nested{index})")


@dataclass
class Site:
    name: str
    file: str
    line: int
    flags: int
    body_offset: int  # the `{` the guard follows (or the `;` of the body's leading __label__ declarations)
    nested: bool = False  # a GCC nested function (see NESTED_GUARD)


def c_string(text: str) -> str:
    out = ['"']
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127 and char != "?":  # "?" escaped too: no trigraphs under -trigraphs
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def site_table(sites: list[Site]) -> str:
    entries = ", ".join(f"{{{c_string(s.name)}, {c_string(s.file)}, {s.line}u, {s.flags}u, 0, 0}}" for s in sites)
    return f"static struct __cprof_site __cprof_sites[{len(sites)}] = {{{entries}}};"


def guard_text(site: Site, index: int) -> str:
    """What is inserted after the site's body_offset (a space, then the declaration)."""
    return " " + (NESTED_GUARD if site.nested else GUARD).format(index=index)


def splice(text: str, sites: list[Site], table_offset: int) -> str:
    """Inserts the table at `table_offset` and each guard right after its body's `{`, on the same line. At a
    line's end (its newline) the table joins that line; at a line's start it is a line of its own."""
    pieces = []
    at = 0
    table = site_table(sites)
    inserts = [(table_offset, " " + table if text[table_offset] == "\n" else table + "\n")]
    inserts += [(s.body_offset + 1, guard_text(s, i)) for i, s in enumerate(sites)]
    for offset, insert in sorted(inserts, key=lambda pair: pair[0]):
        pieces.append(text[at:offset])
        pieces.append(insert)
        at = offset
    pieces.append(text[at:])
    return "".join(pieces)
