"""What a build instrumented, said in a few lines: units instrumented and fallen back, functions instrumented and
skipped, and every unit that fell back, with the file:line and reason."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cprof.instrument.skips import UNREADABLE
from cprof.instrument.unit import PathMap
from cprof.paths import display_path


@dataclass
class BuildSummary:
    units_instrumented: int = 0
    units_fallen_back: int = 0
    units_compiled: int = 0  # by this build (the others were up to date)
    units_cached: int = 0  # of those, found in the instrumentation cache
    functions_instrumented: int = 0
    skipped: list[tuple[str, str, int, str]] = field(default_factory=list)  # name, file, line, reason
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # source, reason
    links: list[dict] = field(default_factory=list)
    matched_filters: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    # an adaptive build's small functions its learning run called rarely or never, counted (instrument/small.py)
    small_unseen: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @classmethod
    def from_state(cls, state, paths: PathMap) -> "BuildSummary":
        """Everything the build tree now holds: units compiled by this build and by earlier ones."""
        summary = cls(links=sorted(state.links.values(), key=lambda link: link["output"]))
        instrumented: set[tuple] = set()
        skipped: dict[tuple, str] = {}
        for event in state.units.values():
            summary.units_compiled += event.get("build") == state.build_id
            if event["status"] == "fallback":
                summary.units_fallen_back += 1
                summary.fallbacks.append((paths.real(event["source"]), event["reason"]))
                continue
            summary.units_instrumented += 1
            if event.get("build") == state.build_id:
                summary.units_cached += bool(event.get("cached") or event.get("object_cached"))
            summary.matched_filters.update(event.get("matched", []))
            summary.small_unseen.update(event.get("small_unseen", []))
            for name, file, line, _static, reason in event["functions"]:
                identity = (name, file, line)
                summary.names.add(name)
                summary.files.add(file)
                if reason is None:
                    instrumented.add(identity)
                else:
                    skipped.setdefault(identity, reason)
        summary.functions_instrumented = len(instrumented)
        summary.skipped = sorted((n, f, l, r) for (n, f, l), r in skipped.items() if (n, f, l) not in instrumented)
        return summary

    def text(self) -> str:
        total = self.units_instrumented + self.units_fallen_back
        if self.units_compiled == 0 and total:
            progress = " (all up to date)"
        elif self.units_compiled < total:
            progress = f" ({self.units_compiled} recompiled)"
        else:
            progress = ""
        cached = f", {self.units_cached} from cache" if self.units_cached else ""
        programs = ", ".join(os.path.basename(l["output"]) for l in self.links) or "nothing linked"
        lines = [
            f"cprof: built {programs}: {self.units_instrumented} units instrumented{progress}{cached}, "
            f"{self.units_fallen_back} fell back; {self.functions_instrumented} functions instrumented, "
            f"{len(self.skipped)} skipped ({self.seconds:.1f}s)"
        ]
        unreadable = sum(1 for name, *_ in self.skipped if name == UNREADABLE)
        if unreadable:
            lines.append(f"cprof: {unreadable} function definitions could not be read and are not measured "
                         "(--list-skipped says where)")
        if self.fallbacks:
            lines.append(f"cprof: {self.units_fallen_back} units fell back to plain compiles; their functions are not "
                         "measured:")
            lines += [f"  {fallback_line(source, reason)}" for source, reason in self.fallbacks[:_FALLBACKS_SHOWN]]
            if len(self.fallbacks) > _FALLBACKS_SHOWN:
                lines.append(f"  ... and {len(self.fallbacks) - _FALLBACKS_SHOWN} more (cprof build --list-fallbacks)")
        return "\n".join(lines)


# The build summary lists this many fallbacks; `cprof build --list-fallbacks` lists them all.
_FALLBACKS_SHOWN = 10


def fallback_line(source: str, reason: str | None) -> str:
    """`src/x.c: why`: the reason usually starts with the file:line it is about, which then says it all."""
    reason = reason or "preprocessing failed"
    for path in (source, display_path(source)):
        if reason.startswith(path + ":"):
            return display_path(source) + reason[len(path):]
    return f"{display_path(source)}: {reason}"
