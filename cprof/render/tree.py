"""The call tree per thread, with inclusive times, pruned below a share of the thread's time."""

from __future__ import annotations

from dataclasses import dataclass

from cprof.model.coverage import coverage_of
from cprof.model.load import GroupRun
from cprof.model.run import CallNode, Run
from cprof.render.base import Renderer, register
from cprof.render.coverage_note import coverage_lines, thread_note
from cprof.render.table import ReportOptions
from cprof.render.style import Style
from cprof.render.units import format_bytes, format_count, format_ns, format_percent

TREE_WEIGHTS = ("time", "bytes")  # what a call path's width in the tree is: inclusive time, or bytes allocated


@dataclass
class SampledLeaf:
    """A count-only function's sampled self time under the node it ran in (it has no node of its own)."""

    name: str
    ns: float


@register
class CallTree(Renderer):
    """Each thread's call tree with inclusive times (or bytes), pruned below a share of the thread."""

    name = "tree"
    options_type = ReportOptions
    text = True

    def __init__(self, options: ReportOptions | None = None):
        super().__init__(options)
        self.corrected = self.options.corrected
        self.min_percent = self.options.min_percent
        self.function_pattern = self.options.function_pattern
        self.by_bytes = self.options.weight == "bytes"
        self._inclusive_bytes: dict[int, int] = {}
        self.format = format_bytes if self.by_bytes else format_ns

    def _total(self, node: "CallNode | SampledLeaf") -> float:
        if isinstance(node, SampledLeaf):
            return node.ns
        if self.by_bytes:
            return self._bytes(node)
        return node.corrected_total_ns if self.corrected else node.total_ns

    def _bytes(self, node: CallNode) -> int:
        """Bytes allocated in the node and everything it called."""
        known = self._inclusive_bytes.get(id(node))
        if known is None:
            for each in reversed(list(node.walk())):
                self._inclusive_bytes[id(each)] = each.alloc_bytes + sum(
                    self._inclusive_bytes[id(c)] for c in each.children.values())
            known = self._inclusive_bytes[id(node)]
        return known

    def render(self, view: Run | GroupRun, out) -> None:
        """A group's tree is that of its median run (by total self time), and says so."""
        self.run = view.representative if isinstance(view, GroupRun) else view
        self._draw(out)
        if self.run is not view:
            out.write(f"call tree of run {self.run.id}, the median of group {view.id}'s {len(view.runs)} runs "
                      "by total self time\n")

    def _draw(self, out) -> None:
        style = Style.for_stream(out)
        coverage = coverage_of(self.run)
        for thread, thread_coverage in zip(self.run.threads, coverage.threads):
            whole = sum(self._total(c) for c in thread.root.children.values())
            if not whole:
                continue
            pid = f"pid {thread.pid}, " if len(self.run.processes) > 1 else ""
            out.write(style.bold(f"thread {thread.index} ({pid}{thread.name or '?'}, tid {thread.tid}): "
                                 f"{self.format(whole)}" + (" allocated" if self.by_bytes else "")) + style.dim(thread_note(thread_coverage)) + "\n")
            pruned = 0

            def shown_children(node):
                nonlocal pruned
                children = self._ordered(node)
                kept = [c for c in children if 100.0 * self._total(c) / whole >= self.min_percent]
                pruned += len(children) - len(kept)
                return kept

            # iterative: trees can be very deep
            top = shown_children(thread.root)
            stack = [(c, "", i == len(top) - 1) for i, c in enumerate(top)][::-1]
            while stack:
                node, prefix, last = stack.pop()
                total = self._total(node)
                branch = "└─ " if last else "├─ "
                if isinstance(node, SampledLeaf):
                    out.write(f"{prefix}{branch}{format_percent(total, whole):>6} {format_ns(total):>9}  {node.name}"
                              + style.dim("  [counted, sampled self time]") + "\n")
                    continue
                name = node.key.name
                if self.function_pattern and self.function_pattern in name:
                    name = style.yellow(name)
                waited = f", waiting {format_ns(node.wait_ns)}" if node.wait_ns >= 0.01 * whole else ""
                out.write(f"{prefix}{branch}{format_percent(total, whole):>6} {self.format(total):>9}  {name}"
                          + style.dim(f"  ×{format_count(node.calls)}{waited}") + "\n")
                children = shown_children(node)
                extension = "   " if last else "│  "
                for i, child in reversed(list(enumerate(children))):
                    stack.append((child, prefix + extension, i == len(children) - 1))
            if pruned:
                out.write(style.dim(f"({pruned} call paths under {self.min_percent:g}% not shown; --min-percent 0 "
                                    "shows all)") + "\n")
        counted = [f for f in self.run.functions() if f.counted_only]
        for sampled, words in ((True, "only counted, their sampled self time shown where it ran"),
                               (False, "only counted, their time in their callers")):
            group = sorted((f for f in counted if f.sampled == sampled), key=lambda f: -f.calls)
            if group:
                names = ", ".join(f"{f.name} ×{format_count(f.calls)}" for f in group)
                out.write(style.dim(f"{words}: {names}") + "\n")
        for line in coverage_lines(coverage, style):
            out.write(line + "\n")
        if self.corrected and not self.run.calibrated:
            out.write(self.run.raw_reason + "\n")

    def _ordered(self, node: CallNode) -> list:
        index = 1 if self.corrected else 0
        leaves = [] if self.by_bytes else [SampledLeaf(key.name, parts[index]) for key, parts in node.sampled.items()]
        return sorted([*node.children.values(), *leaves], key=lambda c: -self._total(c))
