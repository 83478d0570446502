"""Reads a gcc/clang command line: what it does (compile, link, or something we pass through), its inputs and
their languages, its output, and which of its options belong to which stage. Runs once per compiler call of a
build, so it imports nothing heavy (no dataclasses)."""

from __future__ import annotations

import os

# Options whose value is the next argument when not attached.
_TAKES_VALUE = frozenset(
    """-o -x -I -D -U -include -imacros -isystem -iquote -idirafter -iprefix -iwithprefix -iwithprefixbefore
    -isysroot -imultilib -MF -MT -MQ -L -l -Xlinker -Xassembler -Xpreprocessor -aux-info -u -T -z -e -B
    --param -dumpbase -dumpbase-ext -dumpdir -G -wrapper --sysroot -arch -target""".split()
)
# Options that only steer the preprocessor; dropped when compiling already-preprocessed text.
_PREPROCESSOR_WITH_VALUE = frozenset(
    "-I -D -U -include -imacros -isystem -iquote -idirafter -iprefix -iwithprefix -iwithprefixbefore "
    "-MF -MT -MQ -Xpreprocessor".split()
)
_PREPROCESSOR_FLAGS = frozenset("-M -MM -MD -MMD -MP -MG -C -CC -P -nostdinc -undef -H -trigraphs".split())
_PREPROCESSOR_PREFIXES = ("-I", "-D", "-U", "-Wp,", "-MF", "-MT", "-MQ", "-isystem", "-iquote", "-idirafter")
# Options that only steer the linker; dropped when compiling.
_LINKER_WITH_VALUE = frozenset("-L -l -Xlinker -u -T -z -e".split())
_LINKER_FLAGS = frozenset(
    """-shared -static -static-libgcc -static-libstdc++ -static-pie -rdynamic -pie -no-pie -nostdlib
    -nostartfiles -nodefaultlibs -s -r -symbolic""".split()
)
_LINKER_PREFIXES = ("-l", "-L", "-Wl,")
# Calls we never touch: they do not produce objects or programs.
_NON_BUILDING = frozenset(
    """-E -M -MM -fsyntax-only -v --version -dumpversion -dumpmachine -dumpfullversion -dumpspecs --help
    -print-search-dirs -print-libgcc-file-name -print-multiarch -print-multi-directory -print-multi-lib
    -print-multi-os-directory -print-sysroot -print-sysroot-headers-suffix -S -###""".split()
)

C_EXTENSIONS = (".c",)
_SOURCE_LANGUAGES = {
    ".c": "c", ".i": "cpp-output", ".h": "c-header", ".s": "assembler", ".S": "assembler-with-cpp",
    ".sx": "assembler-with-cpp", ".cc": "c++", ".cp": "c++", ".cxx": "c++", ".cpp": "c++", ".CPP": "c++",
    ".c++": "c++", ".C": "c++", ".ii": "c++-cpp-output", ".m": "objective-c", ".mi": "objective-c",
    ".f": "fortran", ".f90": "fortran", ".go": "go", ".d": "d",
}


class Input:
    __slots__ = ("index", "path", "language")

    def __init__(self, index: int, path: str, language: str):
        self.index = index  # position in CompilerCommand.args
        self.path = path
        self.language = language  # gcc's -x name, or "object" for linker inputs

    @property
    def is_c(self) -> bool:
        return self.language == "c"


class CompilerCommand:
    def __init__(self, args: list[str]):
        self.args = args
        self.inputs: list[Input] = []
        self.output: str | None = None
        self.output_index: int | None = None  # index of the "-o" option (value at +1, or attached)
        self.compile_only = False  # -c
        self.passthrough_reason: str | None = None  # set when the call is not ours to change

    @property
    def c_inputs(self) -> list[Input]:
        return [i for i in self.inputs if i.is_c]

    @property
    def links(self) -> bool:
        return self.passthrough_reason is None and not self.compile_only

    def has(self, *flags: str) -> bool:
        return any(a in flags for a in self.args)

    @property
    def link_kind(self) -> str:
        if self.has("-r"):
            return "relocatable"
        return "shared" if self.has("-shared") else "executable"

    def option_values(self, option: str) -> list[str]:
        values, args = [], self.args
        for i, arg in enumerate(args):
            if arg == option and i + 1 < len(args):
                values.append(args[i + 1])
            elif arg.startswith(option) and option in _TAKES_VALUE and len(arg) > len(option):
                values.append(arg[len(option):])
        return values


def expand_response_files(args: list[str], cwd: str = ".", depth: int = 0) -> list[str]:
    """`@file` arguments hold more arguments (quoted like a shell); they may nest."""
    if not any(arg.startswith("@") for arg in args):
        return args
    import shlex

    out = []
    for arg in args:
        if arg.startswith("@") and depth < 10:
            path = os.path.join(cwd, arg[1:])
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                    inner = shlex.split(handle.read())
            except OSError:
                out.append(arg)  # gcc keeps a missing @file as a plain argument too
                continue
            out.extend(expand_response_files(inner, cwd, depth + 1))
        else:
            out.append(arg)
    return out


def parse_command(args: list[str]) -> CompilerCommand:
    command = CompilerCommand(args=list(args))
    language = None  # from -x
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _NON_BUILDING or arg.startswith("-print-") or arg.startswith("--print"):
            command.passthrough_reason = command.passthrough_reason or f"{arg} does not build"
        if arg == "-c":
            command.compile_only = True
        elif arg == "-o" and i + 1 < len(args):
            command.output, command.output_index = args[i + 1], i
            i += 2
            continue
        elif arg.startswith("-o") and len(arg) > 2:
            command.output, command.output_index = arg[2:], i
        elif arg == "-x" and i + 1 < len(args):
            language = None if args[i + 1] == "none" else args[i + 1]
            i += 2
            continue
        elif arg.startswith("-x") and len(arg) > 2:
            language = None if arg[2:] == "none" else arg[2:]
        elif arg in _TAKES_VALUE:
            i += 2
            continue
        elif arg == "-":
            command.passthrough_reason = "reads its source from standard input"
        elif not arg.startswith("-") or arg == "":
            ext = os.path.splitext(arg)[1]
            lang = language or _SOURCE_LANGUAGES.get(ext, "object")
            command.inputs.append(Input(i, arg, lang))
        i += 1
    if not command.inputs and command.passthrough_reason is None:
        command.passthrough_reason = "no input files"
    return command


def _strip(args: list[str], value_options: frozenset, flags: frozenset, prefixes: tuple) -> list[str]:
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg in value_options:
            i += 2
            continue
        if arg in flags or any(arg.startswith(p) and arg != p for p in prefixes):
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def _without_inputs_and_output(command: CompilerCommand) -> list[str]:
    drop = {i.index for i in command.inputs}
    if command.output_index is not None:
        drop.add(command.output_index)
        if command.args[command.output_index] == "-o":
            drop.add(command.output_index + 1)
    out, i = [], 0
    args = command.args
    while i < len(args):
        if i in drop or args[i] == "-c":
            i += 1
            continue
        if args[i] == "-x" and i + 1 < len(args):  # languages are given per input by the wrapper
            i += 2
            continue
        if args[i].startswith("-x") and len(args[i]) > 2:
            i += 1
            continue
        out.append(args[i])
        i += 1
    return out


def _without_linker_options(args: list[str]) -> list[str]:
    return _strip(args, _LINKER_WITH_VALUE, _LINKER_FLAGS, _LINKER_PREFIXES)


def preprocess_options(command: CompilerCommand) -> list[str]:
    """The options that shape what the preprocessor sees, minus inputs, output and linker options."""
    return _without_linker_options(_without_inputs_and_output(command))


def compile_options(command: CompilerCommand) -> list[str]:
    """The options for compiling already-preprocessed text."""
    return _strip(preprocess_options(command), _PREPROCESSOR_WITH_VALUE, _PREPROCESSOR_FLAGS, _PREPROCESSOR_PREFIXES)


def dependency_options(command: CompilerCommand, source: str) -> list[str]:
    """The -M* options for our separate preprocessing step of `source`, completed the way the gcc driver (11 and
    later) completes them for the user's command, since our -E changes the defaults: for a compile, target = the
    object and file = the object's name with .d; for a compile-and-link, target and file are named after the
    program (one file, the last source wins), or `a-STEM.d` for STEM.o without -o."""
    if not any(a in ("-MD", "-MMD") for a in command.args):
        return []
    stem = os.path.splitext(os.path.basename(source))[0]
    if command.compile_only:
        target = command.output or stem + ".o"
        depfile = os.path.splitext(target)[0] + ".d"
    elif command.output:
        target, depfile = command.output, os.path.splitext(command.output)[0] + ".d"
    else:
        target, depfile = stem + ".o", f"a-{stem}.d"
    extra = []
    if not command.option_values("-MT") and not command.option_values("-MQ"):
        extra += ["-MT", target]
    if not command.option_values("-MF"):
        extra += ["-MF", depfile]
    return extra


def dependency_file(args: list[str]) -> str | None:
    """The dependency file a preprocessing command line writes: -MF's value, or the kernel-style -Wp,-MD,FILE."""
    found = None
    for i, arg in enumerate(args):
        if arg == "-MF" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("-MF") and len(arg) > 3:
            found = arg[3:]
        elif arg.startswith(("-Wp,-MD,", "-Wp,-MMD,")):
            found = arg.split(",", 2)[2]
    return found


# Options that make the compiler write files besides the object, or read files (profiles, plugins, compiler
# programs of its own) that may change between builds: an object compiled with them is never taken from the
# object cache, which restores the object alone and knows the compiler only by its driver binary.
_SIDE_FILE_PREFIXES = (
    "-save-temps", "-fdump-", "-fprofile", "-fauto-profile", "-ftest-coverage", "--coverage", "-fbranch-probabilities",
    "-gsplit-dwarf", "-fstack-usage", "-fcallgraph-info", "-fopt-info", "-Wa,", "-Xassembler", "-fplugin",
    "-aux-info", "-fcreate-profile", "-specs", "--specs", "-ftime-report", "-fmem-report", "-flto-report",
    "-B", "-wrapper",
)


def object_cacheable(options: list[str]) -> bool:
    return not any(o.startswith(_SIDE_FILE_PREFIXES) for o in options)


def default_object_name(source: str) -> str:
    return os.path.splitext(os.path.basename(source))[0] + ".o"
