"""The instrumenting build through the real CLI: C that stretches the instrumenter (K&R, variadic, GNU extensions,
setjmp/longjmp, shared inline headers) builds instrumented and behaves exactly as the plain build, with exact call
counts; what cannot be instrumented falls back cleanly; filters select exactly the expected functions; and
`cprof instrument` keeps every line where it was."""

from __future__ import annotations

import os
import re
import subprocess

from conftest import by_name
from test_scan import preprocess

# Plain and instrumented builds use the same flags (cprof build's default is -O2 -g).
FLAGS = ["-O2", "-g"]


def plain_build(project, sources: list[str], name: str = "plain") -> str:
    result = project.run("cc", *FLAGS, *sources, "-o", name)
    assert result.returncode == 0, result.stderr
    return os.path.join(project.root, name)


def profile_like_plain(project, sources: list[str], args: tuple[str, ...] = ()) -> dict:
    """Builds both ways, checks identical output and exit status, and returns the report's functions by name."""
    plain = plain_build(project, sources)
    build = project.cprof("build", *sources)
    assert build.returncode == 0, build.stderr
    assert "cprof: warning" not in build.stderr and " 0 fell back" in build.stderr, build.stderr
    expected = project.run(plain, *args)
    got = project.cprof("run", "--", *args)
    assert (got.returncode, got.stdout) == (expected.returncode, expected.stdout)
    return report_functions(project)


def report_functions(project) -> dict:
    report = project.cprof("report", "--json", "--all")
    assert report.returncode == 0, report.stderr
    return by_name(report.json())


def calls(functions: dict) -> dict:
    return {name: f["calls"] for name, f in functions.items()}


def test_knr_variadic_recursive_and_function_pointer_code(project):
    project.write("prog.c", """\
        #include <stdarg.h>
        #include <stdio.h>
        static int knr_add(a, b)
            int a;
            int b;
        {
            return a + b;
        }
        static int sum(int n, ...) {
            va_list ap;
            int s = 0;
            va_start(ap, n);
            while (n--) s += va_arg(ap, int);
            va_end(ap);
            return s;
        }
        static int fact(int n) { return n <= 1 ? 1 : n * fact(n - 1); }
        static int twice(int x) { return 2 * x; }
        static int square(int x) { return x * x; }
        static int (*pick(int which))(int) { return which ? square : twice; }
        static int apply(int (*f)(int), int x) { return f(x); }
        int main(void) {
            int total = 0;
            for (int i = 0; i < 10; i++) total += apply(pick(i % 2), i);
            printf("%d %d %d %d\\n", knr_add(2, 3), sum(4, 1, 2, 3, 4), fact(10), total);
            return 3;
        }
    """)
    functions = profile_like_plain(project, ["prog.c"])
    assert calls(functions) == {"main": 1, "knr_add": 1, "sum": 1, "fact": 10, "pick": 10, "apply": 10,
                                "twice": 5, "square": 5}


GNU_PROGRAM = """\
    #include <stdio.h>
    #include <stdlib.h>
    static int released;
    static const int table[8] = { [0 ... 3] = 1, [4 ... 7] = 2 };
    __attribute__((noinline, used)) static int attributed(int x) { return x + table[x & 7]; }
    static int statement_expression(int x) { return ({ int t = x * 2; t + 1; }); }
    static int computed_goto(int n) {
        static void *const targets[] = { &&even, &&odd };
        int steps = 0;
    again:
        if (n == 0) return steps;
        steps++;
        goto *targets[n & 1];
    even:
        n /= 2;
        goto again;
    odd:
        n -= 1;
        goto again;
    }
    static __typeof__(int) typed(__typeof__(table[0]) v) { typeof(v) w = v * 3; __auto_type z = w + 1; return z; }
    static unsigned __int128 wide(unsigned long long a) { return (unsigned __int128)a * a; }
    static const char *ranges(int c) {
        switch (c) {
        case '0' ... '9': return "digit";
        case 'a' ... 'z': return "lower";
        default: return "other";
        }
    }
    static int elvis(int x) { return x ?: -1; }
    int asm_named(int x) __asm__("cprof_test_renamed");
    int asm_named(int x) { return x - 1; }
    static void release(int **p) { free(*p); released++; }
    static int with_cleanup(int v) {
        int *p __attribute__((cleanup(release))) = malloc(sizeof *p);
        *p = v;
        return *p + 1;
    }
    int main(void) {
        unsigned __int128 w = wide(1ull << 40);
        printf("%d %d %d %d\\n", attributed(5), statement_expression(4), computed_goto(37), typed(2));
        printf("%llu %llu\\n", (unsigned long long)(w >> 64), (unsigned long long)w);
        printf("%s %s %s\\n", ranges('7'), ranges('q'), ranges('#'));
        printf("%d %d %d\\n", elvis(0), elvis(9), asm_named(10));
        printf("%d %d\\n", with_cleanup(1), with_cleanup(2));
        printf("released %d\\n", released);
        return 0;
    }
"""


def test_gnu_extensions_in_user_code_are_instrumented_and_behave_the_same(project):
    project.write("gnu.c", GNU_PROGRAM)
    functions = profile_like_plain(project, ["gnu.c"])
    assert calls(functions) == {"main": 1, "attributed": 1, "statement_expression": 1, "computed_goto": 1,
                                "typed": 1, "wide": 1, "ranges": 3, "elvis": 2, "asm_named": 1,
                                "with_cleanup": 2, "release": 2}


def test_file_scope_declarations_of_every_shape_leave_the_functions_found(project):
    """Initializers, struct bodies and GNU constructs at file scope are blanked or jumped over by the scanner; the
    functions around them must still all be found, at the right braces."""
    project.write("scope.c", """\
        #include <stdarg.h>
        #include <stdio.h>
        typedef int (*handler_t)(int);
        static int inc(int x) { return x + 1; }
        static int dec(int x) { return x - 1; }
        static int (*table[])(int) = { inc, dec };
        struct ops { handler_t open, close; int flags[4]; };
        static const struct ops my_ops = { .open = inc, .close = dec, .flags = { [1] = 3, [3] = 4 } };
        _Static_assert(sizeof(int) == 4, "int is 32 bits");
        __asm__(".globl cprof_test_toplevel_asm");
        __thread int per_thread = 5;
        static typeof(int (*)(int)) chosen = inc;
        static int sized = sizeof(struct { int a, b; });
        static int ran_constructor;
        __attribute__((constructor)) static void init(void) { ran_constructor = 1; }
        struct pair { int a, b; } make_pair(int a) { struct pair p = { a, -a }; return p; }
        enum kind { SMALL, LARGE } classify(int x) { return x < 10 ? SMALL : LARGE; }
        int aliased(int x) __attribute__((alias("target")));
        int target(int x) { return x * 10; }
        handler_t pick(int which) { return which ? table[1] : my_ops.open; }
        static int *numbers = (int[]){ 4, 5, 6 };
        static int vsum(int n, va_list ap) { int s = 0; while (n--) s += va_arg(ap, int); return s; }
        static int sum(int n, ...) { va_list ap; va_start(ap, n); int s = vsum(n, ap); va_end(ap); return s; }
        int main(int argc, char *argv[static 1]) {
            struct pair p = make_pair(argc + 2);
            printf("%d %d %d %d %d %d\\n", table[0](1), pick(1)(5), chosen(7), sized, my_ops.flags[3],
                   argv[0] != 0);
            printf("%d %d %d %d %d %d\\n", p.a, p.b, classify(argc), aliased(2), per_thread, ran_constructor);
            printf("%d %d\\n", numbers[2], sum(3, 1, 2, 3));
            return 0;
        }
    """)
    functions = profile_like_plain(project, ["scope.c"])
    assert calls(functions) == {"main": 1, "init": 1, "inc": 2, "dec": 1, "make_pair": 1, "classify": 1,
                                "target": 1, "pick": 1, "sum": 1, "vsum": 1}


def test_setjmp_longjmp_output_and_counts_are_exact(project):
    project.write("jump.c", """\
        #include <setjmp.h>
        #include <stdio.h>
        static jmp_buf env;
        static int depth;
        static void dive(int n) {
            if (n == 0) longjmp(env, 1);
            depth++;
            dive(n - 1);
        }
        static int leaf(int x) { return x + 1; }
        int main(void) {
            volatile int caught = 0, acc = 0;
            for (int i = 0; i < 5; i++) {
                if (setjmp(env) == 0) dive(10);
                else caught++;
                acc += leaf(i);
            }
            printf("caught %d depth %d acc %d\\n", caught, depth, acc);
            return 0;
        }
    """)
    functions = profile_like_plain(project, ["jump.c"])
    assert calls(functions) == {"main": 1, "dive": 55, "leaf": 5}
    # the frames the longjmp abandoned were closed: leaf ran under main, not under a stale dive frame, and each
    # new dive started again right under main
    assert functions["leaf"]["total_ns"] <= functions["main"]["total_ns"]
    from cprof.model.load import load_view
    from cprof.workspace import Store

    [thread] = load_view(Store(os.path.join(project.root, ".cprof")), None).threads
    paths = {tuple(k.name for k in node.path()): node.calls for node in thread.root.walk() if node.key}
    assert paths[("main", "leaf")] == 5 and sum(n for p, n in paths.items() if p[-1] == "leaf") == 5
    assert paths[("main", "dive")] == 5  # five dives from main, none nested in an abandoned one
    assert max(len(p) for p in paths) == 12 and all(p[0] == "main" and set(p[1:]) <= {"dive"}
                                                  for p in paths if p[-1] == "dive")


def test_a_static_inline_header_function_is_one_function_across_units(project):
    project.write("hash.h", """\
        static inline int hash(int x) { return x * 31 + 7; }
    """)
    project.write("a.c", """\
        #include "hash.h"
        int from_a(int n) { int s = 0; for (int i = 0; i < n; i++) s += hash(i); return s; }
    """)
    project.write("main.c", """\
        #include <stdio.h>
        #include "hash.h"
        int from_a(int n);
        int main(void) { printf("%d\\n", hash(1) + hash(2) + hash(3) + from_a(10)); return 0; }
    """)
    functions = profile_like_plain(project, ["a.c", "main.c"])
    assert calls(functions) == {"main": 1, "from_a": 1, "hash": 13}
    assert functions["hash"]["file"].endswith("hash.h") and functions["hash"]["line"] == 1


def test_nested_functions_are_measured_without_a_new_warning(project):
    project.write("nested.c", """\
        #include <stdio.h>
        static int outer(int x) {
            int add(int y) { return x + y; }
            return add(1) + add(2);
        }
        int main(void) { printf("%d\\n", outer(10)); return 0; }
    """)
    plain = project.run("cc", *FLAGS, "-Wall", "-Wshadow", "-Werror", "nested.c", "-o", "plain")
    assert plain.returncode == 0, plain.stderr
    build = project.cprof("build", "nested.c", "--", "-Wall", "-Wshadow", "-Werror")
    assert build.returncode == 0 and "warning" not in build.stderr, build.stderr
    assert project.cprof("run", "--").stdout == "23\n" == project.run("./plain").stdout
    functions = report_functions(project)
    assert calls(functions) == {"main": 1, "outer": 1, "add": 2}
    assert functions["add"]["line"] == 3 and functions["outer"]["total_ns"] >= functions["add"]["total_ns"]


def test_the_users_strict_warning_flags_find_nothing_in_what_cprof_adds(project):
    """A program that compiles clean under strict warnings (xz's build enables -Wbad-function-cast: the guard's
    cast of a builtin's call gave it 212 warnings) compiles as clean instrumented, timed and counted alike."""
    project.write("strict.c", """\
        #include <stdio.h>
        static unsigned leaf(unsigned x) { return x * 2654435761u; }
        static unsigned work(unsigned n) { unsigned s = 0, i; for (i = 0; i < n; i++) s ^= leaf(i); return s; }
        int main(void) { printf("%u\\n", work(5000)); return 0; }
    """)
    strict = ["-Wall", "-Wextra", "-Wbad-function-cast", "-Wcast-qual", "-Wconversion", "-Wshadow",
              "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wpedantic", "-Werror"]
    plain = project.run("cc", *FLAGS, *strict, "strict.c", "-o", "plain")
    assert plain.returncode == 0, plain.stderr
    build = project.cprof("build", "--count-only", "leaf", "strict.c", "--", *strict)
    assert build.returncode == 0 and "warning" not in build.stderr, build.stderr
    assert project.cprof("run", "--").stdout == project.run("./plain").stdout
    assert calls(report_functions(project)) == {"main": 1, "work": 1, "leaf": 5000}


def test_a_count_only_function_keeps_the_clone_gcc_makes_of_it_in_the_plain_build(project):
    """gcc passes a small static function's pointed-to argument by value (an IPA-SRA clone, `spread.isra.0`) when
    nothing between its entry and its reads can change what the pointer points to. The count's increment must not
    look like such a change: Lua's LTnum lost its clone while it did, and time moved between Lua's functions."""
    project.write("clones.c", """\
        #include <stdio.h>
        struct pair { long long low, high; };
        __attribute__((noinline)) static long long spread(const struct pair *p) { return p->high - p->low; }
        int main(int argc, char **argv) { struct pair p = {argc, argc * 7 + (argv != 0)}; printf("%lld\\n", spread(&p)); return 0; }
    """)

    def spread_symbols(binary: str) -> list[str]:
        symbols = project.run("nm", binary).stdout.split()
        return sorted(name for name in symbols if name.startswith("spread"))

    assert project.run("cc", *FLAGS, "clones.c", "-o", "plain").returncode == 0
    assert spread_symbols("plain") == ["spread.isra.0"]  # the premise: gcc clones it without cprof
    build = project.cprof("build", "--count-only", "spread", "clones.c", "-o", "clones")
    assert build.returncode == 0, build.stderr
    assert spread_symbols(os.path.join(project.root, ".cprof", "build", "direct", "clones")) == ["spread.isra.0"]
    assert project.cprof("run", "--").stdout == project.run("./plain").stdout
    assert calls(report_functions(project)) == {"main": 1, "spread": 1}


def test_a_unit_pycparser_cannot_parse_is_built_uninstrumented_with_one_warning(project):
    project.write("digraphs.c", """\
        #include <stdio.h>
        static int table<:3:> = <%1, 2, 3%>;
        static int get(int i) <% return table<:i:>; %>
        int main(void) <% printf("%d\\n", get(2)); return 0; %>
    """)
    build = project.cprof("build", "digraphs.c")
    assert build.returncode == 0, build.stderr
    warnings = [line for line in build.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "digraphs.c:2:" in warnings[0], build.stderr
    assert "1 fell back" in build.stderr
    assert project.cprof("run", "--").stdout == "3\n"


def test_a_syntax_error_is_reported_by_the_compiler_at_the_users_line(project):
    project.write("broken.c", """\
        int main(void) {
            int x = ;
            return x;
        }
    """)
    build = project.cprof("build", "broken.c")
    assert build.returncode == 4
    assert re.search(r"broken\.c:2:\d+: error: expected expression", build.stderr), build.stderr
    assert "Traceback" not in build.stderr and "cprof: warning" not in build.stderr


def test_list_skipped_names_functions_and_reasons(project):
    project.write("skip.c", """\
        #include <stdio.h>
        __attribute__((no_instrument_function)) static int hidden(int x) { return x * 2; }
        static int shown(int x) { return x + 1; }
        int main(void) { printf("%d\\n", hidden(shown(1))); return 0; }
    """)
    build = project.cprof("build", "--list-skipped", "skip.c")
    assert build.returncode == 0, build.stderr
    assert re.search(r"^hidden\t\S*skip\.c:2\tattribute no_instrument_function$", build.stdout, re.M), build.stdout
    assert "shown" not in build.stdout and "main" not in build.stdout
    assert project.cprof("run", "--").stdout == "4\n"
    assert calls(report_functions(project)) == {"main": 1, "shown": 1}


def test_attributes_on_an_earlier_declaration_count_and_plain_declarations_change_nothing(project):
    # pycparser reads the main file's prototypes only when they carry an attribute the skips look at
    # (parse.py, _without_plain_declarations): such a prototype must still skip its definition, and the plain
    # ones around it must leave every definition found
    project.write("decl.c", """\
        #include <stdio.h>
        static int shown(int x), other(int);
        static int hidden(int x) __attribute__((no_instrument_function));
        extern const char *names[];
        int (*pointer)(int);
        static int hidden(int x) { return x * 2; }
        static int shown(int x) { return x + 1; }
        static int other(int x) { return x - 1; }
        int main(void) { pointer = other; printf("%d\\n", hidden(shown(pointer(1)))); return 0; }
    """)
    build = project.cprof("build", "--list-skipped", "decl.c")
    assert build.returncode == 0, build.stderr
    assert re.search(r"^hidden\t\S*decl\.c:6\tattribute no_instrument_function$", build.stdout, re.M), build.stdout
    assert project.cprof("run", "--").stdout == "2\n"
    assert calls(report_functions(project)) == {"main": 1, "shown": 1, "other": 1}


def test_a_knr_definition_among_prototypes_is_found(project):
    project.write("knr.c", """\
        #include <stdio.h>
        static int twice(int);
        static int add(a, b) int a; int (*b)(int); { return b(a); }
        static int twice(int x) { return 2 * x; }
        int main(void) { printf("%d\\n", add(4, twice)); return 0; }
    """)
    functions = profile_like_plain(project, ["knr.c"])
    assert calls(functions) == {"main": 1, "add": 1, "twice": 1}


def write_filter_project(project) -> None:
    project.write("core/alpha.c", """\
        int alpha_one(int x) { return x + 1; }
        int alpha_two(int x) { return x + 2; }
    """)
    project.write("core/beta.c", """\
        int beta_one(int x) { return x * 2; }
        int beta_two(int x) { return x * 3; }
    """)
    project.write("main.c", """\
        #include <stdio.h>
        int alpha_one(int), alpha_two(int), beta_one(int), beta_two(int);
        static int helper(int x) { return alpha_one(x) + alpha_two(x) + beta_one(x) + beta_two(x); }
        int main(void) { printf("%d\\n", helper(1)); return 0; }
    """)


def test_filters_instrument_exactly_the_selected_functions(project):
    write_filter_project(project)
    sources = ["core/alpha.c", "core/beta.c", "main.c"]
    cases = [
        (["--fn", "alpha"], {"alpha_one", "alpha_two"}),
        (["--fn", "alpha_one", "--fn", "main", "--exact"], {"alpha_one", "main"}),
        (["--file", "core/beta.c"], {"beta_one", "beta_two"}),
        (["--file", "core/*.c", "--exclude-fn", "two"], {"alpha_one", "beta_one"}),
        (["--exclude-fn", "one"], {"alpha_two", "beta_two", "helper", "main"}),
        (["--exclude-file", "main.c"], {"alpha_one", "alpha_two", "beta_one", "beta_two"}),
    ]
    for options, expected in cases:
        build = project.cprof("build", *options, *sources)
        assert build.returncode == 0, (options, build.stderr)
        assert f"{len(expected)} functions instrumented" in build.stderr, (options, build.stderr)
        assert project.cprof("run", "--").stdout == "10\n"
        assert set(report_functions(project)) == expected, options


def test_a_filter_that_matches_nothing_is_an_error_naming_the_closest_functions(project):
    write_filter_project(project)
    sources = ["core/alpha.c", "core/beta.c", "main.c"]
    typo = project.cprof("build", "--fn", "alpah_one", *sources)
    assert typo.returncode == 2
    assert "--fn alpah_one" in typo.stderr and "alpha_one" in typo.stderr, typo.stderr
    partial = project.cprof("build", "--fn", "alpha", "--exact", *sources)
    assert partial.returncode == 2 and "alpha_one" in partial.stderr and "alpha_two" in partial.stderr
    missing_file = project.cprof("build", "--file", "gamma.c", *sources)
    assert missing_file.returncode == 2 and "gamma.c" in missing_file.stderr


LINES_PROGRAM = """\
    #include <stdio.h>
    static int helper(int x)
    {
        int unused_here;
        return x + 1;
    }
    int main(void) { printf("%d %d\\n", helper(__LINE__), __LINE__);
        return 0; }
"""


def test_instrument_keeps_every_line_and_puts_guards_on_the_brace_line(project, tmp_path):
    assert project.root == str(tmp_path)
    original, source = preprocess(tmp_path, LINES_PROGRAM, name="lines.c", flags=("-Wall",))  # writes lines.c
    result = project.cprof("instrument", source, "--", "-Wall")
    assert result.returncode == 0, result.stderr
    before, after = original.splitlines(), result.stdout.splitlines()
    assert len(after) == len(before)
    guard = re.compile(r" int __cprof_guard __attribute__\(\(cleanup\(__cprof_leave\), unused\)\) = "
                       r"__cprof_enter\(&__cprof_sites\[\d+\], &__cprof_guard\);")
    guarded = 0
    for old, new in zip(before, after):
        if old == new:
            continue
        if new.startswith(old) and new[len(old):].startswith(" static struct __cprof_site __cprof_sites["):
            continue  # the site table, at the end of the guard header's last line
        # a guard: right after a `{`, on the same line, and nothing else changed
        match = guard.search(new)
        assert match and new[match.start() - 1] == "{" and guard.sub("", new, count=1) == old, (old, new)
        guarded += 1
    assert guarded == 2  # helper and main (glibc's inline functions are not instrumented)

    # the compiler reads the instrumented text at the user's lines: same warnings, same __LINE__
    instrumented = os.path.join(project.root, "lines.i")
    with open(instrumented, "w") as handle:
        handle.write(result.stdout)
    plain = subprocess.run(["cc", "-Wall", "-c", source, "-o", os.devnull], capture_output=True, text=True)
    spliced = subprocess.run(["cc", "-Wall", "-x", "cpp-output", "-c", instrumented, "-o", os.devnull],
                             capture_output=True, text=True)
    warning = re.compile(r"^\S+:\d+:\d+: warning: .*$", re.M)
    assert warning.findall(spliced.stderr) == warning.findall(plain.stderr) != []
    assert "lines.c:4:" in plain.stderr
    functions = profile_like_plain(project, ["lines.c"])
    assert calls(functions) == {"main": 1, "helper": 1}
    assert (functions["helper"]["line"], functions["main"]["line"]) == (2, 7)
