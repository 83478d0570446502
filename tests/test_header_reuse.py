"""Headers scanned and parsed once and reused by later units (cprof/instrument/scan.py, parse.py): the scan and the
functions found are exactly those of a unit processed alone, reuse really happens, and what depended on its context
is not reused in a context that differs."""

from __future__ import annotations

from cprof.instrument.parse import parse
from cprof.instrument.scan import scan
from test_scan import preprocess


SHARED_H = """\
    #include <stdio.h>
    #include <string.h>
    typedef struct point { int x, y; } point_t;
    typedef int (*visitor_t)(point_t *);
    static inline int norm1(point_t p) { return (p.x < 0 ? -p.x : p.x) + (p.y < 0 ? -p.y : p.y); }
    __attribute__((noinline)) int visit(visitor_t f, point_t *p);
"""
FIRST_C = """\
    #include "shared.h"
    int visit(visitor_t f, point_t *p) { return f(p); }
    static int show(point_t *p) { return printf("%d\\n", norm1(*p)); }
    int main(void) { point_t p = {3, -4}; return visit(show, &p) < 0; }
"""
SECOND_C = """\
    #include <stdlib.h>
    #include "shared.h"
    size_t measure(const char *s) { point_t p = {(int)strlen(s), 0}; return (size_t)norm1(p); }
"""


class CountingStore:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.hits = 0

    def load_segment(self, key):
        entry = self.entries.get(key)
        self.hits += entry is not None
        return entry

    def store_segment(self, key, entry):
        self.entries[key] = entry


def summary(functions):
    return [(f.name, f.name_offset, f.body_offset, f.storage, f.funcspec, sorted(f.attributes)) for f in functions]


def test_reused_segments_find_exactly_what_a_full_parse_finds(tmp_path):
    first, _ = preprocess(tmp_path, FIRST_C, "first.c", headers={"shared.h": SHARED_H})
    second, _ = preprocess(tmp_path, SECOND_C, "second.c")
    store = CountingStore()
    for text in (first, second, first):
        unit = scan(text)
        assert summary(parse(unit, store)) == summary(parse(scan(text)))
    assert store.hits > 100  # glibc's headers and shared.h came from the store the second and third time
    names = [f.name for f in parse(scan(second), store)]
    assert "norm1" in names and "measure" in names  # a definition inside a reused header segment is still found
    visit = [f for f in parse(scan(first), store) if f.name == "visit"][0]
    assert "noinline" in visit.attributes  # attributes of the declaration in the (reused) header still count


def test_a_segment_is_not_reused_where_its_names_mean_something_else(tmp_path):
    header = {"uses.h": "    handle_t *current;\n"}
    typed, _ = preprocess(tmp_path, 'typedef int handle_t;\n#include "uses.h"\nint f(void) { return 0; }\n',
                          "typed.c", headers=header)
    # the same header text where handle_t is no type: the plain compiler rejects this, and so must we
    untyped, _ = preprocess(tmp_path, 'int handle_t;\n#include "uses.h"\nint g(void) { return 0; }\n', "untyped.c")
    store = CountingStore()
    assert [f.name for f in parse(scan(typed), store)][-1] == "f"
    assert any(e["typedef_uses"] == ["handle_t"] for e in store.entries.values())
    # parsed afresh, not reused: pycparser stops at the declaration the plain compiler rejects too, which is left
    # out (the plain compile then reports it)
    parsed = parse(scan(untyped), store)
    assert [f.name for f in parsed][-1] == "g"
    assert [r.message for r in parsed.repairs] == ["Invalid function definition"]


def scan_summary(unit):
    return (unit.sanitized, sorted((b.open_offset, b.close_offset, b.nested) for b in unit.bodies.values()),
            unit.item_ends, unit.attributes)


def test_replayed_includes_scan_exactly_like_a_full_scan(tmp_path):
    first, _ = preprocess(tmp_path, FIRST_C, "first.c", headers={"shared.h": SHARED_H})
    second, _ = preprocess(tmp_path, SECOND_C, "second.c")
    store = CountingStore()
    for text in (first, second, first):
        before = store.hits
        assert scan_summary(scan(text, store)) == scan_summary(scan(text))
    assert store.hits - before >= 2  # the third unit replayed whole includes (stdio.h, shared.h...)
    assert "norm1" in [f.name for f in parse(scan(second, store), store)]  # a body inside a replayed include


def test_an_include_is_replayed_only_from_the_state_it_was_scanned_in(tmp_path):
    # the same header text after a declaration (where its `{` opens a body, as in K&R) and after `=` (where it is
    # an initializer): the scanner must not replay the first reading in the second place
    header = {"braces.h": "    { 1, 2 };\n"}
    after_declaration, _ = preprocess(tmp_path, 'int x;\n#include "braces.h"\n', "a.c", headers=header)
    after_equals, _ = preprocess(tmp_path, 'int a[] =\n#include "braces.h"\n', "b.c")
    store = CountingStore()
    first = scan(after_declaration, store)
    second = scan(after_equals, store)
    assert scan_summary(second) == scan_summary(scan(after_equals))
    in_header = [[u.source_position(u.line_of(b))[0].endswith("braces.h") for b in u.bodies].count(True)
                 for u in (first, second)]
    assert in_header == [1, 0]


def test_an_include_whose_reading_depends_on_what_follows_it_is_not_kept(tmp_path):
    # a header that ends in `__attribute__`: whether that starts an attribute list depends on the text after it
    header = {"tail.h": "    int y __attribute__\n"}
    plain, _ = preprocess(tmp_path, '#include "tail.h"\n;\nint f(void) { return 0; }\n', "c.c", headers=header)
    attributed, _ = preprocess(tmp_path, '#include "tail.h"\n((unused));\nint f(void) { return 0; }\n', "d.c")
    store = CountingStore()
    for text in (plain, attributed, plain, attributed):
        assert scan_summary(scan(text, store)) == scan_summary(scan(text))


def test_an_include_that_a_construct_runs_out_of_is_not_kept(tmp_path):
    # an attribute list opened in the header and closed after it: the scan runs past the include's end
    header = {"open.h": "    int g(void) __attribute__((\n"}
    text, _ = preprocess(tmp_path, '#include "open.h"\nnoinline));\nint g(void) { return 0; }\n', "e.c",
                         headers=header)
    store = CountingStore()
    scan(text, store)
    assert not any("noinline" in text for entry in store.entries.values() for _, text in entry["attributes"])
    assert scan_summary(scan(text, store)) == scan_summary(scan(text))
