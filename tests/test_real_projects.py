"""Real projects from Debian source packages (scripts/fetch_corpus.sh), built with `cprof build` exactly as their
upstream README says and compared with a plain build of the same tree: Lua 5.4 (`make linux`, errors raised with
longjmp) and zlib (`./configure && make`, static and shared library). Slow: `make test-slow` runs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, Project, by_name
from test_build_system import snapshot

pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"(\d+) units instrumented.*?(\d+) fell back; (\d+) functions instrumented")


def fetch(name: str) -> str:
    """The package's upstream source tree (cached); the test fails when it cannot be downloaded: a real-project
    test that did not run has not passed."""
    process = subprocess.run([os.path.join(REPO, "scripts", "fetch_corpus.sh"), name], capture_output=True,
                             text=True, timeout=900)
    if process.returncode != 0:
        pytest.fail(f"could not fetch the {name} source package: {process.stderr.strip()[-300:]}")
    return process.stdout.strip().splitlines()[-1]


def run(argv: list[str], cwd: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, input=stdin, timeout=300, env=env)


def summary_numbers(stderr: str) -> tuple[int, int, int]:
    """(units instrumented, units fallen back, functions instrumented) from `cprof build`'s summary line."""
    match = SUMMARY.search(stderr)
    assert match, stderr[-2000:]
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def report(project: Project) -> dict:
    result = project.cprof("report", "--all", "--json")
    assert result.returncode == 0, result.stderr
    return by_name(result.json())


_GPROF_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)\s+[\d.]+\s+[\d.]+\s+(\S+)$")


# A -pg build whose every call enters a function gprof sees: nothing inlined, cloned or folded.
GPROF_CFLAGS = "-pg -fno-inline -fno-ipa-sra -fno-ipa-cp -fno-partial-inlining -fno-ipa-icf"


def _gprof_once(tree: str, program: str, args: list[str], prepare) -> dict[str, int]:
    if os.path.exists(os.path.join(tree, "gmon.out")):
        os.remove(os.path.join(tree, "gmon.out"))
    if prepare:
        prepare()
    run([os.path.join(tree, program), *args], tree)  # a script may end in an error: its counts stand
    flat = run(["gprof", "-b", "-p", os.path.join(tree, program), "gmon.out"], tree).stdout.decode()
    counts = {}
    for line in flat.splitlines():
        match = _GPROF_ROW.match(line)
        if match:
            counts[match.group(2)] = int(match.group(1))
    assert counts, flat
    return counts


def gprof_counts(tree: str, program: str, args: list[str], prepare=None) -> dict[str, int]:
    """Call counts of a GPROF_CFLAGS build of the same program on the same input (`prepare` sets the input up
    before each run): gprof's mcount sees every call, an independent count made by the compiler, not by cprof.
    Only counts two runs agree on."""
    first = _gprof_once(tree, program, args, prepare)
    second = _gprof_once(tree, program, args, prepare)
    return {name: calls for name, calls in first.items() if second.get(name) == calls}


def assert_counts_agree_with_gprof(functions: dict, counts: dict[str, int], differing: float = 0.0) -> None:
    """Every function gprof counted is in cprof's report with the same count; `differing` is the share allowed to
    differ, for a program whose work depends on addresses (Lua seeds its string hashes from them, so its table
    collisions and garbage collections differ between two builds)."""
    missing = [name for name in counts if name not in functions]
    assert not missing, missing
    different = {name: (functions[name]["calls"], calls) for name, calls in counts.items()
                 if functions[name]["calls"] != calls}
    assert len(counts) >= 20 and len(different) <= differing * len(counts), different


def assert_totals_nest(functions: dict) -> None:
    """No function's total can exceed main's: frames left by longjmp were closed, not left running."""
    outermost = functions["main"]["total_ns"]
    assert all(f["total_ns"] <= outermost for f in functions.values())


# ---------------------------------------------------------------------------------------------------- Lua 5.4

LUA_SCRIPTS = {
    "basics.lua": """
        local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
        print("fib", fib(22))
        local t = {}
        for i = 1, 2000 do t[i] = string.format("%05d", (i * 7919) % 2000) end
        table.sort(t)
        print(t[1], t[1000], t[2000], #t, table.concat(t, ",", 1, 5))
        local s = string.rep("abc", 100):gsub("b", "X")
        print(#s, s:sub(1, 9), ("%d items, %5.2f, %q"):format(3, math.pi, "a\\nb"))
        for w in string.gmatch("one two three", "%a+") do io.write(w, ";") end print()
        print(math.floor(3.7), math.max(1, 9, 4), 7 // 2, 7 % 3, 2^10, 1 / 0, -1 / 0, math.maxinteger)
        print(tostring(nil), tonumber("0x10"), tonumber("z", 36), utf8.char(72, 228, 8364), utf8.len("h\\u{e4}h"))
        local mt = setmetatable({}, {__index = function(_, k) return k .. "!" end, __call = function() return 7 end})
        print(mt.foo, mt())
        goto skip
        print("not printed")
        ::skip::
        print(select("#", 1, nil, 3), #string.pack("i4i8", 1, 2), load("return 1 + ...")(41))
    """,
    "errors.lua": """
        local caught = 0
        for i = 1, 100 do
            local ok, message = pcall(error, "x" .. i)
            if not ok and message == "x" .. i then caught = caught + 1 end
        end
        print("caught", caught)
        print(pcall(function() local t = nil; return t.x end))
        local function deep(n) if n == 0 then error({code = 7}) end return deep(n - 1) + 1 end
        local sum = 0
        for i = 1, 300 do local ok, e = pcall(deep, i % 60) sum = sum + e.code end
        print("deep", sum)
        print(xpcall(function() error("inner", 0) end, function(m) return "handled " .. m end))
        print(pcall(string.rep))
        print(select(2, load("syntax error here")))
        local co = coroutine.create(function(a) local b = coroutine.yield(a * 2) error("in coroutine " .. b) end)
        print(coroutine.resume(co, 4))
        print(coroutine.resume(co, 5))
        local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
        print(gen(), gen(), gen())
        print(pcall(function() return setmetatable({}, {__index = function() error("meta") end}).x end))
    """,
    "uncaught.lua": """
        print("before")
        local function fail() error("this one is not caught") end
        fail()
    """,
}


@pytest.fixture(scope="module")
def lua(tmp_path_factory):
    """Two copies of Lua's upstream tree: one built plainly, one with `cprof build` (its own store and cache)."""
    source = fetch("lua5.4")
    base = tmp_path_factory.mktemp("lua")
    plain, instrumented = str(base / "plain"), str(base / "instrumented")
    shutil.copytree(source, plain)
    shutil.copytree(source, instrumented)
    assert run(["make", "-j2", "linux"], plain).returncode == 0
    project = Project(instrumented)
    for name, text in LUA_SCRIPTS.items():
        project.write(name, text)
        shutil.copy(os.path.join(instrumented, name), os.path.join(plain, name))
    before = snapshot(instrumented)
    built = project.cprof("build", "--", "make", "-j2", "linux", timeout=1200)
    assert built.returncode == 0, built.stderr[-3000:]
    assert snapshot(instrumented) == before  # the build happened in the shadow tree only
    return plain, project, built


def test_lua_builds_with_every_unit_instrumented(lua):
    _, project, built = lua
    units, fallbacks, functions = summary_numbers(built.stderr)
    assert fallbacks == 0 and "warning" not in built.stderr
    assert units >= 33 and functions > 1000
    assert "built lua, luac" in built.stderr


@pytest.fixture(scope="module")
def lua_pg(lua, tmp_path_factory):
    """Lua built a third time with -pg, for gprof's independent call counts."""
    plain, _, _ = lua
    tree = str(tmp_path_factory.mktemp("lua-pg") / "lua")
    shutil.copytree(plain, tree)
    assert run(["make", "clean"], tree).returncode == 0
    assert run(["make", "-j2", "linux", f"MYCFLAGS={GPROF_CFLAGS}", "MYLDFLAGS=-pg"], tree).returncode == 0
    return tree


@pytest.mark.parametrize("script", sorted(LUA_SCRIPTS))
def test_lua_scripts_behave_as_with_a_plain_build(lua, lua_pg, script):
    plain, project, _ = lua
    expected = run([os.path.join(plain, "src", "lua"), script], plain)
    result = project.cprof("run", "--bin", "lua", "--", script)
    assert result.returncode == expected.returncode
    assert result.stdout == expected.stdout.decode()
    # the error message of an uncaught error, and its traceback, name the same script lines (lua prefixes its
    # messages with its own path, argv[0])
    built = os.path.join(project.root, ".cprof", "build", "tree", "src", "lua")
    messages = [line.replace(built, "lua") for line in result.stderr.splitlines() if not line.startswith("cprof:")]
    assert messages == expected.stderr.decode().replace(os.path.join(plain, "src", "lua"), "lua").splitlines()
    functions = report(project)
    assert functions["main"]["calls"] == 1
    assert_counts_agree_with_gprof(functions, gprof_counts(lua_pg, os.path.join("src", "lua"), [script]), 0.05)
    assert_totals_nest(functions)


def test_lua_error_handling_is_counted_exactly(lua):
    _, project, _ = lua
    result = project.cprof("run", "--bin", "lua", "--", "-e", "for i = 1, 100 do pcall(error, 'x') end")
    assert result.returncode == 0, result.stderr
    functions = report(project)
    # each error() is one luaB_error -> lua_error -> luaG_errormsg -> luaD_throw (a longjmp back into pcall)
    for name in ("luaB_error", "lua_error", "luaG_errormsg", "luaD_throw", "luaB_pcall"):
        assert functions[name]["calls"] == 100, name
    assert functions["pmain"]["calls"] == 1
    assert_totals_nest(functions)


def test_luac_output_is_byte_identical(lua):
    plain, project, _ = lua
    expected = run([os.path.join(plain, "src", "luac"), "-s", "-o", "plain.luac", "basics.lua"], plain)
    assert expected.returncode == 0
    result = project.cprof("run", "--bin", "luac", "--", "-s", "-o", "instrumented.luac", "basics.lua")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(plain, "plain.luac"), "rb") as expected:
        with open(os.path.join(project.root, "instrumented.luac"), "rb") as actual:
            assert actual.read() == expected.read()
    assert report(project)["luaU_dump"]["calls"] == 1


# ------------------------------------------------------------------------------------------------------- zlib

ZLIB_BUILD = ["sh", "-c", "./configure && make"]


@pytest.fixture(scope="module")
def zlib(tmp_path_factory):
    """zlib built twice in one tree: first plainly in place by its user, then with `cprof build`, which must
    neither reuse nor disturb the user's configured tree and objects (the plain build is the reference)."""
    source = fetch("zlib")
    tree = str(tmp_path_factory.mktemp("zlib") / "zlib")
    shutil.copytree(source, tree)
    assert run(ZLIB_BUILD, tree).returncode == 0
    project = Project(tree)
    before = snapshot(tree)
    built = project.cprof("build", "--", *ZLIB_BUILD, timeout=1200)
    assert built.returncode == 0, built.stderr[-3000:]
    assert snapshot(tree) == before
    data = b"".join(b"line %d: %s\n" % (i, b"abc" * (i % 40)) for i in range(60000))
    return tree, project, built, data


def test_zlib_builds_static_and_shared_with_every_unit_instrumented(zlib):
    _, project, built, _ = zlib
    units, fallbacks, functions = summary_numbers(built.stderr)
    assert fallbacks == 0 and units >= 30 and functions > 100
    for program in ("example", "minigzip", "examplesh", "minigzipsh", "libz.so"):
        assert program in built.stderr
    # configure compiled and ran its probes through the wrapper with recording disabled: no run was stored
    assert not os.path.isdir(os.path.join(project.root, ".cprof", "runs"))


@pytest.fixture(scope="module")
def zlib_pg(tmp_path_factory):
    """zlib built with -pg (static, as gprof needs), for gprof's independent call counts."""
    tree = str(tmp_path_factory.mktemp("zlib-pg") / "zlib")
    shutil.copytree(fetch("zlib"), tree)
    env = dict(os.environ, CFLAGS=f"-O2 {GPROF_CFLAGS}", LDFLAGS="-pg")
    assert run(["./configure", "--static"], tree, env=env).returncode == 0
    assert run(["make", "-j2", "example", "minigzip"], tree, env=env).returncode == 0
    return tree


def test_zlib_example_behaves_as_with_a_plain_build(zlib, zlib_pg):
    plain, project, _, _ = zlib
    expected = run([os.path.join(plain, "example")], plain)
    result = project.cprof("run", "--bin", "example")
    assert result.returncode == expected.returncode == 0
    assert result.stdout == expected.stdout.decode()
    functions = report(project)
    assert functions["main"]["calls"] == 1
    assert_counts_agree_with_gprof(functions, gprof_counts(zlib_pg, "example", []))


def test_zlib_minigzip_round_trip_is_byte_identical(zlib, zlib_pg):
    plain, project, _, data = zlib
    for name in ("plain.txt", "copy.txt"):  # minigzip FILE replaces FILE by FILE.gz
        with open(os.path.join(project.root, name), "wb") as handle:
            handle.write(data)
    assert run([os.path.join(plain, "minigzip"), "-9", "plain.txt"], plain).returncode == 0
    compress = project.cprof("run", "--bin", "minigzip", "--", "-9", "copy.txt")
    assert compress.returncode == 0, compress.stderr
    with open(os.path.join(plain, "plain.txt.gz"), "rb") as expected:
        with open(os.path.join(project.root, "copy.txt.gz"), "rb") as actual:
            assert actual.read() == expected.read()
    functions = report(project)
    def fresh_input():
        with open(os.path.join(zlib_pg, "pg.txt"), "wb") as handle:
            handle.write(data)
        if os.path.exists(os.path.join(zlib_pg, "pg.txt.gz")):
            os.remove(os.path.join(zlib_pg, "pg.txt.gz"))

    assert_counts_agree_with_gprof(functions, gprof_counts(zlib_pg, "minigzip", ["-9", "pg.txt"], fresh_input))
    with open(os.path.join(zlib_pg, "pg.txt.gz"), "rb") as handle:
        packed = handle.read()
    decompress = project.cprof("run", "--bin", "minigzip", "--", "-d", "copy.txt.gz")
    assert decompress.returncode == 0, decompress.stderr
    with open(os.path.join(project.root, "copy.txt"), "rb") as handle:
        assert handle.read() == data
    def fresh_packed():
        with open(os.path.join(zlib_pg, "pg.txt.gz"), "wb") as handle:
            handle.write(packed)
        if os.path.exists(os.path.join(zlib_pg, "pg.txt")):
            os.remove(os.path.join(zlib_pg, "pg.txt"))

    assert_counts_agree_with_gprof(report(project), gprof_counts(zlib_pg, "minigzip", ["-d", "pg.txt.gz"],
                                                                 fresh_packed))


def test_zlib_shared_library_variants_use_the_instrumented_library(zlib):
    plain, project, _, _ = zlib
    expected = run([os.path.join(plain, "examplesh")], plain, env=dict(os.environ, LD_LIBRARY_PATH=plain))
    # `cprof run` puts the build's own shared libraries first on LD_LIBRARY_PATH, as zlib's `make test` does
    result = project.cprof("run", "--bin", "examplesh")
    assert result.returncode == expected.returncode == 0, result.stderr
    assert result.stdout == expected.stdout.decode()
    functions = report(project)
    # libz's own functions were measured: the instrumented libz.so was the one loaded, with one runtime
    assert functions["deflate"]["file"] == os.path.join(project.root, "deflate.c")
    assert functions["deflate"]["calls"] > 0 and functions["main"]["calls"] == 1
    assert_totals_nest(functions)
