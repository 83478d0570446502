"""Plain copies for profiling switched off: each instrumented function compiled a second time, without its guard and
calling the other copies, which a timed function's entry jumps to while profiling is off.

Why: a counted function's increment costs little to run, but its presence costs even when nothing is recorded. gcc
optimises a loop with an increment to memory in it less well than the plain loop (zstd's match finder, switched
off: 1.19x plain with its helpers' increments, 1.01-1.04x with them compiled out). A copy of the unit's functions
without any guard is the plain code itself; the timed function's entry, the one test a switched-off run pays
anyway, now sends the whole call, and every call in it to a function of the same unit, there.

The copies are appended to the unit after line markers that place each one where its original is (its debug lines
are the user's) and mark it as a system header: a warning the user's code earns is reported once, for the
original. Each copy is static and named `<name>__cprof_off`. A call is renamed only where the name means the
function (it is followed by `(` wherever the body names it), so a local that shadows it, or the function's
address, keeps the original: a pointer taken while profiling is off is the same one as while it is on.

A function gets no copy where a second one would behave differently: a static local it can write (two copies would
keep two), attributes that give the symbol a job (constructor, alias, section...), or assembler that defines a
named label or section (defined twice). It is then reached as before, guard and all."""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field

from cprof.instrument.scan import IDENTIFIER
from cprof.instrument.splice import c_string

SUFFIX = "__cprof_off"
TARGETS = "__cprof_off_targets"

# Attributes under which a second, static copy would not do what the first does. Not those that only say how the
# symbol is exported or kept (visibility, used, externally_visible...): a library's API carries them on every
# prototype (lz4's and zstd's LZ4LIB_API / ZSTDLIB_API), and its copies must call the copies of those functions.
_SINGULAR_ATTRIBUTES = frozenset(
    "constructor destructor alias weak weakref section ifunc target_clones symver naked interrupt copy".split()
)
# Literals, comments and directives (skipped, but seen), numbers (so that `1e5` is no identifier), identifiers.
_TOKENS = re.compile(
    r"""(?P<comment>/\*[\s\S]*?\*/|//[^\n]*)
      | (?P<string>(?:L|u8|u|U)?"(?:\\.|[^"\\\n])*")
      | (?<![0-9])(?:L|u8|u|U)?'(?:\\.|[^'\\\n])*'
      | (?P<directive>^[ \t]*\#[^\n]*)
      | \.?[0-9](?:[eEpP][+-]|[\w.]|'(?=\w))*
      | (?P<ident>[A-Za-z_$][\w$]*)""",
    re.MULTILINE | re.VERBOSE,
)
_LINE_MARKER = re.compile(r'[ \t]*#(?:line)?[ \t]*\d+[ \t]+"(?:\\.|[^"\\])*"((?:[ \t]+\d+)*)[ \t]*$')
_CALL_AFTER = re.compile(r"\s*\(")
_NAME_BEFORE_PARENTHESIS = re.compile(r"([A-Za-z_$][\w$]*)\s*\(")
_MEMBER_BEFORE = re.compile(r"(?:\.|->)\s*$")
_FUNCTION_NAME = frozenset(("__func__", "__FUNCTION__", "__PRETTY_FUNCTION__"))
_ASM = frozenset(("asm", "__asm", "__asm__"))
# In an asm's text: a label with a name (numeric local labels may repeat), or a directive that places a symbol.
_ASM_DEFINES = re.compile(r'(?:^|[\s;"])[A-Za-z_.$][\w.$]*:(?!:)|\.(?:section|pushsection|globl|global|weak|set|'
                          r"symver|equ|type|size)\b")
# A static local that is constant (its object, not only what it points to): Lua's computed-goto table.
_CONSTANT_STATIC = re.compile(r"static\s+(?:const\s+|volatile\s+)*const\b")
_DECLARATOR = re.compile(r"[^=;]*")
_HIDDEN = ' __attribute__((visibility("hidden")))'


@dataclass
class OffCopy:
    name: str  # as written in the text
    start: int  # the definition's first character (just after the file-scope item before it)
    end: int  # just after its body's `}`
    marker: str  # the line marker that places the copy's first line where the original's is
    edits: list[list] = field(default_factory=list)  # [offset, length, replacement], in order
    shared: bool = False  # a copy other units' copies call: a hidden symbol of the program, not a static one


@dataclass
class OffCopies:
    copies: list[OffCopy] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # the copies timed functions jump to, by dispatch index
    header_marker: str = ""  # the guard header's line marker: the prototypes' and table's line
    elsewhere: list[str] = field(default_factory=list)  # other units' functions whose copies the copies call

    def table_declaration(self) -> str:
        """Declared with the site table, defined (with the copies' addresses) after the copies."""
        return f"static void (*const volatile {TARGETS}[{len(self.targets)}])(void);" if self.targets else ""

    def text(self, unit_text: str) -> str:
        """What is appended to the unit: the copies' prototypes, the copies, the jump table."""
        if not self.copies:
            return ""
        # Another unit's copy is called where it exists: a weak reference is null where it does not (that unit
        # compiled without copies, or plain, or the function lives in another library).
        parts = [f"\n{self.header_marker}\n", " ".join(
            f"{'extern' if c.shared else 'static'} __typeof__({c.name}) {c.name}{SUFFIX}"
            f"{_HIDDEN if c.shared else ''};" for c in self.copies),
            "".join(f" extern __typeof__({name}) {name}{SUFFIX} __attribute__((weak, visibility(\"hidden\")));"
                    for name in self.elsewhere), "\n"]
        for copy in self.copies:
            parts.append(f"{copy.marker}\n")
            at = copy.start
            for offset, length, replacement in copy.edits:
                parts += [unit_text[at:offset], replacement]
                at = offset + length
            parts += [unit_text[at:copy.end], "\n"]
        if self.targets:
            addresses = ", ".join(f"(void (*)(void)){name}{SUFFIX}" for name in self.targets)
            parts.append(f"{self.header_marker}\nstatic void (*const volatile {TARGETS}[{len(self.targets)}])(void) = "
                         f"{{{addresses}}};\n")
        return "".join(parts)

    def to_plan(self) -> dict | None:
        return asdict(self) if self.copies else None

    @classmethod
    def from_plan(cls, plan: dict | None) -> OffCopies:
        if not plan:
            return cls()
        return cls([OffCopy(**c) for c in plan["copies"]], plan["targets"], plan["header_marker"],
                   plan["elsewhere"])


def no_copy_reason(text: str, start: int, body_close: int, attributes: list[str]) -> str | None:
    """Why a second copy of this definition would not behave as the first, or None."""
    singular = _SINGULAR_ATTRIBUTES.intersection(attributes)
    if singular:
        return f"attribute {sorted(singular)[0]}"
    has_asm = False
    for token in _TOKENS.finditer(text, start, body_close):
        word = token.group("ident")
        if word == "static":
            declarator = _DECLARATOR.match(text, token.start()).group()
            if not _CONSTANT_STATIC.match(declarator) or ("*" in declarator
                                                          and not re.search(r"\*\s*const\b[^*]*$", declarator)):
                return "a static local it may write"
        elif word in _ASM:
            has_asm = True
        elif has_asm and token.group("string") and _ASM_DEFINES.search(token.group("string")):
            return "assembler that defines a symbol"
    return None


def definition_start(item_ends: list[int], name_offset: int) -> int:
    """Just after the file-scope item before the definition that names itself at `name_offset`."""
    index = bisect.bisect_left(item_ends, name_offset)
    return item_ends[index - 1] + 1 if index > 0 else 0


def names_before_parenthesis(text: str, body_open: int, body_close: int) -> set[str]:
    """Every name the body writes before a `(`: what it calls, and words such as `if` and `sizeof`."""
    return set(_NAME_BEFORE_PARENTHESIS.findall(text, body_open, body_close + 1))


def names_called(text: str, body_open: int, body_close: int, names: set[str]) -> set[str]:
    """Which of `names` the body calls, or may: a name before a `(` in a literal or comment counts too, which
    costs at most a copy that was not needed (and finding calls takes a tenth of the time)."""
    return names.intersection(names_before_parenthesis(text, body_open, body_close))


def needing_copies(seeds: set[str], calls: dict[str, set[str]]) -> set[str]:
    """The functions whose switched-off code differs from the plain one's: the seeds, and every one that calls one
    of those, however indirectly (it inlines them, or could); then every function those call, however indirectly,
    so that no copy calls a guarded function (lz4's `XXH32_update` copy inlined its rare timed `XXH_memcpy`, guard
    and all, and compiled 1.6x as large as plain's; lz4 ran 1.11x switched off). In an adaptive build the seeds are
    the counted functions (their increments cost even switched off), not the timed ones: a timed function that
    neither calls nor is called by what is copied does enough work a call that its entry's test costs nothing, and
    compiling it twice would (zstd's adaptive build took 1.6x as long with the counted functions' callers copied;
    copying all would cost more)."""
    needed = set(seeds)
    grew = True
    while grew:
        grew = False
        for name, called in calls.items():
            if name not in needed and called & needed:
                needed.add(name)
                grew = True
    reached = list(needed)
    while reached:
        for name in calls.get(reached.pop(), ()):
            if name not in needed:
                needed.add(name)
                reached.append(name)
    return needed


def copy_edits(text: str, name_offset: int, body_open: int, body_close: int, written_name: str, name: str,
               copied: set[str], elsewhere: set[str], parameters: list[str]) -> tuple[list[list], set[str]]:
    """The copy's edits, and which of `elsewhere` it calls through their copies. The edits: its own name, the
    calls renamed to other copies (this unit's, and those of `elsewhere`, other units' functions, where they
    exist), __func__ as the original's name, and its line markers marked as a system header's. A parameter of the
    name is not the function."""
    edits = [[name_offset, len(written_name), written_name + SUFFIX]]
    calls: dict[str, list[int]] = {}
    other_uses: set[str] = set(parameters)
    for token in _TOKENS.finditer(text, body_open, body_close + 1):
        word = token.group("ident")
        if word in _FUNCTION_NAME:
            edits.append([token.start(), len(word), c_string(name)])
        elif word in copied or word in elsewhere:
            if _MEMBER_BEFORE.search(text, max(token.start() - 64, 0), token.start()):
                continue
            if _CALL_AFTER.match(text, token.end()):
                calls.setdefault(word, []).append(token.start())
            else:
                other_uses.add(word)
        elif token.group("directive"):
            marker = _LINE_MARKER.match(token.group("directive"))
            if marker and "3" not in marker.group(1).split():
                edits.append([token.end(), 0, " 3"])
    called_elsewhere = set()
    for word, offsets in calls.items():
        if word in other_uses:
            continue
        if word in copied:
            renamed = word + SUFFIX
        else:
            renamed = f"({word}{SUFFIX} ? {word}{SUFFIX} : {word})"
            called_elsewhere.add(word)
        edits += [[offset, len(word), renamed] for offset in offsets]
    edits.sort()
    return edits, called_elsewhere


def line_marker(line: int, file: str) -> str:
    return f"# {line} {c_string(file)} 3"


def dispatch(name: str, index: int, parameters: list[str], returns_void: bool, noreturn: bool) -> str:
    """The declaration before a timed function's guard that sends the call to its copy while profiling is off. The
    copy's address comes from a table defined after the copies, read as volatile: gcc would otherwise fold it into a
    direct call, inline the copy (called once) into the original and grow it, guard and all, by its whole body."""
    call = f"((__typeof__(&{name})){TARGETS}[{index}])({', '.join(parameters)})"
    if noreturn:
        then = f"{{ {call}; __builtin_unreachable(); }}"
    elif returns_void:
        then = f"{{ {call}; return; }}"
    else:
        then = f"return {call};"
    return (f"__extension__ int __cprof_off __attribute__((unused)) = "
            f"({{ if (__builtin_expect(__cprof_mode == 1, 0)) {then} 0; }});")


def written_name(text: str, name_offset: int) -> str:
    return IDENTIFIER.match(text, name_offset).group()
