"""Compiler messages about an instrumented unit, pointed where they would point without cprof.

The guard is spliced in on the line of a body's `{`, so on that line every column after the brace moves right by
the guard's length: gcc would say `bad.c:1:142` about a 41-character line and draw its caret off the end of the
source line it shows (which it reads from the user's file). The wrapper knows every splice, so it moves such
columns and carets back. (Columns on lines where macros were expanded already differ in any compile of
preprocessed text, with or without cprof: gcc then counts in the expanded text.)"""

from __future__ import annotations

import re

from cprof.instrument.scan import LineMap
from cprof.instrument.splice import Site, guard_text, site_indexes

_TAB_STOP = 8  # gcc's -ftabstop default: display columns expand tabs to it
_ESCAPE = rb"(?:\x1b\[[0-9;]*m\x1b\[K)*"
_LOCATION = re.compile(rb"^(" + _ESCAPE + rb")([^:\n\x1b]+):(\d+):(\d+):")
_SOURCE_LINE = re.compile(rb"^ *\d+ \| ")
_CARET_LINE = re.compile(rb"^( *\| )( *)(" + _ESCAPE + rb")\^(" + _ESCAPE + rb")( *)(" + _ESCAPE + rb")$")


def _display_column(line: str) -> int:
    """1-based display column just past `line` (tabs expanded as gcc does)."""
    column = 0
    for char in line:
        column = (column // _TAB_STOP + 1) * _TAB_STOP if char == "\t" else column + 1
    return column + 1


def guard_shifts(text: str, sites: list[Site], real_path) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """(user's file, line) -> [(display column in the original line where a guard goes, its length)]."""
    unit = LineMap(text)
    shifts: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for site, index in zip(sites, site_indexes(sites)):
        at = site.body_offset + 1
        unit_line = unit.line_of(at)
        file, line, _ = unit.source_position(unit_line)
        start = unit.line_starts[unit_line - 1]
        column = _display_column(unit.text[start:at])
        shifts.setdefault((real_path(file), line), []).append((column, len(guard_text(site, index))))
    for inserts in shifts.values():
        inserts.sort()
    return shifts


def _shift(inserts, column: int) -> int:
    """How far an instrumented column lies right of where the same text is in the original line."""
    moved = 0
    for start, length in inserts:  # each start is in original columns: earlier guards on the line move it
        if column >= start + moved + length:
            moved += length
    return moved


def restore_columns(messages: bytes, shifts: dict, real_path) -> bytes:
    """The compiler's messages with columns (and the carets under the source lines) on guarded lines moved back."""
    if not shifts or not messages:
        return messages
    out, shift = [], 0
    for line in messages.split(b"\n"):
        location = _LOCATION.match(line)
        if location:
            shift = 0
            path = location.group(2).decode(errors="surrogateescape")
            column = int(location.group(4))
            shift = _shift(shifts.get((real_path(path), int(location.group(3))), ()), column)
            if shift:
                line = (line[:location.start(4)] + str(column - shift).encode() + line[location.end(4):])
        elif shift and not _SOURCE_LINE.match(line):
            caret = _CARET_LINE.match(line)
            if caret and len(caret.group(2)) >= shift:
                # the range gcc drew past the end of the line it showed (as blanks) now lies on real text
                underline = b"~" * len(caret.group(5))
                start, colour, reset = len(caret.group(2)) - shift, caret.group(3), caret.group(4)
                line = caret.group(1) + caret.group(2)[shift:] + colour + b"^" + underline + reset + caret.group(6)
                source = _SOURCE_LINE.match(out[-1]) if out and colour else None
                if source:  # in colour, gcc paints that range in the source line too
                    text, end = out[-1][source.end():], start + 1 + len(underline)
                    out[-1] = (out[-1][:source.end()] + text[:start] + colour + text[start:end] + reset
                               + text[end:])
        out.append(line)
    return b"\n".join(out)
