"""The callgrind profile format (what KCachegrind and valgrind's callgrind_annotate read): each function's self
cost and each caller -> callee arc with its calls and inclusive cost, all threads merged into one part."""

from __future__ import annotations

from cprof.model.stacks import run_stacks
from cprof.render.base import Renderer, register
from cprof.render.export import frame_name
from cprof.render.table import ReportOptions

# the event each weight is written as: (short name, long name); short names are letters only (the format's grammar)
EVENTS = {"time": ("Time", "Time (ns)"), "calls": ("Calls", "Calls"), "bytes": ("Bytes", "Bytes allocated")}
UNITS = {"time": "ns", "calls": "calls", "bytes": "bytes"}


class _Names:
    """Name compression: a name's first use defines its id, `(3) main`, later uses repeat only `(3)`."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def __call__(self, name: str) -> str:
        if name in self.ids:
            return f"({self.ids[name]})"
        self.ids[name] = len(self.ids) + 1
        return f"({self.ids[name]}) {name}"


@register
class Callgrind(Renderer):
    """Every function once (keyed by name, file and line, as a report's rows are), its self cost on its line, then
    one arc per function it called: `calls=N` and the inclusive cost of those calls. A call path's calls and values
    add into its caller -> callee arc, so the arcs hold exactly what the call tree holds, aggregated as callgrind
    itself records them (a recursive arc's inclusive cost lies inside its outer call's, as in callgrind's own
    files). The callgrind format has one line number per cost, and cprof knows functions, not call sites: every
    cost sits on its function's first line. Threads (and processes) are merged: callgrind_annotate reads a single
    part only; `desc:` lines give each thread's own total."""

    name = "callgrind"
    extensions = (".callgrind",)
    export = True
    options_type = ReportOptions

    def render(self, view, out) -> None:
        from cprof import __version__

        run = getattr(view, "representative", view)
        weight = self.options.weight
        self_cost: dict = {}  # FunctionKey -> own value, over every path and thread
        arcs: dict = {}  # FunctionKey -> {callee FunctionKey: [calls, inclusive value]}
        per_thread: dict = {}  # (pid, index) -> [thread, its own values summed]
        for stack in run_stacks(run, weight, self.options.corrected):
            callee = stack.keys[-1]
            self_cost[callee] = self_cost.get(callee, 0.0) + stack.self_value
            arcs.setdefault(callee, {})
            thread = stack.thread
            per_thread.setdefault((thread.pid, thread.index), [thread, 0.0])[1] += stack.self_value
            # a count-only function's calls are known per thread, not per caller: no arc can carry them, so its
            # sampled time is its own self cost alone (its callers' inclusive arcs already hold it)
            if len(stack.keys) > 1 and not stack.sampled:
                arc = arcs.setdefault(stack.keys[-2], {}).setdefault(callee, [0, 0.0])
                arc[0] += stack.calls
                arc[1] += stack.total_value
        own = {key: round(value) for key, value in self_cost.items()}
        total = sum(own.values())  # the sum of the cost lines, so that the summary is exactly what they add up to
        short, long = EVENTS[weight]

        lines = ["# callgrind format", "version: 1", f"creator: cprof {__version__}",
                 f"pid: {run.main.pid}", f"cmd: {frame_name(' '.join(run.command))}",
                 f"desc: Run: cprof run {run.id}"]
        for thread, value in per_thread.values():
            lines.append(f"desc: Thread {thread.index}: {frame_name(thread.name or 'thread')} (pid {thread.pid}, "
                         f"tid {thread.tid}): {round(value)} {UNITS[weight]}")
        if weight == "time":
            corrected = self.options.corrected and run.calibrated  # an uncalibrated run's times stay raw
            lines.append("desc: Times: " + ("corrected for cprof's own cost" if corrected else "raw"))
        lines += ["positions: line", f"event: {short} : {long}", f"events: {short}", f"summary: {total}", ""]
        files, functions = _Names(), _Names()
        for key, callees in arcs.items():
            kept = [(callee, calls, round(value)) for callee, (calls, value) in callees.items() if round(value) > 0]
            if not own[key] and not kept:  # like the folded export, nothing that weighs nothing
                continue
            lines += [f"fl={files(_file(key))}", f"fn={functions(frame_name(key.name))}", f"{key.line} {own[key]}"]
            for callee, calls, value in kept:
                lines += [f"cfi={files(_file(callee))}", f"cfn={functions(frame_name(callee.name))}",
                          f"calls={calls} {callee.line}", f"{key.line} {value}"]
            lines.append("")
        lines.append(f"totals: {total}")
        out.write("\n".join(lines) + "\n")


def _file(key) -> str:
    return key.file or "???"  # callgrind's own name for code without a known source file
