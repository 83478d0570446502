"""The differential flamegraph (flame --diff, diff --output FILE.svg): B's call paths coloured by change from A."""

from __future__ import annotations

from dataclasses import dataclass, field

from cprof.model.diff import RunDiff, Side, clears_noise, measured_side, noise_ns
from cprof.model.load import median_of
from cprof.model.run import CallNode, FunctionKey
from cprof.render.base import DIFF, Renderer, register
from cprof.render.diff_table import DiffOptions
from cprof.render.flame import UNITS, FlameGraph, Frame, _fill_totals, frame_tree
from cprof.render.table import ReportOptions
from cprof.render.units import format_signed_percent, plural

NEUTRAL = (226, 224, 214)  # unchanged, or changed within the noise
NEUTRAL_FILL = "rgb({},{},{})".format(*NEUTRAL)
GREW = (222, 45, 38)
SHRANK = (40, 96, 224)
NEW = "rgb(255,166,38)"  # no relative change to scale: a colour of its own, off the red-blue scale
FAINTEST = 0.2  # the least tint of a change that clears the noise, so that a small real change still shows
LISTED = 5  # gone call paths named in a hover, the largest first
MEASURES = {"time": "inclusive time", "calls": "calls", "bytes": "bytes allocated"}


@dataclass(eq=False)
class DiffFrame(Frame):
    """A frame of B's tree with both sides of its call path (Side.self_ns holds the path's inclusive value)."""

    a: Side = field(default_factory=Side)
    b: Side = field(default_factory=Side)
    significant: bool = False
    parent: DiffFrame | None = field(default=None, repr=False)
    gone: list = field(default_factory=list)  # (name, A's value) of the callees A has here and B has not

    @property
    def path(self) -> str:
        names, frame = [], self
        while frame.parent is not None:  # the root, "all", is no call
            names.append(frame.name)
            frame = frame.parent
        return " > ".join(reversed(names))


class _Paths:
    """One run's frames as `cprof flame` draws them, beside its call trees for the correction uncertainty of each
    path (frames do not carry it, and a change within it is noise to `cprof diff`)."""

    def __init__(self, run, metric: str, corrected: bool):
        self.root = frame_tree(run, metric, corrected)
        self.uncertain = metric == "time" and corrected  # calls and bytes are exact
        # threads are matched across runs by process order and thread index (pids and tids differ), as groups are
        self.position = {process.pid: at for at, process in enumerate(run.processes)}
        self.threads = {(thread.pid, thread.index): thread.root for thread in run.threads}
        single = next(iter(self.threads.values())) if len(self.threads) == 1 else None
        self.start = (self.root, single, self._sum_errors(self.children(self.root, single)))

    def children(self, frame: Frame, node: CallNode | None) -> dict:
        """Each callee's (frame, call-tree node or None, uncertainty), by a key that is the same in every run."""
        out = {}
        for key, child in frame.children.items():
            if isinstance(key, FunctionKey):
                below, error = None, 0.0
                if self.uncertain and node is not None:  # followed only for this: calls and bytes are exact
                    below = node.children.get(key)
                    # a count-only function's sampled time has no node: its uncertainty is the caller's record
                    error = below.total_err_ns if below is not None else node.sampled.get(key, (0, 0, 0.0))[2]
                out[key] = (child, below, error)
            else:  # ("thread", pid, index)
                _, pid, index = key
                thread_root = self.threads[(pid, index)]
                out[("thread", self.position[pid], index)] = (
                    child, thread_root, self._sum_errors(self.children(child, thread_root)))
        return out

    @staticmethod
    def _sum_errors(children: dict) -> float:
        return sum(error for _, _, error in children.values())


def _side(sources: list) -> Side:
    return measured_side([s[0].total if s else None for s in sources], [s[2] if s else 0.0 for s in sources])


def merged_tree(diff: RunDiff, metric: str) -> tuple[DiffFrame, list[tuple[DiffFrame, str, float]]]:
    """B's call paths, each the median over B's runs (a run without it counts as zero, as `cprof diff` counts a
    function), with A's side of the same path; and A's call paths that B does not have, as (the B frame they were
    called from, name, A's value): only the outermost of a missing subtree is listed."""
    a_paths = [_Paths(run, metric, diff.corrected) for run in diff.a_sources]
    b_paths = [_Paths(run, metric, diff.corrected) for run in diff.b_sources]
    root = DiffFrame("all")
    gone: list[tuple[DiffFrame, str, float]] = []
    pending = [(root, [p.start for p in a_paths], [p.start for p in b_paths])]
    while pending:  # iteratively: call trees can be a million frames deep
        frame, a_here, b_here = pending.pop()
        frame.a, frame.b = _side(a_here), _side(b_here)
        frame.significant = clears_noise(frame.a, frame.b)
        drawn = [s[0] for s in b_here if s]
        frame.total = frame.b.self_ns
        frame.own = median_of(s[0].own if s else 0.0 for s in b_here)
        frame.calls = round(median_of(s[0].calls if s else 0 for s in b_here))
        frame.approximate = any(f.approximate for f in drawn)
        frame.sampled = any(f.sampled for f in drawn)
        a_below = [p.children(*s[:2]) if s else {} for p, s in zip(a_paths, a_here)]
        b_below = [p.children(*s[:2]) if s else {} for p, s in zip(b_paths, b_here)]
        keys = dict.fromkeys(key for below in b_below for key in below)
        for key in keys:
            b_sources = [below.get(key) for below in b_below]
            first = next(s[0] for s in b_sources if s)
            child = frame.children[key] = DiffFrame(first.name, first.location, parent=frame)
            pending.append((child, [below.get(key) for below in a_below], b_sources))
        for key in dict.fromkeys(key for below in a_below for key in below if key not in keys):
            a_sources = [below.get(key) for below in a_below]
            name, value = next(s[0].name for s in a_sources if s), _side(a_sources).self_ns
            frame.gone.append((name, value))
            gone.append((frame, name, value))
    _fill_totals(root)  # medians of callees can add up to more than their caller's
    return root, gone


def _tint(colour: tuple[int, int, int], strength: float) -> str:
    return "rgb({},{},{})".format(*(round(n + (c - n) * strength) for n, c in zip(NEUTRAL, colour)))


class _Drawing(FlameGraph):
    """FlameGraph's layout, document and script (zoom, search, URL state) over the merged tree, painted by
    change."""

    def __init__(self, diff: RunDiff, metric: str, title: str | None):
        super().__init__(ReportOptions(top=None, corrected=diff.corrected, weight=metric), title)
        self.metric = metric
        self.root, self.gone = merged_tree(diff, metric)
        self.title = title or self._title(diff)

    def _title(self, diff: RunDiff) -> str:
        # short enough for one line of the drawing's width: the details are in the hovers
        a = diff.a_label + (f" (median of {diff.a_runs})" if diff.a_runs > 1 else "")
        b = diff.b_label + (f" (median of {diff.b_runs})" if diff.b_runs > 1 else "")
        missing = f"; {len(self.gone):,} of A's paths gone" if self.gone else ""
        return (f"{a} → {b}: width B's {MEASURES[self.metric]}; red grew, blue shrank, grey noise, orange "
                f"new{missing}")

    def tree(self, run) -> Frame:
        return self.root

    def value(self, figure: float) -> str:
        return UNITS[self.metric](figure if self.metric == "time" else round(figure))

    def paint(self, frame: Frame) -> tuple[str, str, list[str]]:
        if not isinstance(frame, DiffFrame):  # a frame standing for narrow ones: no one path to compare
            return super().paint(frame)
        a, b = frame.a, frame.b
        if not a.present:
            fill, kind, notes = NEW, "new", [f"new: not in A ({self.value(b.self_ns)} in B)"]
        else:
            fill, kind, change = self._change(frame)
            notes = [f"A {self.value(a.self_ns)}, B {self.value(b.self_ns)}: {change}"]
        if frame.gone:
            notes.append("gone from here (only in A): " + self._listed(frame.gone, lambda entry: entry))
        if frame.parent is None and self.gone:
            notes.append(f"{plural(len(self.gone), 'call path')} of A not in B: " + self._listed(
                self.gone, lambda entry: (entry[0].path + (" > " if entry[0].parent else "") + entry[1], entry[2])))
        return fill, f" {kind}", notes

    def _change(self, frame: DiffFrame) -> tuple[str, str, str]:
        a, b = frame.a, frame.b
        delta = b.self_ns - a.self_ns
        if delta == 0:
            return NEUTRAL_FILL, "same", "unchanged"
        percent = 100.0 * delta / a.self_ns if a.self_ns else None
        text = format_signed_percent(percent) if percent is not None else f"+{self.value(delta)} from zero"
        if not frame.significant:
            noise = noise_ns(a, b)
            return NEUTRAL_FILL, "same", f"{text} (within noise, ±{self.value(noise)})"
        strength = FAINTEST + (1 - FAINTEST) * min(1.0, abs(percent) / 100) if percent is not None else 1.0
        return (_tint(GREW, strength), "grew", text) if delta > 0 else (_tint(SHRANK, strength), "shrank", text)

    def _listed(self, entries: list, named) -> str:
        """The largest entries by A's value (each entry's last item), `named` into (name, value) only when shown:
        a path is built by walking up its callers."""
        largest = sorted(entries, key=lambda entry: -entry[-1])
        shown = ", ".join(f"{name} ({self.value(value)})" for name, value in map(named, largest[:LISTED]))
        return shown + (f" and {len(entries) - LISTED} more" if len(entries) > LISTED else "")


@register
class FlameDiff(Renderer):
    """The differential flamegraph: red grew, blue shrank, grey within the noise, orange new in B."""

    name = "flame"
    subject = DIFF
    options_type = DiffOptions
    extensions = (".svg",)

    def __init__(self, options: DiffOptions | None = None, weight: str = "time", title: str | None = None):
        super().__init__(options)
        self.weight = weight  # "time", "calls" or "bytes", as `cprof flame` weighs call paths
        self.title = title

    def render(self, view: RunDiff, out) -> None:
        if not view.b_sources:
            raise ValueError("a differential flamegraph needs the runs compared (RunDiff from diff_runs)")
        _Drawing(view, self.weight, self.title).render(view, out)
