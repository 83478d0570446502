"""Which functions of a unit are small leaves: no loop, a few statements, and no call but to other small leaves of
the unit and to what the compiler expands in place. An adaptive build counts those its learning run called rarely
or never.

Why: the learning run only knows what its workload ran often. lz4 learning from compression then decompressing
left the decompressor's 2-ns helpers (LZ4_read16, LZ4_readLE16: 2.8 million calls each) timed, and decompressed
several times slower than plain (by hand). A function the run called ten times, or never, has no time per call to
judge it by, so its text has to: one without a loop that does a few statements is what gcc inlines, and a timed
guard would keep it out of line and cost more than its work. Counting a leaf costs little even when the guess is
wrong: a leaf's total is its self time, which sampling still gives, and no timed function below it loses its
frame."""

from __future__ import annotations

import re

from cprof.instrument.offcopy import names_before_parenthesis

# `;` in the body. Without a loop, a body runs each at most once: sixteen take a few ns, under a timed guard's
# 35-40 ns. zstd's BIT_reloadDStream (12, branches and all) ran 2.6 million times decompressing, timed; lz4's
# LZ4_readLE16 has 3.
SMALL_STATEMENTS = 16
# Anything that may repeat or leave the body's flow: a loop, a jump, assembly the text cannot see into, or a call
# through a pointer (`(*handler)(x)`: no name says what it calls).
_NOT_SMALL = re.compile(r"(?<![\w$])(?:for|while|do|goto|asm|__asm__|__asm|setjmp|longjmp)(?![\w$])"
                        r"|\(\s*\*[^()]*\)\s*\(")
# What may stand before a `(` in a small function without being a call of unknown cost: operators written as
# words, and the C library calls gcc expands in place when their size is known (MEM_read64's memcpy of 8 bytes).
_NOT_CALLS = frozenset({
    "if", "switch", "return", "sizeof", "_Alignof", "__alignof__", "_Generic", "typeof", "__typeof__", "__typeof",
    "__attribute__", "__extension__", "_Static_assert", "__builtin_expect", "memcpy", "memmove", "memset",
    "memcmp"})


def small_leaves(text: str, bodies: dict[str, tuple[int, int]]) -> set[str]:
    """The names among `bodies` (name -> the offsets of its body's braces in `text`) whose functions are small
    leaves. A function that calls itself, directly or through others, is not."""
    calls = {}
    for name, (open_offset, close_offset) in bodies.items():
        if text.count(";", open_offset, close_offset) > SMALL_STATEMENTS or \
                _NOT_SMALL.search(text, open_offset, close_offset):
            continue
        calls[name] = {called for called in names_before_parenthesis(text, open_offset, close_offset)
                       if called not in _NOT_CALLS and not called.startswith("__builtin_")}
    small: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, called in calls.items():
            if name not in small and called <= small:
                small.add(name)
                grew = True
    return small
