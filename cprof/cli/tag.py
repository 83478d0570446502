"""`cprof tag`: name a run (or a group) so that diff and report can refer to it."""

from __future__ import annotations

import sys

from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("tag", help="name a run, or list tags", usage="cprof tag [NAME [RUN]] | -d NAME")
    parser.add_argument("name", nargs="?")
    parser.add_argument("reference", nargs="?", metavar="RUN", help="default: the latest run")
    parser.add_argument("-d", "--delete", action="store_true", help="remove the tag NAME")
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    if args.delete and args.name:
        store.untag(args.name)
        return 0
    if not args.name:
        tags = store.tags()
        width = max((len(n) for n in tags), default=0)
        for name, target in sorted(tags.items()):
            sys.stdout.write(f"{name.ljust(width)}  {target}\n")
        return 0
    entries = store.resolve(args.reference)
    target = entries[0].group or entries[0].id
    store.tag(args.name, target)
    sys.stderr.write(f"cprof: tagged {target} as '{args.name}'\n")
    return 0
