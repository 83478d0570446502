"""`cprof build` around CMake: a small project (a static library and a program) configured and built through the
compiler shims, compared with a plain CMake build, with the user's own in-place build directory left alone."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import by_name
from test_build_system import plain_copy, run, snapshot

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (make deps-test)")

CMAKELISTS = """\
    cmake_minimum_required(VERSION 3.13)
    project(geometry C)
    add_library(shapes STATIC shapes.c area.c)
    target_include_directories(shapes PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    add_executable(geometry main.c)
    target_link_libraries(geometry shapes)
"""
SHAPES_H = """\
    struct rect { int w, h; };
    struct rect make_rect(int w, int h);
    long rect_area(struct rect r);
    long total_area(int count);
"""
SHAPES_C = """\
    #include "shapes.h"
    struct rect make_rect(int w, int h) { struct rect r = {w, h}; return r; }
"""
AREA_C = """\
    #include "shapes.h"
    long rect_area(struct rect r) { return (long)r.w * r.h; }
    long total_area(int count) {
        long total = 0;
        for (int i = 1; i <= count; i++)
            total += rect_area(make_rect(i, i + 1));
        return total;
    }
"""
MAIN_C = """\
    #include <stdio.h>
    #include <stdlib.h>
    #include "shapes.h"
    int main(int argc, char **argv) {
        int count = argc > 1 ? atoi(argv[1]) : 10;
        printf("%d rectangles, total area %ld\\n", count, total_area(count));
        return 0;
    }
"""
BUILD = "cmake -B b -S . -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build b"


def test_cmake_project_matches_a_plain_build(project):
    for name, text in (("CMakeLists.txt", CMAKELISTS), ("shapes.h", SHAPES_H), ("shapes.c", SHAPES_C),
                       ("area.c", AREA_C), ("main.c", MAIN_C)):
        project.write(name, text)
    plain = plain_copy(project)
    run(["sh", "-c", BUILD], plain)
    run(["sh", "-c", BUILD], project.root)  # the user's own build, in place: cprof must neither copy nor touch it
    before = snapshot(project.root)

    built = project.cprof("build", "--", "sh", "-c", BUILD)
    assert built.returncode == 0, built.stderr
    assert "built geometry: 3 units instrumented, 0 fell back" in built.stderr
    result = project.cprof("run", "--bin", "geometry", "--", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout == run([os.path.join(plain, "b", "geometry"), "40"], plain).stdout
    report = project.cprof("report", "--all", "--json")
    functions = by_name(report.json())
    assert functions["rect_area"]["calls"] == 40 and functions["make_rect"]["calls"] == 40
    assert functions["total_area"]["calls"] == 1 and functions["main"]["calls"] == 1
    assert functions["rect_area"]["file"] == os.path.join(project.root, "area.c")
    assert snapshot(project.root) == before

    again = project.cprof("build", "--", "sh", "-c", BUILD)
    assert again.returncode == 0, again.stderr
    assert "all up to date" in again.stderr
