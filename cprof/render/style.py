"""Terminal styling: colour only on a terminal and never when NO_COLOR is set."""

from __future__ import annotations

import os


class Style:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream) -> "Style":
        return cls(hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ)

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)


def render_rows(headers: list[str], rows: list[list[str]], right: set[int], style: Style,
                colours: list | None = None) -> list[str]:
    """Aligned columns: widths from the content, numbers right-aligned, the styling outside the padding so
    that piped output lines up exactly."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells, paint=None):
        parts = []
        for i, cell in enumerate(cells):
            padded = cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            parts.append(paint(padded) if paint else padded)
        return "  ".join(parts).rstrip()

    out = [line(headers, style.bold)]
    for index, row in enumerate(rows):
        paint = colours[index] if colours else None
        out.append(line(row, paint))
    return out
