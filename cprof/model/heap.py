"""Heap tracking (csrc/heap.c) made into the model: each allocation site's blocks (per call path and instruction),
what was still live at exit and at the peak, per call-tree node and per process, and the source line of each site
(resolved only when asked: addr2line costs a few tenths of a second)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cprof.model.symbols import changed_modules, module_of, resolve
from cprof.runfile import COUNT, SITE_COUNTERS, NodeCounter

# What a node's allocation sites give it, beside the run file's own node counters (summed per function as they are):
# blocks and bytes allocated there and still live at the end, live bytes at the heap's peak, temporary allocations.
HEAP_NODE_COUNTERS = tuple(NodeCounter(name, COUNT) for name in ("live_count", "live_bytes", "peak_bytes",
                                                                  "temporary_count"))

# csrc/runfile.h CPROF_HEAP_*
HEAP_OFF, HEAP_INTERPOSED, HEAP_WRAPPED, HEAP_FOREIGN = 0, 1, 2, 3
SOURCES = {
    HEAP_OFF: "heap tracking was switched off (CPROF_HEAP=0)",
    HEAP_INTERPOSED: "every call of the malloc family, libc's own included (the runtime's malloc comes first)",
    HEAP_WRAPPED: "every call of the malloc family, libc's own included (a -static link wrapped by the linker)",
    HEAP_FOREIGN: "not seen: the program brings its own malloc, which comes before the runtime's",
}


@dataclass(eq=False)
class AllocationSite:
    """The blocks one instruction asked for while one call path was innermost (node None: outside every recorded
    call). `live` is what was not freed by the end of the run (or by the moment it was killed)."""

    node: object  # CallNode | None
    ip: int
    alloc_count: int = 0
    alloc_bytes: int = 0
    released_count: int = 0  # freed by the thread that allocated them
    released_bytes: int = 0
    realloc_count: int = 0
    temporary_count: int = 0
    peak_bytes: int = 0  # live bytes at the heap's peak (its snapshot)
    remote_released_count: int = 0  # freed by other threads
    remote_released_bytes: int = 0
    # where the call was made, once resolved: the function and line holding the call, and the object it is in
    function: str = ""
    file: str = ""
    line: int = 0
    module: str = ""

    @property
    def live_count(self) -> int:
        return max(0, self.alloc_count - self.released_count - self.remote_released_count)

    @property
    def live_bytes(self) -> int:
        return max(0, self.alloc_bytes - self.released_bytes - self.remote_released_bytes)

    @property
    def location(self) -> str:
        """`file:line`, or the function when the call is in code without line information; a shared library's
        name follows (libc's own allocations in fopen or strdup are in libc.so.6)."""
        library = f" ({os.path.basename(self.module)})" if ".so" in os.path.basename(self.module) else ""
        if self.file and self.line:
            return f"{os.path.basename(self.file)}:{self.line}{library}"
        if self.function:
            return f"{self.function} ({os.path.basename(self.module)})" if self.module else self.function
        return f"{os.path.basename(self.module)}+{self.ip:#x}" if self.module else f"{self.ip:#x}"


@dataclass
class ProcessHeap:
    source: int
    sites: list[AllocationSite] = field(default_factory=list)  # the outside site included (node None)
    free_count: int = 0  # every free of a tracked block, in recorded calls or outside them
    free_bytes: int = 0
    live_bytes: int = 0  # the runtime's running totals, at the end
    live_blocks: int = 0
    peak_bytes: int = 0
    peak_ns: float = 0.0  # since the process started
    snapshot_bytes: int = 0  # live bytes when the sites' peak_bytes were copied (within 1/16 of the peak)
    foreign_frees: int = 0  # frees of blocks the runtime did not hand out (a fork parent's, ones made before it)
    untracked: int = 0
    modules: list = field(default_factory=list)
    resolved: bool = False

    @property
    def tracked(self) -> bool:
        return self.source in (HEAP_INTERPOSED, HEAP_WRAPPED)

    def totals(self) -> dict:
        sites = self.sites
        return {
            "alloc_count": sum(s.alloc_count for s in sites),
            "alloc_bytes": sum(s.alloc_bytes for s in sites),
            "free_count": self.free_count,
            "free_bytes": self.free_bytes,
            "realloc_count": sum(s.realloc_count for s in sites),
            "temporary_count": sum(s.temporary_count for s in sites),
            "live_count": sum(s.live_count for s in sites),
            "live_bytes": sum(s.live_bytes for s in sites),
        }

    def resolve_lines(self) -> None:
        """Names each site's function and source line from its return address (the call is the byte before)."""
        if self.resolved:
            return
        self.resolved = True
        if changed_modules(self.modules, "allocation sites in it cannot be given source lines"):
            return
        by_module: dict[str, set[int]] = {}
        module_at: dict[int, str | None] = {}
        for site in self.sites:
            if site.ip:
                path = module_at.setdefault(site.ip - 1, module_of(site.ip - 1, self.modules))
                if path:
                    by_module.setdefault(path, set()).add(site.ip - 1)
        chains = resolve(by_module, self.modules)
        for site in self.sites:
            if not site.ip:
                continue
            site.module = module_at.get(site.ip - 1) or ""
            chain = chains.get(site.ip - 1) or []
            if chain:  # innermost first: the line of the call itself, in the function it was inlined into or not
                site.function, site.file, site.line = chain[0]
                if site.file == "??":  # addr2line knows the function but not its file (a static libc.a)
                    site.file = ""


def load_heap(raw: dict, nodes: dict, header: dict) -> ProcessHeap | None:
    """The process's heap from its run file (nodes: offset -> CallNode); fills each node's live and peak
    figures from its sites. None when the run file has no heap record (an older runtime)."""
    record = raw.get("heap")
    if record is None:
        return None
    scale = 1e9 / (header["ticks_per_second"] or 1e9)
    heap = ProcessHeap(record["source"], live_bytes=record["live_bytes"], live_blocks=record["live_blocks"],
                       peak_bytes=record["peak_bytes"], snapshot_bytes=record["snapshot_bytes"],
                       peak_ns=max(0.0, (record["peak_ticks"] - header["start_ticks"]) * scale)
                       if record["peak_ticks"] else 0.0,
                       foreign_frees=record["foreign_frees"], untracked=record["untracked"],
                       modules=raw.get("modules", []))
    heap.free_count = record["outside_free_count"] + sum(n.free_count for n in nodes.values())
    heap.free_bytes = record["outside_free_bytes"] + sum(n.free_bytes for n in nodes.values())
    merged: dict[tuple[int, int], AllocationSite] = {}  # a thread's sites may repeat over its tables
    for node_offset, ip, *counters in raw.get("heap_sites", ()):
        node = nodes.get(node_offset) if node_offset >= 0 else None
        site = merged.get((id(node), ip))
        if site is None:
            site = merged[(id(node), ip)] = AllocationSite(node, ip)
        for name, value in zip(SITE_COUNTERS, counters):
            setattr(site, name, getattr(site, name) + value)
    # a fork child's tables keep the parent's entries, emptied at the fork: a site is the child's once it allocated
    heap.sites = [s for s in merged.values()
                  if s.alloc_count or s.released_count or s.remote_released_count or s.peak_bytes]
    for site in heap.sites:
        if site.node is not None:
            site.node.live_count += site.live_count
            site.node.live_bytes += site.live_bytes
            site.node.peak_bytes += site.peak_bytes
            site.node.temporary_count += site.temporary_count
    return heap



SOURCE_NAMES = {HEAP_OFF: "off", HEAP_INTERPOSED: "interposed", HEAP_WRAPPED: "wrapped", HEAP_FOREIGN: "foreign"}


@dataclass
class HeapSummary:
    """What heap tracking saw over a run's processes: counts add up, the peak is the largest process's."""

    source: int
    tracked: bool
    totals: dict
    peak_bytes: int
    peak_ns: float
    snapshot_bytes: int
    foreign_frees: int
    untracked: int

    @property
    def source_text(self) -> str:
        return SOURCES.get(self.source, "unknown")


def heap_summary(processes) -> HeapSummary | None:
    """None when no process has a heap record (a run file from before heap tracking)."""
    heaps = [p.heap for p in processes if p.heap is not None]
    if not heaps:
        return None
    tracked = [h for h in heaps if h.tracked]
    totals: dict[str, int] = {}
    for heap in tracked:
        for name, value in heap.totals().items():
            totals[name] = totals.get(name, 0) + value
    top = max(tracked, key=lambda h: h.peak_bytes, default=heaps[0])
    source = tracked[0].source if tracked else heaps[0].source
    return HeapSummary(source, bool(tracked), totals, top.peak_bytes, top.peak_ns, top.snapshot_bytes,
                       sum(h.foreign_frees for h in heaps), sum(h.untracked for h in heaps))


def sites_by_bytes(processes) -> list[tuple[object, AllocationSite]]:
    """(process, site) for every allocation site of the run, resolved to source lines, most bytes first."""
    pairs = []
    for process in processes:
        if process.heap is not None and process.heap.tracked:
            process.heap.resolve_lines()
            pairs.extend((process, site) for site in process.heap.sites)
    pairs.sort(key=lambda pair: (-pair[1].alloc_bytes, -pair[1].alloc_count))
    return pairs
