"""pprof's profile format (perftools.profiles.Profile, gzipped protobuf: what `go tool pprof` and the tools built on
it read), one sample per call path."""

from __future__ import annotations

import functools
import gzip

from cprof.errors import EXIT_SETUP, CprofError
from cprof.model.run import FEAT_ALLOCS
from cprof.model.stacks import run_stacks
from cprof.render.base import Renderer, register
from cprof.render.table import ReportOptions, has_feature

# The messages of github.com/google/pprof/proto/profile.proto that a profile of call paths uses, field by field:
# (name, number, type, repeated). Defined here so that no protoc runs at build time; fields left out are ones
# cprof has nothing for (a reader treats an absent field as its default).
_FIELDS = {
    "Profile": [("sample_type", 1, "ValueType", True), ("sample", 2, "Sample", True),
                ("mapping", 3, "Mapping", True), ("location", 4, "Location", True),
                ("function", 5, "Function", True), ("string_table", 6, "string", True),
                ("drop_frames", 7, "int64", False), ("keep_frames", 8, "int64", False),
                ("time_nanos", 9, "int64", False), ("duration_nanos", 10, "int64", False),
                ("period_type", 11, "ValueType", False), ("period", 12, "int64", False),
                ("comment", 13, "int64", True), ("default_sample_type", 14, "int64", False)],
    "ValueType": [("type", 1, "int64", False), ("unit", 2, "int64", False)],
    "Sample": [("location_id", 1, "uint64", True), ("value", 2, "int64", True), ("label", 3, "Label", True)],
    "Label": [("key", 1, "int64", False), ("str", 2, "int64", False), ("num", 3, "int64", False),
              ("num_unit", 4, "int64", False)],
    "Mapping": [("id", 1, "uint64", False), ("memory_start", 2, "uint64", False),
                ("memory_limit", 3, "uint64", False), ("file_offset", 4, "uint64", False),
                ("filename", 5, "int64", False), ("build_id", 6, "int64", False),
                ("has_functions", 7, "bool", False), ("has_filenames", 8, "bool", False),
                ("has_line_numbers", 9, "bool", False), ("has_inline_frames", 10, "bool", False)],
    "Location": [("id", 1, "uint64", False), ("mapping_id", 2, "uint64", False), ("address", 3, "uint64", False),
                 ("line", 4, "Line", True), ("is_folded", 5, "bool", False)],
    "Line": [("function_id", 1, "uint64", False), ("line", 2, "int64", False)],
    "Function": [("id", 1, "uint64", False), ("name", 2, "int64", False), ("system_name", 3, "int64", False),
                 ("filename", 4, "int64", False), ("start_line", 5, "int64", False)],
}
PACKAGE = "perftools.profiles"

# what each weight is called among the sample types (pprof's -sample_index takes these names)
SAMPLE_TYPES = {"calls": ("calls", "count"), "time": ("time", "nanoseconds"), "bytes": ("alloc_space", "bytes")}


@functools.cache
def profile_class():
    """The Profile message class, built from a descriptor made at run time (the protobuf package alone, imported
    only when a pprof file is written or read, so that other commands do not pay for it)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        raise CprofError("the pprof format needs the protobuf package: pip install protobuf", EXIT_SETUP) from None
    field = descriptor_pb2.FieldDescriptorProto
    scalars = {"int64": field.TYPE_INT64, "uint64": field.TYPE_UINT64, "bool": field.TYPE_BOOL,
               "string": field.TYPE_STRING}
    file = descriptor_pb2.FileDescriptorProto(name="cprof/pprof/profile.proto", package=PACKAGE, syntax="proto3")
    for message, fields in _FIELDS.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            entry = proto.field.add(name=name, number=number,
                                    label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
            if kind in scalars:
                entry.type = scalars[kind]
            else:
                entry.type, entry.type_name = field.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
    pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with another copy of profile.proto loaded
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Profile"))


class _Strings:
    """The profile's string table: index 0 is the empty string, every other string once."""

    def __init__(self, table):
        self.table = table
        self.index = {"": 0}
        table.append("")

    def __call__(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.table)
            self.table.append(text)
        return self.index[text]


@register
class Pprof(Renderer):
    """One sample per call path of each thread, its own values for every sample type: calls, self time in ns
    (corrected unless options.corrected is off) and, when the heap was tracked, bytes allocated; the weight asked
    for is the default sample type. Locations are functions (file and first line; cprof knows no addresses), samples
    carry their thread as labels (thread name, pid, tid). Nothing is sampled: the period is 1."""

    name = "pprof"
    extensions = (".pb.gz", ".pprof")
    export = True
    binary = True  # writes bytes: the CLI gives it a binary stream
    options_type = ReportOptions

    def render(self, view, out) -> None:
        out.write(gzip.compress(self.profile(view).SerializeToString(), mtime=0))  # no timestamp: same run, same file

    def profile(self, view):
        """The Profile message (render gzips it)."""
        from cprof import __version__

        run = getattr(view, "representative", view)
        weight, corrected = self.options.weight, self.options.corrected
        kinds = ["calls", "time"] + (["bytes"] if weight == "bytes" or has_feature(run, FEAT_ALLOCS) else [])
        profile = profile_class()()
        string = _Strings(profile.string_table)
        for kind in kinds:
            type_name, unit = SAMPLE_TYPES[kind]
            profile.sample_type.add(type=string(type_name), unit=string(unit))
        profile.default_sample_type = string(SAMPLE_TYPES[weight][0])
        profile.period_type.type, profile.period_type.unit = (string(part) for part in SAMPLE_TYPES[weight])
        profile.period = 1
        profile.time_nanos = int(run.main.header.get("start_unix_ns") or 0)
        profile.duration_nanos = round(run.wall_ns)
        profile.comment.extend(string(text) for text in (
            f"cprof {__version__} run {run.id}", " ".join(run.command),
            "times corrected for cprof's own cost" if corrected and run.calibrated else "raw times"))
        profile.mapping.add(id=1, filename=string(run.command[0] if run.command else ""), has_functions=True,
                            has_filenames=True, has_line_numbers=True)

        # the bytes of a call path come from its own stacks view; time's has every path (and sampled leaves too)
        allocated = {(id(s.thread), s.keys): s.self_value for s in run_stacks(run, "bytes", corrected)}
        locations: dict = {}  # FunctionKey -> its location id (and function id: one location per function)
        for stack in run_stacks(run, "time", corrected):
            values = {"calls": stack.calls, "time": round(stack.self_value),
                      "bytes": 0 if stack.sampled else round(allocated[(id(stack.thread), stack.keys)])}
            if not any(values[kind] for kind in kinds):
                continue
            for key in stack.keys:
                if key not in locations:
                    locations[key] = len(locations) + 1
                    profile.function.add(id=locations[key], name=string(key.name), system_name=string(key.name),
                                         filename=string(key.file), start_line=key.line)
                    profile.location.add(id=locations[key], mapping_id=1).line.add(function_id=locations[key],
                                                                                   line=key.line)
            thread = stack.thread
            sample = profile.sample.add(location_id=[locations[key] for key in reversed(stack.keys)],  # leaf first
                                        value=[values[kind] for kind in kinds])
            sample.label.add(key=string("thread"), str=string(thread.name or "thread"))
            sample.label.add(key=string("pid"), num=thread.pid)
            sample.label.add(key=string("tid"), num=thread.tid)
        return profile
