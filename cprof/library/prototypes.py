"""A C library's header read into the types and signatures cprof calls through libffi: preprocessed by the compiler,
sanitised by cprof/instrument/scan.py (struct members kept), parsed by pycparser (cprof/instrument/parse.py)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field

from pycparser import c_ast, c_generator

from cprof.errors import EXIT_USAGE, CprofError
from cprof.instrument.parse import ParseError, _parse_text
from cprof.instrument.scan import ScanError, scan

# LP64 Linux; plain char is unsigned on Arm
_CHAR = "B" if platform.machine() in ("aarch64", "arm64", "armv7l") else "b"
_SCALARS = {
    ("char",): _CHAR, ("signed", "char"): "b", ("unsigned", "char"): "B", ("_Bool",): "B",
    ("short",): "h", ("signed", "short"): "h", ("short", "int"): "h", ("signed", "short", "int"): "h",
    ("unsigned", "short"): "H", ("unsigned", "short", "int"): "H",
    ("int",): "i", ("signed",): "i", ("signed", "int"): "i", ("unsigned",): "I", ("unsigned", "int"): "I",
    ("long",): "q", ("long", "int"): "q", ("signed", "long"): "q", ("signed", "long", "int"): "q",
    ("unsigned", "long"): "Q", ("unsigned", "long", "int"): "Q",
    ("long", "long"): "q", ("long", "long", "int"): "q", ("signed", "long", "long"): "q",
    ("signed", "long", "long", "int"): "q", ("unsigned", "long", "long"): "Q", ("unsigned", "long", "long", "int"): "Q",
    ("float",): "f", ("double",): "d", ("long", "double"): "g",
}
_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "f": 4, "d": 8, "g": 16, "P": 8}


_INTEGER_MACRO = re.compile(r"#define ([A-Za-z_]\w*) \(?(-?(?:0[xX][0-9a-fA-F]+|[1-9][0-9]*|0))[uUlL]*\)?$")


class CType:
    """A C type as far as calling goes."""

    spelling = ""


@dataclass(eq=False)
class Void(CType):
    spelling: str = "void"


@dataclass(eq=False)
class Scalar(CType):
    code: str  # struct-module letter (b B h H i I q Q f d) or g (long double)
    spelling: str = ""

    @property
    def is_char(self) -> bool:
        return self.spelling.split()[-1:] == ["char"]


@dataclass(eq=False)
class Enum(CType):
    names: dict[str, int]
    code: str  # the integer type it is passed as
    spelling: str = ""


@dataclass(eq=False)
class Pointer(CType):
    target: CType
    const_target: bool
    spelling: str = ""


@dataclass(eq=False)
class Array(CType):
    element: CType
    length: int | None
    spelling: str = ""


@dataclass(eq=False)
class Record(CType):
    """A struct or union; `fields` is None while it is incomplete (declared, never defined)."""
    kind: str  # struct or union
    tag: str
    fields: list[tuple[str, CType]] | None = None
    problem: str | None = None  # why it cannot be laid out (bit-fields...)
    spelling: str = ""


@dataclass(eq=False)
class Function(CType):
    name: str
    result: CType
    params: list[tuple[str, CType]]
    variadic: bool = False
    spelling: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(name for name, _ in self.params)}{', ...' if self.variadic else ''})"


@dataclass(eq=False)
class Unsupported(CType):
    reason: str
    spelling: str = ""


def _constant(node, names: dict[str, int]) -> int:
    """The value of an integer constant expression (enumerators, array lengths)."""
    if isinstance(node, c_ast.Constant):
        text = node.value.rstrip("uUlL")
        if node.type == "char":
            return ord(node.value[1:-1].encode().decode("unicode_escape"))
        return int(text, 0) if not (text.startswith("0") and text[1:2].isdigit()) else int(text, 8)
    if isinstance(node, c_ast.ID) and node.name in names:
        return names[node.name]
    if isinstance(node, c_ast.UnaryOp) and node.op in ("-", "+", "~", "!"):
        value = _constant(node.expr, names)
        return {"-": -value, "+": value, "~": ~value, "!": int(not value)}[node.op]
    if isinstance(node, c_ast.BinaryOp):
        a, b = _constant(node.left, names), _constant(node.right, names)
        operations = {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if b >= 0 else 0, ">>": a >> b if b >= 0 else 0,
                      "|": a | b, "&": a & b, "^": a ^ b}
        if node.op in operations:
            return operations[node.op]
        if node.op in ("/", "%") and b:
            return int(a / b) if node.op == "/" else a - int(a / b) * b
    if isinstance(node, c_ast.Cast):
        return _constant(node.expr, names)
    raise ValueError("not an integer constant cprof can evaluate")


@dataclass
class Header:
    """Every type and function prototype a header declares."""
    path: str
    functions: dict[str, Function] = field(default_factory=dict)
    typedefs: dict[str, CType] = field(default_factory=dict)
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    constants: dict[str, int] = field(default_factory=dict)  # every enumerator

    def type_named(self, name: str) -> CType:
        """A typedef name, or `struct TAG` / `union TAG` / `enum TAG`."""
        words = name.split()
        if len(words) == 2 and words[0] in ("struct", "union") and (words[0], words[1]) in self.records:
            return self.records[(words[0], words[1])]
        if len(words) == 2 and words[0] == "enum" and words[1] in self.enums:
            return self.enums[words[1]]
        if name in self.typedefs:
            return self.typedefs[name]
        if (("struct", name)) in self.records:
            return self.records[("struct", name)]
        raise CprofError(f"{os.path.basename(self.path)} declares no type '{name}'", EXIT_USAGE)


class _Reader:
    def __init__(self, header: Header):
        self.header = header
        self.generator = c_generator.CGenerator()

    def spelling(self, node) -> str:
        """The type as C spells it, without the declared name (`uLongf *`)."""
        named, inner = [], node
        while inner is not None and not isinstance(inner, c_ast.TypeDecl):  # the name sits in the innermost TypeDecl
            inner = getattr(inner, "type", None)
        if inner is not None:
            named.append((inner, inner.declname))
            inner.declname = None
        try:
            return self.generator.visit(c_ast.Typename(None, [], None, node)).strip()
        except Exception:  # pycparser's generator on an odd node: only messages use the spelling
            return "?"
        finally:
            for decl, name in named:
                decl.declname = name

    def record(self, node) -> Record:
        kind = "union" if isinstance(node, c_ast.Union) else "struct"
        tag = node.name or f"<anonymous {kind} {id(node)}>"
        record = self.header.records.get((kind, tag))
        if record is None:
            record = self.header.records[(kind, tag)] = Record(kind, tag, spelling=f"{kind} {node.name or ''}".strip())
        if node.decls is not None and record.fields is None:
            record.fields = []  # set before the members: a member may point back at this record
            fields = []
            for decl in node.decls:
                if decl.bitsize is not None:
                    record.problem = f"{record.spelling} has bit-fields, which cprof cannot lay out"
                member = self.resolve(decl.type)
                if decl.name is None and isinstance(member, Record):  # an anonymous struct or union member
                    fields.extend(member.fields or [])
                elif decl.name is not None:
                    fields.append((decl.name, member))
            record.fields = fields
        return record

    def enum(self, node) -> Enum:
        name = node.name or f"<anonymous enum {id(node)}>"
        if node.values is None:
            return self.header.enums.get(name) or Enum({}, "I", spelling=f"enum {name}")
        names, value = {}, -1
        for item in node.values.enumerators:
            try:
                value = _constant(item.value, {**self.header.constants, **names}) if item.value is not None else value + 1
            except (ValueError, RecursionError):
                value += 1
            names[item.name] = value
        self.header.constants.update(names)
        low, high = min(names.values(), default=0), max(names.values(), default=0)
        # as gcc chooses: unsigned int when nothing is negative, else int, wider when the values need it
        code = ("I" if high < 2**32 else "Q") if low >= 0 else ("i" if -(2**31) <= low and high < 2**31 else "q")
        made = Enum(names, code, spelling=f"enum {node.name or ''}".strip())
        if node.name:
            self.header.enums[node.name] = made
        return made

    def resolve(self, node) -> CType:
        """The CType of a pycparser type node (TypeDecl, PtrDecl, ArrayDecl, FuncDecl, Typename)."""
        spelling = self.spelling(node)
        if isinstance(node, c_ast.Typename):
            node = node.type
        if isinstance(node, c_ast.TypeDecl):
            inner = node.type
            if isinstance(inner, c_ast.IdentifierType):
                names = tuple(inner.names)
                if names == ("void",):
                    return Void()
                if len(names) == 1 and names[0] in self.header.typedefs:
                    return self.header.typedefs[names[0]]
                # C lets the words come in any order: `long unsigned int` is `unsigned long int`
                words = tuple([w for w in names if w in ("signed", "unsigned")] +
                              [w for w in names if w in ("short", "long")] +
                              [w for w in names if w not in ("signed", "unsigned", "short", "long")])
                for candidate in (names, words):
                    if candidate in _SCALARS:
                        return Scalar(_SCALARS[candidate], " ".join(names))
                return Unsupported(f"type '{' '.join(names)}' is not one cprof can pass", " ".join(names))
            if isinstance(inner, (c_ast.Struct, c_ast.Union)):
                return self.record(inner)
            if isinstance(inner, c_ast.Enum):
                return self.enum(inner)
        if isinstance(node, c_ast.PtrDecl):
            target = node.type
            const = isinstance(target, c_ast.TypeDecl) and "const" in (target.quals or [])
            if isinstance(target, c_ast.PtrDecl) or isinstance(target, c_ast.ArrayDecl):
                const = False
            return Pointer(self.resolve(target), const, spelling)
        if isinstance(node, c_ast.ArrayDecl):
            element = self.resolve(node.type)
            try:
                length = _constant(node.dim, self.header.constants) if node.dim is not None else None
            except (ValueError, RecursionError):
                return Unsupported(f"array length of '{spelling}' is not a constant cprof can evaluate", spelling)
            return Array(element, length, spelling)
        if isinstance(node, c_ast.FuncDecl):
            return self.function("", node)
        return Unsupported(f"'{spelling}' is not a type cprof can pass", spelling)

    def function(self, name: str, node: c_ast.FuncDecl) -> Function:
        params, variadic = [], False
        for index, param in enumerate(node.args.params if node.args else []):
            if isinstance(param, c_ast.EllipsisParam):
                variadic = True
                continue
            kind = self.resolve(param.type)
            if isinstance(kind, Void) and not param.name:  # f(void)
                continue
            if isinstance(kind, Array):  # a parameter declared as an array is a pointer
                kind = Pointer(kind.element, False, self.spelling(param.type))
            if isinstance(kind, Function):
                kind = Pointer(kind, False, kind.spelling)
            params.append((param.name or f"arg{index + 1}", kind))
        result = self.resolve(node.type)
        return Function(name, result, params, variadic, self.spelling(node))

    def read(self, ast) -> None:
        for item in ast.ext:
            if isinstance(item, c_ast.Typedef):
                self.header.typedefs[item.name] = self.named(self.resolve(item.type), item.name)
            elif isinstance(item, c_ast.Decl):
                if isinstance(item.type, c_ast.FuncDecl) and item.name:
                    self.header.functions[item.name] = self.function(item.name, item.type)
                elif isinstance(item.type, (c_ast.Struct, c_ast.Union)):
                    self.record(item.type)
                elif isinstance(item.type, c_ast.Enum):
                    self.enum(item.type)
                else:  # a variable; its type may define a struct or enum on the way
                    self.resolve(item.type)

    @staticmethod
    def named(kind: CType, name: str) -> CType:
        """A typedef keeps its name for messages (a record keeps its tag: one object for both names)."""
        if isinstance(kind, (Record, Enum)):
            if kind.spelling.startswith(("struct <", "union <", "enum <")) or kind.spelling in ("struct", "union", "enum"):
                kind.spelling = name
            return kind
        if isinstance(kind, Scalar):
            return Scalar(kind.code, kind.spelling if name in ("size_t",) else name)
        if isinstance(kind, Pointer):
            return Pointer(kind.target, kind.const_target, name)
        return kind


def preprocess(path: str, include_dirs: list[str], defines: list[str], macros: bool = False) -> str:
    """The header preprocessed (with `macros`: the macros it defines instead, as `cc -dM` lists them)."""
    compiler = os.environ.get("CC") or "cc"
    argv = [compiler, "-E", "-std=gnu11"] + [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    argv += (["-dM"] if macros else []) + ["-x", "c", path]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape")
    except OSError as error:
        raise CprofError(f"cannot run the compiler {compiler} to read {path}: {error.strerror}", EXIT_USAGE) from None
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:300])
        raise CprofError(f"cannot preprocess {path}: {first}", EXIT_USAGE)
    return done.stdout


def read_header(path: str, include_dirs: list[str] = (), defines: list[str] = ()) -> Header:
    """The header's types and prototypes (after the preprocessor, with include_dirs and defines)."""
    if not os.path.isfile(path):
        raise CprofError(f"no such header: {path}", EXIT_USAGE)
    text = preprocess(path, list(include_dirs), list(defines))
    try:
        ast = _parse_text(scan(text, keep_structs=True).sanitized)
    except (ScanError, ParseError) as error:
        raise CprofError(f"cannot read the declarations of {path}: {error}", EXIT_USAGE) from None
    header = Header(path)
    _Reader(header).read(ast)
    # integer macros (zlib's Z_FINISH, Z_OK...) are constants too, as enumerators are
    for line in preprocess(path, list(include_dirs), list(defines), macros=True).splitlines():
        found = _INTEGER_MACRO.match(line)
        if found and not found.group(1).startswith("__") and found.group(1) not in header.constants:
            header.constants[found.group(1)] = int(found.group(2).rstrip("uUlL"), 0)
    return header
