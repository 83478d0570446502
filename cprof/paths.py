"""Paths as the user reads them: relative to where they are, unless that climbs far out of it."""

from __future__ import annotations

import os


def display_path(path: str) -> str:
    if not path:
        return "?"
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("../../") else path
