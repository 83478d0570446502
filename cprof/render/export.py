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
    """One evented profile per traced thread: open and close events in time order (ns from the process start).
    Each profile's events are a JSON text already (millions of them as dicts would take minutes to write)."""
    profiles = []
    for process, trace in run_traces(run):
        columns = trace.columns
        parts, open_calls = [], []  # open_calls: (frame, end) of the calls the current one is inside
        indexes: dict[int, int] = {}
        for start, end, depth, node in zip(columns.start_ns, columns.end_ns, columns.depth, columns.node):
            while len(open_calls) > depth:  # the calls this one is not inside have ended
                frame, ended = open_calls.pop()
                parts.append(f'{{"type":"C","frame":{frame},"at":{ended:.0f}}}')
            frame = indexes.get(id(node))
            if frame is None:
                frame = indexes[id(node)] = frames.index(node.key)
            parts.append(f'{{"type":"O","frame":{frame},"at":{start:.0f}}}')
            open_calls.append((frame, end))
        while open_calls:
            frame, ended = open_calls.pop()
            parts.append(f'{{"type":"C","frame":{frame},"at":{ended:.0f}}}')
        thread = trace.thread
        last = max(columns.end_ns, default=0.0)
        profiles.append({"type": "evented", "name": f"{thread.name or 'thread'} (pid {process.pid}, thread "
                         f"{thread.index})", "unit": "nanoseconds", "startValue": round(thread.start_ns),
                         "endValue": round(max(thread.end_ns, last)), "events": _Raw("[" + ",".join(parts) + "]")})
    return profiles


class _Raw(str):
    """JSON text that goes into the document as it is."""


def _dump(document: dict, out) -> None:
    """json.dump, except that each profile's _Raw events are written as they are: json gets a marker in their place
    (with a NUL, which no function name holds), and the text replaces the marker."""
    raw = {}
    for index, profile in enumerate(document["profiles"]):
        if isinstance(profile.get("events"), _Raw):
            marker = f"\0events {index}"
            raw[json.dumps(marker)] = profile["events"]
            profile = document["profiles"][index] = dict(profile, events=marker)
    text = json.dumps(document)
    for marker, events in raw.items():
        before, after = text.split(marker, 1)
        text = before + events + after
    out.write(text)


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
        _dump(document, out)
        out.write("\n")
