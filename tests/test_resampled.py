"""Honest and cheap intervals: the cluster bootstrap over independent sources (views of one photo resampled
together), no interval below 8 sources, and the vectorised metrics of all resamples at once against
:func:`rfkit.effective.metrics.compute_metrics` one resample at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch.nn as nn

import rfkit
from rfkit.effective.bootstrap import MIN_SOURCES, bootstrap_cis, ci_columns, resample_counts
from rfkit.effective.groups import GroupSums
from rfkit.effective.metrics import compute_metrics
from rfkit.effective.resampled import resampled_metrics
from rfkit.pipeline.images import source_ids

# ------------------------------------------------------------------------------------------ source ids


def test_sample_views_carry_the_id_of_their_photo_and_other_images_their_own():
    index = np.arange(32)
    assert source_ids("sample", index).tolist() == [i % 10 for i in range(32)]
    for images in ("noise", "folder/of/photos", ["a.png", "b.png"]):
        assert source_ids(images, index).tolist() == list(range(32))


# ------------------------------------------------------------------------------------------ cluster bootstrap


def _points(values: np.ndarray, sources: np.ndarray, shape=(9, 9)) -> GroupSums:
    """Image i: a single pixel of value ``values[i]`` at the centre, from source ``sources[i]``."""
    maps = np.zeros((len(values), *shape))
    maps[:, shape[0] // 2, shape[1] // 2] = values
    g = GroupSums(["a"], shape, capacity=64, expected=len(values))
    g.add({"a": maps}, sources)
    return g


def _mass_interval(g: GroupSums, seed: int = 5) -> tuple[float, float]:
    return bootstrap_cis(g, {"a": (4, 4)}, {"a": (5, 5)}, resamples=2000, seed=seed)["a"]["total_mass"]


def test_views_of_one_photo_are_resampled_together():
    photos = np.array([1.0, 2.0, 2.5, 4.0, 7.0, 0.5, 3.0, 9.0, 1.5, 6.0])
    views = np.tile(photos, 4)  # four identical views of each photo: 40 images, 10 independent ones
    cluster = _mass_interval(_points(views, np.arange(40) % 10))
    naive = _mass_interval(_points(views, np.arange(40)))  # what treating the 40 as independent gives
    # by hand: the bootstrap of the mean of the 10 photos, with the same draws of 10 photos
    w = resample_counts(10, 2000, seed=5)
    np.testing.assert_allclose(cluster, np.percentile(w @ photos / 10, [2.5, 97.5]), rtol=1e-12)
    # 40 "images" hide that there are 10: the naive interval is about half as wide (sqrt(10 / 40))
    ratio = (naive[1] - naive[0]) / (cluster[1] - cluster[0])
    assert 0.4 < ratio < 0.6


def test_distinct_images_give_the_ordinary_bootstrap():
    values = np.array([1.0, 2.0, 2.5, 4.0, 7.0, 0.5, 3.0, 9.0, 1.5, 6.0])
    index = np.arange(10)
    photos = _mass_interval(_points(values, source_ids("sample", index)))  # the 10 plain photos: 10 sources
    files = _mass_interval(_points(values, source_ids("noise", index)))
    w = resample_counts(10, 2000, seed=5)
    assert photos == files
    np.testing.assert_allclose(photos, np.percentile(w @ values / 10, [2.5, 97.5]), rtol=1e-12)


def test_fewer_than_eight_sources_give_no_interval_but_a_reason():
    assert MIN_SOURCES == 8
    many_views = _points(np.arange(1.0, 29.0), np.arange(28) % 7)  # 28 images of 7 photos
    assert many_views.sources == 7 and bootstrap_cis(many_views, {"a": (4, 4)}, {"a": (5, 5)}) == {}
    eight = _points(np.arange(1.0, 9.0), np.arange(8))
    assert bootstrap_cis(eight, {"a": (4, 4)}, {"a": (5, 5)})["a"]["total_mass"][0] > 1.0


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))


def test_a_run_on_sample_views_counts_photos_not_views():
    kwargs = dict(layers=["2"], images="sample", input_size=16, device="cpu", batch_size=16)
    res = rfkit.erf(_net(), num_images=24, **kwargs)  # 10 photos and 14 of their views
    assert res.bootstrap["groups"] == 10 and "reason" not in res.bootstrap and res.ci["2"]
    few = rfkit.erf(_net(), num_images=5, **kwargs)
    assert few.ci == {} and few.bootstrap["groups"] == 5
    assert few.bootstrap["reason"].startswith("no 95% intervals: 5 independent images")


def test_files_and_the_cli_table_say_why_there_is_no_interval(tmp_path):
    import json

    from typer.testing import CliRunner

    from rfkit_cli.app import app

    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))\n"
    )
    out = tmp_path / "out"
    args = ["erf", f"{tmp_path / 'net.py'}:build", "--trust", "-l", "0", "--images", "noise", "-n", "3"]
    args += ["--input-size", "16"]
    run = CliRunner().invoke(app, [*args, "--device", "cpu", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "no 95% intervals: 3 independent images" in " ".join(run.output.split())
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["run"]["bootstrap"]["groups"] == 3 and "fewer than the 8" in doc["run"]["bootstrap"]["reason"]
    layer = doc["layers"]["0"]
    assert "erf_rf_ratio_h_ci_low" not in layer and layer["ci_reason"].startswith("no 95% intervals")


def test_the_report_says_why_there_is_no_interval(tmp_path):
    from rfkit.analysis.analyze import analyze

    rep = analyze(_net(), layers=["2"], images="noise", num_images=4, input_size=16, device="cpu", out=tmp_path)
    text = (rep.folder / "report.md").read_text()
    assert "### How many images are enough" in text
    section = text.split("### How many images are enough")[1].split("###")[0]
    row = next(line for line in section.splitlines() if line.startswith("| `2` |"))
    assert "no 95% intervals: 4 independent images" in section and "[" not in row  # values, no bounds


# ------------------------------------------------------------------------------------------ vectorised


def _groups(rng, G: int, shape, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums of sparse, skewed maps with a bump (so the metrics vary from resample to resample)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    bump = np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2) / (shape[0] * 2.0))
    sums = rng.gamma(0.7, size=(G, *shape)) * (rng.random((G, *shape)) < 0.7) * bump * scale
    return sums, rng.integers(1, 5, G)


CASES = [
    ((15, 12), (7, 5.5), (9, 7), 1.0),  # a half-pixel centre on one axis
    ((20, 20), (3, 25), (41, 41), 1e-3),  # centre outside the image, small gradients
    ((9, 9), (4, 4), None, 300.0),  # no RF, large values: RepLKNet's log1p is far from linear
    ((16, 16), (7.5, 7.5), (math.inf, math.inf), 1e35),  # global RF; too large for float32: float64 path
    ((12, 10), (6, 5), (7, 7), 1e-33),  # too small for float32
]


@pytest.mark.parametrize(("shape", "center", "rf", "scale"), CASES)
def test_every_resample_gets_the_metrics_of_its_mean_map(shape, center, rf, scale):
    rng = np.random.default_rng(sum(shape))
    sums, counts = _groups(rng, 6, shape, scale)
    w = resample_counts(6, 40, seed=3)
    columns = resampled_metrics(sums, counts, w, center, rf)
    for r in range(40):
        mean = (w[r] @ sums.reshape(6, -1) / (w[r] @ counts)).reshape(shape)
        row = compute_metrics(mean, center, rf, fit=False).as_dict()
        assert sorted(ci_columns(row)) == sorted(columns)  # every interval column, no other
        for key in columns:
            want = math.nan if row[key] is None else row[key]
            np.testing.assert_allclose(columns[key][r], want, rtol=1e-9, err_msg=key)


def test_per_resample_centres_and_boxes_exactly_on_a_threshold():
    rng = np.random.default_rng(1)
    sums, counts = _groups(rng, 5, (14, 14))
    w = resample_counts(5, 30, seed=2)
    centers = np.array([(6, 6), (6.5, 7), (7.2, 6.9)])[np.arange(30) % 3]  # e.g. each resample's centre of mass
    columns = resampled_metrics(sums, counts, w, centers, (9, 9))
    for r in range(30):
        mean = (w[r] @ sums.reshape(5, -1) / (w[r] @ counts)).reshape(14, 14)
        row = compute_metrics(mean, centers[r], (9, 9), fit=False).as_dict()
        for key in ("erf_area_side_h_0.5", "mass_area_side_w_0.3", "erf_side_h", "r90", "centroid_dx"):
            np.testing.assert_allclose(columns[key][r], row[key], rtol=1e-9, err_msg=key)
    # a uniform 10 x 10 map centred between pixels: boxes of 4, 16, 36, 64, 100 pixels, so thresholds 0.16 and
    # 0.36 are met exactly, where float32 cannot decide: the float64 path takes the box that holds them
    flat = np.ones((2, 10, 10))
    got = resampled_metrics(flat, np.array([1, 1]), np.array([[1, 1], [2, 0]]), (4.5, 4.5), thresholds=(0.16, 0.36))
    assert got["erf_area_side_h_0.16"].tolist() == [4.0, 4.0] and got["erf_area_side_w_0.36"].tolist() == [6.0, 6.0]


@pytest.mark.parametrize("center", [(6.5, 7.0), (6.25, 7.8), (-3.0, 20.5)])
def test_radial_columns_bin_pixels_by_distance_as_radial_mass_sorts_them(center):
    # sizes use half-pixel centres (4 d² is then an integer key); any other centre is binned by its distances
    from rfkit.effective.metrics import radial_mass
    from rfkit.effective.resampled import _radial_columns

    rng = np.random.default_rng(4)
    sums, _ = _groups(rng, 3, (13, 15))
    w = resample_counts(3, 12, seed=5)
    got = _radial_columns(np.ascontiguousarray(sums.reshape(3, -1).T), w, (13, 15), center)
    for r in range(12):
        want = radial_mass((w[r] @ sums.reshape(3, -1)).reshape(13, 15), center)
        assert [got[k][r] for k in ("r50", "r90", "r95")] == pytest.approx([want.r50, want.r90, want.r95], rel=1e-12)


def _naive_cis(g: GroupSums, center, rf, resamples: int, seed: int) -> dict:
    """The intervals as a loop over resamples: the mean map of each, compute_metrics, percentiles."""
    G = g.groups
    w = resample_counts(G, resamples, seed)
    flat, counts = g.sums["a"][:G].reshape(G, -1), g.counts[:G]
    rows = [
        compute_metrics((x @ flat / (x @ counts)).reshape(g.sums["a"].shape[1:]), center, rf, fit=False).as_dict()
        for x in w
    ]
    out = {}
    for key in ci_columns(rows[0]):
        v = np.array([np.nan if r[key] is None else r[key] for r in rows])
        v = v[np.isfinite(v)]
        out[key] = tuple(np.percentile(v, [2.5, 97.5])) if v.size * 2 >= len(rows) else (None, None)
    return out


def test_vectorised_bootstrap_gives_the_bounds_of_a_loop_over_resamples():
    rng = np.random.default_rng(7)
    maps, _ = _groups(rng, 30, (17, 19))
    g = GroupSums(["a"], (17, 19), capacity=16, expected=30)  # 30 images of 12 photos, pooled in pairs
    g.add({"a": maps}, np.arange(30) % 12)
    assert g.sources == 12
    got = bootstrap_cis(g, {"a": (8, 9.5)}, {"a": (11, 11)}, resamples=150, seed=4)["a"]
    want = _naive_cis(g, (8, 9.5), (11, 11), 150, 4)
    assert sorted(got) == sorted(want)
    for key, bounds in want.items():
        np.testing.assert_allclose(got[key], bounds, rtol=1e-9, err_msg=key)


def test_maps_with_nan_or_negative_pixels_are_cleaned_per_resample():
    rng = np.random.default_rng(2)
    maps, _ = _groups(rng, 9, (8, 8))
    maps[3, 2, 2] = np.nan
    maps[5, 6, 1] = -4.0
    g = GroupSums(["a"], (8, 8), capacity=16, expected=9)
    g.add({"a": maps}, np.arange(9))
    got = bootstrap_cis(g, {"a": (4, 4)}, {"a": (5, 5)}, resamples=60, seed=1)["a"]
    want = _naive_cis(g, (4, 4), (5, 5), 60, 1)
    for key, bounds in want.items():
        np.testing.assert_allclose(got[key], bounds, rtol=1e-9, err_msg=key)


def test_convergence_panels_share_one_pixel_axis_with_whole_pixel_ticks():
    from rfkit.report.figures.convergence import convergence_figure

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))
    res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=10, input_size=16, device="cpu")
    fig = convergence_figure(res)
    a, b = fig.axes[:2]
    assert a.get_ylim() == b.get_ylim()  # one y range: the 3 px and the 7 px layer on the same scale
    low, high = a.get_ylim()
    assert low <= 3 and high >= 7 and "px" in a.get_ylabel()
    ticks = [t for t in a.get_yticks() if low <= t <= high]
    assert np.diff(ticks).tolist() == [1.0] * (len(ticks) - 1) and all(float(t).is_integer() for t in ticks)
    size = res.convergence["2"].value[-1]
    assert size == tuple(float(v) for v in res.metrics["2"].erf_rf.side)  # pixels, not a ratio
