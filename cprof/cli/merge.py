"""`cprof merge`: several runs (fork children, test shards, other machines) as one run."""

from __future__ import annotations

import os
import shutil
import sys

from cprof.errors import EXIT_USAGE, CprofError
from cprof.model.runfile import RunFileError, read_header
from cprof.run.store import Store


def register(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="combine runs into one", usage="cprof merge RUN... [--tag NAME]",
                                   description="Create a new run holding every process of the given runs "
                                   "(ids, tags or paths to run directories or files); reports sum them.")
    parser.add_argument("references", nargs="+", metavar="RUN")
    parser.add_argument("--tag", metavar="NAME", help="tag the merged run")
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    entries = [e for reference in args.references for e in store.resolve(reference)]
    if len(entries) < 2 and not any(os.path.isdir(e.path) and len(_run_files(e)) > 1 for e in entries):
        raise CprofError("merge needs at least two runs", EXIT_USAGE)
    merged = store.create_run({"merged_from": [e.id for e in entries], "command": ["cprof", "merge"] + args.references,
                               "status": "finished"})
    count = 0
    for entry in entries:
        for name in _run_files(entry):
            source = os.path.join(entry.path, name)
            try:
                with open(source, "rb") as handle:
                    read_header(handle.read(4096))
            except (OSError, RunFileError) as error:
                raise CprofError(f"cannot merge {source}: {error}", EXIT_USAGE) from None
            target = os.path.join(merged.path, f"{entry.id}-{name}")
            try:
                os.link(source, target)  # run files never change once their process is gone
            except OSError:
                shutil.copy2(source, target)
            count += 1
    if args.tag:
        store.tag(args.tag, merged.id)
    sys.stderr.write(f"cprof: merged {count} process runs from {len(entries)} runs into {merged.id}\n")
    return 0


def _run_files(entry) -> list[str]:
    if entry.meta.get("only_file"):
        return [entry.meta["only_file"]]
    return sorted(f for f in os.listdir(entry.path) if f.endswith(".cprof"))
