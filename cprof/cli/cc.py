"""`cprof cc`: the compiler wrapper, usable by hand as CC="cprof cc" (main() dispatches it before argparse)."""

from __future__ import annotations


def register(subparsers) -> None:
    subparsers.add_parser(
        "cc", help="compiler wrapper: CC='cprof cc' make",
        usage="cprof cc COMPILER ARGS...",
        description="Acts as the C compiler: C units are compiled instrumented, final links get the cprof runtime, "
        "everything else goes to the real compiler ($CPROF_REAL_CC, default cc) untouched.",
    )
