"""Pure-Python reader of run files (csrc/runfile.h), the reference twin of csrc/reader.c.

Both return the same plain structure, which tests compare on the same files:
    {"header": {...}, "complete": bool,
     "functions": [(id, name, file, line, flags)],
     "nodes": [(offset, parent_offset | -1, function_id, *counters)],  (counters as in NODE_COUNTERS)
     "threads": [(index, tid, name, root_offset, start_ticks, end_ticks, last_ticks, lost_frames,
                  [(open_node_offset, start_ticks), ...])],
     "counts": [(thread_index, function_id, calls)],  (count-only functions, summed, sorted, no zeros)
     "samples": [(thread_index, node_offset, ip, caller, weight, signals)],  (CPU-time samples, summed, sorted)
     "modules": [(path, base, low, high, mtime_ns, size)],  (loaded objects, one per (path, base), sorted)
     "heap": {HEAP_FIELDS...} | None,  (the heap record's figures, when the heap was tracked or switched off)
     "heap_sites": [(node_offset | -1, ip, *SITE_COUNTERS)],  (summed per (node, ip), sorted; outside site first)
     "trace": [(thread_index, events)]}  (threads with traced calls, by index; events: bytes of native u64
                                          triples (node_offset | TRACE_CUT, start_ticks, end_ticks), in the
                                          order the thread wrote them)
Every size and pointer is checked before use: a truncated or corrupt file yields what can be trusted.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass

MAGIC = b"CPROFRUN"
TRAILER_MAGIC = b"CPROFEND"
VERSION = 1
HEADER_SIZE = 4096
CHUNK_SIZE = 65536
CMDLINE_MAX = 2048

REC_FUNCTION, REC_THREAD, REC_NODE, REC_STACK, REC_TRAILER, REC_PAD, REC_COUNTS = 1, 2, 3, 4, 5, 6, 7
REC_SAMPLES, REC_MODULE, REC_HEAP, REC_HEAP_SITES, REC_TRACE = 8, 9, 10, 11, 12
TRACE_CUT = 1  # a trace event's node bit: the call was still open when the trace stopped, which is its end
# function flags and header feature bits (csrc/runfile.h)
FN_STATIC, FN_SECTION, FN_INLINE, FN_COUNTED, FN_STRIPED = 1, 2, 4, 8, 16
FEAT_CPU_TIME, FEAT_ALLOCS, FEAT_TRACE, FEAT_THREAD_CPU, FEAT_WAIT_TIME, FEAT_SAMPLES = (1 << 1, 1 << 2, 1 << 3, 1 << 4,
                                                                                1 << 5, 1 << 7)

# struct cprof_run_header, field by field
_HEADER = struct.Struct("<8sIIQQQIIdQQQQQiiiIQQQddddIIQIIQQIIQQdd5Q3Q")
_HEADER_FIELDS = (
    "magic version header_size features base_address used_bytes chunk_size timer_kind ticks_per_second "
    "start_ticks start_mono_ns start_unix_ns end_ticks end_mono_ns pid parent_pid exit_status flags "
    "threads_head functions_head fork_ticks guard_inner_ticks guard_outer_ticks guard_inner_spread "
    "guard_outer_spread calibration_rounds cmdline_len lost_frames timer_ordered reserved_u32 runtime_ns "
    "sample_period_ns sample_source reserved_u32b samples_outside samples_dropped count_guard_ticks "
    "count_guard_spread trace_min_ns trace_limit_bytes trace_bytes trace_stop_ticks trace_dropped"
).split()
# and what follows the command line (older run files hold zeros there)
_HEADER_TAIL = struct.Struct("<dd")
_HEADER_TAIL_FIELDS = ["count_exposed_ticks", "count_striped_ticks"]
_PUBLIC_HEADER_FIELDS = [
    f for f in _HEADER_FIELDS
    if f not in ("magic", "header_size", "chunk_size", "threads_head", "functions_head", "cmdline_len", "reserved_u32",
                 "reserved_u32b")
]

# How a node counter becomes a model value (cprof/model/run.py)
TICKS = "ticks"  # timer ticks, scaled to nanoseconds with the run's calibrated frequency
NS = "ns"  # nanoseconds already (a float in the model, as every time is)
COUNT = "count"  # a whole number, and stays one (a group's median is rounded)


@dataclass(frozen=True)
class NodeCounter:
    """One counter of struct cprof_node, and what the model makes of it."""

    name: str  # in struct cprof_node
    unit: str  # TICKS, NS or COUNT
    # a function's figure is the sum over its nodes; not so for times that include the callees (the model derives
    # self and outermost totals from them) nor for the runtime's own cost (only the correction uses it)
    per_function: bool = True
    attribute: str = ""  # its name in the model (CallNode, FunctionStats); by default the struct's, ticks as _ns

    def __post_init__(self):
        if not self.attribute:
            model_name = self.name.removesuffix("_ticks") + "_ns" if self.unit == TICKS else self.name
            object.__setattr__(self, "attribute", model_name)

    def factor(self, ns_per_tick: float) -> float | int:
        """What a raw value is multiplied by to become the model's (an int for counts, which keeps them whole)."""
        return ns_per_tick if self.unit == TICKS else 1.0 if self.unit == NS else 1


# struct cprof_node's counters in struct order, as CPROF_NODE_COUNTERS in csrc/runfile.h lists them
NODE_COUNTERS = (
    NodeCounter("calls", COUNT),
    NodeCounter("total_ticks", TICKS, per_function=False),
    NodeCounter("cpu_ns", NS, per_function=False, attribute="cpu_total_ns"),  # the model's cpu_ns is the self part
    NodeCounter("alloc_count", COUNT),
    NodeCounter("alloc_bytes", COUNT),
    NodeCounter("free_count", COUNT),
    NodeCounter("free_bytes", COUNT),
    NodeCounter("wait_ticks", TICKS),
    NodeCounter("slow_ticks", TICKS, per_function=False),
    NodeCounter("slow_calls", COUNT, per_function=False),
    NodeCounter("realloc_count", COUNT),
)

_HEAD = struct.Struct("<II")
_FUNCTION = struct.Struct("<IIQIIIHH")  # head, next, id, line, flags, name_len, file_len
_NODE = struct.Struct(f"<II4Q{len(NODE_COUNTERS)}Q")  # head, parent, func, child_hints[2], counters
_THREAD = struct.Struct("<II9QIIQ16sQQ")  # head, top .. end_ticks, index, busy, lost_frames, name, cursor
_STACK = struct.Struct("<IIQQ5Q")
_FRAME = struct.Struct("<8Q")
_TRAILER = struct.Struct("<II8sQQ")
_COUNTS = struct.Struct("<IIQQII")  # head, thread, table, count; then count function pointers and count values
_SAMPLES = struct.Struct("<IIQII5Q")  # head, thread, capacity, used; then (node, ip, caller, weight, signals)
_SAMPLE_ENTRY = struct.Struct("<5Q")
_TRACE = struct.Struct("<IIQII5Q")  # head, thread, capacity, used; then (node | cut, start, end) events
_TRACE_EVENT = struct.Struct("<3Q")
_MODULE = struct.Struct("<IIQQQQQII")  # head, base, low, high, mtime_ns, size, path_len; then the path
# struct cprof_heap_site's counters, in struct order, as CPROF_HEAP_SITE_COUNTERS in csrc/runfile.h lists them
SITE_COUNTERS = ("alloc_count", "alloc_bytes", "released_count", "released_bytes", "realloc_count",
                 "temporary_count", "peak_bytes", "remote_released_count", "remote_released_bytes")
_HEAP_SITE = struct.Struct(f"<3Q{len(SITE_COUNTERS)}Q")  # node, ip, thread, counters
_HEAP_SITES = struct.Struct("<IIQQII4Q")  # head, thread, next, capacity, used; then the sites
# struct cprof_heap_record up to its outside site; HEAP_FIELDS are what readers pass on (CPROF_HEAP_FIELDS)
_HEAP = struct.Struct("<IIII13Q2Q")
_HEAP_RECORD_FIELDS = ("kind size source epoch live_bytes live_blocks peak_bytes peak_ticks snapshot_bytes "
                       "snapshot_ticks sites_head foreign_frees untracked outside_free_count outside_free_bytes "
                       "op_cost_ps op_spread_ps").split()
HEAP_FIELDS = tuple(f for f in _HEAP_RECORD_FIELDS if f not in ("kind", "size", "sites_head"))

FRAME_SIZE = _FRAME.size
NODE_SIZE = _NODE.size
THREAD_SIZE = _THREAD.size


class RunFileError(Exception):
    """Not a run file at all (wrong magic or version, shorter than a header)."""


def _cmdline(raw: bytes) -> list[str]:
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "replace") for p in parts]


def read_header(data: bytes) -> dict:
    if len(data) < HEADER_SIZE or data[:8] != MAGIC:
        raise RunFileError("not a cprof run file (bad magic or shorter than its header)")
    values = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(data, 0)))
    if values["version"] != VERSION or values["chunk_size"] != CHUNK_SIZE:
        raise RunFileError(f"unsupported run file version {values['version']}")
    cmdline_at = _HEADER.size
    length = min(values["cmdline_len"], CMDLINE_MAX)
    values["cmdline"] = _cmdline(bytes(data[cmdline_at : cmdline_at + length]))
    values.update(zip(_HEADER_TAIL_FIELDS, _HEADER_TAIL.unpack_from(data, cmdline_at + CMDLINE_MAX)))
    return values


def _records(data: bytes, end: int):
    """Yields (kind, offset, size) by the rules of csrc/records.c."""
    offset = CHUNK_SIZE
    while offset + _HEAD.size <= end:
        chunk_end = (offset // CHUNK_SIZE + 1) * CHUNK_SIZE
        kind, size = _HEAD.unpack_from(data, offset)
        if kind == 0 or size < _HEAD.size or size % 8:
            offset = chunk_end
            continue
        if kind == REC_STACK:
            if offset % CHUNK_SIZE or size % CHUNK_SIZE or size > end - offset:
                offset = chunk_end
                continue
        elif size > chunk_end - offset or size > end - offset:
            offset = chunk_end
            continue
        if kind != REC_PAD:
            yield kind, offset, size
        offset += size


def read_run(data: bytes) -> dict:
    data = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    header = read_header(data)
    used = min(header["used_bytes"], len(data))
    base = header["base_address"]

    def to_offset(pointer: int, size: int) -> int:
        if pointer < base:
            return -1
        offset = pointer - base
        if offset < CHUNK_SIZE or offset % 8 or offset + size > used:
            return -1
        return offset

    functions, raw_nodes, threads, raw_counts, thread_at = [], [], [], [], {}
    raw_samples, modules, raw_sites, heap, trace_tables = [], set(), [], None, []
    for kind, offset, size in _records(data, used):
        if kind == REC_FUNCTION and size >= _FUNCTION.size:
            _, _, _, fid, line, flags, name_len, file_len = _FUNCTION.unpack_from(data, offset)
            if _FUNCTION.size + name_len + file_len > size:
                continue
            at = offset + _FUNCTION.size
            name = bytes(data[at : at + name_len]).decode("utf-8", "replace")
            file = bytes(data[at + name_len : at + name_len + file_len]).decode("utf-8", "replace")
            functions.append((offset, fid, name, file, line, flags))
        elif kind == REC_NODE and size >= NODE_SIZE:
            values = _NODE.unpack_from(data, offset)
            parent_pointer, func_pointer = values[2], values[3]
            parent = to_offset(parent_pointer, NODE_SIZE) if parent_pointer else -1
            if parent_pointer and parent < 0:
                continue
            func_offset = 0
            if func_pointer:
                func_offset = to_offset(func_pointer, _FUNCTION.size)
                if func_offset < 0:
                    continue
            raw_nodes.append((offset, parent, func_offset) + values[6:])
        elif kind == REC_THREAD and size >= THREAD_SIZE:
            thread = _read_thread(data, offset, to_offset)
            if thread is not None:
                threads.append(thread)
                thread_at[offset] = thread[0]
        elif kind == REC_COUNTS and size >= _COUNTS.size:
            _, _, thread_pointer, _, count, _ = _COUNTS.unpack_from(data, offset)
            if _COUNTS.size + 16 * count > size:
                continue
            pointers = struct.unpack_from(f"<{count}Q", data, offset + _COUNTS.size)
            values = struct.unpack_from(f"<{count}Q", data, offset + _COUNTS.size + 8 * count)
            raw_counts.append((to_offset(thread_pointer, THREAD_SIZE),
                               [(to_offset(p, _FUNCTION.size), v) for p, v in zip(pointers, values) if v]))
        elif kind == REC_SAMPLES and size >= _SAMPLES.size:
            _, _, thread_pointer, capacity, _, *_ = _SAMPLES.unpack_from(data, offset)
            thread_offset = to_offset(thread_pointer, THREAD_SIZE)
            if _SAMPLES.size + _SAMPLE_ENTRY.size * capacity > size or thread_offset < 0:
                continue
            for node_pointer, ip, caller, weight, signals in _SAMPLE_ENTRY.iter_unpack(
                    data[offset + _SAMPLES.size : offset + _SAMPLES.size + _SAMPLE_ENTRY.size * capacity]):
                node_offset = to_offset(node_pointer, NODE_SIZE)
                if weight and node_offset >= 0:
                    raw_samples.append((thread_offset, node_offset, ip, caller, weight, signals))
        elif kind == REC_TRACE and size >= _TRACE.size:
            _, _, thread_pointer, capacity, events, *_ = _TRACE.unpack_from(data, offset)
            thread_offset = to_offset(thread_pointer, THREAD_SIZE)
            if events <= capacity and _TRACE.size + _TRACE_EVENT.size * capacity <= size and thread_offset >= 0:
                trace_tables.append((thread_offset, offset, events))
        elif kind == REC_HEAP_SITES and size >= _HEAP_SITES.size:
            _, _, thread_pointer, _, capacity, _, *_ = _HEAP_SITES.unpack_from(data, offset)
            at = offset + _HEAP_SITES.size
            if _HEAP_SITES.size + _HEAP_SITE.size * capacity > size or to_offset(thread_pointer, THREAD_SIZE) < 0:
                continue
            for node_pointer, ip, _thread, *counters in _HEAP_SITE.iter_unpack(data[at : at + _HEAP_SITE.size * capacity]):
                node_offset = to_offset(node_pointer, NODE_SIZE)
                if ip and node_offset >= 0:
                    raw_sites.append((node_offset, ip, counters[: len(SITE_COUNTERS)]))
        elif kind == REC_HEAP and size >= _HEAP.size + _HEAP_SITE.size:
            if heap is None:
                heap = dict(zip(_HEAP_RECORD_FIELDS, _HEAP.unpack_from(data, offset)))
                outside = _HEAP_SITE.unpack_from(data, offset + _HEAP.size)[3 : 3 + len(SITE_COUNTERS)]
        elif kind == REC_MODULE and size >= _MODULE.size:
            _, _, module_base, low, high, mtime_ns, file_size, path_len, _ = _MODULE.unpack_from(data, offset)
            if _MODULE.size + path_len <= size:
                path = bytes(data[offset + _MODULE.size : offset + _MODULE.size + path_len])
                modules.add((path, module_base, low, high, mtime_ns, file_size))

    functions.sort()
    function_offsets = [f[0] for f in functions]
    nodes = []
    for node in raw_nodes:
        func_offset = node[2]
        function_id = 0
        if func_offset:
            index = bisect.bisect_left(function_offsets, func_offset)
            if index == len(function_offsets) or function_offsets[index] != func_offset:
                continue
            function_id = functions[index][1]
        nodes.append((node[0], node[1], function_id) + node[3:])

    counts: dict[tuple[int, int], int] = {}
    for thread_offset, pairs in raw_counts:
        if thread_offset not in thread_at:
            continue
        for function_offset, value in pairs:
            index = bisect.bisect_left(function_offsets, function_offset)
            if function_offset < 0 or index == len(function_offsets) or function_offsets[index] != function_offset:
                continue
            key = (thread_at[thread_offset], functions[index][1])
            counts[key] = counts.get(key, 0) + value

    node_offsets = {node[0] for node in nodes}
    samples: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    for thread_offset, node_offset, ip, caller, weight, signals in raw_samples:
        if thread_offset in thread_at and node_offset in node_offsets:
            key = (thread_at[thread_offset], node_offset, ip, caller)
            before = samples.get(key, (0, 0))
            samples[key] = (before[0] + weight, before[1] + signals)
    sites: dict[tuple[int, int], list[int]] = {}
    for node_offset, ip, counters in raw_sites:
        if node_offset in node_offsets:
            total = sites.setdefault((node_offset, ip), [0] * len(SITE_COUNTERS))
            for index, value in enumerate(counters):
                total[index] += value
    heap_sites = [(node, ip, *counters) for (node, ip), counters in sorted(sites.items())]
    if heap is not None and any(outside):
        heap_sites.insert(0, (-1, 0, *outside))
    unique_modules: dict[tuple[bytes, int], tuple] = {}
    for path, module_base, low, high, mtime_ns, file_size in sorted(modules):
        unique_modules.setdefault((path, module_base),
                                  (path.decode("utf-8", "replace"), module_base, low, high, mtime_ns, file_size))

    trace = _read_traces(data, sorted(trace_tables), thread_at, node_offsets, to_offset)

    complete = False
    if len(data) >= HEADER_SIZE + _TRAILER.size and len(data) >= header["used_bytes"]:  # not truncated
        trailer_kind, _, trailer_magic, _, _ = _TRAILER.unpack_from(data, HEADER_SIZE)
        complete = bool(header["flags"] & 1) and trailer_kind == REC_TRAILER and trailer_magic == TRAILER_MAGIC
    return {
        "header": {k: header[k] for k in _PUBLIC_HEADER_FIELDS + ["cmdline"] + _HEADER_TAIL_FIELDS},
        "complete": complete,
        "functions": [f[1:] for f in functions],
        "nodes": nodes,
        "threads": threads,
        "counts": sorted((thread, function, calls) for (thread, function), calls in counts.items()),
        "samples": sorted((thread, node, ip, caller, weight, signals)
                          for (thread, node, ip, caller), (weight, signals) in samples.items()),
        "modules": list(unique_modules.values()),
        "heap": {k: heap[k] for k in HEAP_FIELDS} if heap is not None else None,
        "heap_sites": heap_sites,
        "trace": trace,
    }


def _read_traces(data, tables, thread_at: dict, node_offsets: set, to_offset) -> list[tuple[int, bytes]]:
    """Each thread's tables in the order it took them (by offset: the arena only grows), events of known nodes."""
    events_by_thread: dict[int, list[int]] = {}
    for thread_offset, offset, events in tables:
        if thread_offset not in thread_at:
            continue
        kept = events_by_thread.setdefault(thread_at[thread_offset], [])
        at = offset + _TRACE.size
        for node_pointer, start, end in _TRACE_EVENT.iter_unpack(data[at : at + _TRACE_EVENT.size * events]):
            node = to_offset(node_pointer & ~TRACE_CUT, NODE_SIZE)
            if node in node_offsets and end >= start:
                kept.extend((node | (node_pointer & TRACE_CUT), start, end))
    return [(index, struct.pack(f"={len(values)}Q", *values))
            for index, values in sorted(events_by_thread.items()) if values]


def _read_thread(data, offset: int, to_offset):
    (_, _, top, _limit, last_ticks, _next, root_pointer, stack_pointer, tid, start_ticks, end_ticks,
     index, _busy, lost_frames, name, _cursor, _end) = _THREAD.unpack_from(data, offset)
    root = to_offset(root_pointer, NODE_SIZE)
    if root < 0:
        return None
    name_text = name.split(b"\0", 1)[0].decode("utf-8", "replace")
    open_frames = []
    stack = to_offset(stack_pointer, _STACK.size)
    top_offset = to_offset(top, FRAME_SIZE)
    if stack >= 0 and top_offset >= 0:
        kind, size = _HEAD.unpack_from(data, stack)
        first = stack + _STACK.size
        valid = kind == REC_STACK and first <= top_offset and top_offset + FRAME_SIZE <= stack + size
        if not valid or (top_offset - first) % FRAME_SIZE:  # the tree stands; only its open frames are lost
            return (index, tid, name_text, root, start_ticks, end_ticks, last_ticks, lost_frames, open_frames)
        for frame_at in range(first + FRAME_SIZE, top_offset + 1, FRAME_SIZE):
            node_pointer, start_ticks_frame = _FRAME.unpack_from(data, frame_at)[:2]
            node = to_offset(node_pointer, NODE_SIZE)
            if node >= 0:
                open_frames.append((node, start_ticks_frame))
    return (index, tid, name_text, root, start_ticks, end_ticks, last_ticks, lost_frames, open_frames)


_EXIT_STATUS_OFFSET = struct.calcsize("<8sIIQQQIIdQQQQQii")  # the header fields before exit_status


def finish_run_file(path: str, wait_status: int) -> None:
    """After the process is gone: record its wait status and trim the arena's unused tail (which the runtime
    cannot trim itself, since code may still run after its exit handler)."""
    with open(path, "r+b") as handle:
        head = handle.read(HEADER_SIZE)
        try:
            header = read_header(head)
        except RunFileError:
            return
        handle.seek(_EXIT_STATUS_OFFSET)
        handle.write(struct.pack("<i", wait_status))
        size = os.fstat(handle.fileno()).st_size
        if CHUNK_SIZE <= header["used_bytes"] < size:
            handle.truncate(header["used_bytes"])
