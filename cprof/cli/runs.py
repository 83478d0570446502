"""`cprof runs`: list, remove and prune stored runs."""

from __future__ import annotations

import shlex
import sys

from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.style import Style, render_rows
from cprof.render.units import format_ns
from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="list, remove or prune stored runs",
                                   usage="cprof runs [list] | rm RUN... | prune --keep N")
    parser.add_argument("action", nargs="?", default="list", choices=("list", "rm", "prune"))
    parser.add_argument("references", nargs="*", metavar="RUN")
    parser.add_argument("--keep", type=int, metavar="N", help="prune: keep the newest N untagged runs")
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    if args.action == "rm":
        if not args.references:
            raise CprofError("runs rm: name the runs to remove", EXIT_USAGE)
        entries = [e for reference in args.references for e in store.resolve(reference)]
        store.remove(entries)
        sys.stderr.write(f"cprof: removed {len(entries)} run(s)\n")
        return 0
    if args.action == "prune":
        if args.keep is None or args.keep < 0:
            raise CprofError("runs prune: give --keep N", EXIT_USAGE)
        tagged = set(store.tags().values())
        runs = [r for r in store.runs() if r.id not in tagged and (r.group or "") not in tagged]
        doomed = runs[: max(0, len(runs) - args.keep)]
        store.remove(doomed)
        sys.stderr.write(f"cprof: pruned {len(doomed)} run(s)\n")
        return 0
    tags_by_target: dict[str, list[str]] = {}
    for name, target in store.tags().items():
        tags_by_target.setdefault(target, []).append(name)
    rows = []
    for entry in store.runs():
        meta = entry.meta
        tags = tags_by_target.get(entry.id, []) + tags_by_target.get(entry.group or "", [])
        rows.append([
            entry.id,
            ",".join(sorted(tags)),
            entry.group or "",
            "" if meta.get("exit_status") is None else str(meta["exit_status"]),
            format_ns(meta["wall_ns"]) if meta.get("wall_ns") else "",
            shlex.join(meta.get("command", []))[:60],
        ])
    for line in render_rows(["Run", "Tags", "Group", "Exit", "Wall", "Command"], rows, {3, 4}, Style.for_stream(sys.stdout)):
        sys.stdout.write(line + "\n")
    return 0
