"""`cprof merge`: several runs (fork children, test shards, other machines) as one run."""

from __future__ import annotations

import os
import shutil
import sys

from cprof.api import merge
from cprof.render.units import plural


def register(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="combine runs into one", usage="cprof merge RUN... [--tag NAME]",
                                   description="Create a new run holding every process of the given runs "
                                   "(ids, tags, groups or paths to run directories or files); its report sums "
                                   "them: calls add up, times add up.")
    parser.add_argument("references", nargs="+", metavar="RUN")
    parser.add_argument("--tag", metavar="NAME", help="tag the merged run")
    parser.set_defaults(run=run)


def run(args) -> int:
    merged = merge(args.references, args.tag)
    sources = merged.meta["merged_from"]
    sys.stderr.write(f"cprof: merged {plural(len(merged.model.processes), 'run file')} from {len(sources)} runs "
                     f"into {merged.id}\n")
    return 0
