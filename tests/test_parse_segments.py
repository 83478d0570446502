"""Header segments parsed once and reused by later units (cprof/instrument/parse.py): the functions found are exactly
those of a full parse, reuse really happens, and a segment whose parse depended on its context is not reused in a
context that differs."""

from __future__ import annotations

from cprof.instrument.parse import ParseError, parse
from cprof.instrument.scan import scan
from test_scan import preprocess

import pytest

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
    with pytest.raises(ParseError):
        parse(scan(untyped), store)
