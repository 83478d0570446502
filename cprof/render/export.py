"""Exports of a run's stacks for other tools: folded stacks (`a;b;c N`, what flamegraph.pl and inferno read) and
speedscope's JSON."""

from __future__ import annotations

import json

from cprof.model.stacks import run_stacks
from cprof.render.base import Renderer, register
from cprof.render.table import ReportOptions


def frame_name(name: str) -> str:
    """A frame as folded stacks can carry it: `;` separates frames and a line ends a stack (a section's name from
    cprof.h may hold either)."""
    return name.replace(";", ":").replace("\n", " ").replace("\r", " ")


def thread_frame(thread, run) -> str | None:
    """The thread as the outermost frame, when the run has more than one (or more than one process)."""
    if len(run.threads) < 2:
        return None
    pid = f"{thread.pid}/" if len(run.processes) > 1 else ""
    return frame_name(f"{thread.name or 'thread'} [{pid}{thread.index}]")


@register
class FoldedStacks(Renderer):
    """One line per call path with its own value: `main;parse;lex 1234` (ns of self time by default; calls or
    bytes allocated with options.weight). Whole numbers; paths whose own value is zero are left out."""

    name = "folded"
    extensions = (".folded",)
    export = True
    options_type = ReportOptions

    def render(self, view, out) -> None:
        run = getattr(view, "representative", view)
        for stack in run_stacks(run, self.options.weight, self.options.corrected):
            value = round(stack.self_value)
            if value <= 0:
                continue
            frames = [frame_name(name) for name in stack.names]
            outer = thread_frame(stack.thread, run)
            out.write(";".join(([outer] if outer else []) + frames) + f" {value}\n")


SPEEDSCOPE_UNITS = {"time": "nanoseconds", "calls": "none", "bytes": "bytes"}


@register
class Speedscope(Renderer):
    """speedscope's JSON: one sampled-style profile per thread, each call path a sample weighed by its own value
    (without a trace there is no time order: speedscope's left-heavy and sandwich views are the ones that mean
    something). Frames carry file and line."""

    name = "speedscope"
    extensions = (".speedscope.json",)
    export = True
    options_type = ReportOptions

    def render(self, view, out) -> None:
        from cprof import __version__

        run = getattr(view, "representative", view)
        frames: list[dict] = []
        frame_index: dict = {}
        profiles: dict = {}
        for stack in run_stacks(run, self.options.weight, self.options.corrected):
            if stack.self_value <= 0:
                continue
            indexes = []
            for key in stack.keys:
                if key not in frame_index:
                    frame_index[key] = len(frames)
                    frames.append({"name": key.name, "file": key.file, "line": key.line})
                indexes.append(frame_index[key])
            thread = stack.thread
            profile = profiles.setdefault((thread.pid, thread.index), {
                "type": "sampled", "name": f"{thread.name or 'thread'} (pid {thread.pid}, thread {thread.index})",
                "unit": SPEEDSCOPE_UNITS[self.options.weight], "startValue": 0, "endValue": 0, "samples": [],
                "weights": []})
            profile["samples"].append(indexes)
            profile["weights"].append(round(stack.self_value))
            profile["endValue"] += round(stack.self_value)
        document = {"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": frames},
                    "profiles": list(profiles.values()), "name": f"cprof run {run.id}", "activeProfileIndex": 0,
                    "exporter": f"cprof {__version__}"}
        json.dump(document, out)
        out.write("\n")
