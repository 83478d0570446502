"""Errors a user can cause, each with the documented exit code the CLI ends with (see README "Exit codes")."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REGRESSION = 1  # `cprof diff --fail-over` found a regression
EXIT_USAGE = 2  # bad flag or argument, ambiguous program, invalid tag name, a filter that matches nothing
EXIT_NOT_FOUND = 3  # no runs yet, no such run, tag, program or source, or nothing built yet
EXIT_BUILD_FAILED = 4  # the user's build failed
EXIT_CORRUPT = 5  # a run file cannot be read
EXIT_START_FAILED = 6  # the program could not be started
EXIT_SETUP = 7  # cprof itself is not installed or configured correctly
EXIT_INTERNAL = 70  # a bug in cprof (CPROF_DEBUG=1 shows the traceback)
EXIT_INTERRUPTED = 130


class CprofError(Exception):
    """Printed by cprof/cli/main.py as one line, `cprof: error: MESSAGE`, and the process exits with exit_code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class CprofWarning(UserWarning):
    """What a user should know that is not an error (a run file skipped as corrupt, A and B the same run...): issued
    through `warnings`, which the CLI prints as `cprof: warning: MESSAGE`."""
