"""Every notebook in notebooks/ executed in a real Jupyter kernel (ipykernel's python3), failing on any error, with
assertions on what its cells showed; and the %%cprof and %cprof magics' errors, which end a cell in one line."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import nbclient
import nbformat
import pytest

from conftest import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


def execute(notebook, directory: str, allow_errors: bool = False):
    """Runs every cell in a new python3 kernel whose working directory is `directory`; an error in a cell raises
    (nbclient's CellExecutionError names the cell) unless allow_errors."""
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600, allow_errors=allow_errors,
                                     resources={"metadata": {"path": directory}})
    client.execute()
    return notebook


def shown(cell) -> str:
    """What a cell printed and displayed, as text (streams, then each display's text/plain and text/html)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts += [output.data.get("text/plain", ""), output.data.get("text/html", "")]
    return "\n".join(parts)


def tagged(notebook, tag: str):
    found = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    assert len(found) == 1, f"no single cell tagged {tag}"
    return found[0]


def errors(cell) -> list:
    return [output for output in cell.outputs if output.output_type == "error"]


_executed: dict[str, object] = {}


def executed(path: str):
    """The notebook as run once in this session (the tests below share its outputs)."""
    if path not in _executed:
        _executed[path] = execute(nbformat.read(path, as_version=4), os.path.dirname(path))
    return _executed[path]


def test_there_are_notebooks():
    assert os.path.join(REPO, "notebooks", "analysis.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_every_notebook_runs_without_an_error(path):
    notebook = executed(path)
    assert not [cell for cell in notebook.cells if cell.cell_type == "code" and errors(cell)]


def test_the_analysis_notebook_shows_real_runs():
    notebook = executed(os.path.join(REPO, "notebooks", "analysis.ipynb"))
    top = shown(tagged(notebook, "top-functions"))
    assert re.search(r"^table_add +20,000 ", top, re.M) and re.search(r"^make_word +20,000 ", top, re.M)
    assert "table_add" in shown(tagged(notebook, "dataframe"))
    tree = shown(tagged(notebook, "tree"))
    assert re.search(r"main  ×1$", tree, re.M) and re.search(r"table_add  ×20,000$", tree, re.M)
    # the two groups counted 20,000 and 80,000 words: exact call counts on both sides of the diff
    assert re.search(r"^table_add +calls +20,000 -> +80,000 ", shown(tagged(notebook, "diff")), re.M)
    built = re.search(r"(\d+) units, (\d+) functions instrumented", shown(tagged(notebook, "lua-build")))
    assert built and int(built.group(1)) > 20 and int(built.group(2)) > 500
    assert "luaV_execute" in shown(tagged(notebook, "lua-run"))
    assert re.search(r"^\w+ +[\d,]+ calls$", shown(tagged(notebook, "lua-calls")), re.M)
    assert any("image/png" in output.get("data", {}) for output in tagged(notebook, "chart").outputs)
    magic = tagged(notebook, "magic")
    assert "sum of 1000 steps: 1499500" in shown(magic)  # the program's own output, in the cell
    svgs = [o.data["image/svg+xml"] for o in magic.outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 1 and 'data-n="step"' in svgs[0]
    assert shown(tagged(notebook, "magic-calls")).strip() == "1000"
    assert re.search(r"^step .* 1,000 ", shown(tagged(notebook, "report")), re.M)
    assert "A: words-20k" in shown(tagged(notebook, "magic-diff"))


def test_the_library_notebook_profiles_zlib_in_the_kernel():
    notebook = executed(os.path.join(REPO, "notebooks", "library.ipynb"))
    assert re.search(r"^[\d,]+ bytes -> [\d,]+; <cprof run ", shown(tagged(notebook, "session")), re.M)
    top = shown(tagged(notebook, "top"))
    assert re.search(r"^longest_match +[\d,]+ calls", top, re.M) and "crc32" not in top  # crc32 ran paused
    svgs = [o.data["image/svg+xml"] for o in tagged(notebook, "flame").outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 1 and 'data-n="deflate"' in svgs[0]
    # level 1 compresses with deflate_fast, the default level with deflate_slow: new in B, gone from A
    diff = shown(tagged(notebook, "diff"))
    assert re.search(r"^deflate_fast .* new ", diff, re.M) and re.search(r"^deflate_slow .* -100.0% ", diff, re.M)


ERRORS = [
    "%load_ext cprof\nimport cprof",
    "%%cprof\nint main(void) {\n    return undeclared;\n}\n",
    "'cprof_run' in dir()",
    "%%cprof --repeat two\nint main(void) { return 0; }\n",
    "%cprof",
    "%%cprof --out first -O0 --args 'a b'\nint twice(int x) { return 2 * x; }\n"
    "int main(int argc, char **argv) { int s = 0; for (int i = 0; i < 1000; i++) s += twice(i); "
    "return argc == 3 ? 0 : 1; }\n",
    "import os; first.function('twice').calls, first.exit_status, os.path.isfile('.cprof/cells/cell.c')",
    "%cprof report no-such-tag",
    "%%cprof --args 'unbalanced\nint main(void) { return 0; }\n",
    "%%cprof --repeat 2 --tag two --trace --out grouped\nint one(void) { return 1; }\n"
    "int main(void) { return one() - 1; }\n",
    "grouped.is_group, len(grouped.model.runs), grouped.function('one').calls, cprof.load('two').id == grouped.id",
]


def test_magic_errors_end_the_cell_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CPROF_HOME", raising=False)  # the kernel's store: .cprof in its working directory
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in ERRORS])
    cells = execute(notebook, str(tmp_path), allow_errors=True).cells
    for cell in cells:
        assert "Traceback" not in shown(cell) and all(len(e.traceback) == 1 for e in errors(cell)), cell.source
    compile_error = cells[1]
    assert [e.traceback for e in errors(compile_error)] == [["cprof: error: compiling cell.c failed "
                                                            "(compiler exit status 1)"]]
    # the compiler's own message, pointing at the line of the cell (the magic line is not one of them)
    assert re.search(r"^cell\.c:2:\d+: error: .undeclared. undeclared", shown(compile_error), re.M)
    assert shown(cells[2]).strip() == "False"  # a failed cell stores no run
    assert errors(cells[3])[0].traceback[0].startswith("cprof: error: %%cprof: argument --repeat: invalid int")
    assert errors(cells[4])[0].traceback[0].startswith("cprof: error: usage: %cprof report")
    # a good cell after the failed ones: its run is in the store in the kernel's working directory
    assert not errors(cells[5]) and shown(cells[6]).strip() == "(1000, 0, True)"
    assert re.match(r"cprof: error: .*'no-such-tag'", errors(cells[7])[0].traceback[0])
    assert errors(cells[8])[0].traceback[0].startswith("cprof: error: cannot split")
    assert not errors(cells[9]) and shown(cells[10]).strip() == "(True, 2, 1, True)"
    assert os.path.isdir(tmp_path / ".cprof" / "runs")


def test_import_cprof_stays_light():
    """`%load_ext cprof` finds load_ipython_extension, yet a plain `import cprof` loads neither IPython nor the API."""
    code = ("import sys, cprof; print([m for m in ('IPython', 'cprof.api') if m in sys.modules], "
            "cprof.load_ipython_extension.__module__)")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "[] cprof.jupyter"
