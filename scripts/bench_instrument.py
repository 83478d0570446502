#!/usr/bin/env python3
"""Times cprof's instrumenting step on sqlite3.c (scan, parse, decide, splice; medians over repeated runs), and with
--check builds the sqlite3 shell plain and instrumented and compares their output on a SQL script.

The amalgamation comes from Debian's sqlite3 source package through scripts/fetch_corpus.sh (cached under
~/.cache/cprof/corpus/, never in the repository); --source names another sqlite3.c. It is preprocessed exactly as
`cprof cc` does it (cprof.building.unit_compiler.UnitCompiler.preprocess), with the compile flags of Debian's package.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from cprof.building import compiler_args as ca
from cprof.building.toolchain import GUARD_HEADER
from cprof.building.config import WrapperConfig
from cprof.building.unit_compiler import UnitCompiler
from cprof.instrument.filters import FunctionFilter
from cprof.instrument.parse import parse
from cprof.instrument.scan import scan
from cprof.instrument.unit import PathMap, decide, instrument_unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from scripts.results import write_results  # noqa: E402

# CFLAGS of debian/rules (sqlite3 3.40.1-2) plus what its ./configure --enable-fts5 --enable-math adds.
DEBIAN_FLAGS = """-fno-strict-aliasing -DSQLITE_SECURE_DELETE -DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_ENABLE_FTS3
-DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_RTREE=1 -DSQLITE_SOUNDEX=1 -DSQLITE_ENABLE_UNLOCK_NOTIFY
-DSQLITE_OMIT_LOOKASIDE=1 -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ALLOW_ROWID_IN_VIEW
-DSQLITE_ENABLE_UPDATE_DELETE_LIMIT=1 -DSQLITE_ENABLE_LOAD_EXTENSION -DSQLITE_ENABLE_JSON1
-DSQLITE_LIKE_DOESNT_MATCH_BLOBS -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_FTS3_TOKENIZER=1 -DSQLITE_USE_URI=1
-DSQLITE_MAX_SCHEMA_RETRY=25 -DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_STMTVTAB
-DSQLITE_MAX_VARIABLE_NUMBER=250000 -DSQLITE_ENABLE_FTS4 -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_MATH_FUNCTIONS""".split()
LIBS = ["-lm", "-ldl", "-lpthread"]

# Exercises the parser, planner, VDBE, B-tree, FTS5, JSON, window functions, recursion and the shell's printing.
SQL_SCRIPT = """\
.headers on
.mode column
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL, tag TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO t(name, value, tag) SELECT printf('item%05d', i), (i * 7919) % 1000 / 10.0, char(65 + i % 26) FROM n;
CREATE INDEX t_tag ON t(tag, value);
SELECT tag, count(*), round(avg(value), 3), min(name), max(name) FROM t GROUP BY tag ORDER BY tag LIMIT 8;
SELECT name, value, rank() OVER (PARTITION BY tag ORDER BY value DESC, id) AS r FROM t WHERE tag = 'Q'
  ORDER BY r, name LIMIT 5;
UPDATE t SET value = value * 2 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(value), total(length(name)) FROM t;
CREATE VIRTUAL TABLE docs USING fts5(body);
INSERT INTO docs SELECT 'the quick ' || name || ' jumps over ' || tag FROM t WHERE id < 3000;
SELECT count(*) FROM docs WHERE docs MATCH 'quick AND item0012*';
SELECT json_object('n', count(*), 'tags', json_group_array(DISTINCT tag)) FROM t WHERE id < 200;
SELECT json_extract('{"a":[1,2,{"b":"x"}]}', '$.a[2].b'), sqrt(2.0), pow(2, 10), hex(zeroblob(2));
CREATE TABLE u AS SELECT id, name FROM t WHERE id % 7 = 1;
SELECT count(*), min(u.id), max(t.value) FROM t JOIN u USING (id);
EXPLAIN QUERY PLAN SELECT * FROM t WHERE tag = 'B' AND value > 3;
PRAGMA integrity_check;
"""


def median_times(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def find_amalgamation() -> str:
    fetch = os.path.join(REPO, "scripts", "fetch_corpus.sh")
    process = subprocess.run([fetch, "sqlite3"], capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"bench_instrument: could not fetch sqlite3:\n{process.stderr}")
    source = os.path.join(os.path.dirname(process.stdout.strip()), "amalgamation", "sqlite3.c")
    if not os.path.isfile(source):
        sys.exit(f"bench_instrument: no amalgamation at {source}")
    return source


def preprocess(source: str) -> str:
    """The unit exactly as `cprof cc -O2 <Debian flags> -c sqlite3.c` would read it."""
    config = WrapperConfig.from_environment(None)
    command = ca.parse_command(["-O2", *DEBIAN_FLAGS, "-c", source])
    with tempfile.TemporaryDirectory(prefix="cprof-bench-") as workdir:
        status, text, messages = UnitCompiler(config, command, workdir).preprocess(source, "sqlite3.o")
    if status != 0:
        sys.exit(f"bench_instrument: preprocessing failed:\n{messages.decode(errors='replace')}")
    return text


def bench(text: str, repeat: int, profile: bool) -> dict:
    paths = PathMap(os.getcwd())
    scan_s, unit = median_times(lambda: scan(text), repeat)
    parse_s, parsed = median_times(lambda: parse(unit), repeat)
    decide_s, plan = median_times(lambda: decide(unit, parsed, GUARD_HEADER, paths, FunctionFilter()), repeat)
    splice_s, _ = median_times(lambda: plan.apply(text), repeat)
    skipped = len(plan.functions) - len(plan.instrumented)
    print(f"unit: {len(text):,} characters, {text.count(chr(10)):,} lines; {len(unit.bodies):,} function bodies; "
          f"{len(plan.instrumented):,} functions instrumented, {skipped} skipped")
    print(f"medians over {repeat} runs: scan {scan_s:.2f} s, parse {parse_s:.2f} s, decide {decide_s:.2f} s, "
          f"splice {splice_s:.2f} s; total {scan_s + parse_s + decide_s + splice_s:.2f} s")
    result = {"characters": len(text), "lines": text.count(chr(10)), "functions": len(plan.instrumented),
              "skipped": skipped, "scan_s": round(scan_s, 2), "parse_s": round(parse_s, 2),
              "decide_s": round(decide_s, 2), "splice_s": round(splice_s, 2),
              "total_s": round(scan_s + parse_s + decide_s + splice_s, 2)}
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: instrument_unit(text, GUARD_HEADER, paths).apply(text))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return result


def run_shell(binary: str, work: str, env: dict | None = None) -> tuple:
    """(exit status, stdout, stderr) of the shell on SQL_SCRIPT; status None when it ran over 10 minutes."""
    try:
        process = subprocess.run([binary], input=SQL_SCRIPT, capture_output=True, text=True, cwd=work, env=env,
                                 timeout=600)
    except subprocess.TimeoutExpired:
        return None, "", ""
    return process.returncode, process.stdout, process.stderr


def check_shell(source: str) -> bool:
    """Builds the shell plain and through `cprof build`; True when nothing fell back and the instrumented shell,
    profiling and with CPROF_DISABLE=1, prints exactly what the plain one prints."""
    directory = os.path.dirname(source)
    with tempfile.TemporaryDirectory(prefix="cprof-sqlite-") as work:
        for name in ("sqlite3.c", "sqlite3.h", "shell.c"):
            shutil.copy(os.path.join(directory, name), work)
        started = time.perf_counter()
        subprocess.run(["gcc", "-O2", "-g", "-w", *DEBIAN_FLAGS, "sqlite3.c", "shell.c", "-o", "plain", *LIBS],
                       cwd=work, check=True)
        plain_seconds = time.perf_counter() - started
        env = dict(os.environ, CPROF_HOME=os.path.join(work, ".cprof"), CPROF_CACHE_DIR="off")
        started = time.perf_counter()
        build = subprocess.run([sys.executable, "-m", "cprof", "build", "sqlite3.c", "shell.c", "-o", "sqlite3",
                                "--", "-w", *DEBIAN_FLAGS, *LIBS], cwd=work, env=env, capture_output=True, text=True)
        print(f"sqlite3.c + shell.c at -O2 -g: plain build {plain_seconds:.1f} s, "
              f"cprof build {time.perf_counter() - started:.1f} s")
        print(build.stderr.strip(), flush=True)
        if build.returncode != 0:
            return False
        expected = run_shell(os.path.join(work, "plain"), work)
        print(f"SQL script: {len(expected[1].splitlines())} lines of output, exit {expected[0]}")
        binary = os.path.join(work, ".cprof", "build", "direct", "sqlite3")
        env["CPROF_RUN_DIR"] = os.path.join(work, "runs")
        os.makedirs(env["CPROF_RUN_DIR"])
        same = " 0 fell back" in build.stderr
        for label, extra in (("profiling", {}), ("CPROF_DISABLE=1", {"CPROF_DISABLE": "1"})):
            got = run_shell(binary, work, dict(env, **extra))
            verdict = "identical" if got == expected else "ran over 10 minutes" if got[0] is None else "DIFFERENT"
            print(f"instrumented shell, {label}: {verdict}", flush=True)
            if got != expected and got[0] is not None:
                print(f"exit {got[0]}\n{got[1]}{got[2]}")
            same = same and got == expected
        return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a sqlite3.c (default: Debian's, fetched and cached)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per phase (default 5)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one whole run")
    parser.add_argument("--check", action="store_true", help="also build and compare the sqlite3 shell")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "instrument.json"))
    args = parser.parse_args()
    source = os.path.abspath(args.source or find_amalgamation())
    started = time.perf_counter()
    text = preprocess(source)
    print(f"preprocessed {source} in {time.perf_counter() - started:.1f} s")
    write_results(args.output, {"repeat": args.repeat, "unit": "sqlite3.c (Debian's amalgamation)",
                                "sqlite3": bench(text, args.repeat, args.profile)},
                  " ".join(sys.argv[1:]))
    if args.check and not check_shell(source):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
