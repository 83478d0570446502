"""Finds the function definitions of a scanned unit with pycparser, as offsets into the original text."""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

from pycparser import c_ast, c_parser

from cprof.instrument.skips import FORBIDDING_ATTRIBUTES
from cprof.instrument.scan import IDENTIFIER, ScannedUnit, ascii_identifier, blank, identifier_text


@dataclass
class ParsedFunction:
    name: str
    name_offset: int  # where the declarator names the function
    body_offset: int  # the body's `{`
    storage: list[str]
    funcspec: list[str]
    # from this definition, and from earlier declarations that carry one the skips read (see _without_plain_...)
    attributes: list[str] = field(default_factory=list)
    # the parameters' names, to pass them on (None: a parameter without a name, or `...`); whether it returns void
    parameters: list[str] | None = None
    returns_void: bool = False


class ParseError(Exception):
    """pycparser rejected the sanitised unit; the message names the unit line:column."""

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(f"{line}:{column}: {message}" if line else message)
        self.message, self.line, self.column = message, line, column


def _attribute_words(attribute_lists: list[str]) -> list[str]:
    words = []
    for text in attribute_lists:
        for raw in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
            word = raw.strip("_") if raw.startswith("__") and raw.endswith("__") else raw
            words.append(word)
    return words


# pycparser's lexer steps over blanks one character at a time in Python, and the sanitised copy is mostly blanks
# (bodies, comments, line markers): squeezing each run to one space first saves a fifth of the parse (sqlite3.c:
# 2.35 s -> 1.85 s). Lines stay put, so only columns need mapping back (`_Squeezed.offset`).
_BLANK_RUN = re.compile(r"[ \t]{2,}")


class _Squeezed:
    """The sanitised copy with every run of blanks squeezed to one space, and the way back to original offsets."""

    def __init__(self, unit: ScannedUnit, sanitized: str):
        self.unit = unit
        self.sanitized = sanitized
        self.text = _BLANK_RUN.sub(" ", sanitized)

    def offset(self, line: int, column: int) -> int:
        """Offset in the original text of a 1-based line:column of the squeezed text."""
        start = self.unit.line_starts[line - 1]
        end = self.unit.line_starts[line] if line < len(self.unit.line_starts) else len(self.sanitized)
        at = column - 1  # 0-based column in the squeezed line; becomes the original one as runs are passed
        for run in _BLANK_RUN.finditer(self.sanitized, start, end):
            if run.start() - start >= at:
                break
            at += run.end() - run.start() - 1
        return start + at


class SegmentStore(Protocol):
    """Where what a header segment declares is kept between units (cprof/building/cache.py keeps it on disk)."""

    def load_segment(self, key: str) -> dict | None: ...

    def store_segment(self, key: str, entry: dict) -> None: ...


# Bumped whenever what a segment entry holds, or how it is read, changes.
_SEGMENT_FORMAT = "segment-1"
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_NOT_BLANK = re.compile(r"\S")


@dataclass
class _Segment:
    """The lines of one header between two line markers: the unit of reuse. A Lua unit holds ~460 of them, and
    its 34 units hold only 649 different ones between them."""

    first_line: int  # 1-based unit line of its first text line
    end_line: int  # exclusive
    start: int  # offsets in the unit
    end: int
    key: str = ""


@dataclass
class _Item:
    """A file-scope declaration that matters here: a function declared (its attributes count for the definition)
    or defined. Offsets in the unit."""

    offset: int
    name: str
    body_offset: int = -1  # -1: a declaration
    storage: list[str] = field(default_factory=list)
    funcspec: list[str] = field(default_factory=list)
    parameters: list[str] | None = None
    returns_void: bool = False


def _header_segments(unit: ScannedUnit) -> list[_Segment]:
    """Segments from any file but the unit's own source that start and end between file-scope declarations (so
    that what they declare does not depend on the text around them)."""
    if not unit.markers:
        return []
    main_file, lines = unit.markers[0].file, len(unit.line_starts)
    segments = []
    for index, marker in enumerate(unit.markers):
        end_line = unit.markers[index + 1].unit_line - 1 if index + 1 < len(unit.markers) else lines + 1
        if marker.file == main_file or end_line <= marker.unit_line:
            continue
        start = unit.line_starts[marker.unit_line - 1]
        end = unit.line_starts[end_line - 1] if end_line <= lines else len(unit.text)
        if not _NOT_BLANK.search(unit.sanitized, start, end):
            continue  # nothing there to parse or to keep
        before = bisect.bisect_right(unit.item_ends, start - 1) - 1
        last_inside = bisect.bisect_left(unit.item_ends, end) - 1
        previous_end = unit.item_ends[before] + 1 if before >= 0 else 0
        if _NOT_BLANK.search(unit.sanitized, previous_end, start) or last_inside < 0 or \
                unit.item_ends[last_inside] < start or _NOT_BLANK.search(unit.sanitized, unit.item_ends[last_inside] + 1, end):
            continue
        digest = hashlib.sha256(f"{_SEGMENT_FORMAT}\0{marker.file}\0".encode())
        digest.update(unit.text[start:end].encode("utf-8", "surrogateescape"))
        segments.append(_Segment(marker.unit_line, end_line, start, end, digest.hexdigest()))
    return segments


def _stubbed_text(squeezed: _Squeezed, reused: list[tuple[_Segment, dict]]) -> str:
    """The squeezed copy with every reused segment emptied, its typedef names declared on its first line instead:
    every other line stays where it was, so coordinates still map back to the unit. Only names that the text left
    to parse mentions are declared: the others cannot change how it parses, and declaring every typedef of glibc
    and the project's headers made up two fifths of what pycparser read (Lua: 15k of 37k tokens)."""
    lines = squeezed.text.split("\n")
    for segment, _entry in reused:
        for line in range(segment.first_line - 1, segment.end_line - 1):
            lines[line] = ""
    mentioned = set(_IDENTIFIER.findall("\n".join(lines)))
    for segment, entry in reused:
        typedefs = [name for name in entry["typedefs"] if name in mentioned]
        if typedefs:  # one declaration for them all: a fifth of the parse time of one per name
            lines[segment.first_line - 1] = f"typedef int {', '.join(typedefs)};"
    return "\n".join(lines)


def _with_stubbed_typedefs(typedefs: list[tuple[int, str]], reused: list[tuple[_Segment, dict]]) -> list[tuple[int, str]]:
    """The typedef names in effect by line: those pycparser saw, and every one a reused segment declares (whether
    or not its stub had to declare it), at the segment's first line."""
    stub_lines = {segment.first_line for segment, _ in reused}
    merged = [(line, name) for line, name in typedefs if line not in stub_lines]
    merged += [(segment.first_line, name) for segment, entry in reused for name in entry["typedefs"]]
    return sorted(merged)


_ERROR_AT = re.compile(r"<unit>:(\d+):(\d+):\s*(.*)", re.DOTALL)


def _parse_text(text: str):
    parser = c_parser.CParser()
    try:
        return parser.parse(text, "<unit>")
    except c_parser.ParseError as error:
        message = str(error)
        located = _ERROR_AT.match(message)
        if located:
            raise ParseError(located.group(3), int(located.group(1)), int(located.group(2))) from None
        message = message.replace("<unit>:", "", 1).strip()
        # Some of pycparser's messages ("Invalid expression") carry no position: the token it stopped at does.
        try:
            token = parser._peek()
            line, column = (token.lineno, token.column) if token is not None else (0, 0)
        except AttributeError:  # pycparser's internals changed: the unit then fails without a position
            line, column = 0, 0
        raise ParseError(message, line, column) from None


def _typedefs_by_line(ast) -> list[tuple[int, str]]:
    return [(item.coord.line, item.name) for item in ast.ext if isinstance(item, c_ast.Typedef)]


def _items(ast, squeezed: _Squeezed, reused_lines: set[int]) -> list[_Item]:
    items = []
    for item in ast.ext:
        if isinstance(item, c_ast.Decl) and isinstance(item.type, c_ast.FuncDecl) and item.name:
            if item.coord.line not in reused_lines:
                items.append(_Item(squeezed.offset(item.coord.line, item.coord.column), item.name))
        elif isinstance(item, c_ast.FuncDef):
            decl = item.decl
            offset = squeezed.offset(decl.coord.line, decl.coord.column)
            items.append(_Item(offset, _original_name(squeezed.unit.text, offset, decl.name),
                               squeezed.offset(item.body.coord.line, item.body.coord.column),
                               list(decl.storage), list(decl.funcspec), *_signature(decl.type)))
    return items


def _is_void(node) -> bool:
    return (isinstance(node, c_ast.TypeDecl) and isinstance(node.type, c_ast.IdentifierType)
            and node.type.names == ["void"])


def _signature(function_type: c_ast.FuncDecl) -> tuple[list[str] | None, bool]:
    """(its parameters' names, or None where they cannot all be passed on by name; whether it returns void)."""
    returns_void = _is_void(function_type.type)
    params = function_type.args.params if function_type.args else []
    if len(params) == 1 and isinstance(params[0], c_ast.Typename) and _is_void(params[0].type):
        return [], returns_void
    names = []
    for param in params:
        if not isinstance(param, (c_ast.Decl, c_ast.ID)) or not param.name:  # `...`, or a type without a name
            return None, returns_void
        names.append(param.name)
    return names, returns_void


def _original_name(text: str, offset: int, parsed_name: str) -> str:
    """The name's characters: pycparser read a copy in which extended characters were made ASCII."""
    if "_" not in parsed_name:
        return parsed_name
    written = IDENTIFIER.match(text, offset)
    if written and written.group() != parsed_name and ascii_identifier(written.group()) == parsed_name:
        return identifier_text(written.group())
    return parsed_name


class _TypedefLines:
    """Where each typedef name is first declared, to answer "which of these names are typedefs above line N"."""

    def __init__(self, typedefs: list[tuple[int, str]]):
        self.first: dict[str, int] = {}
        for line, name in typedefs:
            if line < self.first.get(name, line + 1):
                self.first[name] = line

    def typedefs_above(self, names, line: int) -> set[str]:
        first = self.first
        return {name for name in names if first.get(name, line) < line}


_TYPEDEF_WORD = re.compile(r"\btypedef\b")


def _without_plain_declarations(unit: ScannedUnit) -> str:
    """The sanitised copy with the main file's plain declarations blanked: those that declare no typedef name and
    carry no attribute the skip decisions read. pycparser then reads only what finds definitions (definitions,
    typedefs, declarations with such attributes): on Lua, the main files' own prototypes and variables were most
    of what it parsed once headers were reused. A unit with a K&R definition is left whole: its parameter
    declarations look like plain declarations."""
    text = unit.sanitized
    if not unit.markers:
        return text
    main_file = unit.markers[0].file
    marker_starts = [m.start for m in unit.markers]
    closes = {body.close_offset for body in unit.bodies.values()}
    for body in unit.bodies.values():
        before = body.open_offset - 1
        while before >= 0 and text[before] in " \t\n":
            before -= 1
        if before >= 0 and text[before] == ";" and \
                unit.source_position(unit.line_of(body.open_offset))[0] == main_file:
            return text  # K&R
    pieces, at = [], 0
    previous_end = -1
    for end in unit.item_ends:
        start, previous_end = previous_end + 1, end
        if end in closes or text[end] != ";":
            continue
        first_marker = bisect.bisect_left(marker_starts, start)
        if first_marker < len(marker_starts) and marker_starts[first_marker] <= end:
            continue  # the declaration crosses a line marker: another file is involved
        if unit.source_position(unit.line_of(start))[0] != main_file or _TYPEDEF_WORD.search(text, start, end):
            continue
        if any(word in attribute for attribute in unit.attributes_of_item(end) for word in FORBIDDING_ATTRIBUTES):
            continue
        pieces.append(text[at:start])
        pieces.append(blank(text[start:end + 1]))
        at = end + 1
    pieces.append(text[at:])
    return "".join(pieces)


@dataclass
class Repair:
    """A file-scope item pycparser could not read, left out of the parse so that the rest of the unit is still
    instrumented: what was there and what became of it."""

    offset: int  # where the item starts in the unit
    message: str  # pycparser's
    function: str = ""  # a definition: the name read from its declarator ("" when none could be)
    unnamed_definition: bool = False  # a definition whose name could not be read: that function is lost
    typedefs: list[str] = field(default_factory=list)  # a typedef: the names declared in its stead


# Repairs tried per unit before giving up on it (each one parses the unit again).
_MAX_REPAIRS = 20
# The name a definition's declarator gives, when it is the plain `name (parameters)` form (attributes are blanks
# by now); K&R parameter declarations may follow.
_PLAIN_DECLARATOR = re.compile(
    r"([A-Za-z_$][\w$]*)\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)(?:[^;{}()]*;)*\s*$")
_TYPEDEF_NAME = re.compile(r"\(\s*\*+\s*(?:const\s+|volatile\s+|restrict\s+)*([A-Za-z_$][\w$]*)\s*\)"
                           r"|([A-Za-z_$][\w$]*)\s*(?:\[[^\]]*\]\s*)*(?=[,;])")


def _repair(unit: ScannedUnit, text: str, error: ParseError, squeezed: _Squeezed, repairs: list[Repair],
            recovered: list[_Item]) -> str:
    """`text` with the item pycparser stopped in left out: blanked, a definition kept as a recovered item when its
    name can be read, a typedef's names declared in its place. Raises the error when nothing can be done."""
    if not error.line:
        raise error
    offset = squeezed.offset(error.line, error.column)
    index = bisect.bisect_left(unit.item_ends, offset)
    if index >= len(unit.item_ends):  # not inside an item the scanner saw: nothing to leave out
        raise error
    start, end = (unit.item_ends[index - 1] + 1 if index > 0 else 0), unit.item_ends[index]
    item = text[start:end + 1]
    lead = len(item) - len(item.lstrip())  # where its first token is: the copy blanks comments and markers
    if repairs and repairs[-1].offset == start + lead:  # the same item again: stop, this is not converging
        raise error
    repair = Repair(start + lead, error.message)
    body = next((b for b in unit.bodies.values() if b.close_offset == end), None)
    replacement = blank(item)
    if body is not None:
        head = text[start:body.open_offset]
        declarator = _PLAIN_DECLARATOR.search(head)
        if declarator:
            words = set(_IDENTIFIER.findall(head[:declarator.start()]))
            repair.function = declarator.group(1)
            recovered.append(_Item(start + declarator.start(1), declarator.group(1), body.open_offset,
                                   [w for w in ("static", "extern") if w in words],
                                   ["inline"] if "inline" in words else []))
        else:
            repair.unnamed_definition = True
    elif _TYPEDEF_WORD.search(item):
        names = [a or b for a, b in _TYPEDEF_NAME.findall(item[_TYPEDEF_WORD.search(item).end():])]
        stub = f"typedef int {', '.join(names)};" if names else ""
        if len(stub) > len(item[lead:].split("\n", 1)[0]):
            raise error  # no room on its line to declare them without moving anything
        replacement = replacement[:lead] + stub + replacement[lead + len(stub):]
        repair.typedefs = names
    repairs.append(repair)
    return text[:start] + replacement + text[end + 1:]


def _parse_repairing(unit: ScannedUnit, text: str) -> tuple:
    """(ast, its _Squeezed, repairs, recovered definitions): pycparser on the text, leaving out item after item it
    cannot read, so that one declaration it does not know never costs the unit's other functions."""
    repairs: list[Repair] = []
    recovered: list[_Item] = []
    first_error = None
    while True:
        squeezed = _Squeezed(unit, text)
        try:
            return _parse_text(squeezed.text), squeezed, repairs, recovered
        except ParseError as error:
            first_error = first_error or error  # what the user is shown if the unit cannot be saved
            if len(repairs) >= _MAX_REPAIRS:
                raise first_error from None
            try:
                text = _repair(unit, text, error, squeezed, repairs, recovered)
            except ParseError:
                raise first_error from None


class ParsedUnit(list):
    """The unit's function definitions (ParsedFunction, in unit order), the items left out of the parse, and the
    functions of the program's own headers that other units define (other_units_functions)."""

    def __init__(self, functions: list[ParsedFunction], repairs: list[Repair],
                 other_units_functions: frozenset[str] = frozenset()):
        super().__init__(functions)
        self.repairs = repairs
        self.other_units_functions = other_units_functions


def parse(unit: ScannedUnit, store: SegmentStore | None = None) -> ParsedUnit:
    """The unit's function definitions. With a store, header segments seen in an earlier unit are not parsed
    again: their typedef names stand in for them (the only thing C's grammar needs from a declaration above), and
    their function declarations and definitions come from the store. A reuse is checked against what the
    segment relied on when it was parsed (which of its names were typedefs); any doubt parses it all."""
    squeezed = _Squeezed(unit, _without_plain_declarations(unit))
    segments = _header_segments(unit) if store else []
    reused = [(s, e) for s in segments if (e := store.load_segment(s.key)) is not None] if store else []
    ast, items, typedefs, repairs = None, [], [], []
    if reused:
        reused_lines = {s.first_line for s, _ in reused}
        try:
            ast = _parse_text(_stubbed_text(squeezed, reused))
        except ParseError:
            ast = None
        if ast is not None:
            typedefs = _with_stubbed_typedefs(_typedefs_by_line(ast), reused)
            lines = _TypedefLines(typedefs)
            if all(len(lines.typedefs_above(e["typedef_uses"], s.first_line)) == len(e["typedef_uses"])
                   for s, e in reused):
                items = _items(ast, squeezed, reused_lines)
                for segment, entry in reused:
                    items += [_Item(segment.start + i["offset"], i["name"], segment.start + i["body_offset"]
                                    if i["body_offset"] >= 0 else -1, i["storage"], i["funcspec"],
                                    i["parameters"], i["returns_void"])
                              for i in entry["items"]]
            else:
                ast = None
    if ast is None:
        reused = []
        ast, squeezed, repairs, recovered = _parse_repairing(unit, squeezed.sanitized)
        items = _items(ast, squeezed, set()) + recovered
        typedefs = _typedefs_by_line(ast)
    items.sort(key=lambda i: i.offset)
    if store:
        # a segment with an item left out is not kept: the next unit parses it again and says so again
        reused_keys = {s.key for s, _ in reused}
        fresh = [s for s in segments if s.key not in reused_keys
                 and not any(s.start <= r.offset < s.end for r in repairs)]
        _store_segments(unit, store, fresh, typedefs, items)
    return ParsedUnit(_functions(unit, items), repairs, _other_units_functions(unit, items))


def _store_segments(unit: ScannedUnit, store: SegmentStore, parsed: list[_Segment], typedefs: list[tuple[int, str]],
                    items: list[_Item]) -> None:
    """What each newly parsed header segment declares, positions relative to its start, for the next unit."""
    offsets = [i.offset for i in items]
    lines = _TypedefLines(typedefs)
    for segment in parsed:
        names = set(_IDENTIFIER.findall(unit.sanitized, segment.start, segment.end))
        inside = items[bisect.bisect_left(offsets, segment.start):bisect.bisect_left(offsets, segment.end)]
        store.store_segment(segment.key, {
            "typedefs": [name for line, name in typedefs if segment.first_line <= line < segment.end_line],
            "typedef_uses": sorted(lines.typedefs_above(names, segment.first_line)),
            "items": [{"offset": i.offset - segment.start, "name": i.name,
                       "body_offset": i.body_offset - segment.start if i.body_offset >= 0 else -1,
                       "storage": i.storage, "funcspec": i.funcspec, "parameters": i.parameters,
                       "returns_void": i.returns_void} for i in inside],
        })


def _other_units_functions(unit: ScannedUnit, items: list[_Item]) -> frozenset[str]:
    """Functions declared external in the program's own headers and not defined here: what another unit of the
    program may define. Not a name a system header declares too (a project's own prototype of `memcpy` is still
    libc's, and a builtin), nor an inline one (C99's inline definitions have no symbol of their own)."""
    defined, system, declared = set(), set(), set()
    for item in items:
        if item.body_offset >= 0:
            defined.add(item.name)
        elif unit.source_position(unit.line_of(item.offset))[2]:
            system.add(item.name)
        elif "static" not in item.storage and "inline" not in item.funcspec:
            declared.add(item.name)
    return frozenset(declared - defined - system)


def _functions(unit: ScannedUnit, items: list[_Item]) -> list[ParsedFunction]:
    """Definitions in unit order, each with the attributes written on it and on the declarations above it."""
    declared: dict[str, list[str]] = {}
    functions = []
    defined = {item.name for item in items if item.body_offset >= 0}  # only their declarations matter
    for item in items:
        if item.body_offset < 0:
            if item.name in defined:
                declared.setdefault(item.name, []).extend(_attribute_words(unit.attributes_of_item(item.offset)))
            continue
        own = _attribute_words(unit.attributes_of_item(item.body_offset))
        functions.append(ParsedFunction(name=item.name, name_offset=item.offset, body_offset=item.body_offset,
                                        storage=item.storage, funcspec=item.funcspec,
                                        attributes=own + declared.get(item.name, []), parameters=item.parameters,
                                        returns_void=item.returns_void))
    return functions
