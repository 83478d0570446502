"""`cprof build -- BUILD COMMAND` on small projects written for the purpose: make, archives, shared libraries,
dependency files, response files, assembler and C++ alongside C, `CC="cprof cc"` by hand, incremental rebuilds,
compiler errors; each compared with a plain build of the same project, and the user's tree never touched."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from conftest import Project, by_name, validate

UTIL_H = """\
    int util_add(int a, int b);
    long util_sum(int n);
"""
UTIL_C = """\
    #include "util.h"
    int util_add(int a, int b) { return a + b; }
    long util_sum(int n) {
        long s = 0;
        for (int i = 0; i < n; i++)
            s = util_add((int)(s % 1000), i);
        return s;
    }
"""
MAIN_C = """\
    #include <stdio.h>
    #include <stdlib.h>
    #include "util.h"
    static int square(int x) { return x * x; }
    int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 10;
        long total = 0;
        for (int i = 0; i < n; i++)
            total += square(i);
        printf("sum=%ld squares=%ld\\n", util_sum(n), total);
        return 0;
    }
"""
# objects, an archive, a program; one unit with make-style dependency files, one with an explicit -MF
MAKEFILE = """\
    CFLAGS = -O2 -g
    prog: main.o libutil.a
    \t$(CC) $(CFLAGS) -o $@ main.o libutil.a
    main.o: main.c util.h
    \t$(CC) $(CFLAGS) -MMD -MP -c main.c
    util.o: util.c util.h
    \tmkdir -p deps
    \t$(CC) $(CFLAGS) -MD -MF deps/util.d -c -o $@ util.c
    libutil.a: util.o
    \tar rcs $@ util.o
    clean:
    \trm -f prog *.o *.a *.d deps/*.d
"""


def write_make_project(project: Project) -> None:
    project.write("util.h", UTIL_H)
    project.write("util.c", UTIL_C)
    project.write("main.c", MAIN_C)
    project.write("Makefile", MAKEFILE)


def plain_copy(project: Project, name: str = "plain") -> str:
    """The project's sources copied beside it, for building without cprof."""
    target = os.path.join(os.path.dirname(project.root), f"{os.path.basename(project.root)}-{name}")
    shutil.copytree(project.root, target, ignore=shutil.ignore_patterns(".cprof", "cache"))
    return target


def run(argv: list[str], cwd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    process = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    return process


def snapshot(root: str) -> dict[str, tuple]:
    """Every file of the user's tree (cprof's store and cache aside) with its content hash and times."""
    files = {}
    for directory, dirs, names in os.walk(root):
        if directory == root:
            dirs[:] = [d for d in dirs if d not in (".cprof", "cache")]
        for name in names:
            path = os.path.join(directory, name)
            stat = os.lstat(path)
            if os.path.islink(path):
                files[os.path.relpath(path, root)] = ("link", os.readlink(path))
            else:
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, root)] = (hashlib.sha256(handle.read()).hexdigest(), stat.st_mtime_ns)
    return files


def compiled_units(project: Project) -> list[str]:
    """The sources the last `cprof build` compiled (from the wrapper's log: none when nothing was compiled)."""
    log = os.path.join(project.root, ".cprof", "build", "log.jsonl")
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    return sorted(os.path.basename(e["source"]) for e in events if e["event"] == "unit")


def shadow(project: Project, *parts: str) -> str:
    return os.path.join(project.root, ".cprof", "build", "tree", *parts)


def report(project: Project) -> dict:
    result = project.cprof("report", "--all", "--json")
    assert result.returncode == 0, result.stderr
    return by_name(result.json())


def test_make_project_matches_a_plain_build(project):
    write_make_project(project)
    plain = plain_copy(project)
    run(["make"], plain)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    assert "2 units instrumented, 0 fell back" in built.stderr and "built prog" in built.stderr
    result = project.cprof("run", "--bin", "prog", "--", "300")
    assert result.returncode == 0, result.stderr
    assert result.stdout == run([os.path.join(plain, "prog"), "300"], plain).stdout
    functions = report(project)
    assert functions["util_add"]["calls"] == 300 and functions["square"]["calls"] == 300
    assert functions["util_sum"]["calls"] == 1 and functions["main"]["calls"] == 1
    # functions are reported at the user's files, not at the shadow copies the build compiled
    assert functions["util_add"]["file"] == os.path.join(project.root, "util.c")
    # dependency files: where and what the plain compiler writes (cprof's guard header is not among them)
    for name in ("main.d", os.path.join("deps", "util.d")):
        with open(os.path.join(plain, name)) as expected, open(shadow(project, name)) as actual:
            assert actual.read() == expected.read()


def test_profile_json_through_a_build_command_keeps_standard_output_for_the_json(project):
    write_make_project(project)
    result = project.cprof("profile", "--bin", "prog", "--json", "--args", "7", "--", "make")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # make's own output and the program's went to standard error
    validate(document, "report-4.json")
    assert by_name(document)["util_add"]["calls"] == 7
    assert "cc" in result.stderr or "gcc" in result.stderr  # make echoed its commands, there


def test_the_shadow_copy_keeps_empty_folders_a_build_may_check_for(project):
    """jq's Makefile.am requires modules/oniguruma, a git submodule its release tree leaves empty: the shadow copy
    holds every folder of the project, empty ones too, and drops one the project no longer has."""
    project.write("prog.c", "int main(void) { return 0; }\n")
    project.write("Makefile", "prog: prog.c\n\ttest -d modules/oniguruma\n\t$(CC) prog.c -o prog\n")
    folder = os.path.join(project.root, "modules", "oniguruma")
    os.makedirs(folder)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    os.rmdir(folder)
    prog = os.path.join(project.root, "prog.c")
    os.utime(prog, ns=(os.stat(prog).st_atime_ns, os.stat(prog).st_mtime_ns + 5_000_000_000))
    again = project.cprof("build", "--", "make")
    assert again.returncode != 0 and "the build command failed" in again.stderr


def test_rebuilds_are_incremental_and_the_users_tree_is_never_written(project):
    write_make_project(project)
    run(["make"], project.root)  # the user built in place before: their objects must not reach the shadow tree
    before = snapshot(project.root)
    first = project.cprof("build", "--", "make")
    assert first.returncode == 0, first.stderr
    assert compiled_units(project) == ["main.c", "util.c"]
    again = project.cprof("build", "--", "make")
    assert again.returncode == 0, again.stderr
    assert compiled_units(project) == []  # a no-op rebuild compiles nothing ...
    assert "all up to date" in again.stderr and "built prog" in again.stderr
    assert project.cprof("run", "--", "5").stdout == "sum=10 squares=30\n"  # ... and still knows the program
    util = os.path.join(project.root, "util.c")
    os.utime(util, ns=(os.stat(util).st_atime_ns, os.stat(util).st_mtime_ns + 5_000_000_000))
    touched = snapshot(project.root)
    third = project.cprof("build", "--", "make")
    assert third.returncode == 0, third.stderr
    assert compiled_units(project) == ["util.c"]
    assert "(1 recompiled)" in third.stderr
    assert project.cprof("run", "--", "5").stdout == "sum=10 squares=30\n"
    assert report(project)["util_add"]["calls"] == 5
    assert {k: v for k, v in touched.items() if k != "util.c"} == {k: v for k, v in before.items() if k != "util.c"}
    assert snapshot(project.root) == touched


SHAPE_C = """\
    #include "shape.h"
    static double scale(double x) { return x * 2.0; }
    double shape_area(int side) { return scale((double)side * side) / 2.0; }
"""
APP_C = """\
    #include <stdio.h>
    #include "shape.h"
    int main(void) {
        double total = 0;
        for (int i = 1; i <= 25; i++)
            total += shape_area(i);
        printf("total %.1f\\n", total);
        return 0;
    }
"""
SHARED_MAKEFILE = """\
    app: app.c libshape.so
    \t$(CC) -O2 -o $@ app.c -L. -lshape -Wl,-rpath,'$$ORIGIN'
    libshape.so: shape.c shape.h
    \t$(CC) -O2 -fPIC -shared -o $@ shape.c
"""


def test_shared_library_and_program_share_one_runtime(project):
    project.write("shape.h", "double shape_area(int side);\n")
    project.write("shape.c", SHAPE_C)
    project.write("app.c", APP_C)
    project.write("Makefile", SHARED_MAKEFILE)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    assert "built app, libshape.so" in built.stderr
    for name in ("app", "libshape.so"):  # the runtime is linked into both, as a shared library: one copy
        needed = run(["readelf", "-d", shadow(project, name)], project.root).stdout
        assert "libcprofrt.so" in needed
    result = project.cprof("run", "--bin", "app")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "total 5525.0\n"
    functions = report(project)
    assert functions["shape_area"]["calls"] == 25 and functions["scale"]["calls"] == 25
    assert functions["main"]["calls"] == 1
    # one runtime: the library's calls hang under the program's main in the same call tree
    assert functions["main"]["total_ns"] >= functions["shape_area"]["total_ns"]
    run_dirs = os.listdir(os.path.join(project.root, ".cprof", "runs"))
    assert len(run_dirs) == 1
    assert len([n for n in os.listdir(os.path.join(project.root, ".cprof", "runs", run_dirs[0]))
                if n.endswith(".cprof")]) == 1


def test_compile_and_link_in_one_command_with_a_response_file(project):
    project.write("util.h", UTIL_H)
    project.write("util.c", UTIL_C)
    project.write("main.c", MAIN_C)
    project.write("sources.rsp", "-O2 -DUNUSED='a b' main.c util.c\n")
    command = "cc -MD @sources.rsp -o prog"
    plain = plain_copy(project)
    run(["sh", "-c", command], plain)
    built = project.cprof("build", "--", "sh", "-c", command)
    assert built.returncode == 0, built.stderr
    assert "built prog: 2 units instrumented" in built.stderr
    result = project.cprof("run", "--", "40")
    assert result.stdout == run([os.path.join(plain, "prog"), "40"], plain).stdout
    assert report(project)["util_add"]["calls"] == 40
    with open(os.path.join(plain, "prog.d")) as expected, open(shadow(project, "prog.d")) as actual:
        assert actual.read() == expected.read()  # gcc names it after the program, and the last source wins


ASM_S = """\
    .text
    .globl forty_two
    .type forty_two, @function
forty_two:
    movl $42, %eax
    ret
    .section .note.GNU-stack,"",@progbits
"""
ASM_CPP_S = """\
#define VALUE 7
    .text
    .globl seven
    .type seven, @function
seven:
    movl $VALUE, %eax
    ret
    .section .note.GNU-stack,"",@progbits
"""
CXX_PART = """\
    #include <string>
    extern "C" int text_length(int n) { return (int)std::string(n, 'x').size(); }
"""
MIXED_MAIN = """\
    #include <stdio.h>
    int forty_two(void);
    int seven(void);
    int text_length(int n);
    static int twice(int x) { return 2 * x; }
    int main(void) {
        printf("%d %d %d\\n", twice(forty_two()), seven(), text_length(5));
        return 0;
    }
"""
MIXED_MAKEFILE = """\
    mixed: main.o fortytwo.o seven.o part.o
    \t$(CXX) -o $@ main.o fortytwo.o seven.o part.o
    main.o: main.c
    \t$(CC) -O2 -c main.c
    fortytwo.o: fortytwo.s
    \t$(CC) -c fortytwo.s
    seven.o: seven.S
    \t$(CC) -c seven.S
    part.o: part.cpp
    \t$(CXX) -O2 -c part.cpp
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the assembler sources are x86-64")
def test_assembler_and_cxx_pass_through_untouched(project):
    project.write("fortytwo.s", ASM_S)
    project.write("seven.S", ASM_CPP_S)
    project.write("part.cpp", CXX_PART)
    project.write("main.c", MIXED_MAIN)
    project.write("Makefile", MIXED_MAKEFILE)
    plain = plain_copy(project)
    run(["make"], plain)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    assert "built mixed: 1 units instrumented" in built.stderr  # the C++ driver's link got the runtime
    for name in ("fortytwo.o", "seven.o", "part.o"):
        with open(os.path.join(plain, name), "rb") as expected, open(shadow(project, name), "rb") as actual:
            assert actual.read() == expected.read(), name
    result = project.cprof("run")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "84 7 5\n"
    functions = report(project)
    assert functions["twice"]["calls"] == 1 and "text_length" not in functions


def test_run_takes_a_first_word_naming_the_program_for_the_program(project):
    """`cprof run -- ./prog 300`, as perf and uftrace are called, runs prog with 300, not with "./prog" and 300;
    under any other name the first word is the program's argument, as it always was."""
    write_make_project(project)
    assert project.cprof("build", "--", "make").returncode == 0
    expected = project.cprof("run", "--bin", "prog", "--", "300").stdout
    for first in ("./prog", "prog", os.path.join(project.root, "prog"), shadow(project, "prog")):
        result = project.cprof("run", "--", first, "300")
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, first
    assert report(project)["util_add"]["calls"] == 300
    # main.c counts to argv[1]: a first word that is not the program stays its argument
    assert project.cprof("run", "--", "4", "300").stdout != expected


def test_cc_wrapper_by_hand(project):
    write_make_project(project)
    env = dict(os.environ, CPROF_CACHE_DIR=os.path.join(project.root, "cache"))
    # the wrapper as a user would name it in CC, outside `cprof build`: objects land in their tree, by their choice
    run(["make", f"CC={sys.executable} -m cprof cc"], project.root, env)
    result = project.cprof("run", "--bin", "./prog", "--", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sum=66 squares=506\n"
    functions = report(project)
    assert functions["util_add"]["calls"] == 12 and functions["square"]["calls"] == 12
    with open(os.path.join(project.root, "main.d")) as handle:
        assert "cprof_guard" not in handle.read()


def test_a_syntax_error_points_at_the_users_file(project):
    project.write("main.c", """\
        #include <stdio.h>
        int main(void) {
            printf("missing semicolon\\n")
            return 0;
        }
    """)
    # an absolute path in the compile command: the compiler sees the shadow copy, the user sees their own file
    project.write("Makefile", "prog: main.c\n\t$(CC) -O2 -o prog $(CURDIR)/main.c\n")
    result = project.cprof("build", "--", "make")
    assert result.returncode == 4, result.stderr
    assert f"{os.path.join(project.root, 'main.c')}:3:" in result.stderr
    assert "error:" in result.stderr and ".cprof/building/tree" not in result.stderr.replace("Entering", "")
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("cprof: error: the build command failed") and "Traceback" not in result.stderr


def test_changed_filters_rebuild_everything(project):
    write_make_project(project)
    assert project.cprof("build", "--", "make").returncode == 0
    narrowed = project.cprof("build", "--fn", "util_", "--", "make")
    assert narrowed.returncode == 0, narrowed.stderr
    assert compiled_units(project) == ["main.c", "util.c"]  # make alone would have found everything up to date
    assert project.cprof("run", "--", "3").returncode == 0
    assert sorted(report(project)) == ["util_add", "util_sum"]


def test_a_rebuild_after_make_clean_comes_from_the_cache(project):
    write_make_project(project)
    # a configure-style probe compiles the same unit to /dev/null first: that must not become the cached object
    probe = "cc -O2 -g -MD -MF deps/util.d -c -o /dev/null util.c && mkdir -p deps"
    assert project.cprof("build", "--", "sh", "-c", f"mkdir -p deps && {probe} && make").returncode == 0
    assert project.cprof("build", "--", "make", "clean").returncode == 0
    rebuilt = project.cprof("build", "--", "make")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "2 units instrumented, 2 from cache" in rebuilt.stderr
    result = project.cprof("run", "--", "7")
    assert result.returncode == 0 and result.stdout == "sum=21 squares=91\n"
    functions = report(project)
    assert functions["util_add"]["calls"] == 7 and functions["util_sum"]["calls"] == 1


def unit_events(project: Project) -> list[dict]:
    with open(os.path.join(project.root, ".cprof", "build", "log.jsonl")) as handle:
        return [e for e in map(json.loads, handle) if e["event"] == "unit"]


STDIN_MAKEFILE = """\
all:
\tprintf 'int seven(void) { return 7; }\\nint main(void) { return seven() - 7; }\\n' | cc -O2 -x c - -o fromstdin
\tcc --version > version.txt
\tcc -O2 -c main.c -o main.o
\tcc -c missing.c 2> missing.txt; echo "status=$$?" > status.txt
\tcc -O2 -o prog main.o
"""


def test_compiler_calls_served_by_the_build_server_keep_their_streams_and_status(project):
    project.write("main.c", "int twice(int x) { return 2 * x; }\nint main(void) { return twice(3) - 6; }\n")
    project.write("Makefile", STDIN_MAKEFILE)
    built = project.cprof("build", "--", "make")
    assert built.returncode == 0, built.stderr
    assert [e["served"] for e in unit_events(project)] == [True]  # a fork of the server compiled main.c
    assert subprocess.run([shadow(project, "fromstdin")]).returncode == 0  # the source came through stdin
    with open(shadow(project, "version.txt")) as handle:  # stdout reached make's redirection
        assert handle.readline() == subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.split(
            "\n")[0] + "\n"
    with open(shadow(project, "missing.txt")) as messages, open(shadow(project, "status.txt")) as status:
        assert "missing.c" in messages.read()  # stderr too
        assert status.read() == "status=1\n"  # and the real compiler's exit status
    assert project.cprof("run").returncode == 0
    assert report(project)["twice"]["calls"] == 1


def test_build_workers_serve_call_after_call_without_one_call_leaking_into_the_next(project):
    for name in ("a", "b", "c", "d"):
        project.write(os.path.join(name, f"{name}.c"), f"int {name}_value(int x) {{ return x + 1; }}\n")
    project.write("bad.c", "int broken(void) { return }\n")
    # one call after another: a directory of its own each, one failing, one with an environment of its own (the
    # guard inlined for that call only), one passed straight through to the compiler (the worker execs it)
    script = ("cd a && cc -c a.c && cd ../b && cc -c b.c && cd .. && (cc -c bad.c 2>/dev/null; echo $? > bad.txt); "
              "CPROF_INLINE_GUARD=1 cc -c c/c.c -o c.o && cc --version > version.txt && cd d && cc -c d.c")
    built = project.cprof("build", "--", "sh", "-c", script)
    assert built.returncode == 0, built.stderr
    events = unit_events(project)
    assert sorted(os.path.basename(e["source"]) for e in events) == ["a.c", "b.c", "c.c", "d.c"]
    assert len({e["pid"] for e in events}) < len(events)  # workers were reused
    with open(shadow(project, "bad.txt")) as bad:
        assert bad.read() == "1\n"  # the compiler's status, not the worker's
    with open(shadow(project, "version.txt")) as version:
        assert version.read() == subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout

    def calls_the_fast_path(obj: str) -> bool:
        symbols = subprocess.run(["nm", shadow(project, obj)], capture_output=True, text=True).stdout
        return "__cprof_enter_fast" in symbols

    assert not calls_the_fast_path("c.o")  # inlined: that call's environment...
    assert all(calls_the_fast_path(o) for o in ("a/a.o", "b/b.o", "d/d.o"))  # ...and no other's


def test_without_a_build_server_each_call_runs_the_wrapper_itself(project):
    write_make_project(project)
    env = dict(os.environ, CPROF_BUILD_SERVER="off")
    built = project.cprof("build", "--", "make", env=env)
    assert built.returncode == 0, built.stderr
    assert [e["served"] for e in unit_events(project)] == [False, False]
    # a shim reached with a server that is gone: refused, it falls back to the wrapper as well
    shim = os.path.join(project.root, ".cprof", "build", "shims", "cc")
    gone = dict(os.environ, CPROF_BUILD_SERVER=os.path.join(project.root, "no-server-here"))
    compiled = subprocess.run([shim, "-O2", "-c", "util.c", "-o", "by-hand.o"], cwd=project.root, env=gone,
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    symbols = subprocess.run(["nm", "by-hand.o"], cwd=project.root, capture_output=True, text=True).stdout
    assert "__cprof_enter_fast" in symbols  # instrumented all the same
    result = project.cprof("run", "--", "4")
    assert result.returncode == 0 and result.stdout == "sum=6 squares=14\n"
