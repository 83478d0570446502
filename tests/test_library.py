"""C libraries profiled in-process from Python (cprof/library/): the bundled tests/library/kinds.c built instrumented
as a shared library and called through libffi with every supported kind of argument, callbacks, errors, threads,
sessions and a crash; and zlib built instrumented from Debian's source (scripts/fetch_corpus.sh), when cached."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import zlib as python_zlib

import pytest

import cprof
from conftest import REPO, Project
from cprof.building.driver import last_build
from cprof.library.values import Pointer
from cprof.workspace import Store

KINDS = os.path.join(REPO, "tests", "library")
HEADER = os.path.join(KINDS, "kinds.h")
CORPUS = os.environ.get("CPROF_CORPUS") or os.path.expanduser("~/.cache/cprof/corpus")
ZLIB_CACHED = os.path.isdir(os.path.join(CORPUS, "zlib", "src"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[str, str]:
    """(the store, the instrumented libkinds.so) of a `cprof build` of a shared library."""
    project = Project(str(tmp_path_factory.mktemp("kinds")))
    made = project.cprof("build", "-shared", os.path.join(KINDS, "kinds.c"), "--", "-O2", "-g", "-pthread")
    assert made.returncode == 0, made.stderr
    assert "built libkinds.so" in made.stderr  # -shared: lib + the first source's name + .so
    home = os.path.join(project.root, ".cprof")
    links = last_build(Store(home))["links"]
    assert [link["kind"] for link in links] == ["shared"]  # recorded like a program
    return home, links[0]["built"]


@pytest.fixture
def session(built):
    home, library = built
    with cprof.session(home=home) as s:
        yield s, s.load_library(library, header=HEADER)


def calls(run, name: str) -> int:
    return next((f.calls for f in run.functions() if f.name == name), 0)


def test_scalars_of_every_width_round_trip(session):
    _, k = session
    assert k.add(2, -3) == -1
    assert (k.neg8(-128 + 1), k.inc8(255), k.neg16(300), k.inc16(65535)) == (127, 0, -300, 0)
    assert (k.inc32(2**32 - 1), k.neg64(-(2**63) + 1), k.inc64(2**64 - 2)) == (0, 2**63 - 1, 2**64 - 1)
    assert k.half(3.0) == 1.5 and k.scale(2, 1.25) == 2.5 and k.ld_twice(1.5) == 3.0
    assert k.half(1e38) == 5e37 or math.isclose(k.half(1e38), 5e37, rel_tol=1e-6)


def test_out_of_range_and_wrong_types_raise_before_the_call(session):
    s, k = session
    for function, value in ((k.neg8, 128), (k.neg8, -129), (k.inc8, -1), (k.inc8, 256), (k.inc16, 65536),
                            (k.inc32, 2**32), (k.inc64, 2**64), (k.neg64, 2**63), (k.inc64, -1)):
        with pytest.raises(OverflowError, match="out of range"):
            function(value)
    with pytest.raises(OverflowError, match="C float"):
        k.half(1e39)
    with pytest.raises(TypeError, match=r"add\(a, b\) takes 2 arguments, got 1"):
        k.add(1)
    with pytest.raises(TypeError, match="no keyword arguments"):
        k.add(1, b=2)
    with pytest.raises(TypeError, match=r"argument 1 of add \(a: int\) takes an int, not str"):
        k.add("1", 2)
    with pytest.raises(TypeError, match="takes a float, not str"):
        k.half("x")
    with pytest.raises(TypeError, match="Pointer, a buffer"):
        k.count_bytes(12345, 1)  # an int is never a pointer
    with pytest.raises(TypeError, match="writable"):
        k.fill(b"read-only", 3, 1)  # bytes for a non-const pointer
    with pytest.raises(TypeError, match="points at 4 bytes, and the buffer given holds only 2"):
        k.divide(7, 2, bytearray(2), [0])
    with pytest.raises(TypeError, match="none of the enum's names"):
        k.colour_value("PURPLE")
    s.stop()
    assert calls(s.run, "add") == 0 and calls(s.run, "neg8") == 0  # none of them reached the library


def test_buffers_strings_and_out_parameters(session):
    _, k = session
    data = bytes(range(1, 101))
    assert k.count_bytes(data, 100) == sum(data)
    assert k.count_bytes(memoryview(bytearray(data))[10:20], 10) == sum(data[10:20])
    import array
    assert k.count_bytes(array.array("B", [1, 2, 3]), 3) == 6
    target = bytearray(8)
    k.fill(target, 5, 7)
    assert target == bytearray([7] * 5 + [0] * 3)
    numpy = pytest.importorskip("numpy")  # installed with the jupyter extra the tests use
    filled = numpy.zeros(8, dtype=numpy.uint8)
    k.fill(filled, 6, 9)  # a NumPy array is a writable buffer like any other
    assert filled.tolist() == [9] * 6 + [0] * 2 and k.count_bytes(filled, 8) == 54
    with pytest.raises(TypeError):
        k.fill(numpy.zeros(8, dtype=numpy.uint8)[::2], 4, 1)  # not contiguous: refused, never half written
    assert k.text_length("héllo") == 6 and k.text_length(b"abc") == 3 and k.text_length(None) == 0
    text = bytearray(b"mixed Case\0")
    k.upper(text)
    assert text == bytearray(b"MIXED CASE\0")
    assert k.greeting() == "hello from kinds"  # const char * results are strings
    quotient, remainder = [None], [0]
    assert k.divide(17, 5, quotient, remainder) is None
    assert (quotient, remainder) == ([3], [2])
    as_bytes = bytearray(4)
    k.divide(9, 2, as_bytes, remainder)
    assert struct.unpack("i", as_bytes) == (4,)


def test_enums_by_value_and_by_name(session):
    _, k = session
    assert k.colour_value("GREEN") == 50 and k.colour_value(6) == 60 and k.colour_value(k.BLUE) == 60
    assert k.classify(-5) == -1 and k.classify(5) == 1 << 20 and k.constants["LARGE"] == 1 << 20


def test_structs_and_unions_by_value_and_by_pointer(session):
    s, k = session
    point = k.point_make(3, 4)
    assert (point.x, point.y, point.size, point.to_dict()) == (3, 4, 8, {"x": 3, "y": 4})
    assert k.point_sum(point) == 7 and k.point_sum({"x": 1, "y": 2}) == 3
    k.point_move(point, 10, 20)
    assert (point.x, point.y) == (13, 24)
    record = s.struct("record_t", weight=2.0, tag="ab", where={"x": 1, "y": 1}, name="four", counts=[1, 2, 3])
    assert record.size == 48 and record.tag == b"ab" and record.counts == [1, 2, 3] and record.where.x == 1
    assert k.record_score(record) == 2.0 * 2 + 6 + 4 + 2
    made = k.record_make(None, 1.5)
    assert (made.weight, made.tag, made.where.y, made.name, made.counts) == (1.5, b"made", 2, None, [0, 0, 7])
    assert k.union_bits(k.union_from_float(1.0)) == 0x3F800000
    assert k.union_bits({"i": 5}) == 5
    with pytest.raises(TypeError, match=r"argument 1 of point_move \(p: point_t \*\) takes a point, not a record_t"):
        k.point_move(record, 1, 1)
    with pytest.raises(TypeError, match="no member 'z'"):
        s.struct("point_t", z=1)
    with pytest.raises(OverflowError, match="out of range"):
        point.x = 2**31
    with pytest.raises(cprof.CprofError, match="declares a struct 'nothing_t'"):
        s.struct("nothing_t")


def test_callbacks_through_libffi_closures(session):
    s, k = session
    assert k.apply(lambda a, b: a * b, 6, 7) == 42
    values = bytearray(struct.pack("6i", 5, -3, 9, 0, 12, 1))
    k.sort_ints(values, 6)
    assert struct.unpack("6i", values) == (-3, 0, 1, 5, 9, 12)
    seen = []

    def descending(a, b):
        seen.append((a.read("int"), b.read("int")))
        return b.read("int") - a.read("int")
    k.sort_with(values, 6, descending)
    assert struct.unpack("6i", values) == (12, 9, 5, 1, 0, -3) and seen
    record = s.struct("record_t", weight=0.5, name="visited")
    assert k.visit(record, lambda r, context: r.read("record_t").weight * 4, None) == 2.0
    multiply = s.libraries[0].callback("binary_fn", lambda a, b: a - b)
    assert k.apply(multiply, 10, 3) == 7 and k.apply(multiply, 1, 3) == -2
    with pytest.raises(ZeroDivisionError):  # raised in the callback, again where Python called the library
        k.apply(lambda a, b: a // b, 1, 0)
    with pytest.raises(TypeError, match="takes a Python callable"):
        k.apply(5, 1, 2)


def test_pointers_are_handed_back_not_made_up(session):
    _, k = session
    keep = bytearray(b"held")
    assert k.remember(keep) is None
    pointer = k.recall()
    assert isinstance(pointer, Pointer)
    assert pointer.read("unsigned char", 4) == list(b"held") and k.remember(pointer) == pointer
    assert k.remember(None) == pointer and k.recall() is None


def test_variadic_and_unknown_functions_are_refused_clearly(session):
    _, k = session
    with pytest.raises(cprof.CprofError, match=r"sum_all\(count, \.\.\.\) is variadic"):
        k.sum_all
    with pytest.raises(AttributeError, match="declares no function or constant 'nope'"):
        k.nope


def test_threads_of_the_library_and_of_python_are_recorded_apart(built):
    home, library = built
    with cprof.session(home=home) as s:
        k = s.load_library(library, header=HEADER)
        assert k.parallel_sum(3, 200) == 3 * 200 * sum(i % 7 for i in range(10))
        workers = [threading.Thread(target=lambda: [k.work(100) for _ in range(50)]) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    run = s.run
    assert calls(run, "thread_main") == 3 and calls(run, "work") == 3 * 200 + 2 * 50
    # (a thread that called in an earlier session keeps its nodes there, at zero)
    called = [[c for c in t.root.children.values() if c.calls] for t in run.threads]
    assert sum(1 for children in called if children) == 1 + 3 + 2  # the caller, the library's three, two Python's
    # calls from Python are roots of the call tree: nothing of the binding sits between them and the thread
    roots = {child.key.name for children in called for child in children}
    assert roots == {"parallel_sum", "thread_main", "work"}


def test_sessions_in_a_row_each_store_their_own_run(built):
    home, library = built
    runs = []
    for n in (2, 5):
        with cprof.session(home=home) as s:
            k = s.load_library(library, header=HEADER)
            for _ in range(n):
                k.work(1000)
            with s.paused():  # not recorded
                for _ in range(100):
                    k.add(1, 2)
            s.pause()
            k.add(1, 2)
            s.resume()
            k.add(3, 4)
        runs.append(s.run)
    assert [calls(r, "work") for r in runs] == [2, 5] and [calls(r, "add") for r in runs] == [1, 1]
    assert all(r.complete and r.exit_status == 0 for r in runs)
    assert re.fullmatch(r"python: session \d+ of .+", runs[1].command[0]) and runs[1].meta["program"] == "libkinds.so"
    assert cprof.load(home=home).id == runs[1].id
    diff = cprof.diff(runs[0], runs[1], home=home)
    assert next(row for row in diff.rows if row["name"] == "work")["b"]["calls"] == 5
    report = subprocess.run([sys.executable, "-m", "cprof", "report", "--json"], capture_output=True, text=True,
                            env=dict(os.environ, CPROF_HOME=home))
    assert report.returncode == 0, report.stderr
    assert '"work"' in report.stdout
    svg = runs[1].flamegraph()
    assert svg.startswith("<?xml") or "<svg" in svg[:500]


COUNTED_SESSIONS = """
import json, sys, threading
import cprof
runs = []
for n in (1000, 10):
    with cprof.session(home=sys.argv[1]) as s:
        k = s.load_library("libcounted.so", header=sys.argv[2])
        for i in range(n):
            assert k.add(i, 1) == i + 1
        worker = threading.Thread(target=lambda: [k.add(1, 2) for _ in range(n // 2)])
        worker.start()
        worker.join()
    add = s.run.function("add")
    by_thread = sorted(t["calls"] for t in next(f for f in s.run.functions(threads=True) if f.name == "add").threads)
    runs.append((add.calls, add.timed, by_thread))
print(json.dumps(runs))
"""


def test_count_only_functions_of_a_library_are_counted_in_each_session(tmp_path):
    """Their counters are handed out when the session starts, and to a Python thread at its first call into the
    library (the runtime's pthread_create wrapper never sees Python's threads): each counts in its own thread. In a
    process of its own: this module's other sessions already registered a timed `add` of the same source here."""
    project = Project(str(tmp_path))
    made = project.cprof("build", "-shared", "--count-only", "add", os.path.join(KINDS, "kinds.c"), "-o",
                         "libcounted.so", "--", "-O2", "-g", "-pthread")
    assert made.returncode == 0, made.stderr
    home = os.path.join(project.root, ".cprof")
    result = subprocess.run([sys.executable, "-c", COUNTED_SESSIONS, home, HEADER], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[1500, False, [500, 1000]], [15, False, [5, 10]]]


def test_a_session_refuses_what_it_cannot_load(built, tmp_path):
    home, library = built
    with cprof.session(home=home) as s:
        with pytest.raises(cprof.CprofError, match="carries no cprof runtime"):
            s.load_library(_system_library("libm.so.6"), header="/usr/include/math.h")
        with pytest.raises(cprof.CprofError, match="no library"):
            s.load_library(str(tmp_path / "missing.so"), header=HEADER)
        with pytest.raises(cprof.CprofError, match="needs the library's header"):
            s.load_library(library)
        with pytest.raises(cprof.CprofError, match="another cprof session is active"):
            cprof.session(home=home).start()


def _system_library(name: str) -> str:
    found = subprocess.run(["sh", "-c", f"ldconfig -p | grep -m1 '{name} ' | sed 's/.*=> //'"], capture_output=True,
                           text=True).stdout.strip()
    return found or name


CRASHING = """
import cprof, sys
with cprof.session(home=sys.argv[1]) as s:
    k = s.load_library(sys.argv[2], header=sys.argv[3])
    for _ in range(5):
        k.work(100)
    print("about to crash", flush=True)
    k.crash(k.recall())   # NULL: SIGSEGV in the library
"""


def test_a_crashing_library_kills_its_process_and_the_run_keeps_the_calls(built, tmp_path):
    home, library = built
    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    done = subprocess.run([sys.executable, str(script), home, library, HEADER], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -11 and "about to crash" in done.stdout  # SIGSEGV
    run = cprof.load(home=home)
    assert run.meta["status"] == "running" and not run.complete  # nobody finished it
    assert calls(run, "work") == 5 and calls(run, "crash") == 1


# ------------------------------------------------------------------------------------------------------- zlib


@pytest.fixture(scope="module")
def zlib(tmp_path_factory) -> tuple[str, str]:
    """(store, zlib.h) of zlib's shared library built instrumented by its own ./configure && make."""
    fetched = subprocess.run([os.path.join(REPO, "scripts", "fetch_corpus.sh"), "zlib"], capture_output=True,
                             text=True, timeout=900)
    if fetched.returncode != 0:
        pytest.skip(f"zlib's Debian source could not be fetched: {fetched.stderr[-300:]}")
    tree = str(tmp_path_factory.mktemp("zlib") / "zlib")
    shutil.copytree(fetched.stdout.strip(), tree)
    project = Project(tree)
    made = project.cprof("build", "--", "sh", "-c", "./configure >/dev/null && make libz.so.1.2.13 >/dev/null",
                         timeout=900)
    assert made.returncode == 0, made.stderr[-2000:]
    return os.path.join(tree, ".cprof"), os.path.join(tree, "zlib.h")


# quick (about 5 s) once the source is cached; a fresh fetch makes it a slow test
zlib_mark = pytest.mark.slow if not ZLIB_CACHED else pytest.mark.usefixtures("zlib")


@zlib_mark
def test_zlib_compress_uncompress_round_trip_counts_every_call(zlib):
    home, header = zlib
    data = b"".join(b"line %d: %s\n" % (i, b"abc" * (i % 40)) for i in range(20000))
    rounds = 3
    with cprof.session(home=home) as s:
        z = s.load_library("libz.so.1.2.13", header=header)  # the last build's instrumented copy, by name
        for _ in range(rounds):
            packed = bytearray(z.compressBound(len(data)))
            packed_len = [len(packed)]
            assert z.compress(packed, packed_len, data, len(data)) == z.Z_OK
            out = bytearray(len(data))
            out_len = [len(out)]
            assert z.uncompress(out, out_len, bytes(packed[:packed_len[0]]), packed_len[0]) == z.Z_OK
            assert out_len == [len(data)] and out == data
            assert python_zlib.decompress(bytes(packed[:packed_len[0]])) == data
    run = s.run
    assert (calls(run, "compress"), calls(run, "uncompress"), calls(run, "compressBound")) == (rounds,) * 3
    assert calls(run, "compress2") == rounds and calls(run, "deflate") == rounds  # compress's callees
    assert calls(run, "inflate") >= rounds and calls(run, "longest_match") > 1000


@zlib_mark
def test_zlib_deflate_with_a_z_stream_by_pointer(zlib):
    home, header = zlib
    data = bytes(range(256)) * 400
    with cprof.session(home=home) as s:
        z = s.load_library("libz.so.1.2.13", header=header, defines=["ZLIB_CONST"])  # next_in: const Bytef *
        stream = s.struct("z_stream")
        version = z.zlibVersion()
        assert z.deflateInit_(stream, 9, version, stream.size) == z.Z_OK
        packed = bytearray(len(data) + 1024)
        stream.next_in, stream.avail_in = data, len(data)
        stream.next_out, stream.avail_out = packed, len(packed)
        assert z.deflate(stream, z.Z_FINISH) == z.Z_STREAM_END
        assert stream.total_in == len(data) and 0 < stream.total_out < len(data) and stream.msg is None
        assert z.deflateEnd(stream) == z.Z_OK
        with pytest.raises(TypeError, match="takes a z_stream"):
            z.deflateEnd(s.struct("gz_header"))
    assert python_zlib.decompress(bytes(packed[:stream.total_out])) == data
    run = s.run
    assert [calls(run, name) for name in ("deflateInit_", "deflateInit2_", "deflate", "deflateEnd")] == [1, 1, 1, 1]
