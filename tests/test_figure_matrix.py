"""Every figure type x style x hostile case keeps its texts and legends on the canvas, apart from each other,
and leaves no ink on the PNG's border (``figure_lint.py``'s rule); grids show every panel; small RFs and ERFs
are zoomed; random weights are tagged on every panel.

The inputs are built by hand (maps of known Gaussians, RFs of known windows: ``test_figures.make_result``) or
from tiny nets, so the whole matrix renders in seconds: small maps, Agg canvases, PNGs at 40 dpi.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from test_figures import gaussian_map, make_result, rf_info

import rfkit
from rfkit.report import figures as F

LONG = "a_rather_long_model_name_patch16_224.augreg2_in21k_ft_in1k"
LINT_CANDIDATES = [Path(__file__).resolve().parents[n] / "shared" / "tools" / "figure_lint.py" for n in (2, 3)]


def _figure_lint():
    """``figure_lint.py`` from ``../shared/tools`` beside the clone (imported by path), or None."""
    path = next((p for p in LINT_CANDIDATES if p.is_file()), None)
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("figure_lint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LINT = _figure_lint()


# --------------------------------------------------------------------------------------------- checks


def _boxes(fig):
    """Every visible, non-empty text and every legend of ``fig`` with its window extent (display px)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks, drawn = set(), set()  # tick labels exist beyond the view limits too, undrawn: keep the drawn ones
    for axis in fig.findobj(matplotlib.axis.Axis):
        ticks |= {lab for t in axis.majorTicks + axis.minorTicks for lab in (t.label1, t.label2)}
        drawn |= {lab for t in axis._update_ticks() for lab in (t.label1, t.label2)}
    texts = []
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text().strip() or (t in ticks and t not in drawn):
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        box = t.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            texts.append((t, box))
    legends = [(leg, leg.get_window_extent(renderer)) for leg in fig.findobj(matplotlib.legend.Legend)]
    return texts, legends


def _overlap(a, b, tol: float = 1.0) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def layout_problems(fig) -> list[str]:
    """Texts or legends leaving the canvas, texts overlapping, legends covering a text that is not theirs."""
    texts, legends = _boxes(fig)
    canvas = fig.bbox
    problems = []
    for artist, box in texts + legends:
        if box.x0 < canvas.x0 - 0.5 or box.y0 < canvas.y0 - 0.5 or box.x1 > canvas.x1 + 0.5 or box.y1 > canvas.y1 + 0.5:
            name = artist.get_text() if hasattr(artist, "get_text") else "legend"
            problems.append(f"off the canvas: {name!r} {box.bounds} of {canvas.bounds}")
    for (a, ba), (b, bb) in itertools.combinations(texts, 2):
        if _overlap(ba, bb):
            problems.append(f"overlap: {a.get_text()!r} / {b.get_text()!r}")
    for leg, lb in legends:
        own = set(leg.get_texts()) | {leg.get_title()}
        for t, tb in texts:
            if t not in own and _overlap(lb, tb):
                problems.append(f"legend covers {t.get_text()!r}")
    return problems


def check(fig, tmp_path, name: str) -> None:
    """The layout of ``fig`` is clean and its PNG has no ink on its outer 2 px."""
    assert layout_problems(fig) == [], name
    path = F.save_figure(fig, tmp_path / f"{name}.png")  # at the resolution of its style, as figure_lint sees it
    if LINT is not None:
        assert LINT.border_ink(path) <= 0.0002, f"{name}: ink on the PNG's border"


def test_figure_lint_is_found_or_the_border_check_is_skipped():
    if LINT is None:
        pytest.skip(f"figure_lint.py not found beside the clone ({LINT_CANDIDATES[0]}): border-ink rule not run")
    assert callable(LINT.border_ink)


# ------------------------------------------------------------------------------------------ the cases

S = 48  # input side of the hand-built CNN cases


def _blob(shape, cy, cx, sigma, peak=1.0):
    return peak * gaussian_map(cy, cx, sigma, sigma, 0.0, shape=shape)


def hand_cases() -> dict:
    """Results built by hand, one layer each unless said: name -> (result, layer)."""
    shape = (S, S)
    tiny = make_result({"t": _blob(shape, 24, 24, 0.8)}, {"t": rf_info(3, 1, -1, 1)}, {"t": (24, 24)}, fit=False)
    huge = make_result({"h": _blob(shape, 24, 24, 12)}, {"h": rf_info(435, 32, -217, 217)}, {"h": (0, 0)})
    glob = make_result(
        {"g": _blob(shape, 24, 24, 20)}, {"g": rf_info(21, 4, -10, 10, is_global=True, local=21)}, {"g": (6, 6)}
    )
    off = make_result({"o": _blob(shape, 3, 44, 2)}, {"o": rf_info(7, 1, -3, 3)}, {"o": (3, 44)}, fit=False)
    yolo_shape = (640, 640)  # YOLO-like: a 40 px ERF blob in a 640 px frame under a 900 px RF
    yolo = make_result(
        {"y": _blob(yolo_shape, 320, 320, 9)}, {"y": rf_info(901, 32, -450, 450)}, {"y": (10, 10)}, fit=False
    )
    long = dataclasses.replace(huge, model=LONG)
    random = dataclasses.replace(tiny, weights=dataclasses.replace(tiny.weights, kind="random"))
    return {
        "tiny": (tiny, "t"),
        "huge": (huge, "h"),
        "global": (glob, "g"),
        "off-centre": (off, "o"),
        "yolo640": (yolo, "y"),
        "long-name": (long, "h"),
        "random": (random, "t"),
    }


CASES = hand_cases()


def yolo_grid(kind="pretrained"):
    """Four YOLO-like stage maps at 640 px whose peaks differ 1, 60, 600 and 6000 times (as measured)."""
    shape = (640, 640)
    peaks = {"16": 1.0, "19": 1 / 60, "22": 1 / 600, "13": 1 / 6000}
    maps = {k: _blob(shape, 320, 320, 6 + 4 * i, p) for i, (k, p) in enumerate(peaks.items())}
    infos = {k: rf_info(301 + 200 * i, 8 * 2**i, -150 - 100 * i, 150 + 100 * i) for i, k in enumerate(maps)}
    units = {k: (320 // (8 * 2**i), 320 // (8 * 2**i)) for i, k in enumerate(maps)}
    return make_result(maps, infos, units, kind=kind, fit=False)


def many_layers(n=12):
    """``n`` layers with RFs from 3 px (tiny) to far beyond the 48 px input, long layer names."""
    shape = (S, S)
    names = [f"stages.{i // 3}.blocks.{i % 3}.conv_pwl" for i in range(n)]
    maps = {k: _blob(shape, 24, 24, 0.8 + 2.5 * i) for i, k in enumerate(names)}
    infos = {k: rf_info(3 + 16 * i, 2 ** min(i, 5), -(1 + 8 * i), 1 + 8 * i) for i, k in enumerate(names)}
    units = {k: (24 // 2 ** min(i, 5), 24 // 2 ** min(i, 5)) for i, k in enumerate(names)}
    return make_result(maps, infos, units, fit=False)


@pytest.fixture(scope="module")
def vit():

    return rfkit.erf(
        "test_vit",
        layers="stages",
        images=rfkit.Images("noise", 1),
        weights="random",
        runtime="cpu",
    )


@pytest.fixture(scope="module")
def tiny_net():
    """A measured 5-layer net at 48 px with bootstrap curves (the growth and convergence figures need a graph and
    curves): layer 0 RF 3, layer 4 RF 117."""
    import torch.nn as nn

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=4, dilation=4),
        nn.Conv2d(4, 4, 3, padding=8, dilation=8),
        nn.Conv2d(4, 4, 3, padding=16, dilation=16),
    )
    res = rfkit.erf(net, layers=["0", "4"], images=rfkit.Images("noise", 4, input_size=S), runtime="cpu")
    return dataclasses.replace(res, model=LONG)


STYLES = ["report", "paper"]


# ------------------------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", list(CASES))
def test_overlay_matrix(case, style, tmp_path):
    result, layer = CASES[case]
    fig = F.overlay_figure(result, layer, style=style)
    if style == "paper":
        assert fig.get_size_inches()[0] == pytest.approx(3.3)  # one column, whatever it holds
    check(fig, tmp_path, f"overlay-{case}-{style}")


def test_overlay_matrix_vit(vit, tmp_path):
    for style in STYLES:
        check(F.overlay_figure(vit, vit.layers[0], style=style), tmp_path, f"overlay-vit-{style}")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", ["one", "twelve", "yolo", "mixed", "long-name"])
def test_stage_grid_matrix(case, style, tmp_path):
    mixed = make_result(
        {k: CASES[k][0].maps[CASES[k][1]] for k in ("tiny", "huge", "global", "off-centre")},
        {k: CASES[k][0].graph[CASES[k][1]] for k in ("tiny", "huge", "global", "off-centre")},
        {k: CASES[k][0].unit[CASES[k][1]] for k in ("tiny", "huge", "global", "off-centre")},
        fit=False,
    )
    result = {
        "one": CASES["huge"][0],
        "twelve": many_layers(),
        "yolo": yolo_grid(),
        "mixed": mixed,
        "long-name": dataclasses.replace(mixed, model=LONG),
    }[case]
    fig = F.stage_grid_figure(result, style=style)
    if style == "paper":
        assert fig.get_size_inches()[0] == pytest.approx(6.9)  # two columns
    check(fig, tmp_path, f"stages-{case}-{style}")


def test_stage_grid_matrix_vit(vit, tmp_path):
    for style in STYLES:
        check(F.stage_grid_figure(vit, style=style), tmp_path, f"stages-vit-{style}")


@pytest.mark.parametrize("style", STYLES)
def test_growth_and_convergence_matrix(tiny_net, vit, style, tmp_path):
    for name, res in (("cnn", tiny_net), ("vit", vit)):
        fig = F.rf_growth_figure(res.graph, res, style=style)
        panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
        width = fig.get_size_inches()[0]
        for ax in panels:  # never squashed by the names under it or the legend: at least 0.62 of its width
            box = ax.get_window_extent()
            assert box.height >= 0.6 * box.width, (name, style, box.bounds)
        check(fig, tmp_path, f"growth-{name}-{style}")
        assert width == pytest.approx(3.3) if style == "paper" else True
    from rfkit.report.figures.convergence import convergence_figure

    check(convergence_figure(tiny_net, style=style), tmp_path, f"convergence-{style}")


def _analysis(folder: Path, model: str, kind: str, cells: list[tuple[str, np.ndarray, dict]]):
    """An analysis folder written by hand (maps/*.npy) and its :class:`~rfkit.report.site.Analysis`."""
    from rfkit.report.site import Analysis

    (folder / "maps").mkdir(parents=True)
    rows = []
    for layer, m, row in cells:
        np.save(folder / "maps" / f"{layer}.npy", m)
        rows.append({"layer": layer, **row})
    h, w = cells[0][1].shape
    header = {"model": model, "weights": kind, "weights_kind": kind, "input_size": [h, w], "num_images": 1}
    (folder / "header.json").write_text(json.dumps(header))
    return Analysis(folder, header, tuple(rows))


def _row(first, last, centre, side, fraction, is_global=False):
    return {
        "rf_first_y": first,
        "rf_last_y": last,
        "rf_first_x": first,
        "rf_last_x": last,
        "rf_h": last - first + 1,
        "rf_w": last - first + 1,
        "center_y": centre,
        "center_x": centre,
        "centroid_y": centre,
        "centroid_x": centre,
        "erf_side_h": side,
        "erf_side_w": side,
        "depth_fraction": fraction,
        "is_global": is_global,
    }


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    """A ViT-like row at 224 px (its patch: RF 16, ERF 16, then global) and a CNN row at 48 px of random
    weights with a long name: the rfkit figure grid's hostile cases."""
    out = tmp_path_factory.mktemp("analyses")
    v = 224
    vit_cells = [
        ("patch_embed", _blob((v, v), 104, 104, 3), _row(96, 111, 103.5, 16, 0.1)),
        ("blocks.2", _blob((v, v), 112, 112, 40, 0.01), _row(0, 223, 111.5, 150, 0.5, True)),
        ("blocks.5", _blob((v, v), 112, 112, 50, 0.01), _row(0, 223, 111.5, 180, 0.75, True)),
        ("norm", _blob((v, v), 112, 112, 60, 0.01), _row(0, 223, 111.5, 200, 1.0, True)),
    ]
    cnn_cells = [
        ("0", _blob((S, S), 24, 24, 0.8), _row(23, 25, 24, 3, 0.25)),
        ("2", _blob((S, S), 24, 24, 3), _row(19, 29, 24, 9, 0.5)),
        ("3", _blob((S, S), 24, 24, 8), _row(-10, 58, 24, 25, 0.75)),
        ("4", _blob((S, S), 24, 24, 12), _row(-34, 82, 24, 40, 1.0)),
    ]
    return [
        _analysis(out / "vit", "vit_tiny_patch16_224", "pretrained", vit_cells),
        _analysis(out / "cnn", LONG, "random", cnn_cells),
    ]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("layers", ["final", "stages"])
def test_comparison_matrix(analyses, layers, style, tmp_path):
    from rfkit.report.figures.compare import comparison_figure

    fig = comparison_figure(analyses, layers, style=style)
    if style == "paper":  # one column for one layer, two for more
        assert fig.get_size_inches()[0] == pytest.approx(3.3 if layers == "final" else 6.9)
    check(fig, tmp_path, f"compare-{layers}-{style}")


# ------------------------------------------------------------------------------ scales, zoom, markers, tags


def panels(fig) -> list:
    return [a for a in fig.axes if any(i.get_gid() == "erf-map" for i in a.get_images())]


def test_yolo_grid_shows_every_panel_on_its_own_scale_by_default():
    res = yolo_grid()
    fig = F.stage_grid_figure(res)
    ims = [next(i for i in ax.get_images() if i.get_gid() == "erf-map") for ax in panels(fig)]
    # peaks 1, 1/60, 1/600, 1/6000: 6000x apart, more than the 10x one scale allows -> each over its own max
    assert [float(np.max(im.get_array())) for im in ims] == pytest.approx([0.0] * 4)
    title = fig.subfigs[0]._suptitle.get_text().replace("\n", " ")
    assert "each panel on its own colour scale" in title and "6000×" in title and "one colour scale" not in title
    assert "each panel's own max" in fig.axes[-1].get_ylabel().replace("\n", " ")


def test_a_shared_scale_on_request_reaches_the_weakest_panel():
    res = yolo_grid()
    fig = F.stage_grid_figure(res, shared=True)
    ims = [next(i for i in ax.get_images() if i.get_gid() == "erf-map") for ax in panels(fig)]
    # floor: 1e-3 below the weakest peak, 1/6000 -> 1.7e-7, down to a whole decade: 1e-7
    assert (ims[0].norm.vmin, ims[0].norm.vmax) == (-7.0, 0.0)
    by_hand = [0.0, -math.log10(60), -math.log10(600), -math.log10(6000)]
    assert [float(np.max(im.get_array())) for im in ims] == pytest.approx(by_hand, abs=1e-9)
    assert all(float(np.max(im.get_array())) - im.norm.vmin > 3 for im in ims)  # three decades of each map show
    title = fig.subfigs[0]._suptitle.get_text().replace("\n", " ")
    assert "one colour scale for all panels" in title and "max over all panels" in title


def test_peaks_within_ten_times_share_one_scale():
    maps = {k: _blob((S, S), 24, 24, 6, p) for k, p in (("a", 1.0), ("b", 0.2))}
    res = make_result(maps, {k: rf_info(41, 8, -20, 20) for k in maps}, {k: (3, 3) for k in maps}, fit=False)
    ims = [next(i for i in ax.get_images() if i.get_gid() == "erf-map") for ax in panels(F.stage_grid_figure(res))]
    assert [float(np.max(im.get_array())) for im in ims] == pytest.approx([0.0, math.log10(0.2)])


def test_small_erfs_are_zoomed_and_markers_leave_them_visible(analyses):
    from rfkit.report.figures.compare import comparison_figure
    from rfkit.report.figures.style import reticle_marker

    res = yolo_grid()  # 640 px frame: ERF blobs 6-18 px sigma (about 30-90 px), RF 300-900 px
    for ax in panels(F.stage_grid_figure(res)):
        assert [c.get_gid() for c in ax.child_axes] == ["zoom-inset"]
        assert any(c.get_gid() == "scale-bar" for c in ax.child_axes[0].get_children())
    fig = comparison_figure(analyses, "stages")
    vit_patch = panels(fig)[0]  # the ViT's 16 px patch in 224 px: zoomed, and no marker on its few pixels
    assert [c.get_gid() for c in vit_patch.child_axes] == ["zoom-inset"]
    assert not [line for line in vit_patch.lines if line.get_gid() == "rf-center"]
    verts = reticle_marker().vertices  # the centre marker's arms stop 0.45 of their reach from the centre
    assert float(np.hypot(*verts.T).min()) == pytest.approx(0.45)


@pytest.mark.parametrize("style", STYLES)
def test_random_init_is_tagged_on_every_panel(style, analyses):
    from rfkit.report.figures.compare import comparison_figure

    random = CASES["random"][0]
    figs = [F.stage_grid_figure(random, style=style), F.overlay_figure(random, "t", style=style)]
    for fig in figs:
        for ax in panels(fig):
            assert [t.get_text() for t in ax.texts if t.get_gid() == "random-tag"] == ["random init"]
    trained = F.stage_grid_figure(CASES["tiny"][0], style=style)
    assert not [t for t in trained.findobj(matplotlib.text.Text) if t.get_gid() == "random-tag"]
    fig = comparison_figure(analyses, "final", style=style)  # row 0 trained, row 1 random
    tags = [[t for t in ax.texts if t.get_gid() == "random-tag"] for ax in panels(fig)]
    assert [len(t) for t in tags] == [0, 1]
