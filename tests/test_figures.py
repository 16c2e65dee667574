"""Report figures (rfkit.report.figures), checked on the drawn artists against independent truths."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from rfkit.effective.gaussian import GaussianFit
from rfkit.effective.metrics import compute_metrics
from rfkit.effective.result import ERFResult
from rfkit.graph.info import RFInfo
from rfkit.models.weights import WeightsInfo
from rfkit.report import figures as F

H, W = 64, 96  # non-square on purpose: an axis swap cannot hide


# ----------------------------------------------------------------------------------------------- helpers


def rf_info(size, stride, lo, hi, *, is_global=False, local=None) -> RFInfo:
    """A shift-invariant RF: unit u sees pixels lo + u * stride .. hi + u * stride on both axes."""
    return RFInfo(
        size=(math.inf,) * 2 if is_global else (size, size),
        size_min=(size, size),
        local_size=(local or size,) * 2,
        stride=(stride, stride),
        padding=(0, 0),
        center=((lo + hi) / 2, (lo + hi) / 2),
        is_global=is_global,
        windows=(((lo, hi),), ((lo, hi),)),
    )


def gaussian_map(cy, cx, s_major, s_minor, theta, shape=(H, W)):
    """Rotated Gaussian; its major axis points along (cos theta, sin theta) in image (x, y), y down."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dx, dy = xx - cx, yy - cy
    u = math.cos(theta) * dx + math.sin(theta) * dy
    v = -math.sin(theta) * dx + math.cos(theta) * dy
    return np.exp(-0.5 * ((u / s_major) ** 2 + (v / s_minor) ** 2))


def make_result(maps: dict, infos: dict, units: dict, *, kind="pretrained", fit=True, metrics=None) -> ERFResult:
    """An ERFResult built by hand; ``graph`` is a plain dict node -> RFInfo (all ``result.rf`` needs)."""
    shape = next(iter(maps.values())).shape
    centers = {k: tuple(float(c) for c in infos[k].center_of(units[k])) for k in maps}
    if metrics is None:
        metrics = {k: compute_metrics(maps[k], centers[k], rf_size=infos[k].size, fit=fit) for k in maps}
    desc = {"pretrained": "pretrained (timm toy.in1k)", "random": "random init (timm default)"}.get(kind, kind)
    return ERFResult(
        model="toynet",
        maps=maps,
        metrics=metrics,
        num_images=4,
        data_config={"input_size": (3, *shape)},
        weights=WeightsInfo(kind, desc),
        unit=units,
        method="replknet",
        nodes={k: k for k in maps},
        center=centers,
        grid={k: (8, 12) for k in maps},
        images=None,
        graph=dict(infos),
    )


def patch(fig, gid, ax=0):
    found = [p for p in fig.axes[ax].patches if p.get_gid() == gid]
    assert len(found) == 1, [p.get_gid() for p in fig.axes[ax].patches]
    return found[0]


def extent(p) -> tuple:
    """(x_min, x_max, y_min, y_max) of a patch in data coordinates, rounded off float noise."""
    v = data_vertices(p)
    return tuple(round(float(f(v[:, i])), 9) for i in (0, 1) for f in (np.min, np.max))


def data_vertices(p) -> np.ndarray:
    """A patch's outline in data coordinates (curves interpolated by line segments, as drawn)."""
    return p.axes.transData.inverted().transform(p.get_verts())


def texts(fig, gid=None) -> list:
    return [t for t in fig.findobj(matplotlib.text.Text) if gid is None or t.get_gid() == gid]


def all_text(fig) -> str:
    return "\n".join(t.get_text() for t in texts(fig))


@pytest.fixture
def toy():
    """One finite layer (RF 41 px at (32, 48)) with a Gaussian ERF displaced to the right, and one
    global layer (local path 8 px)."""
    info = rf_info(41, 8, -20, 20)  # unit (4, 6) -> rows 12..52, cols 28..68, centre (32, 48)
    ginfo = rf_info(8, 8, 0, 7, is_global=True, local=8)  # unit (4, 6) -> rows 32..39, cols 48..55
    maps = {
        "stage1": gaussian_map(32, 52, 9.0, 5.0, math.radians(30)) * 1e-3,
        "stage2": gaussian_map(35, 51, 20.0, 14.0, 0.0) * 0.1 + 1e-4,
    }
    return make_result(maps, {"stage1": info, "stage2": ginfo}, {"stage1": (4, 6), "stage2": (4, 6)})


@pytest.fixture(autouse=True)
def _no_leaks():
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    yield
    assert plt.get_fignums() == []
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set(), "rcParams leaked"


# ------------------------------------------------------------------------------------------ transform


def test_erf_display_transforms():
    m = np.array([[0.0, 1e-5, 1e-2, 0.1], [np.nan, -3.0, np.inf, 1.0]])
    np.testing.assert_allclose(F.erf_display(m), [[-3, -3, -2, -1], [-3, -3, -3, 0]])
    np.testing.assert_allclose(F.erf_display(m, floor=1e-6), [[-6, -5, -2, -1], [-6, -6, -6, 0]])
    np.testing.assert_allclose(F.erf_display(m, log=False), [[0, 1e-5, 1e-2, 0.1], [0, 0, 0, 1]])
    np.testing.assert_allclose(F.erf_display(m, scale=10.0), [[-3, -3, -3, -2], [-3, -3, -3, -1]])
    np.testing.assert_allclose(F.erf_display(np.zeros((2, 2))), -3.0)  # all zero: bottom of the scale
    with pytest.raises(ValueError):
        F.erf_display(np.ones(3))
    with pytest.raises(ValueError):
        F.erf_display(np.ones((2, 2)), floor=0)


# -------------------------------------------------------------------------------------------- overlay


def test_overlay_rf_box_has_the_corners_of_window_of(toy):
    window = toy.rf("stage1").window_of(toy.unit["stage1"])
    assert window == ((12, 52), (28, 68))  # by hand: -20 + 4 * 8 .. 20 + 4 * 8, -20 + 6 * 8 .. 20 + 6 * 8
    fig = F.overlay_figure(toy, "stage1")
    box = patch(fig, "rf-box")
    assert extent(box) == (27.5, 68.5, 11.5, 52.5)  # x then y: first - 0.5 .. last + 0.5
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (27.5, 11.5, 41, 41)
    centre = next(line for line in fig.axes[0].lines if line.get_gid() == "rf-center")
    assert (centre.get_xdata()[0], centre.get_ydata()[0]) == (48.0, 32.0)  # (x, y) of centre (y, x) = (32, 48)
    assert extent(patch(fig, "input-frame")) == (-0.5, 95.5, -0.5, 63.5)


@pytest.mark.parametrize("full_rf", [True, False])
def test_overlay_rf_box_beyond_the_input(full_rf):
    """Default: the input frame, the box clipped, labelled extents; ``full_rf``: the whole box, hatched around."""
    info = rf_info(121, 16, -60, 60)  # unit (2, 3) -> rows -28..92, cols -12..108: beyond the 64 x 96 input
    res = make_result({"deep": gaussian_map(32, 48, 15, 10, 0)}, {"deep": info}, {"deep": (2, 3)}, fit=False)
    fig = F.overlay_figure(res, "deep", full_rf=full_rf)
    ax = fig.axes[0]
    box = patch(fig, "rf-box")
    assert extent(box) == (-12.5, 108.5, -28.5, 92.5)
    x0, x1 = ax.get_xlim()
    y_bottom, y_top = ax.get_ylim()
    assert y_bottom > y_top  # y points down
    if full_rf:  # the whole box is in view, the outside of the input hatched
        assert x0 < -12.5 and x1 > 108.5 and y_top < -28.5 and y_bottom > 92.5
        assert patch(fig, "outside-input").get_hatch()
        assert "beyond the input" in box.get_label()
    else:  # the input only (the data fills the panel); arrows at the edges say how far the box goes on
        assert (x0, x1, y_bottom, y_top) == (-0.5, 95.5, 63.5, -0.5)
        assert box.get_clip_on() and "beyond the input by 28 px (top), 29 px (bottom)" in box.get_label()
        marks = {t.get_text(): t.xy for t in texts(fig, "rf-extent")}
        # by hand: rows -28..92, cols -12..108 of a 64 x 96 input; each arrow in line with the box's centre
        assert marks == {
            "+28 px": (48.0, -0.5),
            "+29 px": (48.0, 63.5),
            "+12 px": (-0.5, 32.0),
            "+13 px": (95.5, 32.0),
        }


def test_gaussian_ellipses_follow_the_y_down_rotation():
    theta = math.radians(30)
    cy, cx = 30.0, 50.0
    m = gaussian_map(cy, cx, 12.0, 5.0, theta)
    # independent truth: the principal direction of the map's second moments, in image (x, y), y down
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    w = m / m.sum()
    mx, my = (w * xx).sum(), (w * yy).sum()
    cov = np.array(
        [
            [(w * (xx - mx) ** 2).sum(), (w * (xx - mx) * (yy - my)).sum()],
            [(w * (xx - mx) * (yy - my)).sum(), (w * (yy - my) ** 2).sum()],
        ]
    )
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1] * np.sign(evecs[0, 1])  # (dx, dy) with dx > 0
    assert major[1] > 0  # +30 degrees from +x towards +y: the blob runs down to the right
    np.testing.assert_allclose(np.sqrt(evals[::-1]), [12.0, 5.0], atol=0.05)

    fit = GaussianFit(
        center=(cy, cx),
        sigma=(0, 0),
        sigma_major=12.0,
        sigma_minor=5.0,
        rotation=theta,
        amplitude=1.0,
        offset=0.0,
        r2=1.0,
        center_stderr=(None, None),
        sigma_stderr=(None, None),
        sigma_major_stderr=None,
        sigma_minor_stderr=None,
        rotation_stderr=None,
        amplitude_stderr=None,
        offset_stderr=None,
        gaussian_like=True,
        reason=None,
        success=True,
    )
    info = rf_info(61, 8, -30, 30)
    res = make_result({"l": m}, {"l": info}, {"l": (4, 6)}, fit=False)
    metrics = dataclasses.replace(res.metrics["l"], gaussian=fit)
    res = dataclasses.replace(res, metrics={"l": metrics})
    fig = F.overlay_figure(res, "l")
    for gid, k in (("gauss-1sigma", 1), ("gauss-2sigma", 2)):
        e = patch(fig, gid)
        assert (e.width, e.height, e.angle) == pytest.approx((24 * k, 10 * k, 30.0))
        pts = data_vertices(e) - [cx, cy]
        r = np.hypot(pts[:, 0], pts[:, 1])
        far = pts[np.argmax(r)] / r.max()
        assert r.max() == pytest.approx(12.0 * k, rel=1e-3) and r.min() == pytest.approx(5.0 * k, rel=1e-3)
        assert abs(far @ major) == pytest.approx(1.0, abs=1e-4)  # farthest point along the map's major axis
    # the real fit of the same map draws the same ellipse
    real = compute_metrics(m, (cy, cx), rf_size=(61, 61))
    res2 = dataclasses.replace(res, metrics={"l": real})
    e = patch(F.overlay_figure(res2, "l"), "gauss-1sigma")
    assert (e.width, e.height) == pytest.approx((24, 10), rel=1e-3)
    assert e.angle == pytest.approx(30.0, abs=0.05)


def test_no_ellipse_when_the_fit_is_not_gaussian_like():
    m = np.zeros((H, W))
    m[10:50, 20:80] = 1.0  # a plateau: not a Gaussian
    res = make_result({"l": m}, {"l": rf_info(61, 8, -30, 30)}, {"l": (4, 6)})
    assert not res.metrics["l"].gaussian.gaussian_like
    fig = F.overlay_figure(res, "l")
    assert not [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("gauss")]
    assert "Gaussian fit not drawn" in " ".join(t.get_text() for t in texts(fig, "footer"))


def test_map_displaced_along_x_is_drawn_at_that_x(toy):
    m = gaussian_map(20, 80, 4.0, 4.0, 0.0)  # peak at row 20, column 80 of a 64 x 96 input
    res = make_result({"l": m}, {"l": rf_info(41, 8, -20, 20)}, {"l": (4, 6)}, fit=False)
    fig = F.overlay_figure(res, "l", log=False, full_rf=False)
    ax = fig.axes[0]
    im = next(i for i in ax.get_images() if i.get_gid() == "erf-map")
    data = np.asarray(im.get_array())
    assert data.shape == (H, W)
    np.testing.assert_allclose(data, m / m.max())
    assert np.unravel_index(np.argmax(data), data.shape) == (20, 80)
    assert tuple(im.get_extent()) == (-0.5, W - 0.5, H - 0.5, -0.5)
    # rendered: the brightest colour of the map sits at data (x, y) = (80, 20), and the box is 96 wide, 64 high
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    top = np.array(matplotlib.colormaps["magma"](1.0)[:3]) * 255
    box = ax.get_window_extent()
    rows, cols = np.nonzero(np.abs(rgba - top).sum(axis=-1) < 12)
    rows = rgba.shape[0] - rows  # display y counts up from the bottom
    inside = (cols >= box.x0) & (cols <= box.x1) & (rows >= box.y0) & (rows <= box.y1)  # not the colour bar
    x, y = ax.transData.inverted().transform([cols[inside].mean(), rows[inside].mean()])
    assert x == pytest.approx(80, abs=1.0) and y == pytest.approx(20, abs=1.0)
    assert box.width / box.height == pytest.approx(W / H, rel=0.02)


def test_overlay_title_colourbar_and_footer(toy):
    fig = F.overlay_figure(toy, "stage1")
    ax = fig.axes[0]
    title = fig.texts[0].get_text() if fig.texts else ""
    whole = all_text(fig)
    assert "toynet · stage1 · unit (4, 6)" in whole
    ratio = toy.metrics["stage1"].erf_rf.ratio[0]
    assert "RF 41×41 px, stride 8" in ax.get_title() and f"ERF/RF {ratio:.2f}" in ax.get_title()
    assert "log₁₀(ERF / max)" in ax.get_title()
    cbar_label = ax.get_images()[0].colorbar.ax.get_ylabel()
    assert cbar_label == "ERF / max, log scale"
    cbar = ax.get_images()[0].colorbar
    assert list(cbar.get_ticks()) == [-3, -2, -1, 0]  # log10 positions, labelled with the values
    assert [t.get_text() for t in cbar.ax.get_yticklabels()] == ["≤$10^{-3}$", "$10^{-2}$", "$10^{-1}$", "1"]
    footer = " ".join(t.get_text() for t in texts(fig, "footer"))
    assert "pretrained (timm toy.in1k)" in footer and "4 image(s)" in footer and "replknet" in footer
    assert "RANDOM" not in whole and title == ""
    linear = F.overlay_figure(toy, "stage1", log=False)
    assert "ERF / max, linear" in linear.axes[0].get_title()


def test_random_weights_and_degenerate_maps_are_flagged(toy):
    res = dataclasses.replace(toy, weights=WeightsInfo("random", "random init (timm default)"))
    fig = F.overlay_figure(res, "stage1")
    footer = texts(fig, "footer")
    warn = [t for t in footer if "RANDOM WEIGHTS" in t.get_text()]
    assert warn and matplotlib.colors.same_color(warn[0].get_color(), F.COLORS["warning"])
    title = [t for t in texts(fig) if t.get_text().startswith("toynet · stage1")]
    assert title and title[0].get_text().endswith("RANDOM WEIGHTS")  # the title says it too
    grid = F.stage_grid_figure(res)
    assert any("RANDOM WEIGHTS" in t.get_text() for t in texts(grid, "footer"))
    # a collapsed (one-pixel) map is flagged in the warning colour
    m = np.zeros((H, W))
    m[32, 48] = 1.0
    bad = make_result({"l": m}, {"l": rf_info(41, 8, -20, 20)}, {"l": (4, 6)})
    assert any(w.startswith("concentrated") for w in bad.metrics["l"].warnings)
    flagged = [t for t in texts(F.overlay_figure(bad, "l"), "footer") if "flagged" in t.get_text()]
    assert flagged and matplotlib.colors.same_color(flagged[0].get_color(), F.COLORS["warning"])


def test_global_layer_shows_the_input_as_rf_and_the_local_box(toy):
    fig = F.overlay_figure(toy, "stage2")
    frame = patch(fig, "input-frame")
    assert "global: RF = whole input" in frame.get_label() and "8×8" in frame.get_label()
    local = patch(fig, "local-rf-box")
    assert extent(local) == (47.5, 55.5, 31.5, 39.5)
    assert local.get_linestyle() not in ("-", "solid")
    assert not [p for p in fig.axes[0].patches if p.get_gid() == "rf-box"]
    assert "RF global (local 8×8 px), stride 8×8" in fig.axes[0].get_title()
    assert "ERF/input" in fig.axes[0].get_title()


def test_overlay_image_underlay(toy):
    rng = np.random.default_rng(0)
    img = rng.random((3, H, W))  # CHW, like a model-ready tensor
    fig = F.overlay_figure(toy, "stage1", image=img)
    under = next(i for i in fig.axes[0].get_images() if i.get_gid() == "input-image")
    grey = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    np.testing.assert_allclose(under.get_array(), (grey - grey.min()) / (grey.max() - grey.min()))
    erf_im = next(i for i in fig.axes[0].get_images() if i.get_gid() == "erf-map")
    assert erf_im.get_zorder() > under.get_zorder() and erf_im.get_alpha() < 1
    with pytest.raises(ValueError, match="does not match"):
        F.overlay_figure(toy, "stage1", image=np.zeros((W, H)))  # transposed: refused
    with pytest.raises(KeyError):
        F.overlay_figure(toy, "nope")


# ----------------------------------------------------------------------------------------- stage grid


@pytest.mark.parametrize("shared", [True, False])
def test_stage_grid_uses_one_colour_scale(toy, shared):
    maps = {
        "a": gaussian_map(32, 48, 5, 5, 0),
        "b": 100 * gaussian_map(32, 48, 10, 10, 0),
        "c": 10 * gaussian_map(32, 48, 15, 15, 0),
        "d": gaussian_map(32, 48, 3, 3, 0),
        "e": gaussian_map(32, 48, 8, 8, 0),
    }
    infos = {k: rf_info(41, 8, -20, 20) for k in maps}
    res = make_result(maps, infos, {k: (4, 6) for k in maps}, fit=False)
    fig = F.stage_grid_figure(res, shared=shared, max_cols=3)
    images = [i for ax in fig.axes for i in ax.get_images() if i.get_gid() == "erf-map"]
    assert len(images) == 5
    assert all(i.norm is images[0].norm for i in images)
    # peaks 1, 100, 10, 1, 1: 100x apart, so a shared log scale reaches 10^-3 below the weakest peak (10^-5)
    floor = 1e-5 if shared else 1e-3
    assert (images[0].norm.vmin, images[0].norm.vmax) == (math.log10(floor), 0.0)
    for im, m in zip(images, maps.values()):
        expected = np.log10(np.maximum(m / (100.0 if shared else m.max()), floor))
        np.testing.assert_allclose(im.get_array(), expected)
    peaks = [float(np.max(i.get_array())) for i in images]
    assert peaks == pytest.approx([-2, 0, -1, -2, -2] if shared else [0] * 5)
    colourbars = [ax for ax in fig.axes if not ax.get_images() and ax.collections]
    assert len(colourbars) == 1
    of = "max over all panels" if shared else "each panel's own max"
    assert colourbars[0].get_ylabel().replace("\n", ", ") == f"ERF / {of}, log scale"
    # 5 panels, 3 per row: 2 rows, the empty cell removed; every finite panel outlines its RF box
    panels = [ax for ax in fig.axes if any(i.get_gid() == "erf-map" for i in ax.get_images())]
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2
    for ax in panels:
        (box,) = [p for p in ax.patches if p.get_gid() == "rf-box"]
        assert extent(box) == (27.5, 68.5, 11.5, 52.5)
    titles = [ax.get_title() for ax in panels]
    assert titles[0].startswith("a\nRF 41×41 px") and "ERF/RF" in titles[0]


def test_stage_grid_global_and_layer_subset(toy):
    fig = F.stage_grid_figure(toy, ["stage2"])
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 1 and panels[0].get_title().startswith("stage2\nRF global")
    # the RF of the local paths is small against the input: the panel zooms on it (dashed in the inset too)
    assert [p.get_gid() for p in panels[0].patches] == ["local-rf-box", "zoom-area"]
    (inset,) = panels[0].child_axes
    assert inset.get_gid() == "zoom-inset" and inset.patches[0].get_linestyle() == (0, (3, 1.5))
    with pytest.raises(KeyError):
        F.stage_grid_figure(toy, ["missing"])


# -------------------------------------------------------------------------------------------- growth


def _chain_graph(input_size=(32, 48)):
    import torch.nn as nn

    import rfkit

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 5, padding=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    return rfkit.trace(net, input_size=input_size)


def test_rf_growth_follows_the_graph():
    g = _chain_graph((32, 32))
    fig = F.rf_growth_figure(g)
    assert len([a for a in fig.axes if a.get_lines()]) == 1  # h = w everywhere: one panel
    ax = fig.axes[0]
    assert ax.get_ylabel().endswith("h = w")
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    # depth: input 0, conv 3x3 -> 1, conv 3x3 s2 -> 2, conv 5x5 -> 3, global pool -> 4 (ReLU, BN, flatten, linear: no)
    assert list(lines["rf-max"].get_xdata()) == [0, 1, 2, 3, 4]
    y = list(lines["rf-max"].get_ydata())
    assert y[:4] == [1, 3, 5, 13]  # 3 + 2, then 5 + 4 * 2
    band = next(p for p in ax.patches if p.get_gid() == "global-band")
    y_lo, y_hi = band.get_y(), band.get_y() + band.get_height()
    assert y_lo < y[4] < y_hi and y_lo > 48  # the global node sits in the band, above the input
    assert list(lines["input-size"].get_ydata()) == [32, 32]
    assert ax.get_yscale() == "log"
    assert "depth" in ax.get_xlabel() and "px" in ax.get_ylabel()
    # a 32 x 48 input: the same RFs, but the input line differs per axis, so one panel per axis
    panels = [a for a in F.rf_growth_figure(_chain_graph((32, 48))).axes if a.get_lines()]
    inputs = [next(line for line in a.get_lines() if line.get_gid() == "input-size").get_ydata()[0] for a in panels]
    assert [a.get_title() for a in panels] == ["height (h)", "width (w)"] and inputs == [32, 48]


def test_rf_growth_two_panels_for_non_square_kernels():
    import torch.nn as nn

    import rfkit

    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, (7, 1)), nn.Conv2d(3, 3, 3)), input_size=(40, 40))
    fig = F.rf_growth_figure(g)
    panels = [a for a in fig.axes if a.get_lines()]
    assert [a.get_title() for a in panels] == ["height (h)", "width (w)"]
    ys = [list(next(line for line in a.get_lines() if line.get_gid() == "rf-max").get_ydata()) for a in panels]
    assert ys == [[1, 7, 9], [1, 1, 3]]
    assert len([a for a in F.rf_growth_figure(g, axis="w").axes if a.get_lines()]) == 1
    with pytest.raises(ValueError):
        F.rf_growth_figure(g, axis="z")


def test_growth_series_on_a_residual_block():
    import torch.nn as nn

    import rfkit

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return x + self.b(self.a(x))

    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), Block(), Block()), input_size=32)
    s = F.growth_series(g)
    assert [s["depth"][n] for n in s["path"]] == list(range(6))
    assert [g[n].size[0] for n in s["path"]] == [1, 3, 5, 7, 9, 11]  # max over paths, never shrinking
    mins = [g[n].size_min[0] for n in s["cuts"]]
    assert [s["depth"][n] for n in s["cuts"]] == [0, 1, 3, 5]  # input, stem, block outputs
    assert mins == [1, 3, 3, 3]  # the shortcuts: the stem alone


def test_rf_growth_with_a_result_marks_the_measured_layers():
    import torch.nn as nn

    import rfkit

    net = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=2, input_size=(24, 32), device="cpu")
    fig = F.rf_growth_figure(res.graph, res)
    ax = fig.axes[0]
    erf_lines = [line for line in ax.get_lines() if (line.get_gid() or "").startswith("erf-size")]
    assert erf_lines and list(erf_lines[0].get_xdata()) == [1, 2]
    sides = [res.metrics[k].erf_rf.side for k in ("0", "2")]
    if len(erf_lines) == 1 and all(s[0] == s[1] for s in sides):
        assert list(erf_lines[0].get_ydata()) == [s[0] for s in sides]
    (names,) = ax.child_axes  # the measured layers are named under the depth axis
    assert [t.get_text() for t in names.get_xticklabels()] == ["0", "2"]
    with pytest.raises(ValueError, match="measured at"):
        F.rf_growth_figure(_chain_graph(), res)


# -------------------------------------------------------------------------------------------- saving


def test_save_writes_png_svg_pdf_and_closes(toy, tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    paths = F.save_overlay(toy, "stage1", [tmp_path / "o.png", tmp_path / "o.svg", tmp_path / "o.pdf"])
    assert [p.name for p in paths] == ["o.png", "o.svg", "o.pdf"]
    with Image.open(paths[0]) as img:
        assert img.format == "PNG" and round(img.info["dpi"][0]) == 150
    svg = paths[1].read_text()
    assert svg.lstrip().startswith("<?xml") and 'id="rf-box' in svg and "RF 41×41 px" in svg
    assert paths[2].read_bytes()[:5] == b"%PDF-"
    assert F.save_stage_grid(toy, tmp_path / "grid").name == "grid.png"
    assert F.save_rf_growth(_chain_graph(), tmp_path / "growth.png").exists()
    figures = ["grid.png", "growth.png", "o.pdf", "o.png", "o.svg"]  # and one caption pair per figure
    captions = [f"{stem}.caption.{ext}" for stem in ("grid", "growth", "o") for ext in ("md", "tex")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figures + captions)
    assert plt.get_fignums() == []
    fig = plt.figure()  # a pyplot figure is closed too
    F.save_figure(fig, tmp_path / "p.png")
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match="unsupported"):
        F.save_figure(plt.figure(), tmp_path / "x.jpg")
    assert plt.get_fignums() == []


def test_failed_save_leaves_no_file(toy, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    target = tmp_path / "o.png"
    target.write_bytes(b"old")

    def broken(self, fname, **kwargs):
        Path(fname).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        F.save_overlay(toy, "stage1", target)
    assert target.read_bytes() == b"old"  # the old file is untouched, no partial file, no temporary left
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    with pytest.raises(RuntimeError):
        F.save_stage_grid(toy, tmp_path / "new.svg")
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    assert plt.get_fignums() == []


def test_style_is_scoped():
    fig = F.overlay_figure(
        make_result({"l": gaussian_map(32, 48, 5, 5, 0)}, {"l": rf_info(41, 8, -20, 20)}, {"l": (4, 6)}, fit=False), "l"
    )
    assert fig.axes[0].get_images()[0].get_cmap().name == "magma"
    assert fig.axes[0].title.get_fontsize() == F.STYLE["axes.titlesize"]
    # rcParams unchanged: checked by the autouse fixture


def test_edge_cases_draw_without_error(toy):
    # no metrics, an all-zero map, the model output ("") as layer name, one panel
    res = make_result({"": np.zeros((H, W))}, {"": rf_info(41, 8, -20, 20)}, {"": (4, 6)}, fit=False)
    fig = F.overlay_figure(res, "")
    assert "<output>" in all_text(fig) and "all zero" in all_text(fig)
    assert np.all(fig.axes[0].get_images()[0].get_array() == -3)
    bare = dataclasses.replace(toy, metrics={})
    assert "ERF metrics not computed" in F.overlay_figure(bare, "stage1").axes[0].get_title()
    assert len([a for a in F.stage_grid_figure(bare, ["stage1"]).axes if a.get_images()]) == 1
