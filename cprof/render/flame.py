"""`cprof flame`: an aggregated flamegraph of a run as one self-contained SVG (its script embedded, nothing fetched):
width by inclusive time (or calls, or bytes allocated), hover for the details, click to zoom, a regex search that
highlights and reports the matched share, zoom and search kept in the URL. Frames narrower than a pixel are merged
into one grey frame per parent, so a tree of a million call paths stays small and readable."""

from __future__ import annotations

import bisect
import itertools
import zlib
from dataclasses import dataclass, field
from operator import attrgetter
from xml.sax.saxutils import escape, quoteattr

from cprof.model.stacks import collector_paused
from cprof.paths import display_path
from cprof.render.base import Renderer, register
from cprof.render.table import ReportOptions
from cprof.render.units import format_bytes, format_count, format_ns

WIDTH = 1200  # pixels of the drawing
FRAME_HEIGHT = 17
TOP = 44  # room for the title and the controls
MIN_WIDTH = 1.0  # frames narrower than this many pixels are merged
UNITS = {"time": format_ns, "calls": format_count, "bytes": format_bytes}


@dataclass(eq=False)
class Frame:
    name: str
    location: str = ""
    total: float = 0.0
    own: float = 0.0
    calls: int = 0
    approximate: bool = False  # mostly the guard's cost (the reports' ~)
    sampled: bool = False  # a count-only function's sampled self time
    merged: int = 0  # for a frame standing for narrow ones: how many
    children: dict = field(default_factory=dict)
    hidden: int = 0  # frames below it that frame_tree left unbuilt (it is drawn merged with its narrow siblings)


def frame_tree(run, metric: str, corrected: bool, pixels: float = 0.0) -> Frame:
    """One tree for the whole run: a frame per call path, merged over threads when there is one, else under a
    frame per thread. Each frame holds its node's values as run_stacks (cprof/model/stacks.py) gives them, a
    count-only function's sampled time is a leaf of its own, and totals are filled as _fill_totals fills them.

    With `pixels`, the width the tree is drawn at, a frame narrower than MIN_WIDTH of them gets no children:
    the drawing merges it with its narrow siblings anyway, and `hidden` says how many frames it stands for. Of a
    million call paths a few thousand frames are then built (the totals come from _CallTreeTotals)."""
    threads = getattr(run, "representative", run).threads
    sums = _CallTreeTotals(threads, metric, corrected)
    totals = sums.totals
    root = Frame("all")
    several = len(run.threads) > 1
    tops = []
    for thread, first in zip(threads, sums.firsts):
        top = root
        if several and thread.root.children:  # a thread that called nothing instrumented has no frame
            label = f"{thread.name or 'thread'} [{thread.index}]"
            top = root.children.setdefault(("thread", thread.pid, thread.index), Frame(label))
            top.total = sum(totals[at] for at in sums.callees(first - 1, len(thread.root.children)))
        tops.append(top)
    if several:
        root.total = sum(child.total for child in root.children.values())
    else:
        root.total = sum(totals[at] for thread, first in zip(threads, sums.firsts)
                         for at in sums.callees(first - 1, len(thread.root.children)))
    whole = root.total or 1.0  # as the drawing scales it
    locations: dict = {}  # FunctionKey -> "file:line": a few thousand functions make a million frames
    with collector_paused():  # when every frame is built (flame_diff.py), a million of them
        for thread, top, first in zip(threads, tops, sums.firsts):
            _build(thread.root, top, first - 1, sums, metric, corrected, whole, pixels, locations)
    return root


def _build(thread_root, top: Frame, first: int, sums: _CallTreeTotals, metric: str, corrected: bool, whole: float,
           pixels: float, locations: dict) -> None:
    """The frames under one thread's root (or the thread's frame), callers before callees."""
    timed = metric == "time"
    sampled_part = 1 if corrected else 0  # of a sampled leaf's (raw, corrected, uncertainty)
    totals = sums.totals
    pending = [(thread_root, top, first)]  # the thread root as if numbered just before its callees
    while pending:
        node, frame, node_at = pending.pop()
        below = frame.children
        if timed and node.key is not None:  # a count-only function's sampled self time: a leaf here
            for key, parts in node.sampled.items():
                value = parts[sampled_part]
                location = locations.get(key) or locations.setdefault(key, _location(key))
                below[key] = Frame(key.name, location, max(0.0 + value, 0), 0.0 + value, sampled=True)
        for child, at in zip(node.children.values(), sums.callees(node_at, len(node.children))):
            key = child.key  # the node's own key names its frame, as in run_stacks
            if timed:
                own = child.corrected_self_ns if corrected else child.self_ns
            else:
                own = child.calls if metric == "calls" else child.alloc_bytes
            raw = child.self_ns
            approximate = corrected and raw > 0 and raw - child.corrected_self_ns > 0.5 * raw
            child_frame = below.get(key)
            if child_frame is None:
                location = locations.get(key) or locations.setdefault(key, _location(key))
                child_frame = below[key] = Frame(key.name, location, totals[at], 0.0 + own, child.calls,
                                                 approximate)
            else:  # its caller's sampled leaf of the same function
                child_frame.total = totals[at]
                child_frame.own += own
                child_frame.calls += child.calls
                child_frame.approximate = child_frame.approximate or approximate
                child_frame.sampled = False
            if pixels and child_frame.total / whole * pixels < MIN_WIDTH:
                child_frame.hidden = sums.frames_below(at)
            else:
                pending.append((child, child_frame, at))


class _CallTreeTotals:
    """Every call path's frame total, summed before any frame is built, exactly as _fill_totals would leave it
    (the same sums in the same order): a time is the node's own inclusive time, never less than its callees'
    frames; calls and bytes are its own plus its callees'.

    A million call nodes lie all over memory, and reaching one costs more than the arithmetic on it: they are
    read once, in a walk that numbers them (each before its callees, the last callee first, so that a subtree is a
    run of numbers) and keeps what the sums need in lists; the sums then run on the lists, callees first, each
    node's callees on top of a stack of results in their own order. A node's callees are found by their numbers
    (callees()), so no node needs a dict entry."""

    def __init__(self, threads, metric: str, corrected: bool):
        self.timed = metric == "time"
        self.part = 1 if corrected else 0  # of a sampled leaf's (raw, corrected, uncertainty)
        self.value_of = attrgetter(("corrected_total_ns" if corrected else "total_ns") if self.timed else
                                   "calls" if metric == "calls" else "alloc_bytes")
        self.values: list[float] = []  # by number: the node's own inclusive time, or its own calls or bytes
        self.widths: list[int] = []  # by number: how many callees
        self.totals: list[float] = []  # by number: its frame's total
        self.sizes: list[int] = []  # by number: how many nodes its subtree holds, itself included
        self.firsts: list[int] = []  # per thread, the number of its first node
        self._belows: list[float] = []  # by number: its callees' frames summed
        self._leaves: list[tuple[int, int]] = []  # (number, sampled leaves that are no call) of nodes with any
        for thread in threads:
            self.firsts.append(len(self.values))
            sampled = self._walk(thread.root)
            self._sum(self.firsts[-1], sampled)
        self._leaves.sort()
        self._leaf_places = [place for place, _ in self._leaves]
        self._leaf_counts = [0, *itertools.accumulate(count for _, count in self._leaves)]

    def callees(self, at: int, count: int) -> list[int]:
        """The numbers of the `count` callees of the node numbered `at`, in its children's order: the last callee
        comes right after it, each one before it after the subtree of the one after it."""
        numbers, next_at, sizes = [], at + 1, self.sizes
        for _ in range(count):
            numbers.append(next_at)
            next_at += sizes[next_at]
        numbers.reverse()
        return numbers

    def _walk(self, thread_root) -> dict:
        """Numbers the nodes under a thread root; returns those with sampled leaves (time only) by number."""
        values, widths, value_of, timed = self.values, self.widths, self.value_of, self.timed
        sampled = {}
        pending = list(thread_root.children.values())
        pop, extend, add_value, add_width = pending.pop, pending.extend, values.append, widths.append
        while pending:
            node = pop()
            add_value(0.0 + value_of(node))
            children = node.children
            add_width(len(children))
            if children:
                extend(children.values())
            if timed and node.sampled:
                sampled[len(values) - 1] = node
        return sampled

    def _sum(self, first: int, sampled: dict) -> None:
        values, widths, timed = self.values, self.widths, self.timed
        count = len(values)
        totals, sizes, belows = self.totals, self.sizes, self._belows
        totals.extend([0.0] * (count - len(totals)))
        sizes.extend([1] * (count - len(sizes)))
        belows.extend([0] * (count - len(belows)))
        results, subtrees = [], []  # the totals and sizes of the callees not yet summed into their caller's
        for at in range(count - 1, first - 1, -1):
            width = widths[at]
            if width:
                callees = results[-width:]  # in the callees' own order: the first callee was numbered last
                del results[-width:]
                size = 1 + sum(subtrees[-width:])
                del subtrees[-width:]
                sizes[at] = size
                below = self._sum_sampled(sampled[at], at, callees) if sampled and at in sampled else sum(callees)
            else:  # a leaf, most nodes: nothing to sum
                size = 1
                below = self._sum_sampled(sampled[at], at, []) if sampled and at in sampled else 0
            own = values[at] if timed else values[at] + below
            total = below if below > own else own  # max(own, below), without a call per node
            totals[at] = total
            belows[at] = below
            results.append(total)
            subtrees.append(size)

    def _sum_sampled(self, node, at: int, callees: list) -> float:
        """A node with sampled leaves: its frame's callees are the leaves first, then the calls not among them; a
        leaf of a function it also calls is one frame, whose total starts from the leaf's. Returns their sum."""
        keys = [child.key for child in node.children.values()]
        by_key = dict(zip(keys, callees))
        numbers = dict(zip(keys, self.callees(at, len(keys))))
        parts = []
        for key, value in node.sampled.items():
            leaf = 0.0 + value[self.part]
            if key not in by_key:
                parts.append(max(leaf, 0))
                continue
            child_at = numbers[key]
            total = max(leaf + self.values[child_at], self._belows[child_at])
            self.totals[child_at] = by_key[key] = total
            parts.append(total)
        leaves = sum(1 for key in node.sampled if key not in by_key)
        if leaves:
            self._leaves.append((at, leaves))
        return sum(parts + [total for key, total in by_key.items() if key not in node.sampled])

    def frames_below(self, at: int) -> int:
        """How many frames the frame of the node numbered `at` has below it: its callees at any depth, and their
        sampled leaves that are no call."""
        end = at + self.sizes[at]
        if not self._leaves:
            return end - at - 1
        leaves = self._leaf_counts[bisect.bisect_left(self._leaf_places, end)] - \
            self._leaf_counts[bisect.bisect_left(self._leaf_places, at)]
        return end - at - 1 + leaves


def _location(key) -> str:
    return f"{display_path(key.file)}:{key.line}"


def _fill_totals(root: Frame) -> None:
    """The root and thread frames are their children's sum; a function's frame keeps its own inclusive value (a
    measured time counts recursion once), never less than what its children draw inside it."""
    order, stack = [], [root]
    while stack:
        frame = stack.pop()
        order.append(frame)
        stack.extend(frame.children.values())
    for frame in reversed(order):
        below = sum(child.total for child in frame.children.values())
        frame.total = max(frame.total, below) if frame.location else below


def colour_of(name: str) -> str:
    """A function's warm colour, the same in every drawing (a hash of its name)."""
    hue = zlib.crc32(name.encode("utf-8", "replace"))
    return f"rgb({205 + hue % 50},{80 + (hue >> 8) % 120},{40 + (hue >> 16) % 50})"


def _colour(frame: Frame) -> str:
    if frame.merged:
        return "rgb(190,190,190)"
    if frame.location == "":
        return "rgb(220,220,235)"
    return colour_of(frame.name)


def frame_element(element_id: str, x: float, y: float, width: float, depth: int, value: float, name: str, fill: str,
                  classes: str, label: str, details: list[str], lane: int | None = None) -> str:
    """One frame as the script expects it: a group with its place (data-x, data-w, data-d and, in a flamechart,
    its lane data-l), its value for the search's share, its name to match, the hover text, the box and label."""
    lane_attribute = f' data-l="{lane}"' if lane is not None else ""
    return (f'<g class={quoteattr(classes)} id="{element_id}" data-x="{x:.2f}" data-w="{width:.2f}" '
            f'data-d="{depth}"{lane_attribute} data-v="{value:.0f}" data-n={quoteattr(name)}>'
            f"<title>{escape(chr(10).join(details))}</title>"
            f'<rect x="{x:.2f}" y="{y}" width="{max(width - 0.5, 0.1):.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{fill}"/>'
            f'<text x="{x + 3:.2f}" y="{y + FRAME_HEIGHT - 5}">{escape(label)}</text></g>')


@register
class FlameGraph(Renderer):
    """The SVG flamegraph (`cprof flame`, or any report --output FILE.svg)."""

    name = "flame"
    options_type = ReportOptions
    extensions = (".svg",)

    def __init__(self, options: ReportOptions | None = None, title: str | None = None):
        super().__init__(options)
        self.title = title

    def tree(self, run) -> Frame:
        """The frames to draw; a hook, as is paint (flame_diff.py draws a tree of its own, coloured by change)."""
        return frame_tree(run, self.options.weight, self.options.corrected, WIDTH)

    def paint(self, frame: Frame) -> tuple[str, str, list[str]]:
        """A frame's fill, the classes it adds (each with a leading space) and the lines it adds to its details."""
        return _colour(frame), "", []

    def render(self, view, out) -> None:
        run = getattr(view, "representative", view)
        metric = self.options.weight
        root = self.tree(run)
        whole = root.total or 1.0
        unit = UNITS[metric]
        rows: list[str] = []
        depth_max = 0
        ids = 0
        # iterative layout: (frame, x in pixels, depth)
        pending = [(root, 0.0, 0)]
        while pending:
            frame, x, depth = pending.pop()
            width = frame.total / whole * WIDTH
            depth_max = max(depth_max, depth)
            rows.append(self._frame(ids, frame, x, depth, width, whole, unit))
            ids += 1
            child_x = x
            narrow_total, narrow_count = 0.0, 0
            for child in sorted(frame.children.values(), key=lambda c: c.name):
                child_width = child.total / whole * WIDTH
                if child_width < MIN_WIDTH:
                    narrow_total += child.total
                    narrow_count += 1 + _descendants(child)
                    continue
                pending.append((child, child_x, depth + 1))
                child_x += child_width
            if narrow_count and narrow_total / whole * WIDTH >= MIN_WIDTH / 4:
                merged = Frame(f"{narrow_count} narrow frames", total=narrow_total, merged=narrow_count)
                rows.append(self._frame(ids, merged, child_x, depth + 1, narrow_total / whole * WIDTH, whole, unit))
                ids += 1
                depth_max = max(depth_max, depth + 1)
        height = TOP + (depth_max + 1) * FRAME_HEIGHT + 24
        measure = {"time": "inclusive time", "calls": "calls", "bytes": "bytes allocated"}[metric]
        title = self.title or f"cprof run {run.id}: width is {measure}"
        out.write(document(title, height, metric, whole, unit(whole), "\n".join(rows)))

    def _frame(self, frame_id: int, frame: Frame, x: float, depth: int, width: float, whole: float, unit) -> str:
        y = TOP + depth * FRAME_HEIGHT
        share = 100.0 * frame.total / whole
        details = [frame.name + (f"  {frame.location}" if frame.location else "")]
        if frame.merged:
            details.append(f"{frame.merged} call paths each under a pixel wide: {unit(frame.total)} ({share:.2f}%)")
        else:
            details.append(f"total {unit(frame.total)} ({share:.2f}% of the run), self {unit(frame.own)}"
                           + (f", {format_count(frame.calls)} calls" if frame.calls else ""))
        if frame.approximate:
            details.append("~ mostly the guard's own cost, corrected: an estimate")
        if frame.sampled:
            details.append("only counted: its self time sampled")
        fill, painted, notes = self.paint(frame)
        details += notes
        classes = "f" + (" approx" if frame.approximate else "") + (" merged" if frame.merged else "") + painted
        label = ("~" if frame.approximate else "") + frame.name
        return frame_element(f"f{frame_id}", x, y, width, depth, frame.total, frame.name, fill, classes, label, details)


def _descendants(frame: Frame) -> int:
    """How many frames are below it: those built, and those frame_tree left unbuilt."""
    count, stack = frame.hidden, list(frame.children.values())
    while stack:
        child = stack.pop()
        count += 1 + child.hidden
        stack.extend(child.children.values())
    return count


SCRIPT = r"""
(function () {
  var svg = document.documentElement, frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
  var WIDTH = +svg.getAttribute("data-width"), whole = +svg.getAttribute("data-whole");
  var status = document.getElementById("status"), zoomed = null, pattern = "";
  // a flamechart zooms the time axis over every lane; a flamegraph zooms into one frame's callees
  var chart = svg.getAttribute("data-kind") === "chart", origin = +svg.getAttribute("data-origin");
  var marks = Array.prototype.slice.call(document.querySelectorAll("g.mark"));
  function fit(g, from, scale, minDepth) {
    var x = (+g.getAttribute("data-x") - from) * scale, w = +g.getAttribute("data-w") * scale;
    var visible = +g.getAttribute("data-d") >= minDepth && x + w > 0 && x < WIDTH;
    g.style.display = visible ? "" : "none";
    if (!visible) return;
    var rect = g.querySelector("rect"), text = g.querySelector("text");
    rect.setAttribute("x", x); rect.setAttribute("width", Math.max(w - 0.5, 0.1));
    text.setAttribute("x", x + 3);
    var name = g.getAttribute("data-n"), room = Math.floor((w - 6) / 7);
    text.textContent = room < 3 ? "" : (name.length > room ? name.slice(0, room - 2) + ".." : name);
  }
  function contains(outer, inner) {
    var ox = +outer.getAttribute("data-x"), ow = +outer.getAttribute("data-w"), ix = +inner.getAttribute("data-x");
    return ix >= ox - 0.01 && ix < ox + ow - 0.01;
  }
  function zoom(g) {
    zoomed = g;
    var from = g ? +g.getAttribute("data-x") : 0, scale = g ? WIDTH / Math.max(+g.getAttribute("data-w"), 0.01) : 1;
    var depth = g ? +g.getAttribute("data-d") : 0;
    frames.forEach(function (f) {
      var related = chart || !g || contains(g, f) || (+f.getAttribute("data-d") < depth && contains(f, g));
      if (!related) { f.style.display = "none"; return; }
      fit(f, from, scale, 0);
      f.classList.toggle("ancestor", !chart && !!g && +f.getAttribute("data-d") < depth);
    });
    marks.forEach(function (m) {
      var x = (+m.getAttribute("data-x") - from) * scale, line = m.querySelector("line");
      line.setAttribute("x1", x); line.setAttribute("x2", x);
    });
    if (chart) axis(from, scale);
    save();
  }
  function axis(from, scale) {
    // ticks at 1, 2 or 5 times a power of ten ns, about ten across the visible span
    var group = document.getElementById("axis"), nsPerPx = whole / WIDTH / scale, span = WIDTH * nsPerPx;
    var step = Math.pow(10, Math.floor(Math.log10(span / 10)));
    if (span / step > 50) step *= 5; else if (span / step > 20) step *= 2;
    var first = Math.ceil((origin + from * whole / WIDTH) / step) * step, parts = [];
    for (var t = first; (t - origin) / nsPerPx - from * scale < WIDTH && parts.length < 60; t += step) {
      var x = ((t - origin) * WIDTH / whole - from) * scale;
      parts.push('<line x1="' + x + '" x2="' + x + '" y1="40" y2="' + (svg.getAttribute("height") - 20) + '" opacity="0.25"/>' +
                 '<text x="' + (x + 2) + '" y="54">' + label(t, step) + '</text>');
    }
    group.innerHTML = parts.join("");
  }
  function label(ns, step) {
    var units = [[1e9, "s"], [1e6, "ms"], [1e3, "us"], [1, "ns"]];
    for (var i = 0; i < units.length; i++)
      if (step >= units[i][0] || i === units.length - 1) {
        var digits = Math.max(0, Math.ceil(-Math.log10(step / units[i][0]) - 1e-9));
        return (ns / units[i][0]).toFixed(digits) + " " + units[i][1];
      }
  }
  function search(text) {
    pattern = text || "";
    var re = null;
    try { re = pattern ? new RegExp(pattern) : null; } catch (e) { status.textContent = "not a regular expression"; return; }
    var matched = [];
    frames.forEach(function (f) {
      var hit = !!re && re.test(f.getAttribute("data-n")) && !f.classList.contains("merged");
      f.classList.toggle("match", hit);
      if (hit) matched.push(f);
    });
    // nested matches are counted once: only the outermost of each is summed
    var share = 0;
    matched.forEach(function (f) {
      var inside = matched.some(function (o) { return o !== f && o.getAttribute("data-l") === f.getAttribute("data-l") && +o.getAttribute("data-d") < +f.getAttribute("data-d") && contains(o, f); });
      if (!inside) share += +f.getAttribute("data-v");
    });
    status.textContent = re ? ("matched " + (100 * share / whole).toFixed(2) + "% (" + matched.length + " frames): " + pattern) : "";
    save();
  }
  function save() {
    var parts = [];
    if (zoomed) parts.push("zoom=" + zoomed.id);
    if (pattern) parts.push("s=" + encodeURIComponent(pattern));
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname + location.search);
  }
  function restore() {
    var state = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (p) {
      var at = p.indexOf("="); if (at > 0) state[p.slice(0, at)] = decodeURIComponent(p.slice(at + 1));
    });
    var target = state.zoom ? document.getElementById(state.zoom) : null;
    zoom(target && target.classList.contains("f") ? target : null);
    search(state.s || "");
  }
  frames.forEach(function (f) {
    f.addEventListener("click", function (event) { event.stopPropagation(); zoom(f.getAttribute("data-d") === "0" && !chart ? null : f); });
  });
  document.getElementById("reset").addEventListener("click", function () { zoom(null); });
  document.getElementById("search").addEventListener("click", function () {
    var text = prompt("Search (a regular expression)", pattern);
    if (text !== null) search(text);
  });
  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "f") { event.preventDefault(); document.getElementById("search").dispatchEvent(new Event("click")); }
    if (event.key === "Escape") { zoom(null); search(""); }
  });
  window.cprofFlame = {zoom: zoom, search: search};
  restore();
})();
"""

STYLE = """
text { font: 12px ui-monospace, monospace; fill: #000; pointer-events: none; }
g.f rect { stroke: none; cursor: pointer; }
g.f:hover rect { stroke: #000; stroke-width: 0.5; }
g.approx rect { opacity: 0.55; }
g.approx text { font-style: italic; }
g.merged text { fill: #444; }
g.match rect { fill: rgb(230, 0, 230) !important; }
g.ancestor rect { opacity: 0.5; }
.control { font: 12px sans-serif; cursor: pointer; fill: #224; text-decoration: underline; pointer-events: all; }
#status { font: 12px sans-serif; fill: #333; }
text.lane { font: bold 12px sans-serif; fill: #333; }
g.cut rect { stroke: #c00; stroke-width: 1; stroke-dasharray: 3 2; }
g.mark line { stroke: #d00; stroke-width: 2; stroke-dasharray: 6 3; }
#axis line { stroke: #999; stroke-width: 1; }
#axis text { font: 11px sans-serif; fill: #555; }
"""


def document(title: str, height: int, metric: str, whole: float, whole_text: str, body: str, kind: str = "graph",
             origin_ns: float = 0.0) -> str:
    """The whole SVG around the frames. A flamechart (kind "chart") zooms in time across every lane and draws a
    time axis from origin_ns, where the drawing's left edge is, `whole` ns wide."""
    axis = '<g id="axis"></g>\n' if kind == "chart" else ""
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" data-width="{WIDTH}" data-whole="{whole:.0f}" data-metric="{metric}" '
            f'data-kind="{kind}" data-origin="{origin_ns:.0f}">\n'
            f"<style>{STYLE}</style>\n"
            f'<rect width="100%" height="100%" fill="#fffdf8"/>\n'
            f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" style="font-size:15px">{escape(title)} '
            f"({escape(whole_text)})</text>\n"
            f'<text id="reset" class="control" x="8" y="34">Reset zoom</text>\n'
            f'<text id="search" class="control" x="{WIDTH - 60}" y="34">Search</text>\n'
            f'<text id="status" x="110" y="34"></text>\n'
            f"{axis}{body}\n"
            f"<script><![CDATA[{SCRIPT}]]></script>\n</svg>\n")
