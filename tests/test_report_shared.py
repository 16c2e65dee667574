"""Shared pieces of rfkit.report: DOT rendering from a source, the one formatting module, the one ERF summary
row, the shared file helpers and the public figure style API; each checked against hand-written values."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rfkit import formatting as F
from rfkit.errors import GraphvizNotFoundError, RenderError
from rfkit.report import dot as dot_module
from rfkit.report import summary as S

# ------------------------------------------------------------------------------------------------- DOT


def test_render_dot_writes_a_given_source_once(tmp_path, monkeypatch):
    import torch.nn as nn

    import rfkit

    g = rfkit.trace(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)), input_size=8)
    calls = []
    real = dot_module.to_dot
    monkeypatch.setattr(dot_module, "to_dot", lambda *a, **k: calls.append(1) or real(*a, **k))
    source = "digraph rfkit {\n  a -> b;\n}\n"
    assert dot_module.render_dot(source, tmp_path / "g.gv").read_text() == source
    assert calls == []  # rendering a source never draws the graph again
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        dot_module.render_dot(source, tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_text() == source and not (tmp_path / "g.svg").exists()
    with pytest.raises(RenderError, match="'jpg' is not one of"):
        dot_module.render_dot(source, tmp_path / "g.jpg")
    with pytest.raises(RenderError, match="'jpg' is not one of"):  # refused before the graph is drawn
        dot_module.render(g, tmp_path / "g.jpg")
    assert calls == [] and not (tmp_path / "g.jpg").exists()


# ---------------------------------------------------------------------------------------- formatting


GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """tests/golden/tiny_net.py: layer 2 has RF 7, stride 2, ERF 7x7 (ratio 1), RepLKNet area 25/256 at 16x16."""
    shutil.copy(GOLDEN / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    return "tiny_net.py:build"


def cli(*args):
    from typer.testing import CliRunner

    from rfkit_cli.app import app, normalise_argv

    return CliRunner().invoke(app, normalise_argv(list(args)))


def test_numbers_read_the_same_in_every_form():
    inf, nan = float("inf"), float("nan")
    assert [F.num(v) for v in (3, 3.0, 2.5, 2 / 3, None, nan, inf, "inf")] == [
        "3",
        "3",
        "2.5",
        "0.67",
        "–",
        "?",
        "∞",
        "∞",
    ]
    assert F.size((inf, inf)) == "global" and F.size((inf, 7)) == "∞×7" and F.size((nan, nan)) == "?×?"
    assert F.pair((inf, inf), all_inf="unbounded") == "unbounded" and F.pair((224, 192)) == "224×192"
    # an RF read back from metrics.json (infinity as "inf", NaN as None) reads like the RFInfo it came from
    assert F.rf_label(("inf", "inf"), (16, 16), True) == F.rf_label((inf, inf), (16.0, 16.0), True)
    assert F.rf_label((None, None)) == F.rf_label((nan, nan)) == "?×?"
    assert F.ratio((1.0, 0.5)) == "1.00, 0.50"  # a ratio never reads like a size
    assert F.fixed(0.0977, 4) == "0.0977" and F.mean(np.array([[1.0, np.nan], [2.0, 3.0]])) == "2"


def test_summary_row_of_a_global_layer_and_of_an_unknown_rf():
    row = {"layer": "head", "is_global": True, "rf_h": None, "rf_w": None, "rf_local_h": 16, "rf_local_w": 12}
    row |= {"erf_rf_ratio_h": None, "erf_input_ratio_h": 0.9, "erf_input_ratio_w": 0.45, "gauss_like": None}
    cells = S.summary_row(row)
    assert cells[S.RF] == "global (local 16×12)" and cells[S.ERF_RF] == "0.90, 0.45 of the input"
    assert cells[S.NOTES] == ""  # no fit made: nothing to say about it
    assert S.STATUS not in cells and list(cells)[0] == S.LAYER
    unknown = S.summary_row({"layer": "x", "rf_h": float("nan"), "rf_w": float("nan"), "status": "unknown"})
    assert unknown[S.RF] == "?×?" and unknown[S.STATUS] == "unknown" and unknown[S.ERF_RF] == "–"


def test_cli_report_and_site_print_the_same_summary_cells(tiny, tmp_path):
    r = cli("erf", tiny, "--trust", "-l", "2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu")
    assert r.exit_code == 0, r.output
    r2 = cli(
        "analyze", tiny, "--trust", "-l", "0,2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu"
    )
    assert r2.exit_code == 0, r2.output
    folder = tmp_path / "rfkit-reports" / "tiny_net-build"
    rows = [line for line in (folder / "report.md").read_text().splitlines() if line.startswith("| `2` |")]
    where, used = ([c.strip() for c in row.strip("|").split("|")] for row in rows[:2])  # the two summary tables
    # by hand (tests/test_analyze.py): RF 7×7, stride 2×2, the symmetric ERF centred on the unit's centre
    # (8, 8), ERF 7×7, ERF/RF 1 per axis, area 25/256
    assert where[2:] == ["4, 4", "8, 8", "7×7", "2×2"] and used[1:5] == ["8, 8", "7×7", "1.00, 1.00", "0.0977"]
    terminal = [[c.strip() for c in line.strip("│").split("│")] for line in r.output.splitlines() if "│ 2 " in line]
    assert terminal[0] == ["2", *where[2:]] and terminal[1][:5] == ["2", *used[1:5]]  # the same two tables
    r3 = cli("report", str(folder), "--site", str(tmp_path / "site"))
    assert r3.exit_code == 0, r3.output
    home = (tmp_path / "site" / "docs" / "index.md").read_text()
    assert "| `2`: 7×7 | 1.00, 1.00 | 2 productive, of 2 layers |" in home
    assert "| `2`: 7×7 | 1.00, 1.00 |" in (tmp_path / "site" / "docs" / "compare.md").read_text()


# ------------------------------------------------------------------------------- shared files, style API


def test_no_module_imports_another_modules_private_names():
    """Report and CLI modules use the public API of the modules they import (no ``from rfkit.x import _helper``)."""
    import ast

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in [*(root / "rfkit" / "report").rglob("*.py"), *(root / "rfkit_cli").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("rfkit", "rfkit_cli")):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                offenders += [f"{path.relative_to(root)}: {name}" for name in private]
    assert offenders == []


def test_output_folders_share_one_refusal_and_one_manifest_reader(tmp_path):
    import re

    from rfkit.io import OutputError
    from rfkit.report.files import check_output_folder, read_manifest

    own = re.compile(r"a\.csv|maps/[a-z]+\.npy")
    assert read_manifest(tmp_path / "none.json", own) == set()
    (tmp_path / "m.json").write_text('{"files": ["a.csv", "maps/x.npy", "../evil", 3]}')
    assert read_manifest(tmp_path / "m.json", own) == {"a.csv", "maps/x.npy"}
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert read_manifest(tmp_path / "bad.json", own) is None
    report = tmp_path / "report"
    report.mkdir()
    (report / "run.json").write_text("{}")
    for command in ("rfkit erf", "rfkit attribute"):
        for target in (report, report / "sub"):
            with pytest.raises(OutputError, match=f"finished `rfkit analyze` report.*{command} does not write"):
                check_output_folder(target, command, [], set(), "m.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("mine?")
    with pytest.raises(OutputError, match="already holds a.csv that rfkit did not write"):
        check_output_folder(out, "rfkit erf", ["a.csv"], set(), "m.json")
    assert check_output_folder(out, "rfkit erf", ["a.csv"], {"a.csv"}, "m.json") == out
    with pytest.raises(OutputError, match="m.json was not written by rfkit attribute"):
        check_output_folder(out, "rfkit attribute", ["a.csv"], None, "m.json")
    (out / "maps").write_text("a file where a folder goes")
    with pytest.raises(OutputError, match="maps is not a folder"):
        check_output_folder(out, "rfkit erf", [], set(), "m.json", subfolders=("maps",))


def test_labels_flag_random_weights_from_any_form():
    from types import SimpleNamespace

    from rfkit.report.figures.labels import is_random, suspect_warnings

    weights = SimpleNamespace(kind="random", description="random init")  # a WeightsInfo, as far as labels care
    assert is_random(weights) and is_random(SimpleNamespace(weights=weights)) and is_random("random-safe")
    assert not is_random(SimpleNamespace(kind="pretrained")) and not is_random(None)
    assert suspect_warnings(["center_outside_image: x", "off_center: y"]) == ["off_center: y"]
