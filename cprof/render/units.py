"""Human units for times, sizes and counts, with stable widths for piped output."""

from __future__ import annotations

import signal


def format_ns(ns: float) -> str:
    ns = float(ns)
    magnitude = abs(ns)
    if magnitude < 1e3:
        return f"{ns:.0f} ns"
    for unit, scale in (("µs", 1e3), ("ms", 1e6), ("s", 1e9)):
        if magnitude < scale * 1e3 or unit == "s":
            value = ns / scale
            digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{ns:.0f} ns"


def format_bytes(count: float) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_count(count: int) -> str:
    return f"{count:,}"


def format_percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def format_signed_percent(value: float | None) -> str:
    """A change in percent; "-" where there is none to give (a change from zero)."""
    if value is None:
        return "-"
    return f"{value:+.1f}%"


def plural(count: int, noun: str) -> str:
    """"1 thread", "3 threads"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def signal_name(number: int) -> str:
    """"SIGTERM" for 15."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
