"""Every notebook in notebooks/ runs top to bottom, and is committed in a form that stays reviewable.

The code cells are executed in order in one namespace with plain ``exec`` (no Jupyter kernel, so no new
dependency), in a temporary working directory, with matplotlib's Agg backend. Notebooks must therefore be plain
Python: no ``%magics``, no ``!shell`` lines, no ``display()`` (a figure as a cell's last expression is fine:
Jupyter shows it, ``exec`` ignores it).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
MAX_BYTES = 64_000  # outputs stripped, or small
BUDGET_S = 120  # each notebook is meant to run in well under a minute on one CPU core; this only catches blow-ups


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # anything a notebook writes lands in a temporary folder ...
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # ... tempfile.mkdtemp() included
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__notebook__"}
    start = time.perf_counter()
    try:
        for i, cell in enumerate(c for c in _cells(path) if c["cell_type"] == "code"):
            source = "".join(cell["source"])
            exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)  # noqa: S102
    finally:
        plt.close("all")
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.0f} s"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    """nbformat 4 structure, plain-Python code cells, small files (outputs stripped or small)."""
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["language"] == "python"
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes: strip the outputs"
    assert nb["cells"] and nb["cells"][0]["cell_type"] == "markdown", "start with a title cell"
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], (list, str))
        if cell["cell_type"] == "code":
            assert "outputs" in cell and "execution_count" in cell
            for line in "".join(cell["source"]).splitlines():
                assert not line.lstrip().startswith(("%", "!")), f"{path.name}: IPython-only line {line!r}"
            for out in cell["outputs"]:
                assert not any(k.startswith("image/") for k in out.get("data", {})), (
                    f"{path.name}: committed image output; strip it"
                )


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "cnn_vs_vit.ipynb", "low_resolution.ipynb"} <= names
