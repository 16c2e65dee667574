"""The attribution grid: per-image and per-column normalisation against scales computed here with numpy, no
blank row, the paper style's widths, fonts and files, method names of the literature as titles, and the record
of what was drawn."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch.nn as nn
from PIL import Image

import rfkit
from rfkit.errors import ArgumentError
from rfkit.report.figures.attribution import (
    GRID_RECORD,
    attribution_grid,
    grid_paths,
    grid_record,
    save_grid,
)
from rfkit.report.figures.style import close_figure

H = W = 8
#: A signed map whose |values| are 0.01, 0.02, ..., 0.64: its 99th percentile (linear, numpy's default) sits at
#: position 0.99 * 63 = 62.37 of the sorted values, 0.63 + 0.37 * 0.01.
PATTERN = (np.arange(1, H * W + 1, dtype=np.float32) / 100 * np.where(np.arange(H * W) % 2, 1, -1)).reshape(H, W)
P99 = 0.6337


@pytest.fixture(scope="module")
def base():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rfkit.attribute(
            net, images="noise", num_images=2, methods="saliency,gradcam", input_size=H, device="cpu", target=0
        )


def with_maps(res, **maps):
    return dataclasses.replace(res, maps={m: np.asarray(v, dtype=np.float32) for m, v in maps.items()})


def strong_and_weak(res, methods=("saliency",)):
    """Image 0's map 100 times image 1's: one column scale leaves row 1 all but blank."""
    return with_maps(res, **{m: np.stack([100 * PATTERN, PATTERN]) for m in methods})


def overlays(fig):
    """The overlay (second image) of each map panel, row by row."""
    return [ax.get_images()[1] for ax in fig.axes if len(ax.get_images()) == 2]


def test_per_image_scales_are_each_maps_own_99th_percentile(base):
    res = strong_and_weak(base)
    rec = grid_record(res)
    np.testing.assert_allclose([row[0] for row in rec.scales], [100 * P99, P99], rtol=1e-4)
    col = grid_record(res, normalise="column")
    # both maps' 128 values: position 0.99 * 127 = 125.73 lies between the big map's 62 and 63
    np.testing.assert_allclose([row[0] for row in col.scales], [62.73, 62.73], rtol=1e-4)


def test_per_image_normalisation_leaves_no_blank_row(base):
    res = strong_and_weak(base)
    for normalise, weak_alpha in (("image", 0.9), ("column", 0.9 * np.sqrt(0.64 / 62.73))):
        fig = attribution_grid(res, normalise=normalise)
        try:
            alpha = [im.get_array()[..., 3].max() for im in overlays(fig)]
        finally:
            close_figure(fig)
        # alpha = 0.9 sqrt(|v|), v = map / scale clipped to 1: the strong row saturates either way
        assert alpha[0] == pytest.approx(0.9, abs=1e-3)
        assert alpha[1] == pytest.approx(weak_alpha, rel=1e-2), normalise  # 0.09: a blank row per column


def test_the_figure_says_how_it_normalised(base):
    res = strong_and_weak(base, ("saliency", "gradcam"))
    for normalise, words in (("image", "per image"), ("column", "per column")):
        fig = attribution_grid(res, normalise=normalise)
        try:
            bars = [ax.get_xlabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
            footer = [t.get_text() for t in fig.findobj(lambda a: getattr(a, "get_gid", lambda: None)() == "footer")]
        finally:
            close_figure(fig)
        assert sorted(bars) == [
            f"CAM maps / {'own' if normalise == 'image' else 'column'} scale ({words})",
            f"signed maps / {'own' if normalise == 'image' else 'column'} scale ({words})",
        ]
        assert f"normalised {words}" in " ".join(" ".join(footer).split())  # the footer's lines are wrapped


def test_report_panels_show_their_own_scale(base):
    res = strong_and_weak(base)
    fig = attribution_grid(res)
    try:
        corners = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "panel-scale"]
    finally:
        close_figure(fig)
    assert corners == ["±63", "±0.63"]  # 63.37 and 0.6337 to two significant digits


def test_titles_are_the_methods_names_in_the_literature(base):
    res = with_maps(base, ig=np.stack([PATTERN, PATTERN]), **{"gradcam++": np.abs(np.stack([PATTERN, PATTERN]))})
    fig = attribution_grid(res)
    try:
        titles = [ax.get_title() for ax in fig.axes[:3]]
        record = getattr(fig, GRID_RECORD)
    finally:
        close_figure(fig)
    assert titles == ["input", "Integrated Gradients", "Grad-CAM++"]
    assert record.methods == ("ig", "gradcam++") and record.signed == (True, False)


def test_an_all_zero_map_is_labelled(base):
    res = with_maps(base, saliency=np.stack([PATTERN, np.zeros((H, W))]))
    fig = attribution_grid(res)
    try:
        marked = [i for i, ax in enumerate(overlays_axes(fig)) if any(t.get_gid() == "all-zero" for t in ax.texts)]
        corners = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "panel-scale"]
    finally:
        close_figure(fig)
    assert marked == [1] and corners == ["±0.63"]  # no range on the all-zero panel


def overlays_axes(fig):
    return [ax for ax in fig.axes if len(ax.get_images()) == 2]


@pytest.mark.parametrize("methods, width", [(("saliency", "gradcam"), 3.3), (("saliency", "gradcam", "ig"), 6.9)])
def test_paper_grid_is_one_or_two_columns_wide_with_no_text_beyond_the_labels(base, methods, width):
    res = strong_and_weak(base, methods)
    fig = attribution_grid(res, style="paper")
    try:
        assert fig.get_figwidth() == pytest.approx(width)
        texts = [
            t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")) if t.get_text()
        ]
        assert min(t.get_fontsize() for t in texts) >= 7.0
        gids = {t.get_gid() for t in texts}
        assert "footer" not in gids and "panel-scale" not in gids
        assert not any(sf._suptitle for sf in fig.subfigs if sf._suptitle is not None and sf._suptitle.get_text())
    finally:
        close_figure(fig)


def test_paper_grid_files_keep_the_width_and_hold_the_provenance(base, tmp_path):
    res = strong_and_weak(base, ("saliency", "gradcam"))
    paths = save_grid(res, grid_paths(tmp_path / "grid.png", "paper"), style="paper")
    assert [p.name for p in paths] == ["grid.png", "grid.pdf", "grid.svg"]
    with Image.open(paths[0]) as im:
        assert im.size[0] == round(3.3 * 300)  # not cropped: one column at 300 dpi
        description = im.info["Description"]
    assert "normalised per image" in description and "scales of" in description
    assert paths[1].read_bytes()[:5] == b"%PDF-" and b"<svg" in paths[2].read_bytes()[:500]


def test_the_record_is_plain_json_and_bad_options_are_one_line(base):
    res = strong_and_weak(base)
    doc = json.loads(json.dumps(grid_record(res, normalise="column", style="paper").as_dict()))
    assert doc["normalise"] == "column" and doc["titles"] == ["Saliency"] and doc["rows"] == list(res.labels)
    with pytest.raises(ArgumentError, match="normalise 'row': use image"):
        grid_record(res, normalise="row")
    with pytest.raises(ArgumentError, match="style 'poster'"):
        attribution_grid(res, style="poster")
