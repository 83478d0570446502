"""A corpus of the C that real projects are made of (SIMD intrinsics, vector types, C23, GNU extensions), each
construct compiled with the flags a project that uses it compiles with: every unit is instrumented (none falls
back), the program behaves exactly as its plain build, and the functions around the construct are counted
exactly. Constructs gcc 12 cannot compile yet (most of C23's new keywords) are checked on the instrumenter itself,
on the text such a compiler would hand it."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest

from cprof.building.toolchain import GUARD_HEADER
from cprof.instrument.parse import parse
from cprof.instrument.scan import scan
from cprof.instrument.unit import PathMap, instrument_unit
from test_instrument import calls, report_functions

# Each: (id, flags, program, the calls expected of its functions). Every program prints something that depends
# on the construct, so that a wrong instrumentation shows as a different output, not only as a count.
CONSTRUCTS = [
    ("sse2-intrinsics-and-vector-literals", ["-O2"], """\
        #include <emmintrin.h>
        #include <stdio.h>
        static const __m128i STEP = {1, 2};
        static __m128i add(__m128i a, __m128i b) { return _mm_add_epi32(a, b); }
        static __m128d pair(double x) { return __extension__ (__m128d){ x, 0.0 }; }
        int main(void) {
            __m128i v = _mm_set1_epi32(3);
            for (int i = 0; i < 5; i++) v = add(v, _mm_add_epi64(STEP, (__m128i){0, 0}));
            printf("%d %g\\n", _mm_cvtsi128_si32(v), _mm_cvtsd_f64(pair(2.5)));
            return 0;
        }
    """, {"main": 1, "add": 5, "pair": 1}),
    ("avx2-fma-bmi2-behind-a-cpu-check", ["-O2", "-mavx2", "-mfma", "-mbmi2"], """\
        #include <immintrin.h>
        #include <stdio.h>
        __attribute__((target("avx2"))) static int sum8(const int *p) {
            __m256i v = _mm256_loadu_si256((const __m256i *)p);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            s = _mm_hadd_epi32(s, s);
            return _mm_cvtsi128_si32(_mm_hadd_epi32(s, s));
        }
        static int sum8_scalar(const int *p) { int s = 0; for (int i = 0; i < 8; i++) s += p[i]; return s; }
        static int sum(const int *p) { return __builtin_cpu_supports("avx2") ? sum8(p) : sum8_scalar(p); }
        int main(void) {
            int data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            printf("%d %u\\n", sum(data), (unsigned)_pdep_u32(0xffu, 0xf0f0u) * 0u);
            return 0;
        }
    """, {"main": 1, "sum": 1}),
    ("avx512-every-intrinsic-header", ["-O2", "-march=sapphirerapids"], """\
        #include <immintrin.h>
        #include <x86intrin.h>
        #include <stdio.h>
        static int lanes(void) { return (int)(sizeof(__m512i) / sizeof(int)); }
        static __m512i widen(__m256i x) { return _mm512_cvtepu16_epi32(x); }
        int main(int argc, char **argv) {
            (void)argv;
            if (argc > 5) { __m512i w = widen(_mm256_setzero_si256()); return _mm512_reduce_add_epi32(w); }
            printf("%d\\n", lanes());
            return 0;
        }
    """, None),  # built, never run: -march=sapphirerapids code may use instructions this CPU lacks
    ("gnu-vector-types", ["-O2"], """\
        #include <stdio.h>
        typedef int v4si __attribute__((vector_size(16)));
        typedef float v4sf __attribute__((vector_size(16), aligned(16)));
        static const v4si ONES = {1, 1, 1, 1};
        static v4si twice(v4si a) { return a + a + (v4si){0, 1, 2, 3} - ONES + ONES; }
        static v4si reverse(v4si a) { return __builtin_shufflevector(a, a, 3, 2, 1, 0); }
        int main(void) {
            v4si x = reverse(twice(ONES));
            v4sf f = __builtin_convertvector(x, v4sf);
            printf("%d %d %g\\n", x[0], x[3], (double)f[1]);
            return 0;
        }
    """, {"main": 1, "twice": 1, "reverse": 1}),
    ("c23-attributes-separators-generic", ["-O2", "-std=c2x"], """\
        #include <stdio.h>
        #include <stdbool.h>
        [[maybe_unused]] static int unused_helper(int x) { return x; }
        [[gnu::noinline, gnu::cold]] static int twice(int x) [[]] { return 2 * x; }
        static const int LIMIT = 1'000;
        _Static_assert(1'000 == 1000, "separators");
        static bool [[maybe_unused]] flag;
        static bool is_even([[maybe_unused]] int n) { return n % 2 == 0; }
        __typeof__(twice(1)) total;
        enum { SMALL = 0x10'00, BIG = _Generic(1, int: 2, default: 3) };
        static int arr[_Alignof(long) + 1];
        struct [[gnu::packed]] packed { char c; [[maybe_unused]] int i; };
        [[nodiscard]] int main(void) {
            for (int i = 0; i < LIMIT; i++) if (is_even(i)) total += twice(i);
            printf("%d %d %d\\n", total, SMALL + BIG + (int)sizeof arr, (int)sizeof(struct packed));
            return 0;
        }
    """, {"main": 1, "is_even": 1000, "twice": 500}),
    ("floating-and-wide-integer-types", ["-O2"], """\
        #include <stdio.h>
        static _Float16 half_of(_Float16 x) { return x / 2; }
        static _Float128 quad = 1.5;
        static _Float64x extended(_Float64x x) { return x * 2; }
        __extension__ static unsigned __int128 wide(unsigned long long x) { return (unsigned __int128)x << 64; }
        static __auto_type counter = 0;
        int main(void) {
            counter++;
            printf("%g %g %g %llu %d\\n", (double)half_of(3), (double)quad, (double)extended(1.25),
                   (unsigned long long)(wide(3) >> 64), counter);
            return 0;
        }
    """, {"main": 1, "half_of": 1, "extended": 1, "wide": 1}),
    ("gnu-statements-labels-and-gotos", ["-O2", "-std=gnu17"], """\
        #include <stdio.h>
        static int dispatch(int n) {
            __label__ done;
            static void *targets[] = { &&even, &&odd };
            int result = ({ int t = n * 2; t + 1; });
            goto *targets[n & 1];
        even: result += 10; goto done;
        odd: __attribute__((unused)) result += 20;
        done:
            return result;
        }
        static int classify(int c) {
            switch (c) {
            case '0' ... '9': return 1;
            case 'a' ... 'z': __attribute__((fallthrough));
            default: return 2;
            }
        }
        static int checked(int x) {
            asm goto("" : : "r"(x) : : small);
            return x;
        small:
            return -x;
        }
        static const int table[8] = { [0 ... 3] = 1, [4 ... 7] = 2 };
        int main(void) {
            __auto_type total = dispatch(3) + dispatch(4) + classify('5') + classify('q') + checked(2);
            printf("%d %d\\n", total, table[5]);
            return 0;
        }
    """, {"main": 1, "dispatch": 2, "classify": 2, "checked": 1}),
    ("generic-and-typeof-at-file-scope", ["-O2", "-std=gnu17"], """\
        #include <stdio.h>
        #define KIND(x) _Generic((x), int: 1, double: 2, default: 0)
        static int kinds[KIND(1.0) + KIND(1)];
        static __typeof__((short)2 + 1) from_statement = 4;
        typedef __typeof__(kinds[0]) element_t;
        static element_t first(void) { return (element_t)(sizeof kinds / sizeof kinds[0]); }
        int main(void) { printf("%d %d\\n", first(), from_statement); return 0; }
    """, {"main": 1, "first": 1}),
    ("attributes-in-every-position", ["-O2", "-Wall"], """\
        #include <stdio.h>
        struct __attribute__((packed)) record { char tag; int value __attribute__((aligned(1))); };
        typedef struct record __attribute__((aligned(8))) aligned_record;
        static int __attribute__((noinline)) add(int a __attribute__((unused)), int b) __attribute__((hot));
        static int __attribute__((noinline)) add(int a __attribute__((unused)), int b) { return b + 1; }
        __attribute__((cold, noinline)) static void report(const char *what) { printf("%s\\n", what); }
        static int renamed(int x) __asm__("cprof_renamed_symbol");
        static int renamed(int x) { return x * 3; }
        int main(void) {
            aligned_record r = { 'a', add(1, 2) };
            report(r.value == 3 ? "ok" : "bad");
            printf("%d %d\\n", renamed(2), (int)sizeof(struct record));
            return 0;
        }
    """, {"main": 1, "add": 1, "report": 1, "renamed": 1}),
    ("nested-functions-and-extended-identifiers", ["-O2"], """\
        #include <stdio.h>
        static int café(int x) { return x + 1; }
        static int outer(int base) {
            int scale(int y) { return base * y; }
            return scale(2) + scale(café(3));
        }
        int main(void) { printf("%d\\n", outer(10)); return 0; }
    """, {"main": 1, "outer": 1, "scale": 2, "café": 1}),
]


@pytest.mark.parametrize("flags,code,expected", [c[1:] for c in CONSTRUCTS], ids=[c[0] for c in CONSTRUCTS])
def test_construct_is_instrumented_and_behaves_as_plain(project, flags, code, expected):
    project.write("construct.c", code)
    plain = project.run("cc", "-g", *flags, "construct.c", "-o", "plain")
    assert plain.returncode == 0, plain.stderr
    build = project.cprof("build", "construct.c", "--", *flags)
    assert build.returncode == 0, build.stderr
    assert "cprof: warning" not in build.stderr and "1 units instrumented, 0 fell back" in build.stderr, build.stderr
    if expected is None:
        assert re.search(r"; [1-9]\d* functions instrumented", build.stderr), build.stderr
        return
    expected_run = project.run("./plain")
    got = project.cprof("run", "--")
    assert (got.returncode, got.stdout) == (expected_run.returncode, expected_run.stdout), got.stderr
    assert {name: n for name, n in calls(report_functions(project)).items() if name in expected} == expected
    # built with plain copies (offcopy.py), and run switched off: the copies run, and behave as the plain build
    copies = project.cprof("build", "--off-copies", "construct.c", "--", *flags)
    assert copies.returncode == 0 and "cprof: warning" not in copies.stderr, copies.stderr
    binary = os.path.join(project.root, ".cprof", "build", "direct", "construct")
    assert "__cprof_off" in project.run("nm", binary).stdout
    switched_off = subprocess.run([binary], cwd=project.root, capture_output=True, text=True,
                                  env=dict(os.environ, CPROF_DISABLE="1"))
    assert (switched_off.returncode, switched_off.stdout) == (expected_run.returncode, expected_run.stdout)


# What gcc 13-15 hand the instrumenter for C23 (gcc 12 here compiles none of it): the guard header's line that
# names the standard, then the unit. `bool`, `true`, `nullptr`, `constexpr`, `static_assert`, `alignas`,
# `thread_local`, `typeof_unqual` and `_BitInt` are keywords there.
C23_UNIT = """\
constexpr int LIMIT = 1'000;
static_assert(LIMIT == 1000);
static_assert(sizeof(int) >= 2, "int");
typedef unsigned _BitInt(24) u24;
alignas(16) static int aligned[4];
thread_local int counter;
[[gnu::always_inline]] static inline bool forced(int n) { return n > 0; }
static bool is_even(int n) { return n % 2 == 0; }
static int *maybe(bool b) { return b ? &counter : nullptr; }
typeof_unqual(const int) plain_int;
static _BitInt(12) narrow(unsigned _BitInt(24) x) { return (_BitInt(12))x; }
enum : unsigned char { SMALL = true, BIG = alignof(long) };
int main(void) { return is_even(LIMIT) && maybe(false) == nullptr ? 0 : 1; }
"""


def _unit(source: str, code: str, version: str) -> str:
    """A preprocessed unit as the wrapper reads it: the guard header force-included (its last line names the C
    standard), then the source."""
    return (f'# 1 "{source}"\n# 1 "{GUARD_HEADER}" 1\ntypedef int __cprof_stdc_{version};\n'
            f'# 1 "{source}" 2\n{textwrap.dedent(code)}')


def _plan(text: str):
    return instrument_unit(text, GUARD_HEADER, PathMap("/"))


def test_c23_keywords_are_read_in_a_c23_unit():
    text = _unit("c23.c", C23_UNIT, "202311L")
    functions = {f.name: f for f in parse(scan(text))}
    assert set(functions) == {"forced", "is_even", "maybe", "narrow", "main"}
    for name, function in functions.items():
        assert re.match(rf"{name}\s*\(", text[function.name_offset:]) and text[function.body_offset] == "{"
    reasons = {f.name: f.skipped for f in _plan(text).functions}
    assert reasons["is_even"] is None and reasons["forced"].startswith("always_inline")


def test_before_c23_those_words_are_the_users_own_names():
    """Pre-C23 code may name its own type `bool` and a variable `nullptr`: stdbool.h's macros are gone by now."""
    text = _unit("old.c", """\
        typedef int bool;
        static int nullptr = 0;
        static bool constexpr(bool thread_local) { return thread_local + nullptr; }
        int main(void) { return constexpr(0); }
    """, "201710L")
    assert [f.name for f in parse(scan(text))] == ["constexpr", "main"]


def test_an_unreadable_declaration_costs_only_itself():
    """One item pycparser cannot read is left out; the other functions of the unit are still found, and a
    definition whose declarator is plain is still read by its name."""
    text = _unit("odd.c", """\
        typedef struct S S;
        typedef int table_t<:3:>;
        typedef int odd_t __attribute__((mode(QI))), other_t;
        other_t f(int x) { return x; }
        static int g(int a<:1:>) { return a[0]; }
        int main(void) { return f(1); }
    """, "201710L")
    parsed = parse(scan(text))
    assert [f.name for f in parsed] == ["f", "g", "main"]
    assert [r.function for r in parsed.repairs] == ["", "g"]
    plan = _plan(text)
    assert [s.name for s in plan.sites] == ["f", "g", "main"]
    assert [line for _, line, _ in plan.repairs] == [2, 5]
