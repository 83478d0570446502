"""cprof's pytest plugin: the cprof_profiler fixture, its --cprof-* options, and cprof.testing's assertions.

Registered through the entry point pytest11 "cprof". The fixture builds, runs and profiles C programs through cprof's
API into a run store and carries cprof.testing's assertions.

pytest loads this module in every session of every project once cprof is installed, so it imports only pytest and
the standard library at import time; the API, the model and the renderers load when a test first uses the fixture.
`-p no:cprof` switches it off."""

from __future__ import annotations

import pytest

DEFAULT_REPEAT = 5  # runs per group: a median and a spread to judge noise by, for a fraction of a second per group


def pytest_addoption(parser) -> None:
    group = parser.getgroup("cprof", "cprof performance checks (the cprof_profiler fixture)")
    group.addoption("--cprof-home", metavar="DIR", default=None,
                    help="the run store every test's cprof_profiler uses, kept after the session, so that a later "
                         "session can compare with a baseline tagged in it (default: a new store per test)")
    group.addoption("--cprof-baseline", metavar="REF", default="before",
                    help="what cprof_profiler.assert_no_regression compares with when not told: a tag, run or group "
                         "id (default: before)")
    group.addoption("--cprof-repeat", metavar="N", type=int, default=DEFAULT_REPEAT,
                    help=f"runs per group when cprof_profiler runs a program (default: {DEFAULT_REPEAT})")


def pytest_configure(config) -> None:
    if config.getoption("cprof_repeat", DEFAULT_REPEAT) < 1:
        raise pytest.UsageError("--cprof-repeat must be at least 1")


def pytest_report_header(config) -> str | None:
    home = config.getoption("cprof_home", None)
    return f"cprof: runs stored in {home}, baseline {config.getoption('cprof_baseline')}" if home else None


class Profiler:
    """cprof's API bound to one run store, running each program --cprof-repeat times as a group (so that
    assert_no_regression has a spread to judge noise by), with cprof.testing's assertions."""

    def __init__(self, home: str, repeat: int = DEFAULT_REPEAT, baseline: str = "before"):
        self.home = home
        self.repeat = repeat
        self.baseline = baseline

    def __repr__(self) -> str:
        return f"<cprof profiler: store {self.home}, {self.repeat} runs per group, baseline {self.baseline}>"

    def _run_options(self, options, tag: str | None, repeat: int | None):
        """RunOptions given are used as they are; else this profiler's repeat. `tag` and `repeat` override."""
        from dataclasses import replace

        from cprof.api import RunOptions

        options = options or RunOptions(repeat=self.repeat)
        if repeat is not None:
            options = replace(options, repeat=repeat)
        return replace(options, tag=tag) if tag is not None else options

    def build(self, sources=(), **kwargs):
        """cprof.build into this store (command=, output=, compiler_args=, options=...)."""
        from cprof.api import build

        return build(sources, home=self.home, **kwargs)

    def run(self, args=(), options=None, *, tag: str | None = None, repeat: int | None = None):
        """cprof.run: what the last build linked, as a group of `repeat` runs; the stored Run."""
        from cprof.api import run

        return run(args, self._run_options(options, tag, repeat), home=self.home)

    def profile(self, sources=(), *, tag: str | None = None, repeat: int | None = None, run_options=None,
                **kwargs):
        """cprof.profile: builds and runs (args=, compiler_args=, output=, command=, build_options=...); the Run."""
        from cprof.api import profile

        return profile(sources, run_options=self._run_options(run_options, tag, repeat), home=self.home, **kwargs)

    def load(self, ref: str = "latest"):
        from cprof.api import load

        return load(ref, home=self.home)

    def diff(self, a=None, b=None, corrected: bool = True):
        from cprof.api import diff

        return diff(a, b, home=self.home, corrected=corrected)

    def assert_no_regression(self, current="latest", baseline=None, percent: float = 10.0,
                             function: str | None = None):
        """cprof.testing.assert_no_regression in this store; the baseline defaults to --cprof-baseline."""
        __tracebackhide__ = True  # a failure points at the test's line, not at this method or the helper
        from cprof.testing import assert_no_regression

        return assert_no_regression(current, self.baseline if baseline is None else baseline, percent, function,
                                    home=self.home)

    def assert_calls_at_most(self, run, caller: str, callee: str, n: int) -> int:
        __tracebackhide__ = True
        from cprof.testing import assert_calls_at_most

        return assert_calls_at_most(run, caller, callee, n)

    def assert_allocates_nothing(self, run, function: str, inclusive: bool = False) -> None:
        __tracebackhide__ = True
        from cprof.testing import assert_allocates_nothing

        assert_allocates_nothing(run, function, inclusive)


def _profiler(config, default_home) -> Profiler:
    home = config.getoption("cprof_home") or str(default_home())
    return Profiler(home, config.getoption("cprof_repeat"), config.getoption("cprof_baseline"))


@pytest.fixture
def cprof_profiler(request, tmp_path_factory) -> Profiler:
    """A Profiler with a run store of this test's own (or --cprof-home's, shared and kept)."""
    return _profiler(request.config, lambda: tmp_path_factory.mktemp("cprof"))


@pytest.fixture(scope="session")
def cprof_session_profiler(request, tmp_path_factory) -> Profiler:
    """A Profiler whose run store every test of the session shares (--cprof-home's, if given): for a baseline
    profiled once, in a session-scoped fixture, and compared with by several tests."""
    return _profiler(request.config, lambda: tmp_path_factory.mktemp("cprof-session"))
