"""Plain copies for profiling switched off (`--off-copies`, cprof/instrument/offcopy.py): a switched-off run runs
them, they behave exactly as the plain build, and only functions a second copy cannot change get one."""

from __future__ import annotations

import os
import re
import subprocess

from cprof.building.toolchain import GUARD_HEADER
from cprof.instrument.filters import FunctionFilter
from cprof.instrument.unit import PathMap, instrument_unit

# Every construct a second copy could get wrong, each printing what would show it.
PROGRAM = """\
    #include <stdio.h>
    #include <stdlib.h>
    #include <stdarg.h>
    static int counter(void) { static int n; return ++n; }  /* one static, whichever copy runs */
    static const char *name_of(int i) { static const char *const names[] = {"zero", "one"}; return names[i & 1]; }
    static int dispatch(int op) {  /* computed goto through a constant static table */
        static const void *const targets[] = {&&add, &&sub};
        goto *targets[op & 1];
    add: return op + 100;
    sub: return op - 100;
    }
    static int square(int x) { return x * x; }
    static int cube(int x) { return x * x * x; }
    static int shadowed(int x) { int (*square)(int) = cube; return square(x); }  /* the local, not the function */
    static void *own_address(void) { return (void *)own_address; }
    static const char *whose(void) { return __func__; }
    static int sum(int n, ...) { va_list ap; int s = 0; va_start(ap, n); while (n--) s += va_arg(ap, int);
                                 va_end(ap); return s; }
    static int knr(a, b) int a; int b; { return a * 10 + b; }
    static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
    static void say(const char *what) { printf("%s|", what); }
    static int labelled(int x) { __asm__ volatile("cprof_test_label_%=: nop" ::: "memory"); return x; }
    static int named_label(int x) { __asm__ volatile(".Lcprof_named:\\n\\tnop"); return x; }
    __attribute__((noreturn)) static void leave(int status) { fflush(stdout); exit(status); }
    int main(void) {
        counter(); counter();
        say(name_of(1)); say(whose());
        printf("%d %d %d %d %d %d %d %d %d %d\\n", counter(), dispatch(1), dispatch(2), square(3), shadowed(2),
               own_address() == (void *)own_address, sum(3, 1, 2, 3), knr(4, 2), fib(15),
               labelled(5) + named_label(6));
        leave(3);
    }
"""


def _build(project, *options: str) -> str:
    build = project.cprof("build", *options, "prog.c", "--", "-O2", "-Wall")
    assert build.returncode == 0 and "cprof: warning" not in build.stderr, build.stderr
    return os.path.join(project.root, ".cprof", "build", "direct", "prog")


def _run(binary: str, **env: str) -> tuple[int, str]:
    result = subprocess.run([binary], capture_output=True, text=True, env=dict(os.environ, **env))
    return result.returncode, result.stdout


def _symbols(project, binary: str) -> dict[str, tuple[int, int]]:
    """name -> (address, size), from nm."""
    symbols = {}
    for line in project.run("nm", "-S", binary).stdout.splitlines():
        fields = line.split()
        if len(fields) == 4:
            symbols[fields[3]] = (int(fields[0], 16), int(fields[1], 16))
    return symbols


def test_switched_off_copies_behave_as_the_plain_build(project):
    project.write("prog.c", PROGRAM)
    assert project.run("cc", "-O2", "prog.c", "-o", "plain").returncode == 0
    expected = _run(os.path.join(project.root, "plain"))
    assert expected == (3, "one|whose|3 -99 102 9 8 1 6 42 610 11\n"), expected
    binary = _build(project, "--off-copies")
    assert _run(binary, CPROF_DISABLE="1") == expected
    assert _run(binary) == expected  # profiling on: the originals, guards and all
    copies = {name[:-len("__cprof_off")] for name in _symbols(project, binary) if name.endswith("__cprof_off")}
    # gcc may inline a copy wherever it is called: which ones it kept is its business; which it never had is ours
    intermediate = project.cprof("instrument", "prog.c", "--off-copies", "--", "-O2")
    assert intermediate.returncode == 0, intermediate.stderr
    defined = {name for name in ("counter", "name_of", "dispatch", "square", "cube", "shadowed", "own_address", "whose",
                                 "sum", "knr", "fib", "say", "labelled", "named_label", "leave", "main")
               if re.search(rf"\b{name}__cprof_off\(", intermediate.stdout)}
    assert defined == {"name_of", "dispatch", "square", "cube", "shadowed", "own_address", "whose", "sum", "knr",
                       "fib", "say", "labelled", "leave", "main"}  # not: a static it writes, a named asm label
    assert copies <= defined and "main" in copies


def test_a_switched_off_run_runs_the_copies(project):
    """Where a call returns to, told apart by symbol: the copy switched off, the original switched on."""
    project.write("prog.c", """\
        #include <stdio.h>
        __attribute__((no_instrument_function, noinline)) static void *where(void) {
            return __builtin_return_address(0);
        }
        __attribute__((noinline)) static long work(int n) {
            long delta = (char *)where() - (char *)where;
            return delta + n * 0;
        }
        int main(int argc, char **argv) { (void)argv; printf("%ld\\n", work(argc)); return 0; }
    """)
    binary = _build(project, "--off-copies")
    symbols = _symbols(project, binary)

    def function_returned_into(output: str) -> str:
        address = symbols["where"][0] + int(output)
        return next(name for name, (start, size) in symbols.items() if start <= address < start + size)

    assert function_returned_into(_run(binary, CPROF_DISABLE="1")[1]) == "work__cprof_off"
    assert function_returned_into(_run(binary)[1]) == "work"


ADAPTIVE_UNIT = """\
static int helper(int x) { return x + 1; }
__attribute__((visibility("default"))) int exported(int x);  /* a library's API: copied all the same */
int exported(int x) { return x - 1; }
static int by_pointer(int x) { return x * 5; }
static int (*const pointer)(int) = by_pointer;
static int leaf(int x) { return x >> 1; }
static int user(int x) { return helper(x) * 2 + exported(x) + pointer(x) + leaf(x); }
static int user_of_user(int x) { return user(x) + 1; }
static int unrelated(int x) { return x * 3; }
int elsewhere(int x) { return unrelated(x) + 2; }
int main(void) { return user_of_user(1); }
"""


def _copies(counted: tuple[str, ...], source: str = ADAPTIVE_UNIT,
            function_filter: FunctionFilter | None = None) -> tuple[set[str], list[str]]:
    text = f'# 1 "u.c"\n# 1 "{GUARD_HEADER}" 1\ntypedef int __cprof_stdc_201710L;\n# 1 "u.c" 2\n{source}'
    unit = instrument_unit(text, GUARD_HEADER, PathMap("/"), function_filter or FunctionFilter(counted=counted),
                           off_copies=True)
    return {copy.name for copy in unit.copies.copies}, unit.copies.targets


def test_an_adaptive_build_copies_what_counts_its_callers_and_what_they_call():
    copies, targets = _copies(("helper", "exported", "by_pointer"))
    # `leaf`, timed, is copied as `user` calls it: else `user`'s copy would inline it with its guard; `elsewhere`
    # and `unrelated` neither count nor reach what does
    assert copies == {"helper", "exported", "by_pointer", "leaf", "user", "user_of_user", "main"}
    # the timed ones jump to their copies; the counted ones are reached through their callers' copies
    assert targets == ["leaf", "user", "user_of_user", "main"]
    copies, targets = _copies(())  # the full mode: every guarded function
    assert copies == {"helper", "exported", "by_pointer", "leaf", "user", "user_of_user", "unrelated", "elsewhere",
                      "main"}
    assert len(targets) == 9  # nothing counts


def test_callers_of_another_units_function_the_learning_run_did_not_judge_get_copies(tmp_path):
    """Its own unit counts such a function if it is a small leaf (instrument/small.py), which this unit cannot
    see: its callers are copied as if it counted, so that switched off they call its copy, not its increment. One
    the learning run timed gives its callers nothing to copy for."""
    source = ('# 1 "api.h" 1\nint judged(int x);\nint unjudged(int x);\n# 2 "u.c" 2\n'
              "int calls_judged(int x) { for (int i = 0; i < x; i++) x += judged(i); return x; }\n"
              "int calls_unjudged(int x) { for (int i = 0; i < x; i++) x += unjudged(i); return x; }\n")
    learned = tmp_path / "learned.txt"
    learned.write_text("time\tother.c:1:judged\ntime\tu.c:3:calls_judged\ntime\tu.c:4:calls_unjudged\n")
    copies, targets = _copies((), source, FunctionFilter(learned_file=str(learned), learned_digest="one"))
    assert copies == {"calls_unjudged"} and targets == ["calls_unjudged"]
    learned.write_text("time\tother.c:1:judged\ntime\tother.c:2:unjudged\n"
                       "time\tu.c:3:calls_judged\ntime\tu.c:4:calls_unjudged\n")
    copies, _ = _copies((), source, FunctionFilter(learned_file=str(learned), learned_digest="two"))
    assert copies == set()


def test_a_copy_calls_another_units_copy_where_there_is_one(project):
    """A function counted in another unit is reached through that unit's copy (Lua's sort in ltablib.c calls
    lapi.c's counted lua_geti): told apart by the address of a label inside it. A unit without copies (left
    uninstrumented here) is called as it is."""
    project.write("api.h", "long helper(int x);\nint untouched(int x);\n")
    project.write("helper.c", """\
        #include "api.h"
        __attribute__((noinline)) long helper(int x) { here: if (x < 0) goto here; return (long)&&here; }
    """)
    project.write("untouched.c", '#include "api.h"\nint untouched(int x) { return x * 7; }\n')
    project.write("main.c", """\
        #include <stdio.h>
        #include "api.h"
        __attribute__((noinline)) static long work(int n) { return helper(n); }
        int main(int argc, char **argv) {
            (void)argv;
            /* helper's own address (a use other than a call: main calls no copy of it) */
            printf("%ld %d\\n", work(argc) - (long)(void *)helper, untouched(argc));
            return 0;
        }
    """)
    build = project.cprof("build", "--off-copies", "--count-only", "helper", "--exclude-file", "untouched.c",
                          "main.c", "helper.c", "untouched.c", "-o", "prog", "--", "-O2", "-Wall")
    assert build.returncode == 0 and "cprof: warning" not in build.stderr, build.stderr
    binary = os.path.join(project.root, ".cprof", "build", "direct", "prog")
    symbols = _symbols(project, binary)

    def function_holding(output: str) -> str:
        offset, product = output.split()
        assert product == "7"
        address = symbols["helper"][0] + int(offset)
        return next(name for name, (start, size) in symbols.items() if start <= address < start + size)

    assert function_holding(_run(binary, CPROF_DISABLE="1")[1]) == "helper__cprof_off"
    assert function_holding(_run(binary)[1]) == "helper"
