"""Report folders from someone else (issue 19, items 2 and 6): a site carries only what rfkit can vouch for,
and crafted values in run.json / metrics.json never crash ``rfkit report`` or ``rfkit figure``.

The report is tests/golden/tiny_net.py measured at 16x16 on layers 0 and 2 (RF 3 and 7, see
tests/test_analyze.py). Each crafted case changes one value of a copy of it; the checks of
:mod:`rfkit.report.schema` must name the first bad value, the folder is left out of a site with one warning,
``rfkit figure`` on it alone fails in one line with exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rfkit.analysis import analyze as analyze_mod
from rfkit.report.schema import MAX_SIDE, MAX_TEXT
from rfkit.report.svg import SVGError, clean_svg
from rfkit_cli.app import main

GOLDEN = Path(__file__).parent / "golden"


def cli(capsys, *args):
    """Run ``rfkit ARGS`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    cap = capsys.readouterr()
    return exc.value.code or 0, cap.out, cap.err


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """One finished report of tiny_net (copied by the tests, never changed)."""
    root = tmp_path_factory.mktemp("report")
    shutil.copy(GOLDEN / "tiny_net.py", root / "tiny_net.py")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rep = analyze_mod.analyze(
            "tiny_net.py:build", layers=["0", "2"], images="noise", num_images=2, input_size=16, device="cpu",
            out=root / "out", trust=True,
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    return rep.folder


def _copy(report_dir: Path, dest: Path) -> Path:
    shutil.copytree(report_dir, dest)
    return dest


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    doc = json.loads(path.read_text())
    out = change(doc)
    path.write_text(out if isinstance(out, str) else json.dumps(doc))


def _set(*keys, value):
    """A change that sets ``doc[k0][k1]...`` to ``value`` (a key of None: delete the last key)."""

    def change(doc):
        for k in keys[:-1]:
            doc = doc[k]
        if value is _DELETE:
            del doc[keys[-1]]
        else:
            doc[keys[-1]] = value

    return change


def _raw(text):
    """A change that replaces the file with ``text`` (JSON that json.dumps would not write)."""
    return lambda doc: text


def _replace(old, new):
    """A change of the file's text: its first ``old`` becomes ``new``."""
    return lambda doc: json.dumps(doc).replace(old, new, 1)


_DELETE = object()
ROW = ("layers", "2")
HUGE_INT = 10**400  # more than a float holds
NESTED = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": 1}}}}}}}}}}}  # 11 deep

CASES = [
    # run.json: the input size
    ("run.json", "input_size[0]", _set("input_size", 0, value=HUGE_INT)),
    ("run.json", "input_size[0]", _set("input_size", value=[0, 16])),
    ("run.json", "input_size[1]", _set("input_size", value=[16, 10**6])),
    ("run.json", "input_size[0]", _set("input_size", value=[-16, 16])),
    ("run.json", "input_size[0]", _set("input_size", value=[16.5, 16])),
    ("run.json", "input_size[0]", _set("input_size", value=[True, 16])),
    ("run.json", "input_size", _set("input_size", value="16x16")),
    ("run.json", "input_size", _set("input_size", value={"h": 16, "w": 16})),
    ("run.json", "input_size", _set("input_size", value=[])),
    ("run.json", "input_size", _set("input_size", value=_DELETE)),
    ("run.json", "input_size[0]", _replace('"input_size": [16', '"input_size": [1e400')),
    # run.json: texts, lists and objects
    ("run.json", "model", _set("model", value=5)),
    ("run.json", "model", _set("model", value=_DELETE)),
    ("run.json", "model", _set("model", value="x" * (MAX_TEXT + 1))),
    ("run.json", "weights_kind", _set("weights_kind", value=["random"])),
    ("run.json", "warnings", _set("warnings", value="one warning")),
    ("run.json", "warnings[0]", _set("warnings", value=[{"a": 1}])),
    ("run.json", "files", _set("files", value={"report.md": 1})),
    ("run.json", "productivity.productive", _set("productivity", "productive", value="2")),
    ("run.json", "productivity", _set("productivity", value=[2])),
    ("run.json", "num_images", _replace('"num_images": 2', '"num_images": 1e400')),
    ("run.json", "num_images", _set("num_images", value=-2)),
    ("run.json", "input_range.max", _set("input_range", value={"min": [4, 4]})),
    ("run.json", "input_range.min[0]", _set("input_range", "min", value=["nan", 4])),
    ("run.json", "output.is_global", _set("output", "is_global", value="no")),
    ("run.json", "unsupported[0].op", _set("unsupported", value=[{"op": 5, "count": 1}])),
    ("run.json", "rf_missing", _set("rf_missing", value=["2"])),
    ("run.json", "data_config.a.b", _set("data_config", value=NESTED)),
    ("run.json", "not JSON", _replace('"model":', '"model": NaN, "x":')),
    ("run.json", "nested too deep", _raw("[" * 100_000 + "]" * 100_000)),
    ("run.json", "not an object", _raw("[1, 2]")),
    ("run.json", "not JSON", _raw("{not json")),
    # metrics.json: a layer's row
    ("metrics.json", "rf_h", _set(*ROW, "rf_h", value="nan")),
    ("metrics.json", "rf_h", _set(*ROW, "rf_h", value=-3)),
    ("metrics.json", "rf_w", _set(*ROW, "rf_w", value=HUGE_INT)),
    ("metrics.json", "center_y", _set(*ROW, "center_y", value="8")),
    ("metrics.json", "center_x", _replace('"center_x": 8.0', '"center_x": -1e400')),
    ("metrics.json", "rf_first_y", _set(*ROW, "rf_first_y", value=-1e12)),
    ("metrics.json", "unit_h", _set(*ROW, "unit_h", value=10**20)),
    ("metrics.json", "stride_w", _set(*ROW, "stride_w", value={"a": 1})),
    ("metrics.json", "depth_fraction", _set(*ROW, "depth_fraction", value=5)),
    ("metrics.json", "is_global", _set(*ROW, "is_global", value="false")),
    ("metrics.json", "area_ratio_0.5", _set(*ROW, "area_ratio_0.5", value=[0.1])),
    ("metrics.json", "gauss_r2", _set(*ROW, "gauss_r2", value=HUGE_INT)),
    ("metrics.json", "warnings", _set(*ROW, "warnings", value="w" * (MAX_TEXT + 1))),
    ("metrics.json", "layer", _set(*ROW, "layer", value=_DELETE)),
    ("metrics.json", "its layer is", _set(*ROW, "layer", value="3")),
    ("metrics.json", "layers.2", _set(*ROW, value=[1, 2])),
    ("metrics.json", "layers", _set("layers", value=[{"layer": "2"}])),
    ("metrics.json", "layers", _set("layers", value=_DELETE)),
    ("metrics.json", "run.a.b.c", _set("run", value=NESTED)),
    ("metrics.json", "not an object", _raw("5")),
]
IDS = [f"{i}-{name}-{field}" for i, (name, field, _) in enumerate(CASES)]


def test_the_matrix_names_distinct_cases():
    assert len(CASES) >= 41 and len(set(IDS)) == len(IDS)


@pytest.fixture
def no_comparison(monkeypatch):
    """The site's comparison figures stubbed (drawn and tested in test_compare.py and below): the matrix
    tests what is read, left out and written as pages."""
    import rfkit.report.figures.compare as compare

    monkeypatch.setattr(compare, "save_comparison", lambda analyses, path, *a, **k: [Path(path)])


@pytest.mark.parametrize("name,field,change", CASES, ids=IDS)
def test_a_crafted_folder_is_left_out_of_the_site_and_the_rest_is_built(
    report_dir, tmp_path, capsys, no_comparison, name, field, change
):
    good = _copy(report_dir, tmp_path / "out" / "good")
    bad = _copy(report_dir, tmp_path / "out" / "bad")
    _edit(bad, name, change)
    code, _, err = cli(capsys, "report", tmp_path / "out", "--site", tmp_path / "site")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: skipped {bad}: "), err
    assert f"{name}: {field}" in lines[0] or field in lines[0].split(name, 1)[1], lines[0]
    models = tmp_path / "site" / "docs" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["good"]
    page = (models / "good" / "index.md").read_text()
    assert page == (good / "report.md").read_text()  # the good page: the same writer as report.md


@pytest.mark.parametrize("name,field,change", CASES, ids=IDS)
def test_rfkit_figure_on_a_crafted_folder_is_one_line_and_exit_1(report_dir, tmp_path, capsys, name, field, change):
    bad = _copy(report_dir, tmp_path / "bad")
    _edit(bad, name, change)
    code, out, err = cli(capsys, "figure", bad, "-o", tmp_path / "fig.png")
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no analysis left to show: skipped"), err
    assert str(bad) in lines[0] and field in lines[0] and "internal error" not in err
    assert not (tmp_path / "fig.png").exists()


def test_rfkit_figure_leaves_out_a_crafted_folder_and_draws_the_good_one(report_dir, tmp_path, capsys):
    _copy(report_dir, tmp_path / "out" / "good")
    bad = _copy(report_dir, tmp_path / "out" / "bad")
    _edit(bad, "run.json", _set("input_size", value=[0, 16]))
    code, out, err = cli(capsys, "figure", tmp_path / "out", "-o", tmp_path / "fig.png", "--layers", "final")
    assert code == 0, err
    assert err.startswith(f"warning: skipped {bad}: ") and len(err.strip().splitlines()) == 1
    assert "1 model(s)" in out and (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def _save_npy(path: Path, arr) -> None:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=True)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((3, 3)),  # not the input size
        np.zeros((16, 16), dtype=np.complex128),
        np.full((16, 16), np.nan),
        np.array([[{"a": 1}] * 16] * 16, dtype=object),  # needs pickle
        np.zeros((16, 16, 3)),
    ],
    ids=["shape", "complex", "nan", "object", "3d"],
)
def test_a_crafted_map_leaves_its_panel_empty(report_dir, tmp_path, capsys, arr):
    from rfkit.report.figures.compare import load_cells
    from rfkit.report.site import load_analysis

    folder = _copy(report_dir, tmp_path / "good")
    _save_npy(folder / "maps" / "2.npy", arr)
    (name, cell), = load_cells(load_analysis(folder), "final")  # fmt: skip
    assert name == "final" and cell.row["layer"] == "2" and cell.map is None
    code, _, err = cli(capsys, "figure", folder, "-o", tmp_path / "fig.png", "--layers", "final")
    assert code == 0, err


def test_limits_are_what_the_schema_says():
    from rfkit.report.schema import Bad, check_header

    ok = {"model": "m", "input_size": [MAX_SIDE, 1]}
    assert check_header(ok) is ok
    with pytest.raises(Bad, match=r"input_size\[0\]: 16385 is above 16384"):
        check_header({"model": "m", "input_size": [MAX_SIDE + 1, 1]})
    with pytest.raises(Bad, match=r"input_size\[0\]: an integer of 401 digits is above 16384"):
        check_header({"model": "m", "input_size": [HUGE_INT, 1]})


# ---------------------------------------------------------------------------------------------------------
# nothing live reaches the site


SCRIPT = "<script>alert(1)</script>"


def _site_page(tmp_path: Path, capsys) -> Path:
    code, _, err = cli(capsys, "report", tmp_path / "out", "--site", tmp_path / "site")
    assert code == 0, err
    return tmp_path / "site" / "docs" / "models" / "m"


def test_a_script_in_report_md_does_not_reach_the_site(report_dir, tmp_path, capsys):
    folder = _copy(report_dir, tmp_path / "out" / "m")
    text = (folder / "report.md").read_text()
    (folder / "report.md").write_text(text + f"\n{SCRIPT}\n<img src=x onerror=alert(2)>\n")
    page = _site_page(tmp_path, capsys)
    built = (page / "index.md").read_text()
    assert "<script" not in built and "onerror" not in built
    assert built == text  # rebuilt from the JSON: the report as rfkit wrote it
    assert "| `2` | productive | 4, 4 | 8, 8 | 7×7 | 2×2 |" in built  # layer 2: RF 7, stride 2, unit 4


def test_the_attribution_page_is_not_copied(report_dir, tmp_path, capsys):
    folder = _copy(report_dir, tmp_path / "out" / "m")
    (folder / "attribution").mkdir()
    (folder / "attribution" / "report.md").write_text(SCRIPT)
    _edit(folder, "run.json", lambda doc: doc["files"].append("attribution/report.md"))
    page = _site_page(tmp_path, capsys)
    assert not (page / "attribution").exists()
    assert not [p for p in page.parent.parent.rglob("*") if p.is_file() and SCRIPT.encode() in p.read_bytes()]


GRAPH = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    '<svg width="62pt" height="116pt" viewBox="0.00 0.00 62.00 116.00" xmlns="http://www.w3.org/2000/svg" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" {svg_attr}>\n'
    '<g id="graph0" class="graph" transform="scale(1 1) rotate(0) translate(4 112)">\n'
    "<title>G</title>\n"
    '<g id="node1" class="node"><title>conv_0</title>\n'
    '<ellipse fill="#c6efce" stroke="black" cx="27" cy="-90" rx="27" ry="18"/>\n'
    '<text text-anchor="middle" x="27" y="-86.3" font-family="Times,serif" font-size="14.00">0 RF 3&lt;b&gt;</text>\n'
    "</g>\n{inside}\n</g>\n</svg>\n"
)
HOSTILE = {
    "script": ("", SCRIPT, "alert(1)"),
    "onload": ('onload="alert(3)"', "", "alert(3)"),
    "handler": ("", '<rect width="5" height="5" onclick="alert(4)" onmouseover="alert(5)"/>', "alert("),
    "foreignObject": ("", f"<foreignObject><div>{SCRIPT}</div></foreignObject>", "foreignObject"),
    "external href": ("", '<image xlink:href="http://evil.example/x.png" width="5" height="5"/>', "evil.example"),
    "javascript link": ("", '<a xlink:href="javascript:alert(6)"><text>t</text></a>', "javascript:"),
    "data html": ("", '<image href="data:text/html;base64,PHNjcmlwdD4=" width="5" height="5"/>', "text/html"),
    "style": ("", "<style>@import url(http://evil.example/a.css);</style>", "evil.example"),
    "css url": ("", '<rect fill="url(http://evil.example/#x)" width="5" height="5"/>', "evil.example"),
    "use": ("", '<use href="http://evil.example/s.svg#a"/>', "evil.example"),
    "animate": ("", '<set attributeName="onmouseover" to="alert(7)"/>', "alert(7)"),
}


@pytest.mark.parametrize("svg_attr,inside,trace", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_graph_svg_reaches_the_site_as_a_drawing_only(report_dir, tmp_path, capsys, svg_attr, inside, trace):
    folder = _copy(report_dir, tmp_path / "out" / "m")
    (folder / "graph.svg").write_text(GRAPH.format(svg_attr=svg_attr, inside=inside))
    _edit(folder, "run.json", lambda doc: doc["files"].append("graph.svg"))
    page = _site_page(tmp_path, capsys)
    svg = (page / "graph.svg").read_text()
    assert trace not in svg and "<script" not in svg and " on" not in svg.replace(" one", "")
    assert '<ellipse fill="#c6efce" stroke="black" cx="27" cy="-90" rx="27" ry="18" />' in svg
    assert ">0 RF 3&lt;b&gt;</text>" in svg  # the drawing and its escaped label are kept
    assert "![Graph at module depth 2, coloured by productivity](graph.svg)" in (page / "index.md").read_text()


def test_svg_cleaning_keeps_embedded_png_and_local_gradients_and_refuses_entities():
    png = "data:image/png;base64,iVBORw0KGgo="
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f'<image xlink:href="{png}" width="2" height="2"/><rect fill="url(#g1)" width="1" height="1"/></svg>'
    )
    out = clean_svg(svg)
    assert f'xlink:href="{png}"' in out and 'fill="url(#g1)"' in out
    bomb = '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><svg>&b;</svg>'
    for text, why in [(bomb, "entities"), ("<svg><g></svg>", "not XML"), ("<html/>", "not <svg>")]:
        with pytest.raises(SVGError, match=why):
            clean_svg(text)


def test_a_figure_that_is_not_a_png_is_not_copied_nor_linked(report_dir, tmp_path, capsys):
    folder = _copy(report_dir, tmp_path / "out" / "m")
    (folder / "figures" / "overlay_2.png").write_text(f"<html>{SCRIPT}</html>")
    (folder / "maps" / "2.npy").write_text(SCRIPT)
    page = _site_page(tmp_path, capsys)
    assert not (page / "figures" / "overlay_2.png").exists() and not (page / "maps" / "2.npy").exists()
    assert (page / "figures" / "overlay_0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (page / "index.md").read_text()
    assert "figures/overlay_0.png" in text and "figures/overlay_2.png" not in text
