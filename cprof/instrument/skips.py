"""Which functions are never instrumented, and the reason each is given (the parser keeps the declarations whose
attributes these rules read; the unit decides per function)."""

from __future__ import annotations

# Bodies the guard must not enter: no stack frame to hold it, or code that runs before relocation/at resolve
# time, or a body that is only an inlining hint and never emitted.
FORBIDDING_ATTRIBUTES = ("naked", "ifunc", "no_instrument_function", "gnu_inline", "interrupt")
# The name listed for a definition whose declarator could not be read (see unit._note_repairs).
UNREADABLE = "(unreadable)"


def skip_reason(function, system_header: bool, function_filter) -> str | None:
    """Why `function` (a ParsedFunction) gets no guard, or None; `function_filter` says whether always_inline
    functions are wanted."""
    if system_header:
        return "defined in a system header"
    for word in FORBIDDING_ATTRIBUTES:
        if word in function.attributes:
            return f"attribute {word}"
    # A helper its author forces inline is part of its callers by design (zstd's are a few instructions each, and
    # timing them made zstd 83x slower): its time stays in them, as in the plain build.
    if "always_inline" in function.attributes and not function_filter.always_inline:
        return "always_inline: its time stays in its callers (--always-inline measures it)"
    if "inline" in function.funcspec and "extern" in function.storage:
        return "extern inline (an inlining hint, never emitted)"
    if "inline" in function.funcspec and "static" not in function.storage:
        return "inline with external linkage (may not use the unit's static site table)"
    return None


def copyable(function, system_header: bool) -> bool:
    """Whether a function may have a plain copy (offcopy.py) whatever its guard: one of the user's own, defined to be
    emitted. A helper left unguarded (always_inline, filtered out) gets one too, so that the copies calling it reach
    the copies it calls."""
    return (not system_header and not any(word in function.attributes for word in FORBIDDING_ATTRIBUTES)
            and not ("inline" in function.funcspec and "extern" in function.storage))
