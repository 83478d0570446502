"""Every mistake a user can make ends with one line on stderr, `cprof: error: ...`, and the documented exit code
(README "Exit codes"); never a Python traceback, never a hang."""

from __future__ import annotations

import json
import os
import re

import pytest

from cprof.errors import EXIT_CORRUPT, EXIT_NOT_FOUND, EXIT_REGRESSION, EXIT_SETUP, EXIT_START_FAILED, EXIT_USAGE

SMALL = """\
    #include <stdio.h>
    #include <stdlib.h>
    volatile long sink;
    void work(long n) { for (long i = 0; i < n; i++) sink += i; }
    int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 1000;
        for (int r = 0; r < 20; r++) work(n);
        return 0;
    }
"""

TWO_PROGRAMS = """\
all: first second
first: first.c
\t$(CC) -O2 first.c -o first
second: second.c
\t$(CC) -O2 second.c -o second
"""


def assert_error(result, exit_code: int, *fragments: str) -> str:
    """One `cprof: error:` line, last on stderr, with the given exit code and words; returns the line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("cprof: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert result.returncode == exit_code, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_only_error(result, exit_code: int, *fragments: str) -> str:
    """As assert_error, and the error is all there is on stderr and nothing is on stdout."""
    line = assert_error(result, exit_code, *fragments)
    assert result.stderr == line + "\n" and result.stdout == ""
    return line


def profiled(project, *run_args: str):
    """The project with SMALL built and run once per element of run_args (no element: once, no arguments)."""
    project.write("small.c", SMALL)
    assert project.cprof("build", "small.c").returncode == 0
    for argument in run_args or ("",):
        result = project.cprof("run", "--", *([argument] if argument else []))
        assert result.returncode == 0, result.stderr
    return project


def test_unknown_tag_names_the_known_ones(project):
    profiled(project)
    assert project.cprof("tag", "before").returncode == 0
    for command in (["report", "nosuch"], ["diff", "nosuch"], ["tag", "x", "nosuch"], ["runs", "rm", "nosuch"]):
        assert_only_error(project.cprof(*command), EXIT_NOT_FOUND, "no run or tag named 'nosuch'", "before")


def test_no_runs_yet(project):
    for command in (["report"], ["diff"], ["tag", "first"], ["report", "latest"], ["merge", "a", "b"]):
        assert_only_error(project.cprof(*command), EXIT_NOT_FOUND, "no runs yet", "cprof profile")
    listing = project.cprof("runs")
    assert listing.returncode == 0 and listing.stdout == "" and "no runs yet" in listing.stderr


def test_diff_with_only_one_run(project):
    profiled(project)
    assert_only_error(project.cprof("diff"), EXIT_NOT_FOUND, "diff needs two runs")
    assert_only_error(project.cprof("diff", "latest~1"), EXIT_NOT_FOUND, "only 1 run is stored")


def test_run_before_anything_is_built(project):
    assert_only_error(project.cprof("run"), EXIT_NOT_FOUND, "nothing built yet", "cprof build")


@pytest.mark.parametrize("arguments, fragments", [
    (["report", "--top", "0"], ["report", "--top", "at least 1"]),
    (["report", "--top", "many"], ["--top", "not a whole number"]),
    (["report", "--sort", "nope"], ["--sort", "invalid choice: 'nope'", "calls"]),
    (["report", "--bogus"], ["report: unrecognized arguments: --bogus", "cprof report --help"]),
    (["report", "--top", "3", "--all"], ["not allowed with"]),
    (["report", "--min-percent", "-1"], ["--min-percent"]),
    (["report", "--output", "out.csv"], ["--output", "unknown format of out.csv", ".callgrind, ", ".json, ", ".pb.gz, ",
                                         ".speedscope.json, ", ".svg", " or .txt"]),
    (["report", "--json", "--output", "out.txt"], ["--json", "out.txt"]),
    (["report", "--", "x"], ["report: takes nothing after '--'"]),
    (["diff", "--top", "-2"], ["diff", "--top"]),
    (["diff", "--fail-over", "abc"], ["--fail-over", "not a number"]),
    (["runs", "prune", "--keep", "-1"], ["--keep", "at least 0"]),
    (["runs", "prune"], ["--keep N"]),
    (["runs", "list", "extra"], ["takes no runs"]),
    (["runs", "explode"], ["invalid choice: 'explode'"]),
    (["run", "--duration", "0"], ["--duration", "more than 0"]),
    (["nosuchcommand"], ["invalid choice: 'nosuchcommand'"]),
    (["profile", "x.c", "--args", "'unclosed"], ["--args"]),
])
def test_bad_flag_or_value(project, arguments, fragments):
    assert_only_error(project.cprof(*arguments), EXIT_USAGE, *fragments)


def test_report_filter_that_matches_nothing_names_the_closest(project):
    profiled(project)
    assert_only_error(project.cprof("report", "--fn", "wrok"), EXIT_USAGE, "no function name contains 'wrok'",
                      "closest: work")


def test_program_not_found_lists_what_was_built(project):
    profiled(project)
    assert_only_error(project.cprof("run", "--bin", "nope"), EXIT_NOT_FOUND, "no program named 'nope'",
                      "it linked: small")
    assert_only_error(project.cprof("run", "--bin", "./nope"), EXIT_NOT_FOUND, "no program named './nope'")
    # `cprof build -o small` links into the store: ./small, as the user would type it, still names it
    assert project.cprof("run", "--bin", "./small").returncode == 0


def test_ambiguous_program_needs_bin(project):
    for name in ("first", "second"):
        project.write(f"{name}.c", "int main(void) { return 0; }\n")
    project.write("Makefile", TWO_PROGRAMS)
    assert project.cprof("build", "--", "make").returncode == 0
    assert_only_error(project.cprof("run"), EXIT_USAGE, "2 programs (first, second)", "--bin NAME")
    assert project.cprof("run", "--bin", "second").returncode == 0


def test_program_that_cannot_start(project):
    profiled(project)
    built = os.path.join(project.root, ".cprof", "build", "direct", "small")
    os.chmod(built, 0o644)  # even root cannot execute a file without any x bit
    assert_only_error(project.cprof("run"), EXIT_START_FAILED, "cannot start", "small", "Permission denied")
    with open(built, "w") as handle:
        handle.write("garbage, not a program")
    os.chmod(built, 0o755)
    assert_only_error(project.cprof("run"), EXIT_START_FAILED, "cannot start", "Exec format error")
    os.unlink(built)
    assert_only_error(project.cprof("run"), EXIT_NOT_FOUND, "no longer exists", "build again")
    # a failed start leaves no run behind
    assert len(project.cprof("report", "--json").json()["functions"]) == 2


def _run_file(project) -> str:
    report = project.cprof("report", "--json").json()
    run_dir = os.path.join(project.root, ".cprof", "runs", report["run"]["id"])
    return os.path.join(run_dir, next(n for n in os.listdir(run_dir) if n.endswith(".cprof")))


def test_corrupt_run_files_never_crash_or_hang(project):
    profiled(project)
    good = _run_file(project)
    with open(good, "rb") as handle:
        data = handle.read()
    damaged = os.path.join(project.root, "damaged")
    os.mkdir(damaged)
    path = os.path.join(damaged, "1.cprof")

    def report_of(content: bytes):
        with open(path, "wb") as handle:
            handle.write(content)
        return project.cprof("report", damaged, "--json", timeout=60)

    for garbage in (b"", b"CPROFRUN", os.urandom(5000), b"\0" * 70000):
        assert_only_error(report_of(garbage), EXIT_CORRUPT, "corrupt run file", path)
    for size in (100, 4095, 4096, 5000, 65536, 70000, len(data) - 1):
        result = report_of(data[:size])
        if result.returncode == EXIT_CORRUPT:
            assert_only_error(result, EXIT_CORRUPT, "corrupt run file")
        else:  # recovered: what survived, marked incomplete, and the damage said on stderr
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            assert result.json()["run"]["complete"] is False
            assert "truncated" in result.stderr
    # a garbage file beside a good one: the good process is reported, the other named in a warning
    with open(path, "wb") as handle:
        handle.write(data)
    with open(os.path.join(damaged, "2.cprof"), "wb") as handle:
        handle.write(os.urandom(9000))
    result = project.cprof("report", damaged, "--json")
    assert result.returncode == 0, result.stderr
    assert {f["name"]: f["calls"] for f in result.json()["functions"]} == {"work": 20, "main": 1}
    assert "cprof: warning: skipped corrupt run file" in result.stderr and "2.cprof" in result.stderr
    # a FIFO named like a run file would block a reader forever
    os.unlink(path)
    os.mkfifo(path)
    assert_only_error(project.cprof("report", path, timeout=60), EXIT_CORRUPT, "not a regular file")


INVALID_TAGS = ["../x", "a/b", "", "latest", "latest~1", ".hidden", "a b", "20260101T000000.000000-1", "x" * 65]


def test_invalid_tag_names(project):
    profiled(project)
    for name in INVALID_TAGS:
        for command in (["tag", name], ["run", "--tag", name], ["tag", "-d", name]):
            assert_only_error(project.cprof(*command), EXIT_USAGE, f"invalid tag name '{name}'")
    assert project.cprof("runs").stdout.count("\n") == 2  # the header and the one run: nothing ran or changed
    assert not os.path.exists(os.path.join(project.root, ".cprof", "tags.json"))
    assert not os.path.exists(os.path.join(project.root, "x"))


def test_removing_an_unknown_run_removes_nothing(project):
    profiled(project, "10", "20")
    before = project.cprof("runs").stdout
    assert_only_error(project.cprof("runs", "rm", "latest", "nosuch"), EXIT_NOT_FOUND, "nosuch")
    assert_only_error(project.cprof("runs", "rm", ""), EXIT_USAGE, "empty name")
    assert project.cprof("runs").stdout == before
    assert_only_error(project.cprof("tag", "-d", "nosuch"), EXIT_NOT_FOUND, "no tag named 'nosuch'")


def test_build_of_a_missing_source(project):
    assert_only_error(project.cprof("build", "missing.c"), EXIT_NOT_FOUND, "missing.c")
    assert_only_error(project.cprof("profile", "missing.c"), EXIT_NOT_FOUND, "missing.c")


def test_build_command_that_does_not_exist(project):
    assert_error(project.cprof("build", "--", "no-such-build-tool", "all"), EXIT_NOT_FOUND, "no-such-build-tool")


def test_fail_over_with_a_regression_exits_1_with_one_line(project):
    profiled(project, "50000", "20000000")  # 400 times the work: far beyond any noise
    result = project.cprof("diff", "latest~1", "latest", "--fail-over", "20")
    line = assert_error(result, EXIT_REGRESSION, "regression over 20%", "work rose")
    assert "work" in result.stdout  # the table is still shown
    # the same gate in JSON: the document carries the reasons, stderr the one line
    result = project.cprof("diff", "latest~1", "latest", "--fail-over", "20", "--json")
    assert assert_error(result, EXIT_REGRESSION) == line
    assert result.json()["regressions"][0].startswith("work rose")
    # the other way round it got faster: no regression
    assert project.cprof("diff", "latest", "latest~1", "--fail-over", "20").returncode == 0


def test_unusable_run_store(project):
    store = project.write("not-a-directory", "a file where the run store should be\n")
    for command in (["report"], ["tag", "x"], ["runs"]):
        assert_only_error(project.cprof(*command, env={"CPROF_HOME": store}), EXIT_SETUP, "not-a-directory",
                          "CPROF_HOME")


def test_tags_file_stays_valid_json(project):
    """Tag changes go through a lock and an atomic replace: the file is never half written."""
    profiled(project)
    for name in ("a", "b", "c"):
        assert project.cprof("tag", name).returncode == 0
    assert project.cprof("tag", "-d", "b").returncode == 0
    with open(os.path.join(project.root, ".cprof", "tags.json")) as handle:
        assert sorted(json.load(handle)) == ["a", "c"]


def test_a_damaged_store_file_stops_the_command_and_is_never_overwritten(project):
    """Read as empty, a damaged tags.json would be rewritten by the next `cprof tag` with that tag alone: every
    other tag lost. Each store file, cut short, stops every command that reads it with exit 5 naming it, and
    keeps its bytes."""
    profiled(project, "100", "200")
    for name in ("a", "b"):
        assert project.cprof("tag", name).returncode == 0
    store = os.path.join(project.root, ".cprof")
    latest = sorted(os.listdir(os.path.join(store, "runs")))[-1]
    files = {
        "tags.json": [["tag", "c"], ["tag", "-d", "a"], ["report", "a"], ["runs", "rm", "latest"]],
        os.path.join("runs", latest, "meta.json"): [["report"], ["runs"], ["tag", "d"], ["diff"]],
        os.path.join("build", "last.json"): [["run", "--"]],
    }
    for relative, commands in files.items():
        path = os.path.join(store, relative)
        with open(path, "rb") as handle:
            whole = handle.read()
        damaged = whole[: len(whole) // 2]
        with open(path, "wb") as handle:
            handle.write(damaged)
        for command in commands:
            assert_error(project.cprof(*command), EXIT_CORRUPT, "damaged store file", relative)
            with open(path, "rb") as handle:
                assert handle.read() == damaged, (relative, command)
        with open(path, "wb") as handle:
            handle.write(whole)
    with open(os.path.join(store, "tags.json")) as handle:
        assert sorted(json.load(handle)) == ["a", "b"]  # restored, nothing else was written
    assert len(os.listdir(os.path.join(store, "runs"))) == 2  # `runs rm` deleted nothing before it stopped


def test_merge_errors(project):
    profiled(project, "100")
    assert_only_error(project.cprof("merge", "latest", "latest"), EXIT_USAGE, "merge needs at least two different runs")
    assert_only_error(project.cprof("merge", "latest", "nonesuch"), EXIT_NOT_FOUND, "no run or tag named 'nonesuch'")
    assert_only_error(project.cprof("merge", "latest", "latest", "--tag", "latest"), EXIT_USAGE, "invalid tag name")
    profiled(project, "200")
    files = sorted(os.listdir(os.path.join(project.root, ".cprof", "runs")))
    run_file = next(f for f in os.listdir(os.path.join(project.root, ".cprof", "runs", files[0]))
                    if f.endswith(".cprof"))
    with open(os.path.join(project.root, ".cprof", "runs", files[0], run_file), "wb") as handle:
        handle.write(b"not a run file at all")
    assert_only_error(project.cprof("merge", files[0], files[-1]), EXIT_CORRUPT, "cannot merge", run_file)
    assert len(os.listdir(os.path.join(project.root, ".cprof", "runs"))) == len(files)  # nothing half made


def test_instrument_errors(project):
    assert_only_error(project.cprof("instrument", "missing.c"), EXIT_NOT_FOUND, "no such source file: missing.c")
    project.write("broken.c", "int main(void) { return undeclared; }\n#include <nonexistent.h>\n")
    result = project.cprof("instrument", "broken.c")
    assert_error(result, 4, "preprocessing broken.c failed")
    assert "nonexistent.h" in result.stderr  # the compiler's own message comes first
    project.write("digraphs.c", "int main(void) <% return 0; %>\n")
    assert_error(project.cprof("instrument", "digraphs.c"), 4, "digraphs.c:1:", "cprof would compile this unit "
                 "uninstrumented")


def test_doctor_says_why_the_store_is_unusable(project):
    store = project.write("not-a-directory", "a file\n")
    result = project.cprof("doctor", "--calls", "1000", env={"CPROF_HOME": store})
    assert result.returncode == EXIT_SETUP
    line = next(l for l in result.stdout.splitlines() if "run store" in l)
    assert line.startswith("FAIL") and "Not a directory" in line and "CPROF_HOME" in line
    healthy = project.cprof("doctor", "--calls", "1000")
    assert healthy.returncode == 0 and "FAIL" not in healthy.stdout
    assert re.search(r"with --cpu-time +[\d.]+ ns per call", healthy.stdout)
    assert re.search(r"^ok +sampling +[1-9]\d* samples per CPU second", healthy.stdout, re.M)


def test_a_build_that_links_no_program(project):
    project.write("lib.c", "int add(int a, int b) { return a + b; }\n")
    project.write("Makefile", "lib.o: lib.c\n\t$(CC) -c lib.c -o lib.o\n")
    assert project.cprof("build", "--", "make").returncode == 0
    assert_only_error(project.cprof("run", "--"), EXIT_NOT_FOUND, "the last build linked no executable")
