"""The package's shape, as the README describes it: data flows build -> run -> run file -> model -> render, so no
stage imports a later one, no module imports another that imports it back (not even inside a function), and
only csrc/binding.c includes Python.h."""

from __future__ import annotations

import ast
import os

from conftest import REPO

# Each stage may import the ones before it, and the shared modules; cli may import everything. testing (the
# assertions) and pytest_plugin (which carries them) build on the api; the CLI needs neither.
ORDER = ["instrument", "building", "running", "model", "render", "api", "library", "jupyter", "testing", "pytest_plugin",
         "cli"]
SHARED = {"errors", "paths", "runfile", "workspace", "cprof", "__main__"}


def _imports() -> dict[str, set[str]]:
    """Every cprof module and the cprof modules it imports, at any depth of its code."""
    package = os.path.join(REPO, "cprof")
    modules = {}
    for directory, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path[:-3], REPO).replace(os.sep, ".").removesuffix(".__init__")
                modules[module] = path
    graph = {module: set() for module in modules}
    for module, path in modules.items():
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cprof"):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    graph[module].add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names if a.name.startswith("cprof"))
    return {m: {t for t in targets if t in modules} for m, targets in graph.items()}


def test_no_import_cycles():
    graph = _imports()
    seen, on_path = set(), []

    def visit(module):
        if module in on_path:
            raise AssertionError("import cycle: " + " -> ".join(on_path[on_path.index(module):] + [module]))
        if module in seen:
            return
        on_path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        on_path.pop()
        seen.add(module)

    for module in sorted(graph):
        visit(module)


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_data_flows_one_way():
    for module, targets in _imports().items():
        stage = _stage(module)
        for target in targets:
            other = _stage(target)
            if other == stage or other in SHARED or stage in SHARED - {"workspace", "runfile"}:
                continue
            assert stage in ORDER and other in ORDER, (module, target)
            assert ORDER.index(other) < ORDER.index(stage), f"{module} (stage {stage}) imports {target} (later)"
    for shared in ("workspace", "runfile"):
        assert all(_stage(t) in SHARED for t in _imports()[f"cprof.{shared}"])


def test_only_the_binding_includes_python_h():
    csrc = os.path.join(REPO, "csrc")
    including = []
    for name in os.listdir(csrc):
        with open(os.path.join(csrc, name), errors="replace") as handle:
            text = handle.read()
        if "#include <Python.h>" in text or '#include "Python.h"' in text:
            including.append(name)
    assert including == ["binding.c"]
