"""cprof.testing's assertions and the pytest plugin, in inner pytest sessions that profile a real C program.

A slowdown fails with the diff table, the same code twice passes on the noise model, call budgets and allocation-free
functions pass and fail on exact counts, and the plugin loads through its entry point, lightly."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import cprof
from cprof.testing import assert_allocates_nothing, assert_no_regression

pytest_plugins = ["pytester"]

# crunch is ~20 ms of work (~80 ms with -DWORK=4): long enough for realistic noise, short enough for 5-run groups.
# The counts are exact: walk calls step 10 + 5 times; descend(4) is 5 activations, each calling step once.
PROGRAM = """
    #include <stdlib.h>
    #ifndef WORK
    #define WORK 1
    #endif
    volatile long sink;
    __attribute__((noinline)) void step(long i) { sink += i; }
    __attribute__((noinline)) void crunch(void) { for (long i = 0; i < WORK * 30000000L; i++) sink += i ^ (i >> 3); }
    __attribute__((noinline)) void walk(int n) { for (int i = 0; i < n; i++) step(i); }
    __attribute__((noinline)) void descend(int n) { step(n); if (n > 0) descend(n - 1); }
    __attribute__((noinline)) char *grab(int n) { char *p = malloc(n); p[0] = 1; return p; }
    __attribute__((noinline)) long pure(long x) { return x * 3 + 1; }
    __attribute__((noinline)) void uses(void) { char *p = grab(64); sink += pure(p[0]); free(p); }
    int main(void) {
        crunch();
        walk(10);
        walk(5);
        descend(4);
        uses();
        return 0;
    }
"""

# 4x the work against a 50% budget: a slowdown no machine's noise hides, and a budget no drift between two groups
# of the same code reaches (what stays within the groups' spread does not count at all)
REGRESSION_TESTS = """
    def test_everything_stays_fast(cprof_profiler):
        cprof_profiler.profile(["prog.c"], tag="before")
        current = cprof_profiler.profile(["prog.c"], compiler_args=["-O2", "-g", "-DWORK=%(work)d"])
        cprof_profiler.assert_no_regression(current, percent=50)

    def test_crunch_stays_fast(cprof_profiler):
        cprof_profiler.profile(["prog.c"], tag="base")
        current = cprof_profiler.profile(["prog.c"], compiler_args=["-O2", "-g", "-DWORK=%(work)d"])
        cprof_profiler.assert_no_regression(current, baseline="base", percent=50, function="crunch")
"""


@pytest.fixture
def inner(pytester, monkeypatch, tmp_path):
    """An inner project holding the C program, with a build cache of its own."""
    monkeypatch.setenv("CPROF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CPROF_HOME", raising=False)
    pytester.makefile(".c", prog=PROGRAM)
    return pytester


def _timed_session(pytester, **outcomes):
    """The inner session's result, with one more attempt when its outcomes are not the expected ones: other work on
    a busy machine can slow a whole group of runs, which no spread within the groups can tell from a change (on
    2 vCPUs with a CPU hog beside them, about one session in four); a broken check fails both attempts."""
    result = pytester.runpytest()
    try:
        result.assert_outcomes(**outcomes)
    except AssertionError:
        result = pytester.runpytest()
        result.assert_outcomes(**outcomes)
    return result


def test_a_slower_function_fails_with_the_diff_table(inner):
    inner.makepyfile(REGRESSION_TESTS % {"work": 4})
    result = _timed_session(inner, failed=2)
    output = result.stdout.str()
    assert "performance regression against before, over 50% beyond the noise: crunch rose" in output
    assert "performance regression against base, over 50% beyond the noise: crunch rose" in output
    # the diff table, as `cprof diff` prints it: groups of 5, crunch on a row of its own, the noise line
    result.stdout.fnmatch_lines(["*A: before (median of 5 runs)*", "*Function*A self*B self*Delta*Noise*",
                                 "*crunch *", "*total self time:*"])


def test_the_same_code_twice_passes_on_the_noise_model(inner):
    inner.makepyfile(REGRESSION_TESTS % {"work": 1})
    _timed_session(inner, passed=2)


def test_call_budgets_and_allocations_on_exact_counts(inner):
    inner.makepyfile("""
        import pytest

        @pytest.fixture(scope="module")
        def run(cprof_session_profiler):
            return cprof_session_profiler.profile(["prog.c"], repeat=3)

        def test_budgets_hold(run, cprof_profiler):
            assert cprof_profiler.assert_calls_at_most(run, "walk", "step", 15) == 15
            assert cprof_profiler.assert_calls_at_most(run, "descend", "step", 5) == 5
            # recursion: each activation counts its own direct calls, so descend(4) made 4 calls of itself
            assert cprof_profiler.assert_calls_at_most(run, "descend", "descend", 4) == 4
            assert cprof_profiler.assert_calls_at_most(run, "main", "step", 0) == 0  # only through walk, descend
            assert cprof_profiler.assert_calls_at_most(run, "main", "never_called", 0) == 0

        def test_walk_over_budget(run, cprof_profiler):
            cprof_profiler.assert_calls_at_most(run, "walk", "step", 14)

        def test_recursion_over_budget(run, cprof_profiler):
            cprof_profiler.assert_calls_at_most(run, "descend", "step", 4)

        def test_no_allocations(run, cprof_profiler):
            cprof_profiler.assert_allocates_nothing(run, "pure")
            cprof_profiler.assert_allocates_nothing(run, "walk", inclusive=True)
            cprof_profiler.assert_allocates_nothing(run, "uses")  # grab allocates, not uses itself

        def test_grab_allocates(run, cprof_profiler):
            cprof_profiler.assert_allocates_nothing(run, "grab")

        def test_uses_allocates_through_grab(run, cprof_profiler):
            cprof_profiler.assert_allocates_nothing(run, "uses", inclusive=True)
    """)
    result = inner.runpytest("-v")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines([
        "*::test_budgets_hold PASSED*", "*::test_walk_over_budget FAILED*",
        "*::test_recursion_over_budget FAILED*", "*::test_no_allocations PASSED*",
        "*::test_grab_allocates FAILED*", "*::test_uses_allocates_through_grab FAILED*",
    ])
    result.stdout.fnmatch_lines(["*walk made 15 calls of step (the group's run with the most), more than 14:*",
                                 "*Calls  Call path*", "*15  main > walk > step*"])
    # the five activations' calls, each on its own call path
    result.stdout.fnmatch_lines(["*descend made 5 calls of step*more than 4:*", "*1  main > descend > step*",
                                 "*1  main > descend > descend > descend > descend > descend > step*"])
    result.stdout.fnmatch_lines(["*grab made 1 heap allocation in run * of the group:*",
                                 "*Allocs  Bytes  Call path*", "*1   64 B  main > uses > grab*"])
    result.stdout.fnmatch_lines(["*uses (with what it calls) made 1 heap allocation in run * of the group:*"])


def test_the_plugin_comes_from_its_entry_point_with_its_options(inner, tmp_path):
    assert any(point.value == "cprof.pytest_plugin" for point in entry_points(group="pytest11", name="cprof"))
    inner.makepyfile("""
        def test_options(cprof_profiler, cprof_session_profiler):
            assert (cprof_profiler.repeat, cprof_profiler.baseline) == (3, "main")
            assert cprof_profiler.home == cprof_session_profiler.home
    """)
    store = str(tmp_path / "kept")
    result = inner.runpytest("--cprof-home", store, "--cprof-repeat", "3", "--cprof-baseline", "main")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"cprof: runs stored in {store}, baseline main"])
    # switched off by its entry point's name, the fixture is gone
    inner.runpytest("-p", "no:cprof").stdout.fnmatch_lines(["*fixture 'cprof_profiler' not found*"])
    error = inner.runpytest("--cprof-repeat", "0")
    assert error.ret == pytest.ExitCode.USAGE_ERROR
    error.stderr.fnmatch_lines(["*--cprof-repeat must be at least 1*"])


def test_loading_the_plugin_loads_nothing_else_of_cprof():
    """pytest imports the plugin in every session of any project: the API, model and renderers must wait."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, cprof.pytest_plugin; "
                             "print(sorted(m for m in sys.modules if m.startswith('cprof')))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['cprof', 'cprof.pytest_plugin']"


def test_checks_that_cannot_judge_are_errors_not_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("CPROF_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "prog.c"
    source.write_text(PROGRAM)
    home = str(tmp_path / "store")
    cprof.profile([str(source)], home=home, run_options=cprof.RunOptions(tag="one"))
    single = cprof.run(home=home)
    with pytest.raises(cprof.CprofError, match="two single runs, which have no spread"):
        assert_no_regression(single, baseline="one", home=home)
    untracked = cprof.run(options=cprof.RunOptions(heap=False), home=home)
    with pytest.raises(cprof.CprofError, match="cannot say what pure allocated, as heap tracking saw nothing"):
        assert_allocates_nothing(untracked, "pure")
    with pytest.raises(cprof.CprofError, match="has no function 'nope'"):
        assert_allocates_nothing(single, "nope")
