"""Exports of a run's stacks for other tools: folded stacks (`a;b;c N`, what flamegraph.pl and inferno read) and
speedscope's JSON (evented from a trace)."""

from __future__ import annotations

import json

from cprof.model.stacks import run_stacks
from cprof.model.trace import run_traces, traced
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


class _Frames:
    """speedscope's shared frame list: each function once, with its file and line."""

    def __init__(self):
        self.frames: list[dict] = []
        self._index: dict = {}

    def index(self, key) -> int:
        if key not in self._index:
            self._index[key] = len(self.frames)
            self.frames.append({"name": key.name, "file": key.file, "line": key.line})
        return self._index[key]


def _evented_profiles(run, frames: _Frames) -> list[dict]:
    """One evented profile per traced thread: open and close events in time order (ns from the process start)."""
    profiles = []
    for process, trace in run_traces(run):
        events, open_calls = [], []
        for event in trace.events:
            while len(open_calls) > event.depth:  # the calls this one is not inside have ended
                done = open_calls.pop()
                events.append({"type": "C", "frame": frames.index(done.key), "at": done.end_ns})
            events.append({"type": "O", "frame": frames.index(event.key), "at": event.start_ns})
            open_calls.append(event)
        while open_calls:
            done = open_calls.pop()
            events.append({"type": "C", "frame": frames.index(done.key), "at": done.end_ns})
        thread = trace.thread
        profiles.append({"type": "evented", "name": f"{thread.name or 'thread'} (pid {process.pid}, thread "
                         f"{thread.index})", "unit": "nanoseconds", "startValue": thread.start_ns,
                         "endValue": max([thread.end_ns] + [e["at"] for e in events[-1:]]), "events": events})
    return profiles


@register
class Speedscope(Renderer):
    """speedscope's JSON. From a traced run (weighed by time): one evented profile per thread, every recorded call
    in time order. Otherwise one sampled-style profile per thread, each call path a sample weighed by its own value
    (without a trace there is no time order: speedscope's left-heavy and sandwich views are the ones that mean
    something). Frames carry file and line."""

    name = "speedscope"
    extensions = (".speedscope.json",)
    export = True
    options_type = ReportOptions

    def render(self, view, out) -> None:
        run = getattr(view, "representative", view)
        frames = _Frames()
        if self.options.weight == "time" and traced(run):
            self._write(run, frames, _evented_profiles(run, frames), out)
            return
        profiles: dict = {}
        for stack in run_stacks(run, self.options.weight, self.options.corrected):
            if stack.self_value <= 0:
                continue
            indexes = [frames.index(key) for key in stack.keys]
            thread = stack.thread
            profile = profiles.setdefault((thread.pid, thread.index), {
                "type": "sampled", "name": f"{thread.name or 'thread'} (pid {thread.pid}, thread {thread.index})",
                "unit": SPEEDSCOPE_UNITS[self.options.weight], "startValue": 0, "endValue": 0, "samples": [],
                "weights": []})
            profile["samples"].append(indexes)
            profile["weights"].append(round(stack.self_value))
            profile["endValue"] += round(stack.self_value)
        self._write(run, frames, list(profiles.values()), out)

    @staticmethod
    def _write(run, frames: _Frames, profiles: list[dict], out) -> None:
        from cprof import __version__

        document = {"$schema": "https://www.speedscope.app/file-format-schema.json",
                    "shared": {"frames": frames.frames}, "profiles": profiles, "name": f"cprof run {run.id}",
                    "activeProfileIndex": 0, "exporter": f"cprof {__version__}"}
        json.dump(document, out)
        out.write("\n")
