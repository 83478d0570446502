"""One base for every renderer and the registry they are picked from: by name (`--format NAME`) or by the extension
of the file written (`--output FILE.json`), for a run (or a group's medians) or for a diff. The CLI, and later the
Python API and notebooks, use the same objects."""

from __future__ import annotations

import importlib
import os
from typing import ClassVar

from cprof.errors import EXIT_USAGE, CprofError

RUN, DIFF = "run", "diff"  # what a renderer draws: a Run or GroupRun, or a RunDiff


class Renderer:
    """Draws one view into a text stream. Options come at construction (a ReportOptions for runs, DiffOptions for
    diffs), the view at render time, so one configured renderer can draw many views."""

    name: ClassVar[str]
    subject: ClassVar[str] = RUN
    extensions: ClassVar[tuple[str, ...]] = ()  # an --output file ending so is written by this renderer
    text: ClassVar[bool] = False  # for people (a .txt file may hold any of these), not for programs
    export: ClassVar[bool] = False  # a format for other tools (`cprof export`)

    options_type: ClassVar[type] = type(None)  # what options it takes: ReportOptions or DiffOptions, all defaults

    def __init__(self, options=None):
        self.options = options if options is not None else self.options_type()

    def render(self, view, out) -> None:
        raise NotImplementedError


_REGISTRY: dict[tuple[str, str], type[Renderer]] = {}


def register(cls: type[Renderer]) -> type[Renderer]:
    """A class decorator: makes the renderer available by its name and extensions."""
    _REGISTRY[(cls.subject, cls.name)] = cls
    return cls


def renderers(subject: str) -> dict[str, type[Renderer]]:
    _load_all()
    return {name: cls for (kind, name), cls in sorted(_REGISTRY.items()) if kind == subject}


def renderer_named(subject: str, name: str) -> type[Renderer]:
    known = renderers(subject)
    if name not in known:
        raise CprofError(f"unknown format '{name}' (known: {', '.join(known)})", EXIT_USAGE)
    return known[name]


def renderer_for_file(subject: str, path: str) -> type[Renderer] | None:
    """The renderer whose extension the file name ends with (the longest match: .speedscope.json before .json)."""
    lowered = os.path.basename(path).lower()
    matches = [(len(ext), cls) for cls in renderers(subject).values() for ext in cls.extensions if lowered.endswith(ext)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def known_extensions() -> set[str]:
    _load_all()
    return {ext for cls in _REGISTRY.values() for ext in cls.extensions}


# The modules whose renderers register themselves when imported (as cprof/cli/main.py lists the subcommands).
RENDERER_MODULES = ("table", "tree", "memory", "json_report", "export", "callgrind", "pprof", "chrome", "flame",
                    "flamechart", "diff_table", "json_diff", "flame_diff")


def _load_all() -> None:
    for name in RENDERER_MODULES:
        importlib.import_module(f"cprof.render.{name}")
