"""The Chrome trace-event export (JSON that Perfetto and chrome://tracing open): with a trace, every recorded call as
a complete event where and as long as it ran; without one, each thread's call tree laid out as nested events
(children one after another inside their caller, each as long as its inclusive value), so that it always nests."""

from __future__ import annotations

import json

from cprof.model.stacks import run_stacks
from cprof.model.trace import CUT, run_traces, traced
from cprof.render.base import Renderer, register
from cprof.render.table import ReportOptions

US = 1e-3  # trace-event times are microseconds; ours are ns


def _metadata(pid: int, tid: int, thread_name: str, process_name: str) -> list[dict]:
    return [{"ph": "M", "name": "process_name", "pid": pid, "tid": tid, "args": {"name": process_name}},
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": thread_name}}]


def _process_name(run, process) -> str:
    command = " ".join(process.header.get("cmdline") or run.command or ["program"])
    return f"{command} (pid {process.pid})"


def _us(ns: int) -> str:
    """Whole ns as an exact decimal number of microseconds."""
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    return f"{sign}{ns // 1000}.{ns % 1000:03d}"


def _traced_events(run, out) -> None:
    """Every traced call as an "X" event, by thread, in start order (outer calls first at equal starts), written
    as text: a trace holds millions of calls, which as dicts through json would take minutes."""
    main_start = run.processes[0].header["start_mono_ns"]
    names: dict[int, str] = {}  # each node's name as JSON, made once
    first = True
    for process, trace in run_traces(run):
        offset = process.header["start_mono_ns"] - main_start
        thread = trace.thread
        for event in _metadata(process.pid, thread.tid, f"{thread.name or 'thread'} [{thread.index}]",
                               _process_name(run, process)):
            out.write(("" if first else ",\n") + json.dumps(event))
            first = False
        prefix = f',\n{{"ph":"X","pid":{process.pid},"tid":{thread.tid},"name":'
        columns = trace.columns
        lines = []
        for start, end, node, flags in zip(columns.start_ns, columns.end_ns, columns.node, columns.flags):
            name = names.get(id(node))
            if name is None:
                name = names[id(node)] = json.dumps(node.key.name)
            note = "" if not flags else (',"args":{"cut":"still running when the trace stopped at its size limit"}'
                                         if flags & CUT else
                                         ',"args":{"open":"still running when the thread or the program ended"}')
            # whole ns written as exact decimals of a us: a callee's end never passes its caller's by rounding
            begin_ns, end_ns = round(start + offset), round(end + offset)
            span = end_ns - begin_ns
            lines.append(f'{prefix}{name},"ts":{_us(begin_ns)},"dur":{_us(span)}{note}}}')
            if len(lines) >= 65536:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
        if trace.stop_ns is not None:
            out.write(",\n" + json.dumps({"ph": "i", "s": "p", "name": "trace stopped (size limit)", "pid": process.pid,
                                          "tid": thread.tid, "ts": round((trace.stop_ns + offset) * US, 3)}))


def laid_out_events(run, corrected: bool) -> list[dict]:
    """Each thread's call paths as nested "X" events: a path starts where its caller starts, after its earlier
    siblings, and lasts its inclusive time, or its callees' sum when that is more (a measured total counts recursion
    once and the correction is per function, so callees can add up to a little more than their caller)."""
    events: list[dict] = []
    by_thread: dict = {}
    for stack in run_stacks(run, "time", corrected):
        by_thread.setdefault((stack.thread.pid, stack.thread.index), []).append(stack)
    processes = {process.pid: process for process in run.processes}
    for (pid, _), stacks in by_thread.items():
        thread = stacks[0].thread
        events += _metadata(pid, thread.tid, f"{thread.name or 'thread'} [{thread.index}]",
                            _process_name(run, processes.get(pid, run.processes[0])))
        # stacks come in pre-order: a path's callees follow it, so durations are settled in reverse
        children: dict[tuple, list] = {}
        for stack in stacks:
            children.setdefault(stack.keys[:-1], []).append(stack)
        duration: dict[tuple, float] = {}
        for stack in reversed(stacks):
            below = sum(duration[child.keys] for child in children.get(stack.keys, ()))
            duration[stack.keys] = max(stack.total_value, below)
        cursor: dict[tuple, float] = {(): thread.start_ns}
        for stack in stacks:
            parent = stack.keys[:-1]
            begin = cursor.get(parent, thread.start_ns)
            cursor[parent] = begin + duration[stack.keys]
            cursor[stack.keys] = begin
            key = stack.keys[-1]
            events.append({"ph": "X", "name": key.name, "cat": "sampled" if stack.sampled else "function",
                           "pid": pid, "tid": thread.tid, "ts": begin * US, "dur": duration[stack.keys] * US,
                           "args": {"file": key.file, "line": key.line, "calls": stack.calls,
                                    "self_ns": round(stack.self_value)}})
    return events


@register
class ChromeTrace(Renderer):
    """Chrome's trace-event JSON (the JSON object form, times in microseconds)."""

    name = "chrome"
    extensions = (".trace.json", ".chrome.json")
    export = True
    options_type = ReportOptions

    def render(self, view, out) -> None:
        from cprof import __version__

        run = getattr(view, "representative", view)
        from_trace = traced(run)
        other = {"exporter": f"cprof {__version__}", "run": run.id,
                 "layout": "traced calls in time order" if from_trace else
                 "call tree laid out: callees one after another, no time order"}
        out.write(f'{{"displayTimeUnit":"ns","otherData":{json.dumps(other)},"traceEvents":[\n')
        if from_trace:
            _traced_events(run, out)
        else:
            out.write(",\n".join(json.dumps(event) for event in laid_out_events(run, self.options.corrected)))
        out.write("\n]}\n")
