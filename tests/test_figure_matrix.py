"""Every figure type x style x hostile case of the figure matrix (``figure_cases.MATRIX``, which the docs'
gallery draws too) keeps its texts and legends on the canvas, apart from each other, leaves no ink on the PNG's
border (``figure_lint.py``'s rule) and writes its caption pair; grids show every panel; small RFs and ERFs are
zoomed; overhang numbers never sit on an arrow or another number; random weights are tagged on every panel.

The inputs are built by hand (maps of known Gaussians, RFs of known windows) or measured on tiny nets
(``figure_cases``), so the whole matrix renders in seconds: small maps, Agg canvases.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import itertools
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from figure_cases import CASES, LONG, MATRIX, STYLES, S, _blob, entry, rf_info, synthetic, yolo_grid

from rfkit.report import figures as F
from rfkit.report.figures.style import close_figure

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


def _under(box, axes):
    """The axes a scale bar's display ``box`` lies on: its own ``axes`` (a zoomed view) where the box is inside
    it, else the panel around it (an inset's), else None (the figure's background)."""
    for ax in (axes, *[a for a in axes.figure.axes if axes in a.child_axes]):
        inside = ax.bbox
        if (
            box.x0 >= inside.x0 - 0.5
            and box.x1 <= inside.x1 + 0.5
            and box.y0 >= inside.y0 - 0.5
            and box.y1 <= inside.y1 + 0.5
        ):
            return ax
    return None


def scale_bar_problems(fig) -> list[str]:
    """Scale bars whose bar or label covers a visible pixel of a map: above a tenth of its colour range over the
    floor (magma there is all but black; a ViT's faint global background leaves no place free of any value over
    the floor). Each display pixel of their extents is looked up with matplotlib's own
    ``AxesImage.get_cursor_data`` in the maps of the axes under them."""
    from types import SimpleNamespace

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for bar in fig.findobj(lambda a: a.get_gid() == "scale-bar"):
        for part in (bar.txt_label._text, bar.size_bar.get_children()[0]):
            box = part.get_window_extent(renderer)
            ax = _under(box, bar.axes)
            if ax is None:  # on the figure's white background: dark ink, or it cannot be read
                ink = part.get_color() if hasattr(part, "get_color") else part.get_facecolor()
                if sum(matplotlib.colors.to_rgb(ink)) / 3 > 0.5:
                    problems.append(f"scale bar in light ink {ink} on the figure's background")
                continue
            images = [i for i in ax.get_images() if i.get_gid() == "erf-map"] or ax.get_images()
            for im in images:
                for x in np.arange(box.x0, box.x1 + 1e-9, 1.0):
                    for y in np.arange(box.y0, box.y1 + 1e-9, 1.0):
                        v = im.get_cursor_data(SimpleNamespace(x=x, y=y))
                        faint = im.norm.vmin + 0.1 * (im.norm.vmax - im.norm.vmin)
                        if v is not None and v is not np.ma.masked and np.ndim(v) == 0 and v > faint:
                            problems.append(f"scale bar covers the map: {v:.3g} > {faint:.3g} (floor {im.norm.vmin})")
                            break
                    else:
                        continue
                    break
    return problems


#: PNG resolution of the checks: at 100 dpi the layout's white margin (0.03 in) is 3 px, wider than the 2 px
#: ``figure_lint`` reads, so the rule means what it means at the paper style's 300 dpi, at a ninth of the pixels.
CHECK_DPI = 100


def check(fig, tmp_path, name: str) -> None:
    """The layout of ``fig`` is clean, its PNG has no ink on its outer 2 px and its caption pair is beside it."""
    assert layout_problems(fig) == [], name
    assert scale_bar_problems(fig) == [], name
    path = F.save_figure(fig, tmp_path / f"{name}.png", dpi=CHECK_DPI, close=False)
    if LINT is not None:
        assert LINT.border_ink(path) <= 0.0002, f"{name}: ink on the PNG's border"
    assert path.with_suffix(".caption.md").is_file() and path.with_suffix(".caption.tex").is_file(), name


@functools.cache
def drawn(name: str, style: str):
    """The matrix entry ``name`` drawn in ``style``, kept for the session: the checks below read the figures of
    :data:`REUSED` after :func:`test_matrix` checked their layout (the others are closed once checked)."""
    return entry(name).draw(style)


REUSED = {
    *((n, s) for n in ("compare-stages", "compare-final", "overlay-random", "stages-twelve") for s in STYLES),
    ("stages-yolo", "report"),
    ("overlay-huge", "report"),
    ("overlay-yolo640", "paper"),
    ("overlay-vit", "paper"),
    *(("overlay-yolo-neck", s) for s in STYLES),
    ("stages-mixed", "paper"),
    ("rf-grid-beyond", "paper"),
    ("rf-grid-analytic", "report"),
    ("growth-cnn", "paper"),
}


def test_figure_lint_is_found_or_the_border_check_is_skipped():
    if LINT is None:
        pytest.skip(f"figure_lint.py not found beside the clone ({LINT_CANDIDATES[0]}): border-ink rule not run")
    assert callable(LINT.border_ink)


# ------------------------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("item", MATRIX, ids=lambda e: e.name)
def test_matrix(item, style, tmp_path):
    reused = (item.name, style) in REUSED
    fig = drawn(item.name, style) if reused else item.draw(style)
    if style == "paper":  # one column or two, whatever it holds
        assert fig.get_size_inches()[0] == pytest.approx(item.paper_width), item.name
    if item.kind == "growth":  # never squashed by the names under it or the legend
        for ax in [a for a in fig.axes if a.get_subplotspec() is not None]:
            box = ax.get_window_extent()
            assert box.height >= 0.6 * box.width, (item.name, style, box.bounds)
    check(fig, tmp_path, f"{item.name}-{style}")
    if not reused:
        close_figure(fig)


def test_the_matrix_has_every_figure_type():
    from figure_cases import KINDS

    assert set(KINDS) == {"overlay", "stages", "growth", "convergence", "compare", "rf-grid", "attribution"}


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
    res = synthetic(maps, {k: rf_info(41, 8, -20, 20) for k in maps}, {k: (3, 3) for k in maps}, fit=False)
    ims = [next(i for i in ax.get_images() if i.get_gid() == "erf-map") for ax in panels(F.stage_grid_figure(res))]
    assert [float(np.max(im.get_array())) for im in ims] == pytest.approx([0.0, math.log10(0.2)])


def test_small_erfs_are_zoomed_and_markers_leave_them_visible():
    from rfkit.report.figures.style import reticle_marker

    # 640 px frame: ERF blobs 6-18 px sigma (about 30-90 px), RF 300-900 px
    for ax in panels(drawn("stages-yolo", "report")):
        assert [c.get_gid() for c in ax.child_axes] == ["zoom-inset"]
        assert any(c.get_gid() == "scale-bar" for c in ax.child_axes[0].get_children())
    fig = drawn("compare-stages", "report")
    vit_patch = panels(fig)[0]  # the ViT's 16 px patch in 224 px: zoomed, and no marker on its few pixels
    assert [c.get_gid() for c in vit_patch.child_axes] == ["zoom-inset"]
    assert not [line for line in vit_patch.lines if line.get_gid() == "rf-center"]
    verts = reticle_marker().vertices  # the centre marker's arms stop 0.45 of their reach from the centre
    assert float(np.hypot(*verts.T).min()) == pytest.approx(0.45)


@pytest.mark.parametrize("style", STYLES)
def test_random_init_is_tagged_on_every_panel(style):

    random = CASES["random"][0]
    figs = [F.stage_grid_figure(random, style=style), drawn("overlay-random", style)]
    for fig in figs:
        for ax in panels(fig):
            assert [t.get_text() for t in ax.texts if t.get_gid() == "random-tag"] == ["random init"]
    trained = F.stage_grid_figure(CASES["tiny"][0], style=style)
    assert not [t for t in trained.findobj(matplotlib.text.Text) if t.get_gid() == "random-tag"]
    fig = drawn("compare-final", style)  # row 0 trained, row 1 random
    tags = [[t for t in ax.texts if t.get_gid() == "random-tag"] for ax in panels(fig)]
    assert [len(t) for t in tags] == [0, 1]


# --------------------------------------------------------------------------- overhangs, zooms, legends, captions


def extent_marks(ax) -> list:
    return [t for t in ax.texts if t.get_gid() in ("rf-extent", "rf-extent-text")]


@pytest.mark.parametrize("style", STYLES)
def test_small_maps_keep_their_overhang_numbers_readable(style):
    """The random CNN row of ``rfkit figure``: 48 px maps in a 224 px frame, RF windows -10..58 and -34..82, too
    small for arrows with labels; every side's number goes beside the map, clear of everything else."""
    from rfkit.report.figures.extents import crowded

    fig = drawn("compare-stages", style)
    cnn = panels(fig)[4:]
    by_hand = {2: "↑10 ↓11\n←10 →11", 3: "↑34 ↓35\n←34 →35"}  # -10..58 of 0..47: 10 before, 58 - 47 after
    for i, ax in enumerate(cnn):
        marks = extent_marks(ax)
        if i in by_hand:
            numbered = [m.get_text() for m in marks if m.get_text()]
            assert numbered, f"panel {i}: no overhang number"
            assert not crowded([m for m in marks if m.get_gid() == "rf-extent"])
            if style == "paper":  # 1.2 in panels: the label beside the map, every side's number
                assert numbered == [by_hand[i]]
        else:
            assert marks == []  # RF 3 and 11 px: inside the map
    if style == "paper":
        legend = [t.get_text() for leg in fig.findobj(matplotlib.legend.Legend) for t in leg.get_texts()]
        assert "beside a small map: px the RF goes on beyond each edge" in legend


def test_stage_grid_panels_number_every_side_they_have_room_for():
    """12 panels of 48 px maps, six to a row in a paper's two columns: every side numbered where its labels and
    arrows keep apart, at least the first side elsewhere; never a label on an arrow."""
    from rfkit.report.figures.extents import crowded

    for style in STYLES:
        fig = drawn("stages-twelve", style)
        for ax in panels(fig):
            marks = extent_marks(ax)
            if marks:
                assert marks[0].get_text() and not crowded(marks), style


def test_small_erf_under_a_huge_or_global_rf_is_zoomed_in_the_overlay():
    for case in ("yolo640", "vit"):  # a 40 px ERF under a 901 px RF; a ViT layer's 16 px local patch
        fig = drawn(f"overlay-{case}", "paper")
        assert len(panels(fig)) == 2, case  # the zoomed panel beside the input
        assert any(p.get_gid() == "zoom-area" for p in panels(fig)[0].patches)
        assert any(c.get_gid() == "scale-bar" for c in panels(fig)[1].get_children())
    huge = drawn("overlay-huge", "report")  # a 12 px ERF sigma in 48 px: not small, no zoom
    assert len(panels(huge)) == 1


def test_a_local_rf_box_no_edge_of_which_shows_is_not_drawn_nor_named():
    """A global layer whose local paths' RF (1039 px) surrounds the 640 px input: its dashed box would lie
    wholly outside the panel, so neither the box nor a legend entry for it."""
    m = _blob((640, 640), 320, 320, 10)
    res = synthetic({"g": m}, {"g": rf_info(1039, 8, -519, 519, is_global=True, local=1039)}, {"g": (40, 40)})
    for fig in (F.overlay_figure(res, "g"), F.stage_grid_figure(res)):
        gids = {p.get_gid() for ax in fig.axes for p in ax.patches}
        labels = " ".join(t.get_text() for leg in fig.findobj(matplotlib.legend.Legend) for t in leg.get_texts())
        assert "local-rf-box" not in gids and "RF of the local paths" not in labels
    inside = synthetic({"g": m}, {"g": rf_info(21, 8, -10, 10, is_global=True, local=21)}, {"g": (40, 40)})
    assert "local-rf-box" in {p.get_gid() for ax in F.stage_grid_figure(inside).axes for p in ax.patches}


def test_captions_give_every_overhang_in_numbers():
    from rfkit.report.figures.captions import caption_texts

    md, tex = caption_texts(drawn("stages-mixed", "paper"))
    # "huge": RF 435 centred on pixel 24 (rows and columns -193..241) of a 48 px input: 193 before, 241 - 47 after
    assert "huge 193, 194, 193, 194" in md and "off-centre" not in md.split("RF beyond")[1]
    md, _ = caption_texts(drawn("compare-stages", "report"))
    assert f"{LONG} 3 10, 11, 10, 11; {LONG} 4 34, 35, 34, 35" in md.replace("\\_", "_")


def test_rf_grid_and_attribution_grid_write_their_captions(tmp_path):
    from rfkit.report.figures.captions import caption_texts

    md, tex = caption_texts(drawn("rf-grid-beyond", "paper"))
    assert "5 units of layer 4" in md and "dashed" in md and "dots mark the units' analytic RF centres" in md
    assert "\\caption{" in tex
    md, _ = caption_texts(drawn("rf-grid-analytic", "report"))
    assert "Colour" not in md  # nothing measured: no heat map to describe


def test_convergence_bands_only_where_drawn():
    """Curves of 4 images (fewer than the 8 independent sources an interval needs): no band, so no legend entry
    and no caption phrase for one."""

    from figure_cases import tiny_net

    from rfkit.report.figures.captions import caption_texts
    from rfkit.report.figures.convergence import convergence_figure

    res = tiny_net()
    short = {
        k: dataclasses.replace(c, images=c.images[:3], value=c.value[:3], low=((np.nan,) * 2,) * 3, high=c.high[:3])
        for k, c in res.convergence.items()
    }
    fig = convergence_figure(dataclasses.replace(res, convergence=short))
    labels = [t.get_text() for leg in fig.findobj(matplotlib.legend.Legend) for t in leg.get_texts()]
    assert labels == ["height (h)", "width (w)"]
    assert "bands" not in caption_texts(fig)[0]
    full = convergence_figure(res)  # 12 images: bands from 8 on
    labels = [t.get_text() for leg in full.findobj(matplotlib.legend.Legend) for t in leg.get_texts()]
    assert "95% CI, h" in labels


def test_the_random_tag_of_a_convergence_panel_covers_no_curve():

    from figure_cases import tiny_net

    from rfkit.models.weights_info import WeightsInfo
    from rfkit.report.figures.convergence import convergence_figure

    res = tiny_net()
    fig = convergence_figure(dataclasses.replace(res, weights=WeightsInfo("random", "random init")))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in [a for a in fig.axes if a.get_visible()]:
        (tag,) = [t for t in ax.texts if t.get_gid() == "random-tag"]
        box = tag.get_window_extent(renderer)
        for line in ax.lines:
            xy = line.get_transform().transform(line.get_xydata())
            xs = np.linspace(xy[:, 0].min(), xy[:, 0].max(), 400)  # the line between its points too
            ys = np.interp(xs, xy[:, 0], xy[:, 1])
            assert not ((xs >= box.x0) & (xs <= box.x1) & (ys >= box.y0) & (ys <= box.y1)).any(), ax.get_title()


def test_growth_says_when_the_min_over_paths_hides_under_the_max():
    chain = drawn("growth-cnn", "paper")  # a chain of convs: one path, min = max everywhere
    labels = [
        t.get_text().replace("\n", " ") for leg in chain.findobj(matplotlib.legend.Legend) for t in leg.get_texts()
    ]
    assert "analytic RF, min over paths (= max: one path)" in labels


@pytest.mark.parametrize("style", STYLES)
def test_a_zoom_holds_the_erf_and_the_analytic_centre_clear_of_the_tag(style):
    """A YOLO neck layer: global, its ERF (sigma 4 px at 320, 320) 16 px from the analytic centre (304, 304) of
    its unit: the zoomed panel shows both, and the random-init tag covers neither."""
    fig = drawn("overlay-yolo-neck", style)
    zoom = panels(fig)[1]
    (x0, x1), (y1, y0) = zoom.get_xlim(), zoom.get_ylim()
    assert x0 < 304 < x1 and y0 < 304 < y1 and x0 < 320 - 8 and 320 + 8 < x1
    renderer = fig.canvas.get_renderer()
    (tag,) = [t for t in zoom.texts if t.get_gid() == "random-tag"]
    (cross,) = [line for line in zoom.lines if line.get_gid() == "rf-center"]
    assert not tag.get_window_extent(renderer).overlaps(cross.get_window_extent(renderer))


def test_a_narrow_stage_grid_panel_numbers_all_four_overhangs_clear_of_the_centre():
    """ResNet-18's layer4 at 224 px (RF 435 px, unit (3, 3) centred on pixel 96: rows and columns -121..313) among
    five panels of a two-column paper grid, about 1.2 in each: "+121" inward of the left arrow would touch the
    centre cross, so the left and right numbers ride on their arrows at the edges; every side is numbered."""
    from rfkit.report.figures.extents import crowded

    shape = (224, 224)
    sides = {"a": 7, "b": 43, "c": 99, "d": 211}
    maps = {k: _blob(shape, 96, 96, s / 4) for k, s in sides.items()} | {"layer4": _blob(shape, 96, 96, 60)}
    infos = {k: rf_info(s, 1, 96 - s // 2, 96 + s // 2) for k, s in sides.items()}
    infos["layer4"] = rf_info(435, 32, -217, 217)  # unit 3: -217 + 96 .. 217 + 96
    units = {k: (96, 96) for k in sides} | {"layer4": (3, 3)}
    fig = F.stage_grid_figure(synthetic(maps, infos, units, fit=False), style="paper")
    ax = panels(fig)[-1]
    marks = [t for t in ax.texts if t.get_gid() == "rf-extent"]
    # by hand: 121 px before pixel 0, 313 - 223 = 90 px after pixel 223, on both axes (top, bottom, left, right)
    assert [m.get_text() for m in marks] == ["+121", "+90", "+121", "+90"]
    renderer = fig.canvas.get_renderer()
    centre = [line.get_window_extent(renderer) for line in ax.lines if line.get_gid() == "rf-center"]
    assert centre and not crowded(marks, centre)
    panel = ax.get_window_extent(renderer)
    for m in marks:  # every number inside its panel
        box = m.get_window_extent(renderer)
        assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1, m.get_text()


@pytest.mark.parametrize("style", STYLES)
def test_a_global_layers_frame_is_named_in_the_legend_and_the_caption(style):
    from rfkit.report.figures.captions import caption_texts

    fig = drawn("compare-stages", style)  # the ViT row: global from blocks.2 on, its frame in the RF colour
    labels = [t.get_text().replace("\n", " ") for leg in fig.findobj(matplotlib.legend.Legend) for t in leg.get_texts()]
    assert "global layer: RF = whole input (frame)" in labels
    assert "a frame in the RF colour marks a global layer" in caption_texts(fig)[0]
    trained = drawn("stages-twelve", style)  # no global layer: neither
    assert "frame in the RF colour" not in caption_texts(trained)[0]


@pytest.mark.parametrize("style", STYLES)
def test_an_attribution_grid_of_random_weights_is_tagged_on_every_row(style):
    from figure_cases import attribution

    from rfkit.models.weights_info import WeightsInfo
    from rfkit.report.figures.attribution import attribution_grid

    res = attribution("saliency,gradcam")  # a module as given: no tag
    texts = attribution_grid(res, style=style).findobj(matplotlib.text.Text)
    assert res.weights.kind == "as-given" and not [t for t in texts if t.get_gid() == "random-tag"]
    random = dataclasses.replace(res, weights=WeightsInfo("random", "random init"))
    fig = attribution_grid(random, style=style)
    rows = [ax for ax in fig.axes if ax.get_ylabel()]  # each row's input image carries the row's label
    assert len(rows) == res.num_images == 2
    assert [[t.get_text() for t in ax.texts if t.get_gid() == "random-tag"] for ax in rows] == [["random init"]] * 2
