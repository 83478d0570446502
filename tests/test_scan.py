"""Unit tests of the instrumenter's stages on real preprocessed units: the sanitised copy, function bodies, which
declaration an attribute belongs to, and line markers back to the user's file:line."""

from __future__ import annotations

import os
import re
import textwrap

import pytest

from conftest import REPO
from cprof.building import compiler_args as ca
from cprof.building.toolchain import GUARD_HEADER
from cprof.building.config import WrapperConfig
from cprof.building.unit_compiler import UnitCompiler
from cprof.instrument.parse import parse
from cprof.instrument.scan import scan
from cprof.instrument.splice import COUNT_GUARD, GUARD
from cprof.instrument.unit import PathMap, instrument_unit


def preprocess(tmp_path, code: str, name: str = "unit.c", flags: tuple[str, ...] = (), headers: dict | None = None):
    """The unit as `cprof cc` reads it (the wrapper's own preprocessing), and the source's path."""
    for header, text in (headers or {}).items():
        (tmp_path / header).write_text(textwrap.dedent(text))
    source = tmp_path / name
    source.write_text(textwrap.dedent(code))
    config = WrapperConfig(real_compiler="gcc", cache_dir=None)
    command = ca.parse_command([*flags, "-c", str(source)])
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    status, text, messages = UnitCompiler(config, command, str(workdir)).preprocess(str(source), "unit.o")
    assert status == 0, messages
    return text, str(source)


def newlines(text: str) -> list[int]:
    return [i for i, char in enumerate(text) if char == "\n"]


GNU_UNIT = """\
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <math.h>
    #include <setjmp.h>
    __extension__ typedef unsigned long long u64;
    static __int128 wide = 3;
    typedef __typeof__(wide) wide_t;
    static _Float128 quad;
    int table[16] = { [0 ... 7] = 1, [8 ... 15] = 2 };
    struct __attribute__((packed)) packed { char c; int i __attribute__((aligned(1))); };
    int renamed(int) __asm__("renamed_in_asm");
    static int choose(int x) { return x ?: table[x & 15]; }
    static int __attribute__((noinline, cold)) sum(int n, ...) {
        int s = ({ int t = n; t * 2; });
        switch (n) { case 1 ... 3: s++; break; default: break; }
        static void *labels[] = { &&done, &&done };
        goto *labels[0];
    done:
        return s + (int)sizeof(__typeof__(quad));
    }
    int renamed(int x) { return choose(x) + sum(1, 2); }
"""


def test_sanitised_copy_has_the_originals_length_and_newlines(tmp_path):
    text, _ = preprocess(tmp_path, GNU_UNIT, flags=("-O2", "-D_FORTIFY_SOURCE=2"))
    unit = scan(text)
    assert len(unit.sanitized) == len(text)
    assert newlines(unit.sanitized) == newlines(text)
    for gnu in ("__attribute__", "__asm__", "__extension__", "__int128", "_Float128", "&&done", "0 ... 7", "1 ... 3"):
        assert gnu in text and gnu not in unit.sanitized, gnu
    names = {f.name for f in parse(unit)}
    assert {"choose", "sum", "renamed"} <= names


@pytest.mark.parametrize(
    "definition, name",
    [
        ("int (*returns_function(void))(int) {\n  return 0;\n}\n", "returns_function"),
        ("int knr(a, b)\n  int a;\n  char *b;\n{\n  return a + *b;\n}\n", "knr"),
        ("static int (*rows(void))[3] {\n  static int r[2][3];\n  return r;\n}\n", "rows"),
        ("int variadic(const char *format, ...) {\n  return format[0];\n}\n", "variadic"),
        ("__attribute__((noinline)) static\nint\nattributed(void)\n{\n  return 1;\n}\n", "attributed"),
        ("struct pair { int a, b; };\nstruct pair made(int a) { struct pair p = {a, a}; return p; }\n", "made"),
    ],
)
def test_function_bodies_are_found_for_every_declarator_shape(tmp_path, definition, name):
    text, _ = preprocess(tmp_path, definition)
    unit = scan(text)
    [function] = [f for f in parse(unit) if f.name == name]
    assert function.body_offset in unit.bodies
    assert text[function.body_offset] == "{"
    body = unit.bodies[function.body_offset]
    assert text[body.close_offset] == "}" and text[body.close_offset + 1 :].strip() == ""
    assert text[function.name_offset : function.name_offset + len(name)] == name


def test_compound_literals_and_initialisers_at_file_scope_are_not_bodies(tmp_path):
    text, _ = preprocess(tmp_path, """\
        struct point { int x, y; };
        int *numbers = (int[]){1, 2, 3};
        struct point origin = (struct point){0, 0};
        struct point corners[2] = {
            {0, 0},
            {1, 1}
        };
        enum colour { RED, GREEN = (int){1} + 1 };
        int only(void) { return numbers[1] + origin.x + corners[1].y; }
    """)
    unit = scan(text)
    # the initializer is blanked to `{0}` in the copy, its newlines kept
    assert newlines(unit.sanitized) == newlines(text)
    assert re.search(r"corners\[2\] = \{\n *0 *\n *\n *\}", unit.sanitized)
    [only] = [f for f in parse(unit) if not f.name.startswith("__cprof_")]  # the guard header's own functions
    assert only.name == "only"
    user_bodies = [o for o in unit.bodies if unit.source_position(unit.line_of(o))[0].endswith("unit.c")]
    assert user_bodies == [only.body_offset]


def instrumented(tmp_path, code: str, **kwargs):
    text, source = preprocess(tmp_path, code, **kwargs)
    return instrument_unit(text, GUARD_HEADER, PathMap(str(tmp_path)))


def reasons(plan) -> dict:
    return {f.name: f.skipped for f in plan.functions}


def test_attributes_count_for_their_own_declaration_and_later_definitions_only(tmp_path):
    plan = instrumented(tmp_path, """\
        void quiet(void) __attribute__((no_instrument_function));
        __attribute__((cold)) int cold_one(void);
        void quiet(void) { }
        int cold_one(void) { return 1; }
        void before(void) __attribute__((no_instrument_function)); int after(void) { return 2; }
        struct __attribute__((packed)) s { char c; int i; }; int following(void) { return 3; }
        __attribute__((naked)) void bare(void) { __asm__("ret"); }
        extern inline int hint(void) { return 4; }
        inline int external(void) { return 5; }
        static inline int local(void) { return 6; }
        void before(void) { }
    """)
    assert reasons(plan) == {
        "quiet": "attribute no_instrument_function",
        "cold_one": None,
        "after": None,
        "following": None,
        "bare": "attribute naked",
        "hint": "extern inline (an inlining hint, never emitted)",
        "external": "inline with external linkage (may not use the unit's static site table)",
        "local": None,
        "before": "attribute no_instrument_function",
    }


def test_line_markers_give_the_users_file_and_line(tmp_path):
    plan = instrumented(
        tmp_path,
        """\
        #include <stdio.h>
        #include "util.h"

        int twice(int x)
        {
            return 2 * add_one(x);
        }
        #line 100 "grammar.y"
        int generated(void) { return 0; }
        """,
        flags=("-O2", "-D_FORTIFY_SOURCE=2"),
        headers={"util.h": """\
            /* a user header */
            static inline int add_one(int x) { return x + 1; }
        """},
    )
    where = {f.name: (os.path.basename(f.file), f.line, f.skipped) for f in plan.functions}
    assert where["add_one"] == ("util.h", 2, None)
    assert where["twice"] == ("unit.c", 4, None)
    assert where["generated"] == ("grammar.y", 100, None)
    # glibc's fortified wrappers come from system headers (line-marker flag 3) and are left alone
    system = [f for f in plan.functions if f.skipped == "defined in a system header"]
    assert system and all(f.file.startswith("/usr/include/") for f in system)


def test_source_position_reads_flag_3_as_a_system_header(tmp_path):
    text, source = preprocess(tmp_path, "#include <stdio.h>\nint x;\n")
    unit = scan(text)
    stdio_line = next(i + 1 for i, line in enumerate(text.splitlines()) if "extern int printf" in line)
    file, _, system = unit.source_position(stdio_line)
    assert file == "/usr/include/stdio.h" and system
    user_line = text.splitlines().index("int x;") + 1
    assert unit.source_position(user_line) == (source, 2, False)


def test_a_nested_function_gets_a_guard_of_its_own_and_compound_literals_are_not_taken_for_one(tmp_path):
    plan = instrumented(tmp_path, """\
        #include <emmintrin.h>
        int outer(int x) {
            int inner(int y) { return y + x; }
            __m128i v = __extension__ (__m128i){ 1, 2 };
            char *text = "int fake(void) {";
            return inner(1) + (struct { int a; }){ 2 }.a + _mm_cvtsi128_si32(v) + (text[0] == 'i');
        }
    """)
    sites = [(site.name, site.line, site.nested) for site in plan.sites]
    assert sites == [("outer", 2, False), ("inner", 3, True)]
    assert reasons(plan)["outer"] is None and reasons(plan)["inner"] is None
    assert not any(site.nested for site in plan.sites if site.name.startswith("_mm"))


def test_the_spliced_guard_is_the_declaration_the_runtime_calibrates():
    """The runtime subtracts the cost it measured for this exact declaration from every call."""
    with open(os.path.join(REPO, "csrc", "calibration.c")) as handle:
        runtime = " ".join(handle.read().replace("\\\n", "").split())
    # the calibration macro writes it with `index` as the macro parameter
    assert GUARD.format(index="index") in runtime
    # and the count-only guard, with the calibration's own block and table (a striped count is not measured: what
    # it gives back is COUNT_COST_NS, cprof/model/correction.py)
    call = COUNT_GUARD.split("= ", 1)[1].format(index=0)
    call = call.replace("&__cprof_count_block", "&calibration_count_block").replace(
        "&__cprof_count_table", "&calibration_count_table")
    assert call in runtime, call
