"""`cprof tag`: name a run (or a group) so that diff and report can refer to it; list or delete tags."""

from __future__ import annotations

import sys

from cprof.api import runs, tag, tags, untag
from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.style import Style, render_rows


def register(subparsers) -> None:
    parser = subparsers.add_parser("tag", help="name a run, or list tags", usage="cprof tag [NAME [RUN]] | -d NAME",
                                   description="Name a run, or a whole group from `profile --repeat` (default: "
                                   "the latest), so that report and diff can refer to it; an existing tag moves. "
                                   "Without a NAME, list the tags.",
                                   epilog="example: cprof tag before; (change the program); cprof profile ...; "
                                   "cprof diff before")
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="letters, digits, '.', '_', '-'; not 'latest' or a run id")
    parser.add_argument("reference", nargs="?", metavar="RUN", help="what to tag (default: the latest run or group)")
    parser.add_argument("-d", "--delete", action="store_true", help="remove the tag NAME (the runs stay)")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.name is None:
        if args.delete:
            raise CprofError("tag -d: name the tag to remove", EXIT_USAGE)
        list_tags()
        return 0
    if args.delete:
        if args.reference:
            raise CprofError("tag -d takes only the tag's name", EXIT_USAGE)
        target = untag(args.name)
        sys.stderr.write(f"cprof: removed tag '{args.name}' (it named {target}; the runs stay)\n")
        return 0
    target, previous = tag(args.name, args.reference)
    moved = f" (moved from {previous})" if previous and previous != target else ""
    sys.stderr.write(f"cprof: tagged {target} as '{args.name}'{moved}\n")
    return 0


def list_tags() -> None:
    named = tags()
    if not named:
        sys.stderr.write("cprof: no tags yet; 'cprof tag NAME' names the latest run\n")
        return
    stored = runs()
    rows = []
    for name, target in sorted(named.items()):
        members = [r for r in stored if r.id == target or r.group == target]
        if not members:
            what = "(removed)"
        elif len(members) > 1 or members[0].group == target:
            what = f"group of {len(members)} runs"
        else:
            what = "run"
        program = members[-1].meta.get("program", "") if members else ""
        rows.append([name, target, what, program])
    for line in render_rows(["Tag", "Names", "What", "Program"], rows, set(), Style.for_stream(sys.stdout)):
        sys.stdout.write(line + "\n")
