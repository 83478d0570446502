"""Instruments one preprocessed translation unit: scan, parse, decide per function, splice."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cprof.instrument import offcopy
from cprof.instrument.filters import FunctionFilter
from cprof.instrument.scan import ScanError, ScannedUnit, scan
from cprof.instrument.skips import UNREADABLE, copyable, skip_reason
from cprof.instrument.small import small_leaves
from cprof.instrument.splice import FN_COUNTED, FN_STRIPED, Site, splice

COUNTS_MAX = 4000  # count-only slots per unit, as CPROF_COUNTS_MAX in csrc/runfile.h

if TYPE_CHECKING:
    from cprof.instrument.parse import ParsedUnit, SegmentStore

# Function flags, as in csrc/runfile.h.
FN_STATIC = 1
FN_INLINE = 4

class InstrumentError(Exception):
    """The unit cannot be instrumented; the caller compiles it uninstrumented. Carries the source position."""

    def __init__(self, message: str, file: str = "", line: int = 0):
        super().__init__(message)
        self.file = file
        self.line = line


@dataclass
class FunctionEntry:
    name: str
    file: str
    line: int
    static: bool
    skipped: str | None = None  # the reason, for functions not instrumented


@dataclass
class InstrumentedUnit:
    """What to splice into a unit's text (cacheable: it depends only on the text, filters and paths)."""

    functions: list[FunctionEntry] = field(default_factory=list)
    matched_filters: set[str] = field(default_factory=set)
    sites: list[Site] = field(default_factory=list)
    table_offset: int = 0
    # file-scope items pycparser could not read, left out of the parse: [file, line, what became of it]
    repairs: list[list] = field(default_factory=list)
    copies: offcopy.OffCopies = field(default_factory=offcopy.OffCopies)  # for profiling switched off
    # counted as small leaves (small.py) the learning run called rarely or never: identities file:line:name
    small_unseen: list[str] = field(default_factory=list)

    @property
    def instrumented(self) -> list[FunctionEntry]:
        return [f for f in self.functions if f.skipped is None]

    def apply(self, text: str) -> str:
        return splice(text, self.sites, self.table_offset, self.copies) if self.sites else text


@dataclass(frozen=True)
class PathMap:
    """Turns the paths in line markers into the user's real paths: relative ones are resolved against the
    compiler's working directory, and a shadow build tree is mapped back to the project it mirrors."""

    cwd: str
    shadow_root: str = ""
    project_root: str = ""

    def real(self, path: str) -> str:
        if not path or path.startswith("<"):
            return path
        absolute = os.path.normpath(os.path.join(self.cwd, path))
        if self.shadow_root and (absolute == self.shadow_root or absolute.startswith(self.shadow_root + os.sep)):
            absolute = self.project_root + absolute[len(self.shadow_root):]
        return absolute


def _guard_header_end(unit: ScannedUnit, guard_header: str) -> int:
    """Where the site table goes: at the end of the guard header's last line (just before the line marker that
    leaves the header), so that no line of the unit moves at all. Should that line hold a comment the table
    could fall into, it goes at the start of the marker line instead (a line of its own, which the marker then
    renumbers away)."""
    entered = False
    for marker in unit.markers:
        if not entered:
            entered = marker.file == guard_header
            continue
        if marker.file != guard_header:
            marker_start = unit.line_starts[marker.unit_line - 2]
            last_line = unit.text[unit.line_starts[max(marker.unit_line - 3, 0)] : marker_start]
            return marker_start if "/" in last_line else marker_start - 1
    raise InstrumentError("cprof's guard header is not in the preprocessed unit (was -P or -nostdinc used?)")


def instrument_unit(
    text: str, guard_header: str, paths: PathMap, function_filter: FunctionFilter = FunctionFilter(),
    segments: SegmentStore | None = None, off_copies: bool = False,
) -> InstrumentedUnit:
    """`segments`: where header segments scanned and parsed by earlier units are kept (scan.py, parse.py), or
    None to scan and parse it all."""
    from cprof.instrument.parse import ParseError, parse  # pycparser loads only when a unit is not cached

    try:
        unit = scan(text, segments)
        parsed = parse(unit, segments)
    except ScanError as error:
        raise InstrumentError(f"cannot follow the unit's structure: {error}") from None
    except ParseError as error:
        raise _located(unit, error) from None
    return decide(unit, parsed, guard_header, paths, function_filter, off_copies)


def decide(
    unit: ScannedUnit, parsed: ParsedUnit, guard_header: str, paths: PathMap, function_filter: FunctionFilter,
    off_copies: bool = False,
) -> InstrumentedUnit:
    """Which of the parsed functions get a guard, and where the site table goes; with `off_copies`, which get a
    plain copy for profiling switched off (offcopy.py)."""
    result = InstrumentedUnit()
    copy_candidates = []  # (function, its site or None)
    _note_repairs(unit, parsed, paths, result)
    small = small_leaves(unit.text, {offcopy.written_name(unit.text, f.name_offset): (
        unit.bodies[f.body_offset].open_offset, unit.bodies[f.body_offset].close_offset)
        for f in parsed if f.body_offset in unit.bodies}) if function_filter.learned_file else set()
    for function in parsed:
        file, line, system_header = unit.source_position(unit.line_of(function.name_offset))
        if os.path.dirname(file) == os.path.dirname(guard_header):  # cprof's own headers
            continue
        real_file = paths.real(file)
        entry = FunctionEntry(function.name, real_file, line, static="static" in function.storage)
        entry.skipped = skip_reason(function, system_header, function_filter)
        if entry.skipped is None and function.body_offset not in unit.bodies:
            entry.skipped = "body not found by the scanner"
        if entry.skipped is None and not function_filter.selects(function.name, real_file, result.matched_filters):
            entry.skipped = "not selected by the filters"
        result.functions.append(entry)
        if entry.skipped is not None and function.body_offset in unit.bodies and copyable(function, system_header):
            copy_candidates.append((function, None))
        if entry.skipped is None:
            flags = (FN_STATIC if entry.static else 0) | (FN_INLINE if "inline" in function.funcspec else 0)
            counted = function_filter.counts_only(function.name, real_file, line)
            if not counted and offcopy.written_name(unit.text, function.name_offset) in small and \
                    function_filter.rare_when_learning(function.name, real_file, line):
                counted = True
                result.small_unseen.append(f"{real_file}:{line}:{function.name}")
            recursive = _calls_itself(unit, function.name, unit.bodies[function.body_offset])
            flags |= (FN_COUNTED | (FN_STRIPED if recursive else 0)) if counted else 0
            result.sites.append(Site(function.name, real_file, line, flags,
                                     _guard_after(unit.text, function.body_offset), counted=counted,
                                     recursive=recursive))
            copy_candidates.append((function, result.sites[-1]))
            _nested_sites(unit, unit.bodies[function.body_offset], paths, function_filter, result)
    slots = 0
    for site in (s for s in result.sites if s.counted):
        slots += site.slots
        if slots > COUNTS_MAX:  # a count record must fit one run-file chunk: the rest are timed
            site.counted, site.flags = False, site.flags & ~(FN_COUNTED | FN_STRIPED)
            identity = f"{site.file}:{site.line}:{site.name}"
            if identity in result.small_unseen:
                result.small_unseen.remove(identity)
    if result.sites:
        result.table_offset = _guard_header_end(unit, guard_header)
        if off_copies:
            _plain_copies(unit, copy_candidates, guard_header, result, function_filter,
                          parsed.other_units_functions)
    return result


def _plain_copies(unit: ScannedUnit, candidates: list, guard_header: str, result: InstrumentedUnit,
                  function_filter: FunctionFilter, other_units_functions: frozenset[str]) -> None:
    """A plain copy of the candidates that need one (offcopy.needing_copies: in an adaptive build, those that count
    or call a function that counts in another unit, those that call them and what those call; else every guarded
    one) and can have one, and the jump to it from each timed one whose parameters can be passed on by name."""
    text = unit.text
    names = {offcopy.written_name(text, f.name_offset) for f, _ in candidates}
    calls = {offcopy.written_name(text, f.name_offset): offcopy.names_called(
        text, f.body_offset, unit.bodies[f.body_offset].close_offset, names | other_units_functions)
        for f, _ in candidates}
    counted_elsewhere = {n for n in other_units_functions if function_filter.counts_somewhere(n)}
    seeds = {offcopy.written_name(text, f.name_offset) for f, site in candidates
             if site and (site.counted or not function_filter.adaptive)}
    seeds |= {name for name, called in calls.items() if called & counted_elsewhere}
    if not seeds:
        return
    needed = offcopy.needing_copies(seeds, {name: called & names for name, called in calls.items()})
    copyable = []
    for function, site in candidates:
        body = unit.bodies[function.body_offset]
        if offcopy.written_name(text, function.name_offset) in needed and offcopy.no_copy_reason(
                text, body.open_offset, body.close_offset, function.attributes) is None:
            copyable.append((function, site, offcopy.definition_start(unit.item_ends, function.name_offset), body))
    if not copyable:
        return
    copied = {offcopy.written_name(text, f.name_offset) for f, _, _, _ in copyable}
    copies = result.copies
    copies.header_marker = next(offcopy.line_marker(m.source_line, m.file) for m in unit.markers
                                if m.file == guard_header)
    elsewhere: set[str] = set()
    for function, site, start, body in copyable:
        written = offcopy.written_name(text, function.name_offset)
        file, line, _ = unit.source_position(unit.line_of(start))
        edits, called_elsewhere = offcopy.copy_edits(
            text, function.name_offset, body.open_offset, body.close_offset, written, function.name, copied,
            other_units_functions, function.parameters or [])
        elsewhere |= called_elsewhere
        copies.copies.append(offcopy.OffCopy(
            written, start, body.close_offset + 1, offcopy.line_marker(line, file), edits,
            shared="static" not in function.storage and "inline" not in function.funcspec))
        header = text[start:body.open_offset]
        parameters = function.parameters
        # A counted function never jumps: its calls are too cheap for the jump to pay (Lua's lua_geti, called from
        # another unit, ran 1.23x plain switched off with one, 1.07x without). It is reached through its callers'
        # copies, or else counts.
        if site is None or site.counted or parameters is None or not all(
                re.search(rf"\b{re.escape(p)}\b", header) for p in parameters):
            continue
        noreturn = "noreturn" in function.attributes or "_Noreturn" in function.funcspec
        site.dispatch = offcopy.dispatch(written, len(copies.targets), parameters, function.returns_void, noreturn)
        copies.targets.append(written)
    copies.elsewhere = sorted(elsewhere)


def _calls_itself(unit: ScannedUnit, name: str, body) -> bool:
    """Whether the body names the function before a `(`: a call of itself. A name that means something else there
    (a member, a local that shadows it, text in a string) only costs a striped counter, which counts as exactly."""
    call = re.compile(rf"(?<![\w.>$]){re.escape(name)}\s*\(")
    return call.search(unit.text, body.open_offset, body.close_offset) is not None


def _note_repairs(unit: ScannedUnit, parsed: ParsedUnit, paths: PathMap, result: InstrumentedUnit) -> None:
    """What the parse left out, said in the user's terms. Only a definition of the user's own whose name could not
    be read costs a function; any other item left out costs nothing but its attributes."""
    for repair in getattr(parsed, "repairs", ()):
        file, line, system_header = unit.source_position(unit.line_of(repair.offset))
        real_file = paths.real(file)
        if repair.function:
            outcome = f"the definition of {repair.function} was read from its declarator"
        elif repair.typedefs:
            outcome = f"only the names of its typedef {', '.join(repair.typedefs)} were kept"
        else:
            outcome = "it was left out"
        result.repairs.append([real_file, line, f"pycparser: {repair.message}; {outcome}"])
        if repair.unnamed_definition and not system_header:
            result.functions.append(FunctionEntry(UNREADABLE, real_file, line, static=False,
                                                  skipped=f"declaration not understood (pycparser: {repair.message})"))


# Blanks and comments (each comment matched once: no backtracking across several of them).
_BLANKS = re.compile(r"(?:\s+|/\*(?:[^*]|\*(?!/))*\*/|//[^\n]*)*")
_LOCAL_LABEL = re.compile(r"__label__\b[^;]*;")


def _guard_after(text: str, open_offset: int) -> int:
    """Where the guard goes: right after the body's `{`, unless the block opens with GNU `__label__` declarations,
    which must come before any other declaration: then after the last of them."""
    at = open_offset
    while True:
        label = _LOCAL_LABEL.match(text, _BLANKS.match(text, at + 1).end())
        if not label:
            return at
        at = label.end() - 1


def _nested_sites(unit: ScannedUnit, body, paths: PathMap, function_filter: FunctionFilter,
                  result: InstrumentedUnit) -> None:
    """GCC nested functions inside an instrumented body: static by nature, each measured like any function."""
    for nested in body.nested:
        file, line, _ = unit.source_position(unit.line_of(nested.name_offset))
        real_file = paths.real(file)
        entry = FunctionEntry(nested.name, real_file, line, static=True)
        if not function_filter.selects(nested.name, real_file, result.matched_filters):
            entry.skipped = "not selected by the filters"
        result.functions.append(entry)
        if entry.skipped is None:
            result.sites.append(Site(nested.name, real_file, line, FN_STATIC, _guard_after(unit.text, nested.open_offset),
                                     nested=True))


def _located(unit: ScannedUnit, error: Exception) -> InstrumentError:
    """pycparser's unit line:column, turned into the user's file:line."""
    match = re.match(r"(\d+):(\d+):\s*(.*)", str(error))
    if not match:
        return InstrumentError(f"pycparser: {error}")
    file, line, _ = unit.source_position(int(match.group(1)))
    return InstrumentError(f"pycparser cannot parse it ({match.group(3)})", file, line)
