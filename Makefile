# cprof — set-up, demo, tests and benchmarks. Every target installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# valgrind's callgrind_annotate and golang-go's `go tool pprof` read the callgrind and pprof exports back in the tests
APT_PACKAGES_TEST := csmith libcsmith-dev cmake valgrind golang-go libffi-dev
# the C extension calls instrumented libraries through libffi (csrc/ffi_call.c): ffi.h must be there before pip builds
APT_PACKAGES_BUILD := libffi-dev
APT_PACKAGES_BENCH := uftrace libffi-dev linux-perf heaptrack zstd

.PHONY: install deps-build demo test test-slow test-browser deps-test deps-bench deps-browser readme-pictures bench-trace views-lua corpus bench bench-build bench-instrument bench-overhead bench-accuracy bench-adaptive bench-shares bench-heap bench-flame bench-ffi bench-projects readme-tables csmith-300 clean

install: deps-build
	$(PIP) install --quiet -e '.[test]'

deps-build:
	@missing=""; for p in $(APT_PACKAGES_BUILD); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

deps-test:
	@missing=""; for p in $(APT_PACKAGES_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

deps-bench: deps-test
	@missing=""; for p in $(APT_PACKAGES_BENCH); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

# Profiles the bundled example program and prints the report.
demo: install
	cd examples/wordfreq && $(PYTHON) -m cprof profile wordfreq.c table.c --args 400000

# The default test run: unit, runtime, end-to-end and a few dozen random programs (well under CI's limit).
test: install deps-test
	$(MAKE) -C tests/native run
	$(PYTHON) -m pytest -q -m "not slow and not browser"

# Real projects from Debian source packages (Lua, zlib, sqlite3) and the long random-program run.
test-slow: install deps-test
	$(PYTHON) -m pytest -q -m slow

# The flamegraph SVG in headless Chromium (Debian's chromium, driven by Playwright); a screenshot lands in .artifacts/.
test-browser: install deps-test deps-browser
	$(PYTHON) -m pytest -q -m browser

deps-browser:
	@dpkg -s chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	$(PYTHON) -m pip install -q playwright

# The README's pictures (docs/images/): the bundled example's flamegraph, flamechart and differential flamegraph,
# screenshots that the browser test takes of the real SVGs.
readme-pictures: install deps-test deps-browser
	CPROF_PICTURES=docs/images $(PYTHON) -m pytest -q -m browser tests/test_flame_browser.py -k pictures

corpus:
	scripts/fetch_corpus.sh lua5.4 zlib sqlite3 libzstd gzip brotli xz-utils bc

csmith-300: install deps-test
	$(PYTHON) scripts/csmith_equivalence.py --programs 300 --output benchmarks/results/csmith.json

# Every README table: each script stores its results in benchmarks/results/, then the tables are printed from them.
bench: bench-build bench-instrument bench-overhead bench-accuracy bench-adaptive bench-shares bench-heap bench-trace views-lua bench-flame bench-ffi bench-projects csmith-300 readme-tables

bench-build: install corpus
	$(PYTHON) scripts/bench_build.py

bench-instrument: install corpus
	$(PYTHON) scripts/bench_instrument.py

# one run for every row (gprof is left out at 10,000 functions, where it spends tens of us a call)
bench-overhead: install deps-bench
	$(PYTHON) scripts/bench_overhead.py --repeat 5

bench-accuracy: install corpus
	$(PYTHON) scripts/bench_accuracy.py

# fib, qsort+hash, Lua, sqlite3, zstd and a csmith program: plain, fully instrumented and adaptive, side by side
bench-adaptive: install deps-bench corpus
	$(PYTHON) scripts/bench_adaptive.py --repeat 5

# heap tracking: its cost per malloc+free pair against heaptrack's, and Lua's heap totals against heaptrack's
bench-heap: install deps-bench corpus
	$(PYTHON) scripts/bench_heap.py --repeat 7

# the event trace's cost per recorded call (cprof run --trace)
bench-trace: install
	$(PYTHON) scripts/bench_trace.py --repeat 7

# Lua 5.4 traced: every view (flamegraph, flamechart, differential) and export, read back by callgrind_annotate and
# go tool pprof
views-lua: install deps-test corpus
	$(PYTHON) scripts/views_lua.py

# cprof flame's SVG of a million call paths (in memory, no compiler): time and size, the exports' beside it
bench-flame: install
	$(PYTHON) scripts/bench_flame.py --repeat 5

# a call into an instrumented library from Python: cprof's binding (libffi) against ctypes and cffi
bench-ffi: install corpus
	$(PYTHON) scripts/bench_ffi.py --repeat 7

# the adaptive mode's self-time shares against perf's on the plain program (both built with -fno-inline)
bench-shares: install deps-bench corpus
	$(PYTHON) scripts/bench_shares.py --repeat 8

# zstd, gzip, brotli and xz-utils built plain and instrumented: fallbacks, identical output, slowdown, coverage
bench-projects: install deps-test corpus
	$(PYTHON) scripts/bench_projects.py

# The README's result tables, printed from benchmarks/results/
readme-tables:
	$(PYTHON) scripts/readme_tables.py

clean:
	rm -rf build dist *.egg-info cprof/_runtime cprof/*.so .cprof tests/native/build
