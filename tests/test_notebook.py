"""examples/quickstart.ipynb: the cells of examples/quickstart_tour.py, stored without
outputs, and it runs: every cell executes in a fresh kernel and each figure cell shows
a figure."""

import json
import os
import sys

import pytest

nbclient = pytest.importorskip("nbclient", reason="the test extra's nbclient is not installed")
nbformat = pytest.importorskip("nbformat", reason="the test extra's nbformat is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)

import make_notebook  # noqa: E402


def test_the_notebook_is_the_script_and_runs(tmp_path, monkeypatch):
    with open(make_notebook.NOTEBOOK, encoding="utf-8") as handle:
        stored = json.load(handle)
    with open(make_notebook.SCRIPT, encoding="utf-8") as handle:
        expected = make_notebook.notebook_of(handle.read())
    assert [(c["cell_type"], "".join(c["source"])) for c in stored["cells"]] == [
        (c.cell_type, c.source) for c in expected.cells], "run examples/make_notebook.py"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in stored["cells"] if c["cell_type"] == "code"), "stored with outputs"
    book = nbformat.read(make_notebook.NOTEBOOK, as_version=4)
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    figures = [cell for cell in book.cells if cell.cell_type == "code"
               and cell.source.rstrip().endswith("\nfigure")]
    assert len(figures) == 6
    for cell in figures:
        assert any("image/png" in output.get("data", {}) for output in cell.outputs), cell.source
    printed = "".join(output.get("text", "") for cell in book.cells
                      for output in cell.get("outputs", []))
    assert "relative error per map" in printed and "AUPC" in printed
    assert sorted(os.listdir(tmp_path / "quickstart_figures")) == [
        "attributions.png", "aupc_curves.png", "features.png", "mobilenet_v2.png",
        "series.png", "tokens.png"]
