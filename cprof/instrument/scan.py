"""Position-preserving scan of a preprocessed translation unit: line markers, function bodies, and a sanitised
copy for pycparser.

pycparser understands ISO C only, and raw glibc-preprocessed text fails to parse in every unit. Rather than
rewriting the text (which would change what the compiler sees), we blank what pycparser cannot read in a *copy*:
every replacement has exactly the length of what it replaces and keeps its newlines, so a line:column of the copy
is also one of the original text (parse.py maps pycparser's columns back to it). The guard is then spliced into the
original.

Function bodies are found here by brace matching and blanked to `{   }` in the copy, and so are file-scope
initializers (to `{0}`) and struct and union bodies: pycparser then reads only what tells declarations apart, and
the scanner itself jumps over every such group instead of tokenizing it. On sqlite3.c (8.6 MB preprocessed) this
took the scan from 3.8 s to 0.8 s and pycparser from 7.0 s to 2.0 s (scripts/bench_instrument.py).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import operator
import re
from dataclasses import dataclass, field

# Everything the top-level scan looks at. `other` swallows single punctuation characters so that the previous
# significant token is always known (the heuristics below need it).
_TOKEN = re.compile(
    r"""
    (?P<directive>^[ \t]*\#[^\n]*)
  | (?P<comment>/\*[\s\S]*?\*/|//[^\n]*)
  | (?P<string>(?:L|u8|u|U)?"(?:\\.|[^"\\\n])*")
  | (?P<char>(?:L|u8|u|U)?'(?:\\.|[^'\\\n])*')
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[\w.]|'(?=\w))*)
  | (?P<ident>(?:[A-Za-z_$]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})(?:[\w$]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*)
  | (?P<punct>\.\.\.|&&|\|\||->|[{}()\[\];,=?:])
  | (?P<other>\S)
    """,
    re.MULTILINE | re.VERBOSE,
)

# Inside a function body only braces matter (plus what can hide a brace: literals, comments, directives).
_BODY_TOKEN = re.compile(
    # Every alternative starts with one of a few characters, which lets the regex engine skip the rest fast; a `#`
    # outside a literal or comment can only start a directive (line marker, #pragma) in preprocessed text.
    # A `'` right after a digit is a C23 digit separator (1'000'000), never the start of a character constant.
    r"""[{}]|/\*[\s\S]*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|(?<![0-9])'(?:\\.|[^'\\\n])*'|\#[^\n]*"""
)

# `name (...) {` inside a body: a candidate for a GCC nested function (a cheap first look at every body; most
# matches are compound literals such as the intrinsic headers' `__extension__ (__m128){...}`, which
# _nested_functions then tells apart by what precedes the name).
_NESTED_FUNCTION = re.compile(r"\b([A-Za-z_]\w*)\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\s*\{")
_NOT_A_FUNCTION_NAME = frozenset(
    "if while for switch return sizeof _Alignof __alignof__ __typeof__ typeof __attribute__ do else case "
    "__extension__ __typeof _Generic typeof_unqual __typeof_unqual__ __builtin_choose_expr alignof".split()
)
# A nested function's name follows its return type (a word that is not one of these) or a `*`.
_NOT_A_TYPE_WORD = frozenset(
    "return case goto sizeof else do __extension__ _Alignof alignof __alignof__ defined".split()
)
_LITERAL_OR_COMMENT = re.compile(r"""/\*[\s\S]*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|(?<![0-9])'(?:\\.|[^'\\\n])*'""")
_WORD_BEFORE = re.compile(r"([A-Za-z_$][\w$]*|\*)\s*$")

# Bumped whenever what a scanned include's entry holds, or how the scanner reads, changes.
_SCAN_INCLUDE_FORMAT = "scan-include-2"

# A marker is found after its line's newline: a pattern that starts with a literal is searched for fast (sqlite3's
# 8.6 MB: 4x faster than a `^` anchor). The unit's first line gets a newline in front of it (see _markers).
_LINE_MARKER = re.compile(r'\n#(?:line)? *(\d+) +"((?:\\.|[^"\\])*)"((?: +\d+)*)[ \t]*$', re.MULTILINE)

# GNU spellings of ISO keywords: replaced by the ISO word padded with spaces.
_RESPELL = {
    "__inline__": "inline", "__inline": "inline",
    "__restrict__": "restrict", "__restrict": "restrict",
    "__const__": "const", "__const": "const",
    "__volatile__": "volatile", "__volatile": "volatile",
    "__signed__": "signed", "__signed": "signed",
    "__complex__": "_Complex", "__alignof__": "sizeof", "__alignof": "sizeof", "_Alignof": "sizeof",
    "__auto_type": "int",
}
# Types pycparser does not know: any type keeps a declaration parseable (we never use the parsed types).
_AS_TYPE = {
    "__int128": "long", "__int128_t": "long", "__uint128_t": "long",
    "_Float128": "double", "_Float64": "double", "_Float32": "double", "_Float16": "double",
    "_Float128x": "double", "_Float64x": "double", "_Float32x": "double", "__float128": "double",
    "__float80": "double", "__ibm128": "double", "_Decimal32": "double", "_Decimal64": "double",
    "_Decimal128": "double", "__builtin_va_list": "int", "__fp16": "double", "__bf16": "double",
}
# C23 keywords. Before C23 these words are macros (stdbool.h, stdalign.h, assert.h...) that preprocessing has
# already replaced, so what is left of them can only be the user's own identifiers: they are read as keywords only
# in units compiled as C23 (the guard header names the unit's __STDC_VERSION__, see _is_c23).
_C23_RESPELL = {"bool": "int", "true": "1", "false": "0", "nullptr": "0", "alignof": "sizeof"}
_C23_BLANK_WORD = frozenset(("constexpr", "thread_local"))
_C23_BLANK_WITH_PARENS = frozenset(("alignas", "static_assert"))
_C23_TYPEOF = frozenset(("typeof_unqual",))
_STD_VERSION = re.compile(r"\b__cprof_stdc_(\d+)L\b")
_BLANK_WORD = frozenset("__extension__ __thread _Thread_local __real__ __imag__ __seg_fs __seg_gs".split())
_BLANK_WITH_PARENS = frozenset("__attribute__ __attribute _Alignas __declspec _Static_assert".split())
_ASM = frozenset("__asm__ __asm asm".split())
_ASM_QUALIFIERS = frozenset("volatile __volatile__ __volatile goto inline __inline__ __inline".split())
_EXPRESSION_WITH_TYPES = frozenset(
    "__builtin_va_arg __builtin_offsetof __builtin_types_compatible_p __builtin_convertvector "
    "__builtin_shufflevector __builtin_has_attribute _Generic".split()
)
# Type specifiers with a parenthesised operand: each becomes `int`.
_TYPEOF = frozenset("typeof __typeof__ __typeof __typeof_unqual__ __typeof_unqual _BitInt".split())
_ENDS_OPERAND = frozenset(("ident", "number", "string", "char", ")", "]"))


@dataclass(slots=True)
class LineMarker:
    unit_line: int  # 1-based line of the text that follows the marker
    source_line: int
    file: str
    system_header: bool
    start: int = 0  # offset of the marker line
    end: int = 0  # offset of the line after it
    enters: bool = False  # flag 1: the first line of an included file
    returns: bool = False  # flag 2: back in the file that included one


@dataclass
class NestedFunction:
    """A GCC nested function: a definition inside another function's body."""

    name: str
    name_offset: int
    open_offset: int
    close_offset: int


@dataclass
class Body:
    open_offset: int  # the `{`
    close_offset: int  # the matching `}`
    nested: list[NestedFunction] = field(default_factory=list)


@dataclass
class ScannedUnit:
    text: str
    sanitized: str
    bodies: dict[int, Body]  # by open_offset
    markers: list[LineMarker]
    attributes: list[tuple[int, str]]  # (offset, text of __attribute__((...))) for skip decisions
    item_ends: list[int]  # offsets of each `;` and body `}` that ends a file-scope item
    line_starts: list[int] = field(repr=False)
    _marker_lines: list[int] = field(repr=False, default_factory=list)
    _attribute_offsets: list[int] = field(repr=False, default_factory=list)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def source_position(self, unit_line: int) -> tuple[str, int, bool]:
        """(file, line, from a system header) that a line of the unit came from, per the line markers."""
        return _source_position(self.markers, self._marker_lines, unit_line)

    def attributes_of_item(self, offset: int) -> list[str]:
        """The attribute lists written in the file-scope declaration that contains `offset`."""
        index = bisect.bisect_left(self.item_ends, offset)
        start = self.item_ends[index - 1] if index > 0 else -1
        end = self.item_ends[index] if index < len(self.item_ends) else len(self.text)
        first = bisect.bisect_right(self._attribute_offsets, start)
        last = bisect.bisect_left(self._attribute_offsets, end)
        return [text for _, text in self.attributes[first:last]]



class LineMap:
    """Where each line of a preprocessed text came from, without scanning it (the wrapper's diagnostics need
    only this)."""

    def __init__(self, text: str):
        self.text = text
        self.line_starts = _line_starts(text)
        self.markers = _markers(text)
        self._marker_lines = [m.unit_line for m in self.markers]

    line_of = ScannedUnit.line_of
    source_position = ScannedUnit.source_position


def _source_position(markers: list[LineMarker], marker_lines: list[int], unit_line: int) -> tuple[str, int, bool]:
    index = bisect.bisect_right(marker_lines, unit_line) - 1
    if index < 0:
        return ("", unit_line, False)
    marker = markers[index]
    return (marker.file, marker.source_line + unit_line - marker.unit_line, marker.system_header)


class ScanError(Exception):
    """The unit's structure could not be followed (unbalanced braces, say)."""


def _unescape(path: str) -> str:
    return re.sub(r"\\(.)", r"\1", path) if "\\" in path else path


def _line_starts(text: str) -> list[int]:
    lines = text.split("\n")
    return list(itertools.accumulate(map((1).__add__, map(len, lines[:-1])), initial=0))


def _markers(text: str) -> list[LineMarker]:
    markers = []
    first = _LINE_MARKER.match("\n" + text[: text.find("\n") + 1 or len(text)])
    matches = itertools.chain([first] if first else [], _LINE_MARKER.finditer(text))
    line, counted = 1, 0  # the 1-based line at offset `counted`: markers come in order, so count newlines once
    for index, match in enumerate(matches):
        start, end = (0, match.end() - 1) if index == 0 and first else (match.start() + 1, match.end())
        line += text.count("\n", counted, start)
        counted = start
        file, flags = match.group(2), match.group(3)
        markers.append(LineMarker(line + 1, int(match.group(1)), _unescape(file) if "\\" in file else file,
                                  "3" in flags, start, min(end + 1, len(text)), "1" in flags, "2" in flags))
    return markers


_NOT_NEWLINE = re.compile(r"[^\n]+")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]|\\")
_UNIVERSAL_CHARACTER = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")
# An identifier as the preprocessed text may spell it: extended characters as UTF-8 or as \u/\U escapes.
IDENTIFIER = re.compile(r"(?:[A-Za-z_$]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})(?:[\w$]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*")


def ascii_identifier(name: str) -> str:
    """The identifier as pycparser can read it: each non-ASCII letter and escape backslash made `_` (same length,
    so no column moves)."""
    return _NOT_ASCII.sub("_", name)


def identifier_text(name: str) -> str:
    """The identifier's characters, universal character names decoded (`caf\\u00e9` is `café`)."""
    if "\\" not in name:
        return name
    return _UNIVERSAL_CHARACTER.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), name)


def blank(text: str) -> str:
    """Spaces of the same length, newlines kept (parse.py blanks declarations with it too)."""
    if "\n" not in text:
        return " " * len(text)
    return _NOT_NEWLINE.sub(lambda run: " " * (run.end() - run.start()), text)


class _Copy:
    """The sanitised copy, built as a list of edits over the original: (start, end, replacement), where a
    replacement of None blanks the text (the usual edit, computed only when the copy is built)."""

    def __init__(self, text: str):
        self.text = text
        self.edits: list[tuple[int, int, str | None]] = []

    def replace(self, start: int, end: int, word: str = "") -> None:
        """Blanks text[start:end], writing `word` at its start, or at the first place in it where `word` covers
        no newline (a blanked initializer may begin with one); no room leaves it blank."""
        if not word:
            self.edits.append((start, end, None))
            return
        original = self.text[start:end]
        replacement = blank(original)
        at, size = 0, len(word)
        while at + size <= len(original) and "\n" in original[at : at + size]:
            at = original.index("\n", at) + 1
        if at + size <= len(original):
            replacement = replacement[:at] + word + replacement[at + size :]
        self.edits.append((start, end, replacement))

    def build(self) -> str:
        pieces, at, text = [], 0, self.text
        for start, end, replacement in sorted(self.edits, key=operator.itemgetter(0, 1)):
            if start < at:  # overlapping edits: the first one wins
                continue
            pieces.append(text[at:start])
            pieces.append(blank(text[start:end]) if replacement is None else replacement)
            at = end
        pieces.append(text[at:])
        return "".join(pieces)


def _closing(tokens: re.Pattern, text: str, at: int, opener: str, closer: str, depth: int = 0) -> re.Match:
    """The token that closes the group `depth` openers deep at `at` (0: the group opening at `at` itself), reading
    with `tokens` so that literals and comments are stepped over."""
    for match in tokens.finditer(text, at):
        token = match.group()
        if token == opener:
            depth += 1
        elif token == closer:
            depth -= 1
            if depth == 0:
                return match
    raise ScanError(f"no {closer} closes the {opener} at offset {at}")


def _match_body(text: str, open_offset: int) -> int:
    return _closing(_BODY_TOKEN, text, open_offset, "{", "}").start()


def _nested_functions(text: str, body: Body) -> list[NestedFunction]:
    """The nested functions in a body, at any depth. pycparser never reads a body (the copy blanks it), so they
    cost the enclosing function nothing: each gets a guard of its own."""
    inner = text[body.open_offset + 1 : body.close_offset]
    if not _NESTED_FUNCTION.search(inner):
        return []
    base = body.open_offset + 1
    code = _LITERAL_OR_COMMENT.sub(lambda m: blank(m.group()), inner)  # a string or comment is not code
    found = []
    for match in _NESTED_FUNCTION.finditer(code):
        name = match.group(1)
        before = _WORD_BEFORE.search(code[max(0, match.start() - 64) : match.start()])
        if name in _NOT_A_FUNCTION_NAME or name.startswith("__builtin") or before is None \
                or before.group(1) in _NOT_A_TYPE_WORD or before.group(1) in _NOT_A_FUNCTION_NAME:
            continue
        open_offset = base + match.end() - 1
        found.append(NestedFunction(name, base + match.start(1), open_offset, _match_body(text, open_offset)))
    return found


class _Scanner:
    """One pass over the file-scope tokens of a unit. Every brace group at file scope (function body, struct or
    union body, initializer) is matched with the cheap `_BODY_TOKEN` pattern and jumped over: nothing inside one
    can change how file-scope declarations read, and bodies are nearly all of a unit's text."""

    def __init__(self, text: str, store=None, includes: dict[int, tuple[int, int]] | None = None,
                 c23: bool = False, keep_structs: bool = False):
        self.text = text
        self.keep_structs = keep_structs  # cprof/library/ reads the members: they are sanitised, not blanked
        self.c23 = c23
        self.respell = _RESPELL | _C23_RESPELL if c23 else _RESPELL
        self.blank_words = _BLANK_WORD | _C23_BLANK_WORD if c23 else _BLANK_WORD
        self.blank_with_parens = _BLANK_WITH_PARENS | _C23_BLANK_WITH_PARENS if c23 else _BLANK_WITH_PARENS
        self.typeof = _TYPEOF | _C23_TYPEOF if c23 else _TYPEOF
        self.store = store
        self.includes = includes or {}  # by the offset of the marker that enters a header: its text's span
        self.recordings: list[_Recording] = []  # includes being recorded, the innermost (first to end) last
        self.copy = _Copy(text)
        self.bodies: dict[int, Body] = {}
        self.attributes: list[tuple[int, str]] = []
        self.item_ends: list[int] = []
        self.paren_stack: list[tuple[int, str]] = []  # (offset of "(", kind of the token before it)
        self.brace_depth = 0
        self.previous = ""  # kind of the previous significant token: "ident", ")", ";", ...
        self.previous_words = ("", "")  # texts of the two previous significant tokens, the last one second
        self.before_paren = ""  # for ")": the kind of the token before its matching "("

    def run(self) -> None:
        at: int | None = 0
        while at is not None:
            at = self._scan_from(at)
        if self.brace_depth != 0 or self.paren_stack:
            raise ScanError("unbalanced braces or parentheses at the end of the unit")

    def _scan_from(self, at: int) -> int | None:
        """Handles tokens from `at` on; returns where to go on when a region was swallowed, None at the end."""
        self._read_up_to(at - 1)  # a region swallowed up to `at` may have run past an include's end
        recordings, includes = self.recordings, self.includes
        for match in _TOKEN.finditer(self.text, at):
            kind = match.lastgroup
            token = match.group()
            if kind == "directive" and (recordings or includes):
                start = match.start()
                if recordings and recordings[-1].end == start:
                    self._finish_include()
                self.copy.replace(start, match.end())
                if start in includes:
                    jump = self._enter_include(start)
                    if jump is not None:
                        return jump
                continue
            if kind == "directive" or kind == "comment":
                self.copy.replace(match.start(), match.end())
                continue
            if kind == "ident":
                jump = self._ident(match, token)
            elif kind == "punct":
                jump = self._punct(match, token)
            else:
                if kind == "number" and "'" in token:  # digit separators: pycparser knows none
                    self.copy.replace(match.start(), match.end(), "0")
                self._note(kind, token)
                continue
            if jump is not None:
                return jump
        return None

    def _note(self, kind: str, token: str) -> None:
        self.previous = kind if kind in ("ident", "number", "string", "char") else token
        self.previous_words = (self.previous_words[1], token)

    def _next_token(self, start: int):
        for match in _TOKEN.finditer(self.text, start):
            if match.lastgroup not in ("comment", "directive"):
                self._read_up_to(match.start())  # what an include does may depend on the text after it
                return match
        return None

    # ---- headers seen in earlier units ----
    # The text a header's #include brought in, scanned from a clean file-scope state, always scans the same way:
    # its results (edits of the copy, bodies, attributes, item ends, and the state it leaves) are kept by that text
    # and the entry state, and replayed instead of scanned in the next unit. Lua's units hold 93% of their
    # file-scope tokens in headers, and most of their includes expand to the same text in every unit. A whole
    # include is one lookup; includes nested in it are looked up only when it is new.

    def _entry_state(self) -> tuple:
        """What of the scanner's state the tokens ahead can depend on (see _ident, _punct, _file_scope_group)."""
        words = self.previous_words
        return (self.previous, words[1] in ("struct", "union"),
                self.previous == "ident" and words[0] in ("struct", "union"),
                self.before_paren if self.previous == ")" else "")

    def _read_up_to(self, offset: int) -> None:
        """The scan has read text up to `offset`: includes being recorded that end before it cannot be kept."""
        recordings = self.recordings
        while recordings and recordings[-1].end <= offset:
            recordings.pop()

    def _finish_include(self) -> None:
        """At the marker that leaves the innermost include being recorded: keeps what its scan did, if clean."""
        recording = self.recordings.pop()
        if self._clean():
            self.store.store_segment(recording.key, recording.entry(self))

    def _enter_include(self, marker_start: int) -> int | None:
        """After a marker that enters a header: replays what its include did in an earlier unit, or starts
        recording it. Returns where to go on after a replay (the marker that leaves it)."""
        start, end = self.includes[marker_start]
        if not self._clean() or end <= start:
            return None
        digest = hashlib.sha256(f"{_SCAN_INCLUDE_FORMAT}\0{self._entry_state()!r}\0{self.c23}\0".encode())
        digest.update(self.text[start:end].encode("utf-8", "surrogateescape"))
        key = digest.hexdigest()
        entry = self.store.load_segment(key)
        if entry is None:
            self.recordings.append(_Recording(self, key, start, end))
            return None
        self._replay(entry, start)
        return end

    def _clean(self) -> bool:
        return self.brace_depth == 0 and not self.paren_stack

    def _replay(self, entry: dict, start: int) -> None:
        self.copy.edits.extend((start + a, start + b, replacement) for a, b, replacement in entry["edits"])
        for open_offset, close_offset, nested in entry["bodies"]:
            self.bodies[start + open_offset] = Body(start + open_offset, start + close_offset, nested)
        self.attributes.extend((start + offset, text) for offset, text in entry["attributes"])
        self.item_ends.extend(start + offset for offset in entry["item_ends"])
        self.previous, words, self.before_paren = entry["state"]
        self.previous_words = tuple(words)

    def _balanced_end(self, start: int) -> int:
        """End offset of the parenthesised group starting at the first "(" at or after `start`."""
        return _closing(_TOKEN, self.text, start, "(", ")").end()

    def _ident(self, match, token: str) -> int | None:
        start, end = match.span()
        copy = self.copy
        if not token.isascii() or "\\" in token:  # UTF-8 or \u escapes (gcc -E writes the latter): pycparser
            copy.replace(start, end, ascii_identifier(token))  # knows neither
        elif token in self.respell:
            copy.replace(start, end, self.respell[token])
        elif token in _AS_TYPE:
            copy.replace(start, end, _AS_TYPE[token])
        elif token in self.blank_words:
            copy.replace(start, end)
            return None
        elif token in self.blank_with_parens or token in _ASM:
            after = self._next_token(end)
            while token in _ASM and after is not None and after.group() in _ASM_QUALIFIERS:
                after = self._next_token(after.end())
            if after is None or after.group() != "(":
                if token in _ASM:  # `asm` as an ordinary identifier (strict ISO modes)
                    self._note("ident", token)
                return None
            close = self._balanced_end(after.start())
            if token.startswith("__attribute"):
                self.attributes.append((start, self.text[after.start() : close]))
            copy.replace(start, close)
            return close
        elif token in self.typeof or token in _EXPRESSION_WITH_TYPES:
            after = self._next_token(end)
            if after is not None and after.group() == "(":
                close = self._balanced_end(after.start())
                is_type = token in self.typeof
                copy.replace(start, close, "int" if is_type else "0")
                self._note("ident" if is_type else "number", "int" if is_type else "0")
                return close
        self._note("ident", token)
        return None

    def _punct(self, match, token: str) -> int | None:
        start, end = match.span()
        text, copy = self.text, self.copy
        if token == "&&" and self.previous not in _ENDS_OPERAND:  # &&label
            label_end = end + _label_length(text, end)
            copy.replace(start, label_end, "0")
            self._note("number", "0")
            return label_end
        if token == "?":
            after = self._next_token(end)
            if after is not None and after.group() == ":":  # a ?: b
                gap = text[end : after.start()]
                if not gap:
                    copy.replace(start, after.end(), "||")
                    self._note("||", "||")
                    return after.end()
                if not gap.strip():
                    copy.replace(end, end + 1, "0")
        if token == "..." and self.previous not in ("(", ","):
            # a GNU range in a designator or case label: `[0 ... 9]`, `case 1 ... 5:`
            close = _range_end(text, end)
            copy.replace(start, close)
            return close
        if token == "[":
            after = self._next_token(end)
            if after is not None and after.group() == "[":  # a C23 attribute: `[[...]]` (nothing else starts so)
                close = _attribute_end(text, after.end())
                # kept for the skip decisions as GNU spelling: [[gnu::always_inline]] -> ((always_inline))
                words = re.sub(r"\b(?:__)?gnu(?:__)?\s*::\s*", "", text[after.end() : close - 2])
                self.attributes.append((start, f"(({words}))"))
                copy.replace(start, close)
                return close
        if token == "(":
            self.paren_stack.append((start, self.previous))
        elif token == ")":
            self.before_paren = self.paren_stack.pop()[1] if self.paren_stack else ""
        elif token == "{":
            self.brace_depth += 1
            if self.brace_depth == 1 and not self.paren_stack:
                close = self._file_scope_group(start)
                if close is not None:
                    return close
        elif token == "}":
            self.brace_depth -= 1
        elif token == ";" and self.brace_depth == 0 and not self.paren_stack:
            self.item_ends.append(start)
        self._note("punct", token)
        return None

    def _file_scope_group(self, start: int) -> int | None:
        """A `{` at file scope. A function body is recorded; it, an initializer or a struct body is blanked (but
        for what pycparser must read) and the offset of its `}` returned, for the main loop to go on from there.
        Anything else (an enum body, a compound literal) is read token by token: None."""
        previous, words = self.previous, self.previous_words
        if _opens_function_body(previous, self.before_paren):
            close = _match_body(self.text, start)
            body = Body(start, close)
            body.nested = _nested_functions(self.text, body)
            self.bodies[start] = body
            self.item_ends.append(close)
            self.copy.replace(start + 1, close)
            return close
        if previous == "=":  # an initializer: `{0}` initializes anything as far as parsing goes
            close = _match_body(self.text, start)
            self.copy.replace(start + 1, close, "0")
            return close
        if not self.keep_structs and (words[1] in ("struct", "union") or
                                      (previous == "ident" and words[0] in ("struct", "union"))):
            close = _match_body(self.text, start)
            # members (and tags or enum constants declared among them) are nothing pycparser needs to tell the
            # later declarations apart: only typedef names matter, and none can be declared in a struct
            self.copy.replace(start + 1, close)
            return close
        return None


class _Recording:
    """What the scan of one include adds, kept relative to the start of its text."""

    def __init__(self, scanner: _Scanner, key: str, start: int, end: int):
        self.key, self.start, self.end = key, start, end
        self.counts = (len(scanner.copy.edits), len(scanner.bodies), len(scanner.attributes), len(scanner.item_ends))

    def entry(self, scanner: _Scanner) -> dict:
        start = self.start
        edits, bodies, attributes, item_ends = self.counts
        return {
            "edits": [(a - start, b - start, r) for a, b, r in scanner.copy.edits[edits:]],
            "bodies": [(b.open_offset - start, b.close_offset - start,
                        [(n.name, n.name_offset - start, n.open_offset - start, n.close_offset - start)
                         for n in b.nested])
                       for b in list(scanner.bodies.values())[bodies:]],
            "attributes": [(offset - start, text) for offset, text in scanner.attributes[attributes:]],
            "item_ends": [offset - start for offset in scanner.item_ends[item_ends:]],
            "state": (scanner.previous, scanner.previous_words, scanner.before_paren),
        }


def scan(text: str, store=None, keep_structs: bool = False) -> ScannedUnit:
    """`store` (load_segment / store_segment, as for parse.py): where includes scanned by earlier units are kept,
    or None to scan it all. `keep_structs`: struct and union members stay in the sanitised copy (a header read
    for its types, cprof/library/prototypes.py)."""
    line_starts = _line_starts(text)
    markers = _markers(text)
    scanner = _Scanner(text, store, _includes(markers) if store is not None else None, _is_c23(text), keep_structs)
    scanner.run()
    unit = ScannedUnit(text, scanner.copy.build(), scanner.bodies, markers, scanner.attributes, scanner.item_ends,
                       line_starts)
    unit._marker_lines = [m.unit_line for m in markers]
    unit._attribute_offsets = [offset for offset, _ in scanner.attributes]
    return unit


def _is_c23(text: str) -> bool:
    """Whether the unit is compiled as C23 (gcc 12 says 202000L for -std=c2x), from the guard header's typedef."""
    version = _STD_VERSION.search(text)
    return version is not None and int(version.group(1)) >= 202000


def _includes(markers: list[LineMarker]) -> dict[int, tuple[int, int]]:
    """The text each #include of a header brought in: by the offset of the marker that enters the header (flag 1),
    from the end of that marker's line to the start of the marker that returns from it (flag 2)."""
    includes, entered = {}, []
    for marker in markers:
        if marker.enters:
            entered.append(marker)
        elif marker.returns and entered:
            opened = entered.pop()
            includes[opened.start] = (opened.end, marker.start)
    return includes


def _opens_function_body(previous: str, before_paren: str) -> bool:
    """Whether a `{` at file scope opens a function body, from the tokens before it.

    `) {` is a body unless the parenthesis was a cast of a compound literal (`= (T){...}`); `] {` is a function
    returning a pointer to an array; `; {` ends the parameter declarations of a K&R definition."""
    if previous == ")":
        return before_paren in ("ident", ")")
    return previous in ("]", ";")


def _attribute_end(text: str, at: int) -> int:
    """End offset of a C23 attribute whose `[[` ends at `at`: just past its `]]`."""
    return _closing(_TOKEN, text, at, "[", "]", depth=2).end()


def _label_length(text: str, at: int) -> int:
    match = re.compile(r"\s*[A-Za-z_$][\w$]*").match(text, at)
    return len(match.group()) if match else 0


def _range_end(text: str, at: int) -> int:
    """End of the upper bound after `...` in a GNU range: up to the closing `]` or `:` at depth 0."""
    depth = 0
    for match in _TOKEN.finditer(text, at):
        token = match.group()
        if token in ("(", "["):
            depth += 1
        elif token in (")", "]") and depth > 0:
            depth -= 1
        elif depth == 0 and token in ("]", ":"):
            return match.start()
    return len(text)
