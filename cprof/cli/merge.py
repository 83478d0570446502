"""`cprof merge`: several runs (fork children, test shards, other machines) as one run."""

from __future__ import annotations

import os
import shutil
import sys

from cprof.errors import EXIT_CORRUPT, EXIT_USAGE, CprofError
from cprof.model.load import run_files
from cprof.runfile import RunFileError, read_header
from cprof.workspace import Store, validate_tag


def register(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="combine runs into one", usage="cprof merge RUN... [--tag NAME]",
                                   description="Create a new run holding every process of the given runs "
                                   "(ids, tags, groups or paths to run directories or files); its report sums "
                                   "them: calls add up, times add up.")
    parser.add_argument("references", nargs="+", metavar="RUN")
    parser.add_argument("--tag", metavar="NAME", help="tag the merged run")
    parser.set_defaults(run=run)


def run(args) -> int:
    store = Store()
    if args.tag is not None:
        validate_tag(args.tag)
    # the same run named twice (by tag and id, say) counts once
    named = {(e.path, e.meta.get("only_file")): e for reference in args.references for e in store.resolve(reference)}
    entries = list(named.values())
    if len(entries) < 2:
        raise CprofError(f"merge needs at least two different runs; {' '.join(args.references)} "
                         f"{'is' if len(args.references) == 1 else 'are'} one", EXIT_USAGE)
    # every file is checked before the merged run exists, so that a bad one leaves nothing half made
    sources = [(entry, path) for entry in entries for path in run_files(entry)]
    for entry, path in sources:
        try:
            with open(path, "rb") as handle:
                read_header(handle.read(4096))
        except (OSError, RunFileError) as error:
            raise CprofError(f"cannot merge {path}: {error}", EXIT_CORRUPT) from None
    merged = store.create_run({"merged_from": [e.id for e in entries], "command": ["cprof", "merge"] + args.references,
                               "status": "finished"})
    for entry, source in sources:
        target = os.path.join(merged.path, f"{entry.id}-{os.path.basename(source)}")
        try:
            os.link(source, target)  # run files never change once their process is gone
        except OSError:
            shutil.copy2(source, target)
    if args.tag is not None:
        store.tag(args.tag, merged.id)
    sys.stderr.write(f"cprof: merged {len(sources)} run files from {len(entries)} runs into {merged.id}\n")
    return 0
