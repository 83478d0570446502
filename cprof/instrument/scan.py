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
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[\w.])*)
  | (?P<ident>[A-Za-z_$][\w$]*)
  | (?P<punct>\.\.\.|&&|\|\||->|[{}()\[\];,=?:])
  | (?P<other>\S)
    """,
    re.MULTILINE | re.VERBOSE,
)

# Inside a function body only braces matter (plus what can hide a brace: literals, comments, directives).
_BODY_TOKEN = re.compile(
    # Every alternative starts with one of a few characters, which lets the regex engine skip the rest fast; a `#`
    # outside a literal or comment can only start a directive (line marker, #pragma) in preprocessed text.
    r"""[{}]|/\*[\s\S]*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\#[^\n]*"""
)

# `name (...) {` inside a body can only be a GCC nested function: the unit is then parsed in full, fails, and
# falls back cleanly instead of instrumenting around a construct we do not model.
_NESTED_FUNCTION = re.compile(r"\b([A-Za-z_]\w*)\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\s*\{")
_NOT_A_FUNCTION_NAME = frozenset(
    "if while for switch return sizeof _Alignof __alignof__ __typeof__ typeof __attribute__ do else case".split()
)

_LINE_MARKER = re.compile(r'^#(?:line)? *(\d+) +"((?:\\.|[^"\\])*)"((?: +\d+)*)[ \t]*$', re.MULTILINE)

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
    "_Decimal128": "double", "__builtin_va_list": "int", "__fp16": "double",
}
_BLANK_WORD = frozenset("__extension__ __thread _Thread_local __real__ __imag__ __seg_fs __seg_gs".split())
_BLANK_WITH_PARENS = frozenset("__attribute__ __attribute _Alignas __declspec".split())
_ASM = frozenset("__asm__ __asm asm".split())
_ASM_QUALIFIERS = frozenset("volatile __volatile__ __volatile goto inline __inline__ __inline".split())
_EXPRESSION_WITH_TYPES = frozenset(
    "__builtin_va_arg __builtin_offsetof __builtin_types_compatible_p __builtin_convertvector "
    "__builtin_shufflevector __builtin_has_attribute".split()
)
_TYPEOF = frozenset("typeof __typeof__ __typeof".split())
_ENDS_OPERAND = frozenset(("ident", "number", "string", "char", ")", "]"))


@dataclass
class LineMarker:
    unit_line: int  # 1-based line of the text that follows the marker
    source_line: int
    file: str
    system_header: bool


@dataclass
class Body:
    open_offset: int  # the `{`
    close_offset: int  # the matching `}`
    nested_function: bool = False


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

    def attributes_of_item(self, offset: int) -> list[str]:
        """The attribute lists written in the file-scope declaration that contains `offset`."""
        index = bisect.bisect_left(self.item_ends, offset)
        start = self.item_ends[index - 1] if index > 0 else -1
        end = self.item_ends[index] if index < len(self.item_ends) else len(self.text)
        first = bisect.bisect_right(self._attribute_offsets, start)
        last = bisect.bisect_left(self._attribute_offsets, end)
        return [text for _, text in self.attributes[first:last]]

    def source_position(self, unit_line: int) -> tuple[str, int, bool]:
        """(file, line, from a system header) that a line of the unit came from, per the line markers."""
        index = bisect.bisect_right(self._marker_lines, unit_line) - 1
        if index < 0:
            return ("", unit_line, False)
        marker = self.markers[index]
        return (marker.file, marker.source_line + unit_line - marker.unit_line, marker.system_header)


class ScanError(Exception):
    """The unit's structure could not be followed (unbalanced braces, say)."""


def _unescape(path: str) -> str:
    return re.sub(r"\\(.)", r"\1", path) if "\\" in path else path


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def _markers(text: str, line_starts: list[int]) -> list[LineMarker]:
    markers = []
    for match in _LINE_MARKER.finditer(text):
        flags = match.group(3).split()
        markers.append(
            LineMarker(
                unit_line=bisect.bisect_right(line_starts, match.start()) + 1,
                source_line=int(match.group(1)),
                file=_unescape(match.group(2)),
                system_header="3" in flags,
            )
        )
    return markers


def _blank(text: str) -> str:
    """Spaces of the same length, newlines kept."""
    if "\n" not in text:
        return " " * len(text)
    return "\n".join(" " * len(part) for part in text.split("\n"))


class _Copy:
    """The sanitised copy, built as a list of edits over the original."""

    def __init__(self, text: str):
        self.text = text
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, start: int, end: int, word: str = "") -> None:
        """Blanks text[start:end], writing `word` at its start, or at the first place in it where `word` covers
        no newline (a blanked initializer may begin with one); no room leaves it blank."""
        original = self.text[start:end]
        replacement = _blank(original)
        if word:
            at, size = 0, len(word)
            while at + size <= len(original) and "\n" in original[at : at + size]:
                at = original.index("\n", at) + 1
            if at + size <= len(original):
                replacement = replacement[:at] + word + replacement[at + size :]
        self.edits.append((start, end, replacement))

    def build(self) -> str:
        pieces, at = [], 0
        for start, end, replacement in sorted(self.edits):
            if start < at:  # overlapping edits: the first one wins
                continue
            pieces.append(self.text[at:start])
            pieces.append(replacement)
            at = end
        pieces.append(self.text[at:])
        return "".join(pieces)


def _match_body(text: str, open_offset: int) -> int:
    depth = 0
    for match in _BODY_TOKEN.finditer(text, open_offset):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                return match.start()
    raise ScanError(f"unbalanced braces from offset {open_offset}")


def _has_nested_function(text: str, body: Body) -> bool:
    inner = text[body.open_offset + 1 : body.close_offset]
    return any(m.group(1) not in _NOT_A_FUNCTION_NAME for m in _NESTED_FUNCTION.finditer(inner))


class _Scanner:
    """One pass over the file-scope tokens of a unit. Every brace group at file scope (function body, struct or
    union body, initializer) is matched with the cheap `_BODY_TOKEN` pattern and jumped over: nothing inside one
    can change how file-scope declarations read, and bodies are nearly all of a unit's text."""

    def __init__(self, text: str):
        self.text = text
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
        for match in _TOKEN.finditer(self.text, at):
            kind = match.lastgroup
            token = match.group()
            if kind == "directive" or kind == "comment":
                self.copy.replace(match.start(), match.end())
                continue
            if kind == "ident":
                jump = self._ident(match, token)
            elif kind == "punct":
                jump = self._punct(match, token)
            else:
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
                return match
        return None

    def _balanced_end(self, start: int) -> int:
        """End offset of the parenthesised group starting at the first "(" at or after `start`."""
        depth = 0
        for match in _TOKEN.finditer(self.text, start):
            if match.lastgroup != "punct":
                continue
            token = match.group()
            if token == "(":
                depth += 1
            elif token == ")":
                depth -= 1
                if depth == 0:
                    return match.end()
        raise ScanError(f"unbalanced parentheses from offset {start}")

    def _ident(self, match, token: str) -> int | None:
        start, end = match.span()
        copy = self.copy
        if token in _RESPELL:
            copy.replace(start, end, _RESPELL[token])
        elif token in _AS_TYPE:
            copy.replace(start, end, _AS_TYPE[token])
        elif token in _BLANK_WORD:
            copy.replace(start, end)
            return None
        elif token in _BLANK_WITH_PARENS or token in _ASM:
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
        elif token in _TYPEOF or token in _EXPRESSION_WITH_TYPES:
            after = self._next_token(end)
            if after is not None and after.group() == "(":
                close = self._balanced_end(after.start())
                is_type = token in _TYPEOF
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
            body.nested_function = _has_nested_function(self.text, body)
            self.bodies[start] = body
            self.item_ends.append(close)
            if not body.nested_function:  # else pycparser reads it, fails, and the unit falls back cleanly
                self.copy.replace(start + 1, close)
            return close
        if previous == "=":  # an initializer: `{0}` initializes anything as far as parsing goes
            close = _match_body(self.text, start)
            self.copy.replace(start + 1, close, "0")
            return close
        if words[1] in ("struct", "union") or (previous == "ident" and words[0] in ("struct", "union")):
            close = _match_body(self.text, start)
            # members (and tags or enum constants declared among them) are nothing pycparser needs to tell the
            # later declarations apart: only typedef names matter, and none can be declared in a struct
            self.copy.replace(start + 1, close)
            return close
        return None


def scan(text: str) -> ScannedUnit:
    line_starts = _line_starts(text)
    scanner = _Scanner(text)
    scanner.run()
    markers = _markers(text, line_starts)
    unit = ScannedUnit(text, scanner.copy.build(), scanner.bodies, markers, scanner.attributes, scanner.item_ends,
                       line_starts)
    unit._marker_lines = [m.unit_line for m in markers]
    unit._attribute_offsets = [offset for offset, _ in scanner.attributes]
    return unit


def _opens_function_body(previous: str, before_paren: str) -> bool:
    """Whether a `{` at file scope opens a function body, from the tokens before it.

    `) {` is a body unless the parenthesis was a cast of a compound literal (`= (T){...}`); `] {` is a function
    returning a pointer to an array; `; {` ends the parameter declarations of a K&R definition."""
    if previous == ")":
        return before_paren in ("ident", ")")
    return previous in ("]", ";")


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
