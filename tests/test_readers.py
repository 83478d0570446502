"""The two run-file readers (pure Python and the C extension) agree on real files, and neither trusts a damaged
file: truncated or corrupted runs give the same recovered result or a clean error, never a crash or a hang."""

from __future__ import annotations

import glob
import json
import os
import random
import re
import subprocess
import sys
import textwrap

import jsonschema
import pytest

from cprof import _native
from cprof import runfile

PROGRAM = """\
    #include <pthread.h>
    #include <sys/wait.h>
    #include <unistd.h>
    static volatile int sink;
    __attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
    __attribute__((noinline)) static void leaf(void) { sink++; }
    static void *worker(void *arg) { for (int i = 0; i < 1000; i++) leaf(); return arg; }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, 0, worker, 0);
        sink += fib(18);
        pthread_join(thread, 0);
        if (fork() == 0) { leaf(); _exit(0); }
        wait(0);
        return 0;
    }
"""


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("readers"))
    with open(os.path.join(root, "prog.c"), "w") as handle:
        handle.write(textwrap.dedent(PROGRAM))
    env = dict(os.environ, CPROF_HOME=os.path.join(root, ".cprof"), CPROF_CACHE_DIR="off")
    # leaf only counted: the files hold count records too (a worker thread's and a fork child's)
    result = subprocess.run([sys.executable, "-m", "cprof", "profile", "--count-only", "leaf", "prog.c"], cwd=root,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    files = sorted(glob.glob(os.path.join(root, ".cprof", "runs", "*", "*.cprof")))
    assert len(files) == 2  # parent and fork child
    return files


def test_count_only_calls_are_read_per_thread_and_process(run_files):
    calls = []
    for path in run_files:
        with open(path, "rb") as handle:
            run = runfile.read_run(handle.read())
        leaf = next(fid for fid, name, *_ in run["functions"] if name == "leaf")
        calls.append(sorted((thread, n) for thread, function, n in run["counts"] if function == leaf))
    # the parent: 1,000 in the worker thread (index 1); the child, counting from the fork: its one call
    assert sorted(calls) == [[(0, 1)], [(1, 1000)]]


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_both_readers_agree_on_real_runs(run_files):
    for path in run_files:
        data = _read(path)
        python, native = runfile.read_run(data), _native.read_run(data)
        assert python == native
        names = {f[1] for f in python["functions"]}
        assert {"main", "leaf"} <= names


def test_the_parent_run_is_complete_and_the_child_that_called_exit_is_not(run_files):
    parent, child = (runfile.read_run(_read(p)) for p in run_files)
    assert parent["complete"] and not child["complete"]


def _both(data: bytes):
    """Each reader's result or the kind of error it raised."""
    outcomes = []
    for reader in (runfile.read_run, _native.read_run):
        try:
            outcomes.append(reader(data))
        except (runfile.RunFileError, ValueError) as error:
            outcomes.append(("error", "bad magic" in str(error) or "version" in str(error)))
    return outcomes


def test_truncated_files_are_read_as_far_as_they_go(run_files):
    data = _read(run_files[0])
    sizes = sorted({0, 7, 4095, 4096, 65536, 65600, len(data) // 2, len(data) - 1} |
                   set(random.Random(1).sample(range(len(data)), 40)))
    for size in sizes:
        python, native = _both(data[:size])
        assert python == native, size
        if isinstance(python, dict):
            assert not python["complete"], f"a file cut at {size} of {len(data)} bytes claims to be complete"


def test_corrupted_files_give_the_same_recovered_run_in_both_readers(run_files):
    data = _read(run_files[0])
    rng = random.Random(7)
    for trial in range(300):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            at = rng.randrange(len(damaged))
            damaged[at] = rng.randrange(256)
        if trial % 3 == 0:  # hit record heads and pointers on purpose, where damage matters most
            at = rng.randrange(65536, len(damaged) - 8) & ~7
            damaged[at:at + 8] = rng.randbytes(8)
        python, native = _both(bytes(damaged))
        assert python == native, trial


def test_garbage_is_not_a_run(run_files):
    for blob in (b"", b"hello", os.urandom(10000), b"CPROFRUN" + b"\xff" * 5000):
        assert _both(blob) == [("error", True), ("error", True)]


# Every node counter, from the struct through both readers to the model and the report. Real runs leave most
# counters zero (allocations, reallocations), so the tests below write a distinct value into every one.

_COUNTERS_AT = 40  # offsetof(struct cprof_node, calls): after head, parent, func and child_hints[2]


def _counter_value(node_offset: int, index: int) -> int:
    return node_offset * 16 + index + 1


def _with_counters(data: bytes, which) -> bytes:
    """The run with the counters `which` of every node set to _counter_value(node, counter index)."""
    patched = bytearray(data)
    for node in runfile.read_run(data)["nodes"]:
        for index, counter in enumerate(runfile.NODE_COUNTERS):
            if counter in which:
                at = node[0] + _COUNTERS_AT + 8 * index
                patched[at:at + 8] = _counter_value(node[0], index).to_bytes(8, "little")
    return bytes(patched)


def test_the_python_counters_mirror_the_c_list():
    """reader.c asserts that CPROF_NODE_COUNTERS matches struct cprof_node; this, that NODE_COUNTERS matches it."""
    from conftest import REPO

    with open(os.path.join(REPO, "csrc", "runfile.h")) as handle:
        header = handle.read()
    macro = re.search(r"#define CPROF_NODE_COUNTERS\(X\)((?:.*\\\n)*.*)", header).group(1)
    assert re.findall(r"X\((\w+)\)", macro) == [c.name for c in runfile.NODE_COUNTERS]
    assert runfile.NODE_SIZE == 128  # two cache lines, as the runtime asserts
    assert len({c.attribute for c in runfile.NODE_COUNTERS}) == len(runfile.NODE_COUNTERS)


def test_the_python_heap_lists_mirror_the_c_lists():
    """Both readers copy a heap site's counters and the heap record's figures by these lists."""
    from conftest import REPO

    with open(os.path.join(REPO, "csrc", "runfile.h")) as handle:
        header = handle.read()
    for macro, names in (("CPROF_HEAP_SITE_COUNTERS", runfile.SITE_COUNTERS), ("CPROF_HEAP_FIELDS", runfile.HEAP_FIELDS)):
        body = re.search(rf"#define {macro}\(X\)((?:.*\\\n)*.*)", header).group(1)
        assert tuple(re.findall(r"X\((\w+)\)", body)) == tuple(names)


def test_both_readers_put_every_counter_in_its_place(run_files):
    data = _with_counters(_read(run_files[0]), runfile.NODE_COUNTERS)
    python, native = runfile.read_run(data), _native.read_run(data)
    assert python == native
    assert python["nodes"]
    for node in python["nodes"]:
        assert list(node[3:]) == [_counter_value(node[0], i) for i in range(len(runfile.NODE_COUNTERS))]


def test_every_function_counter_reaches_the_statistics_the_diff_and_the_report(run_files, tmp_path):
    from cprof.model.diff import diff_runs
    from cprof.model.run import FUNCTION_COUNTERS, Run
    from cprof.render.json_report import function_record
    from conftest import SCHEMAS

    # the run file's own counters (the heap's per-node figures come from its sites: tests/test_heap.py)
    record_counters = [c for c in FUNCTION_COUNTERS if c in runfile.NODE_COUNTERS]
    data = _with_counters(_read(run_files[0]), record_counters)
    path = tmp_path / "patched.cprof"
    path.write_bytes(data)
    raw = runfile.read_run(data)
    names = {fid: name for fid, name, *_ in raw["functions"]}
    scale = 1e9 / raw["header"]["ticks_per_second"]
    expected: dict[str, dict[str, float]] = {}
    for offset, _, function_id, *_ in raw["nodes"]:
        if not function_id:
            continue
        sums = expected.setdefault(names[function_id], {c.attribute: 0 for c in record_counters})
        for index, counter in enumerate(runfile.NODE_COUNTERS):
            if counter in record_counters:
                sums[counter.attribute] += _counter_value(offset, index) * counter.factor(scale)
    with open(os.path.join(SCHEMAS, "report-4.json")) as handle:
        record_schema = json.load(handle)["properties"]["functions"]["items"]

    run = Run.load(str(path))
    functions = {item.name: item for item in run.functions()}
    changes = {change.key.name: change for change in diff_runs([run], [run], "a", "b").changes}
    assert expected.keys() <= functions.keys()
    for name, sums in expected.items():
        record = function_record(functions[name], with_threads=False)
        jsonschema.validate(record, record_schema)
        for attribute, value in sums.items():
            assert getattr(functions[name], attribute) == pytest.approx(value), (name, attribute)
            assert getattr(changes[name].a, attribute) == pytest.approx(value), (name, attribute)
            assert record[attribute] == round(getattr(functions[name], attribute)), (name, attribute)


def test_merging_two_nodes_of_one_function_adds_every_counter():
    from cprof.model.run import MODEL_COUNTERS, CallNode, FunctionKey, _merge_into

    key = FunctionKey("f", "f.c", 1)
    names = [c.attribute for c in MODEL_COUNTERS]
    target = CallNode(key, **{name: i + 1 for i, name in enumerate(names)})
    source = CallNode(key, **{name: 10 * (i + 1) for i, name in enumerate(names)})
    _merge_into(target, source)
    assert [getattr(target, name) for name in names] == [11 * (i + 1) for i in range(len(names))]
