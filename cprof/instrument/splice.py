"""Writes the guard into the original preprocessed text: the site tables, and one declaration per body (a timing
guard, or for a count-only function a counter: see __cprof_count in csrc/cprof_guard.h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The same declaration csrc/calibration.c calibrates with (tests/test_scan.py checks the two agree).
GUARD = (
    "int __cprof_guard __attribute__((cleanup(__cprof_leave), unused)) = "
    "__cprof_enter(&__cprof_sites[{index}], &__cprof_guard);"
)


# A nested function's guard has a name of its own: one that shadowed the enclosing function's guard would warn
# under -Wshadow (and -Werror would then break the user's build).
NESTED_GUARD = GUARD.replace("__cprof_guard ", "__cprof_guard_nested{index} ").replace(
    "&__cprof_guard)", "&__cprof_guard_nested{index})")
# A count-only function: one increment through the unit's thread-local block pointer; no frame, no cleanup.
COUNT_GUARD = ("int __cprof_counted __attribute__((unused)) = "
               "__cprof_count(&__cprof_count_block, &__cprof_count_table, {index});")
# A count-only function that calls itself: its counter striped by recursion depth (__cprof_count_striped).
STRIPED_COUNT_GUARD = COUNT_GUARD.replace("__cprof_count(", "__cprof_count_striped(")
STRIPED_SLOTS = 13  # as CPROF_COUNT_STRIPED_SLOTS in csrc/cprof_guard.h
# What a unit with count-only functions declares beside its site table: the table, the thread-local pointer to the
# thread's counters (until the runtime hands them out, the unit's early counters: calls made before the runtime
# starts), and the registration that has the runtime set that pointer in every thread (csrc/counts.c).
COUNT_TABLE = ("static struct __cprof_count_table __cprof_count_table = {{{count}u, 0u, __cprof_count_sites}}; "
               "static struct __cprof_counter __cprof_count_early[{count}]; "
               "static __thread struct __cprof_counter *__cprof_count_block __attribute__((tls_model(\"initial-exec\"))) = "
               "__cprof_count_early; "
               "static struct __cprof_counter **__cprof_count_block_here(void) {{ return &__cprof_count_block; }} "
               "__attribute__((constructor)) static void __cprof_count_register(void) "
               "{{ __cprof_register_counts(&__cprof_count_table, __cprof_count_block_here, __cprof_count_early); }} "
               "__attribute__((destructor)) static void __cprof_count_unregister(void) "
               "{{ __cprof_unregister_counts(&__cprof_count_table); }}")
FN_COUNTED, FN_STRIPED = 8, 16  # as CPROF_FN_COUNTED, CPROF_FN_STRIPED in csrc/runfile.h


class Appendix(Protocol):
    """What follows the unit (offcopy.OffCopies), with a declaration that joins the site table."""

    def table_declaration(self) -> str: ...

    def text(self, unit_text: str) -> str: ...


@dataclass
class Site:
    name: str
    file: str
    line: int
    flags: int
    body_offset: int  # the `{` the guard follows (or the `;` of the body's leading __label__ declarations)
    nested: bool = False  # a GCC nested function (see NESTED_GUARD)
    counted: bool = False  # only counted (COUNT_GUARD): flags carry FN_COUNTED
    recursive: bool = False  # its body calls it by name: if counted, striped (STRIPED_COUNT_GUARD, FN_STRIPED)
    dispatch: str = ""  # a timed function with a plain copy: the declaration that jumps there when off (offcopy.py)

    @property
    def striped(self) -> bool:
        return self.counted and self.recursive

    @property
    def slots(self) -> int:
        """The entries it takes in its table: a striped count's every counter is an entry (the same function)."""
        return STRIPED_SLOTS if self.striped else 1


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


def _entries(sites: list[Site]) -> str:
    return ", ".join(", ".join([f"{{{c_string(s.name)}, {c_string(s.file)}, {s.line}u, {s.flags}u, 0, 0}}"] * s.slots)
                     for s in sites)


def site_table(sites: list[Site]) -> str:
    """The timed sites' table, and the count-only sites' table with what counting needs, for those there are."""
    timed = [s for s in sites if not s.counted]
    counted = [s for s in sites if s.counted]
    parts = []
    if timed:
        parts.append(f"static struct __cprof_site __cprof_sites[{len(timed)}] = {{{_entries(timed)}}};")
    if counted:
        slots = sum(s.slots for s in counted)
        parts.append(f"static struct __cprof_site __cprof_count_sites[{slots}] = {{{_entries(counted)}}}; "
                     + COUNT_TABLE.format(count=slots))
    return " ".join(parts)


def site_indexes(sites: list[Site]) -> list[int]:
    """Each site's index in its own table (timed or counted)."""
    next_index = {False: 0, True: 0}
    indexes = []
    for site in sites:
        indexes.append(next_index[site.counted])
        next_index[site.counted] += site.slots
    return indexes


def guard_text(site: Site, index: int) -> str:
    """What is inserted after the site's body_offset (a space, then the declaration); `index` in its table."""
    template = (STRIPED_COUNT_GUARD if site.striped else COUNT_GUARD if site.counted
                else NESTED_GUARD if site.nested else GUARD)
    return " " + (site.dispatch + " " if site.dispatch else "") + template.format(index=index)


def splice(text: str, sites: list[Site], table_offset: int, appendix: Appendix | None = None) -> str:
    """Inserts the table at `table_offset` and each guard right after its body's `{`, on the same line. At a
    line's end (its newline) the table joins that line; at a line's start it is a line of its own. The appendix
    (plain copies), if any, follows the unit."""
    pieces = []
    at = 0
    table = " ".join(part for part in (site_table(sites), appendix and appendix.table_declaration()) if part)
    inserts = [(table_offset, " " + table if text[table_offset] == "\n" else table + "\n")]
    inserts += [(s.body_offset + 1, guard_text(s, i)) for s, i in zip(sites, site_indexes(sites))]
    for offset, insert in sorted(inserts, key=lambda pair: pair[0]):
        pieces.append(text[at:offset])
        pieces.append(insert)
        at = offset
    pieces.append(text[at:])
    if appendix:
        pieces.append(appendix.text(text))
    return "".join(pieces)
