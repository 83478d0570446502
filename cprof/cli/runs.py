"""`cprof runs`: list, remove and prune stored runs."""

from __future__ import annotations

import calendar
import shlex
import sys
import time

from cprof.api import prune, remove, runs, tags
from cprof.cli.options import non_negative_int
from cprof.errors import EXIT_USAGE, CprofError
from cprof.render.style import Style, render_rows
from cprof.render.units import format_ns, plural, signal_name
from cprof.workspace import RunEntry, Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="list, remove or prune stored runs",
                                   usage="cprof runs [list] | rm RUN... | prune --keep N",
                                   description="List the stored runs, oldest first, with their tags and groups; "
                                   "remove runs (a tag or group id removes the whole group); or prune all but the "
                                   "newest N untagged runs (a group counts as one; tagged runs are always kept).")
    parser.add_argument("action", nargs="?", default="list", choices=("list", "rm", "prune"),
                        help="list (default), rm or prune")
    parser.add_argument("references", nargs="*", metavar="RUN", help="rm: the runs, tags or groups to remove")
    parser.add_argument("--keep", type=non_negative_int, metavar="N", help="prune: keep the newest N untagged runs")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.action != "rm" and args.references:
        raise CprofError(f"runs {args.action} takes no runs (did you mean 'cprof runs rm'?)", EXIT_USAGE)
    if args.action != "prune" and args.keep is not None:
        raise CprofError("--keep goes with 'cprof runs prune'", EXIT_USAGE)
    if args.action == "rm":
        if not args.references:
            raise CprofError("runs rm: name the runs to remove", EXIT_USAGE)
        sys.stderr.write(f"cprof: removed {plural(remove(args.references), 'run')}\n")
    elif args.action == "prune":
        if args.keep is None:
            raise CprofError("runs prune: say how many untagged runs to keep with --keep N", EXIT_USAGE)
        sys.stderr.write(f"cprof: pruned {plural(prune(args.keep), 'run')}; tagged runs are kept\n")
    else:
        list_runs()
    return 0


def list_runs() -> None:
    stored = runs()
    if not stored:
        sys.stderr.write(f"cprof: no runs yet in {Store().runs_dir}\n")
        return
    tags_by_target: dict[str, list[str]] = {}
    for name, target in tags().items():
        tags_by_target.setdefault(target, []).append(name)
    group_sizes: dict[str, int] = {}
    for entry in stored:
        if entry.group:
            group_sizes[entry.group] = group_sizes.get(entry.group, 0) + 1
    rows, seen = [], {}
    for entry in stored:
        meta = entry.meta
        its_tags = tags_by_target.get(entry.id, []) + tags_by_target.get(entry.group or "", [])
        group = ""
        if entry.group:
            seen[entry.group] = seen.get(entry.group, 0) + 1
            group = f"{entry.group} ({seen[entry.group]}/{group_sizes[entry.group]})"
        rows.append([
            entry.id,
            _started(entry),
            ",".join(sorted(its_tags)),
            group,
            _status(meta),
            format_ns(meta["wall_ns"]) if meta.get("wall_ns") else "",
            _command(meta),
        ])
    headers = ["Run", "Started", "Tags", "Group", "Status", "Wall", "Command"]
    for line in render_rows(headers, rows, {5}, Style.for_stream(sys.stdout)):
        sys.stdout.write(line + "\n")


def _started(entry: RunEntry) -> str:
    """Local time; run ids carry UTC."""
    try:
        utc = calendar.timegm(time.strptime(entry.id[:15], "%Y%m%dT%H%M%S"))
    except ValueError:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(utc))


def _status(meta: dict) -> str:
    if meta.get("merged_from"):
        return f"merged ({len(meta['merged_from'])})"
    if meta.get("status") == "running":
        return "running"
    if meta.get("stopped_after_duration"):
        return "stopped"
    if meta.get("signal"):
        return f"killed ({signal_name(meta['signal'])})"
    status = meta.get("exit_status")
    if status is None:
        return ""
    return "ok" if status == 0 else f"exit {status}"


def _command(meta: dict, width: int = 60) -> str:
    """The program by its name (not the shadow-tree path it ran from) and its arguments."""
    command = list(meta.get("command") or [])
    if meta.get("program") and command:
        command[0] = meta["program"]
    text = shlex.join(command)
    return text if len(text) <= width else text[: width - 3] + "..."
