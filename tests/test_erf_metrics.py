"""ERF metrics (rfkit.effective.metrics, rfkit.effective.gaussian), each against an independent truth."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from rfkit.effective.metrics import (
    ERFMapError,
    area_ratios,
    centroid,
    compute_metrics,
    diagnose,
    erf_rf_ratio,
    fit_gaussian,
    radial_mass,
    seed_area_ratios,
)

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def gaussian(shape, cy, cx, s_major, s_minor, theta):
    """Rotated Gaussian, peak 1: the major axis points along (cos theta, sin theta) in (x, y)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dx, dy = xx - cx, yy - cy
    u = math.cos(theta) * dx + math.sin(theta) * dy
    v = -math.sin(theta) * dx + math.cos(theta) * dy
    return np.exp(-0.5 * ((u / s_major) ** 2 + (v / s_minor) ** 2))


def codes(warnings):
    return {w.split(":", 1)[0] for w in warnings}


# ------------------------------------------------------------------------------------------ Gaussian fit


@pytest.mark.parametrize("deg, expected_deg", [(30, 30), (-30, -30), (75, 75), (120, -60), (-100, 80)])
def test_fit_recovers_rotated_anisotropic_gaussian(deg, expected_deg):
    rng = np.random.default_rng(deg + 1000)
    cy, cx = 43.3, 70.6  # off-centre in a non-square map
    m = gaussian((96, 128), cy, cx, 12.0, 5.0, math.radians(deg))
    m = 1e-3 * (m + 0.01 * rng.standard_normal(m.shape))  # raw gradient scale, small noise
    fit = fit_gaussian(m)
    assert fit.gaussian_like, fit.reason
    assert fit.center == pytest.approx((cy, cx), abs=0.05)
    assert fit.sigma_major == pytest.approx(12.0, rel=0.01)
    assert fit.sigma_minor == pytest.approx(5.0, rel=0.01)
    assert -math.pi / 2 < fit.rotation <= math.pi / 2
    assert math.degrees(fit.rotation) == pytest.approx(expected_deg, abs=0.5)
    # marginal sigmas along the image axes, from the covariance of the true Gaussian
    t = math.radians(deg)
    sx = math.sqrt(144 * math.cos(t) ** 2 + 25 * math.sin(t) ** 2)
    sy = math.sqrt(144 * math.sin(t) ** 2 + 25 * math.cos(t) ** 2)
    assert fit.sigma == pytest.approx((sy, sx), rel=0.01)
    assert fit.amplitude == pytest.approx(1.0, abs=0.05)  # fraction of the (noisy) max
    assert fit.offset == pytest.approx(0.0, abs=0.01)
    assert fit.r2 > 0.95
    for se in (
        *fit.center_stderr,
        *fit.sigma_stderr,
        fit.sigma_major_stderr,
        fit.sigma_minor_stderr,
        fit.rotation_stderr,
        fit.amplitude_stderr,
        fit.offset_stderr,
    ):
        assert se is not None and 0 < se < 0.1


def test_fit_does_not_swap_height_and_width():
    tall = gaussian((80, 80), 40, 40, 12.0, 5.0, math.pi / 2)  # 12 along y, 5 along x
    yy, xx = np.mgrid[0:80, 0:80]
    assert np.allclose(tall, np.exp(-0.5 * (((yy - 40) / 12.0) ** 2 + ((xx - 40) / 5.0) ** 2)))
    fit = fit_gaussian(tall)
    assert fit.sigma == pytest.approx((12.0, 5.0), rel=1e-4)  # (sigma_y, sigma_x)
    assert (fit.sigma_major, fit.sigma_minor) == pytest.approx((12.0, 5.0), rel=1e-4)
    assert fit.rotation == pytest.approx(math.pi / 2, abs=1e-4)
    wide = fit_gaussian(tall.T)
    assert wide.sigma == pytest.approx((5.0, 12.0), rel=1e-4)
    assert wide.rotation == pytest.approx(0.0, abs=1e-4)
    row = compute_metrics(tall, (40, 40)).as_dict()
    assert (row["gauss_sigma_y"], row["gauss_sigma_x"]) == pytest.approx((12.0, 5.0), rel=1e-4)


def test_fit_of_binned_large_map_is_corrected():
    rng = np.random.default_rng(3)
    m = gaussian((384, 384), 170.4, 201.7, 30.0, 12.0, math.radians(-40))
    m = m + 0.01 * rng.standard_normal(m.shape)
    fit = fit_gaussian(m)
    assert fit.bin_factor == 2
    assert fit.center == pytest.approx((170.4, 201.7), abs=0.1)
    assert (fit.sigma_major, fit.sigma_minor) == pytest.approx((30.0, 12.0), rel=0.01)
    assert math.degrees(fit.rotation) == pytest.approx(-40, abs=0.5)
    exact = fit_gaussian(m, max_pixels=None)
    assert exact.bin_factor == 1
    assert exact.sigma_minor == pytest.approx(fit.sigma_minor, rel=0.005)
    # noiseless, binned 4x4: the (f**2 - 1) / 12 variance correction restores sigma and amplitude
    clean = gaussian((384, 384), 170.4, 201.7, 30.0, 12.0, math.radians(-40))
    fit = fit_gaussian(clean, max_pixels=96 * 96)
    assert fit.bin_factor == 4
    assert (fit.sigma_major, fit.sigma_minor) == pytest.approx((30.0, 12.0), rel=1e-4)
    assert fit.amplitude == pytest.approx(1 / clean.max(), rel=1e-3)


def test_two_blobs_are_not_gaussian_like():
    m = gaussian((64, 96), 32, 25, 6, 6, 0) + gaussian((64, 96), 32, 70, 6, 6, 0)
    fit = fit_gaussian(m)
    assert not fit.gaussian_like
    assert "R²" in fit.reason
    assert compute_metrics(m, (32, 47.5)).as_dict()["gauss_like"] is False


@pytest.mark.parametrize(
    "m, reason",
    [
        (np.zeros((32, 32)), "all zero"),
        (np.full((32, 32), 3.0), "constant"),
        (np.pad(np.ones((1, 1)), 15), "fewer than 4"),
        (np.ones((3, 3)), "too small"),
        (-np.ones((32, 32)), "no positive"),
    ],
)
def test_fit_degenerate_maps(m, reason):
    fit = fit_gaussian(m)
    assert not fit.gaussian_like and fit.reason.startswith("degenerate") and reason in fit.reason
    assert math.isnan(fit.sigma_major) and fit.sigma_stderr == (None, None)


def test_fit_point_like_peak_is_flagged():
    m = gaussian((48, 48), 24, 24, 0.3, 0.3, 0) + 1e-3 * np.random.default_rng(0).random((48, 48))
    fit = fit_gaussian(m)
    assert not fit.gaussian_like


def test_fit_centre_outside_image_is_flagged():
    m = gaussian((40, 40), -8, 20, 6, 6, 0)  # only the tail of a blob above the image
    fit = fit_gaussian(m)
    assert not fit.gaussian_like and "outside" in fit.reason


# ------------------------------------------------------------------------------------------- area ratios


def brute_force_box_fraction(z, center, q):
    """Explicit loop: grow the centred box one pixel per side, slicing the image each time."""
    H, W = z.shape
    lo, hi = [], []
    for c in center:
        c2 = math.floor(2 * c + 0.5)
        lo.append(c2 // 2)
        hi.append(c2 // 2 + c2 % 2)
    total = z.sum()
    n = 0
    while True:
        y0, y1 = max(lo[0] - n, 0), min(hi[0] + n + 1, H)
        x0, x1 = max(lo[1] - n, 0), min(hi[1] + n + 1, W)
        box = z[y0:y1, x0:x1].sum() if y1 > y0 and x1 > x0 else 0.0
        if box / total >= q - 1e-12:
            return (max(y1 - y0, 0), max(x1 - x0, 0)), (hi[0] - lo[0] + 1 + 2 * n, hi[1] - lo[1] + 1 + 2 * n)
        n += 1


@pytest.mark.parametrize("shape, center", [((33, 33), (16, 16)), ((20, 30), (3, 27)), ((20, 30), (9.5, 0))])
def test_area_ratio_of_delta_map(shape, center):
    m = np.zeros(shape)
    m[int(center[0]), int(center[1])] = 5.0
    if center[0] % 1 == 0:
        for transform in ("replknet", "mass", "log1p_max"):
            for r in area_ratios(m, center, THRESHOLDS, transform):
                assert r.side == (1, 1) and r.area_ratio == 1 / (shape[0] * shape[1])
    else:  # half-pixel row centre: the smallest box is 2 rows tall
        for r in area_ratios(m, center, THRESHOLDS, "mass"):
            assert r.side == (2, 1) and r.nominal_side == (2, 1) and r.area_ratio == 2 / (shape[0] * shape[1])
        # the same box against the bottom edge keeps one row inside the image
        m = np.zeros(shape)
        m[-1, 0] = 1.0
        (r,) = area_ratios(m, (shape[0] - 0.5, 0), (0.5,), "mass")
        assert r.side == (1, 1) and r.nominal_side == (2, 1)


def test_area_ratio_uniform_map_by_hand():
    # 11 x 11, centre pixel 5: odd boxes hold 1, 9, 25, 49, 81, 121 of 121 pixels
    for transform in ("replknet", "mass", "log1p_max"):
        res = area_ratios(np.full((11, 11), 7.0), (5, 5), THRESHOLDS, transform)
        assert [r.side for r in res] == [(5, 5), (7, 7), (9, 9), (11, 11)]
        assert [r.area_ratio for r in res] == [25 / 121, 49 / 121, 81 / 121, 1.0]
    # 10 x 10, centre between pixels 4 and 5: even boxes hold 4, 16, 36, 64, 100 of 100
    res = area_ratios(np.ones((10, 10)), (4.5, 4.5), THRESHOLDS, "mass")
    assert [r.side for r in res] == [(6, 6), (6, 6), (8, 8), (10, 10)]
    assert [r.fraction for r in res] == pytest.approx([0.36, 0.36, 0.64, 1.0])


def test_area_ratio_box_clipped_at_corner():
    # centre on pixel (0, 0): box n reaches n + 1 pixels into the image per axis
    res = area_ratios(np.ones((11, 11)), (0, 0), (0.2, 0.99), "mass")
    assert res[0].side == (5, 5) and res[0].nominal_side == (9, 9) and res[0].area_ratio == 25 / 121
    assert res[1].side == (11, 11) and res[1].nominal_side == (21, 21)


def test_area_ratio_centre_outside_image():
    # centre 3 rows above the image, between columns 4 and 5: box n covers rows 0..n-3, cols 4-n..5+n
    res = area_ratios(np.ones((10, 10)), (-3, 4.5), (0.2, 0.5, 0.99), "mass")
    assert [r.side for r in res] == [(2, 10), (5, 10), (10, 10)]
    assert [r.area_ratio for r in res] == [0.2, 0.5, 1.0]
    assert res[2].nominal_side == (25, 26)


@pytest.mark.parametrize("seed", range(6))
def test_area_ratio_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(5, 40, size=2)
    m = rng.random((H, W)) ** 4
    center = (rng.integers(-6, H + 6) / 2, rng.integers(-6, W + 6) / 2)
    for q in (0.1, 0.5, 0.9, 1.0):
        side, nominal = brute_force_box_fraction(m / m.sum(), center, q)
        (r,) = area_ratios(m, center, (q,), "mass")
        assert (r.side, r.nominal_side) == (side, nominal)


def replknet_get_rectangle(data, thresh):
    """RepLKNet's loop, written out literally (erf/analyze_erf.py): image-centred, side 2i+1 from 3."""
    h, w = data.shape
    all_sum = np.sum(data)
    for i in range(1, h // 2):
        selected_area = data[h // 2 - i : h // 2 + 1 + i, w // 2 - i : w // 2 + 1 + i]
        area_sum = np.sum(selected_area)
        if area_sum / all_sum > thresh:
            return i * 2 + 1, (i * 2 + 1) / h * (i * 2 + 1) / w
    return None


@pytest.mark.parametrize("size", [64, 65])
def test_replknet_transform_matches_their_code_on_centred_map(size):
    rng = np.random.default_rng(size)
    c = size // 2
    m = 50.0 * gaussian((size, size), c, c, 7.0, 4.0, 0.4) * (1 + 0.2 * rng.random((size, size)))
    data = np.log10(m + 1)  # their transform, literally
    data = data / np.max(data)
    ours = area_ratios(m, (c, c), THRESHOLDS, "replknet")
    for t, r in zip(THRESHOLDS, ours):
        theirs = replknet_get_rectangle(data, t)
        assert theirs is not None and theirs[0] >= 3
        assert r.side == (theirs[0], theirs[0])
        assert r.area_ratio == pytest.approx(theirs[1], rel=1e-12)
    assert len({r.side for r in ours}) > 2  # the thresholds did select different boxes


def test_mass_transforms_are_scale_invariant_replknet_is_not():
    rng = np.random.default_rng(7)
    m = gaussian((60, 50), 28.5, 22, 9, 5, 0.7) * (1 + 0.3 * rng.random((60, 50))) + 1e-3 * rng.random((60, 50))
    center = (28.5, 22)
    for transform in ("mass", "log1p_max"):
        base = area_ratios(m, center, THRESHOLDS, transform)
        for k in (1e-6, 1e6):
            scaled = area_ratios(m * k, center, THRESHOLDS, transform)
            assert [(r.side, r.area_ratio) for r in scaled] == [(r.side, r.area_ratio) for r in base]
    erf = erf_rf_ratio(m, center, (41, 41))
    for k in (1e-6, 1e6):
        assert erf_rf_ratio(m * k, center, (41, 41)).side == erf.side
        assert radial_mass(m * k, center).r90 == radial_mass(m, center).r90
        assert centroid(m * k, center).position == pytest.approx(centroid(m, center).position, rel=1e-12)
    small = area_ratios(m * 1e-3, center, THRESHOLDS, "replknet")
    large = area_ratios(m * 1e3, center, THRESHOLDS, "replknet")
    assert any(s.side != g.side for s, g in zip(small, large))
    assert large[2].area_ratio > small[2].area_ratio  # the log flattens the large map: bigger boxes
    # log10(1 + x) ~ x / ln 10 for tiny x: the RepLKNet transform turns into the mass one
    tiny = area_ratios(m * 1e-12, center, THRESHOLDS, "replknet")
    assert [r.side for r in tiny] == [r.side for r in area_ratios(m, center, THRESHOLDS, "mass")]


# -------------------------------------------------------------------------------------------- ERF / RF


def test_erf_rf_ratio_of_uniform_box():
    m = np.zeros((64, 64))
    m[20:41, 28:37] = 2.0  # 21 rows (centre 30), 9 columns (centre 32)
    r = erf_rf_ratio(m, (30, 32), (63, 27))
    assert r.side == (21, 9) and r.side_clipped == (21, 9)
    assert r.ratio == pytest.approx((21 / 63, 9 / 27))
    assert r.input_ratio == pytest.approx((21 / 64, 9 / 64))
    assert r.fraction == (1.0, 1.0)
    assert all(math.isnan(v) for v in erf_rf_ratio(m, (30, 32), (math.inf, math.inf)).ratio)
    assert all(math.isnan(v) for v in erf_rf_ratio(m, (30, 32), None).ratio)
    # a smaller mass fraction: rows 21 -> 19 hold 19/21 = 0.905 of the mass, columns 7/9 = 0.78 too little
    assert erf_rf_ratio(m, (30, 32), (63, 27), mass=0.9).side == (19, 9)
    # an even box centred between pixels
    e = np.zeros((32, 32))
    e[12:20, 10:22] = 1.0
    assert erf_rf_ratio(e, (15.5, 15.5), (16, 16), mass=1.0).side == (8, 12)


def test_erf_rf_ratio_clipped_at_border():
    m = np.zeros((32, 32))
    m[0:5, 0:3] = 1.0  # reaches 4 rows and 2 columns from the centre pixel (0, 0)
    r = erf_rf_ratio(m, (0, 0), (11, 11), mass=1.0)
    assert r.side == (9, 5) and r.side_clipped == (5, 3)
    assert r.ratio == pytest.approx((9 / 11, 5 / 11))


# ---------------------------------------------------------------------------------- radial mass, centroid


def test_radial_mass_of_point_masses():
    m = np.zeros((21, 21))
    m[10, 10] = 3.0
    rm = radial_mass(m, (10, 10))
    assert set(rm.cumulative) == {1.0} and (rm.r50, rm.r90, rm.r95) == (0.0, 0.0, 0.0)
    assert rm.radii[-1] == math.ceil(math.hypot(10, 10))
    m = np.zeros((21, 21))
    m[13, 14] = 1.0  # distance 5 from (10, 10)
    rm = radial_mass(m, (10, 10))
    assert rm.cumulative[:5] == (0.0,) * 5 and set(rm.cumulative[5:]) == {1.0}
    assert rm.r50 == 5.0
    m[10, 10] = 1.5  # 60% at the centre, 40% at distance 5
    rm = radial_mass(m, (10, 10))
    assert rm.cumulative[:6] == pytest.approx([0.6] * 5 + [1.0])
    assert (rm.r50, rm.r90, rm.r95) == (0.0, 5.0, 5.0)
    # half-pixel centre: the nearest pixel is sqrt(0.5) away
    assert radial_mass(np.pad(np.ones((1, 1)), 4), (3.5, 3.5)).r50 == pytest.approx(math.sqrt(0.5))


def test_radial_mass_matches_direct_masks():
    rng = np.random.default_rng(1)
    m = rng.random((17, 23))
    center = (-2.5, 11)
    rm = radial_mass(m, center)
    yy, xx = np.mgrid[0:17, 0:23]
    d = np.hypot(yy - center[0], xx - center[1])
    assert rm.radii[-1] == math.ceil(math.hypot(16 + 2.5, 11)) and rm.cumulative[-1] == pytest.approx(1.0)
    for r in (0, 3, 7, 12, 20, 21):
        assert rm.cumulative[r] == pytest.approx(m[d <= r].sum() / m.sum(), abs=1e-12)


def test_centroid_of_asymmetric_map():
    m = np.zeros((10, 12))
    m[2, 3] = 1.0
    m[6, 9] = 3.0
    c = centroid(m, (4, 4))
    assert c.position == (5.0, 7.5) and c.offset == (1.0, 3.5)
    assert c.distance == pytest.approx(math.hypot(1, 3.5))
    ramp = np.outer(np.arange(1, 8), np.ones(5)) * np.arange(1, 6)  # weights y+1 and x+1
    c = centroid(ramp, (3, 2))
    assert c.position == pytest.approx(
        (np.average(np.arange(7), weights=np.arange(1, 8)), np.average(np.arange(5), weights=np.arange(1, 6)))
    )


# ------------------------------------------------------------------------------------------ degeneracy


def test_all_zero_map_is_flagged_not_raised():
    res = compute_metrics(np.zeros((16, 16)), (8, 8), (5, 5))
    assert "zero" in codes(res.warnings)
    assert all(math.isnan(r.area_ratio) for r in res.area_ratios)
    assert not res.gaussian.gaussian_like
    row = res.as_dict()
    assert row["area_ratio_0.2"] is None and row["r50"] is None and row["gauss_sigma_y"] is None
    json.dumps(row, allow_nan=False)


def test_single_pixel_map_is_concentrated():
    m = np.zeros((64, 64))
    m[32, 32] = 1.0
    res = compute_metrics(m, (32, 32), (101, 101))
    assert codes(res.warnings) == {"concentrated"}
    assert not res.gaussian.gaussian_like
    assert res.erf_rf.side == (1, 1)
    # a genuinely tiny RF (1x1 conv at the input) is not a collapse
    assert diagnose(m, (32, 32), (1, 1)) == ()


def test_nan_and_inf_are_flagged_and_ignored():
    m = gaussian((40, 40), 20, 20, 5, 5, 0)
    m[3, 4] = np.nan
    m[30, 2] = np.inf
    res = compute_metrics(m, (20, 20), (41, 41))
    assert codes(res.warnings) == {"nonfinite"} and "2 NaN/inf" in res.warnings[0]
    assert res.centroid.position == pytest.approx((20, 20), abs=1e-2)
    assert res.gaussian.gaussian_like
    res = compute_metrics(np.full((8, 8), np.nan), (4, 4))
    assert codes(res.warnings) == {"nonfinite", "zero"}
    json.dumps(res.as_dict(), allow_nan=False)


def test_negative_values_are_flagged():
    m = gaussian((40, 40), 20, 20, 5, 5, 0) - 0.01
    assert "negative" in codes(diagnose(m, (20, 20)))


def test_mass_far_from_centre_or_outside_rf_is_flagged():
    m = gaussian((64, 64), 20, 20, 3, 3, 0)
    assert diagnose(m, (20, 20), (31, 31)) == ()
    assert codes(diagnose(m, (40, 44), (15, 15))) == {"outside_rf", "far_from_center"}
    assert "far_from_center" in codes(diagnose(m, (40, 44)))
    assert "center_outside_image" in codes(diagnose(m, (-5, 20)))


# ------------------------------------------------------------------------------------ API and rows


@pytest.mark.parametrize("m", [np.ones(5), np.ones((2, 3, 4)), np.zeros((0, 4)), [["a", "b"]], np.ones((4, 4)) * 1j])
def test_malformed_maps_raise(m):
    with pytest.raises(ERFMapError):
        compute_metrics(m, (1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(center=(1,)),
        dict(center=(np.nan, 1)),
        dict(center="ab"),
        dict(rf_size=(3, -1)),
        dict(rf_size=(3,)),
        dict(thresholds=(0.0,)),
        dict(thresholds=(1.5,)),
        dict(mass=0),
    ],
)
def test_malformed_arguments_raise(kwargs):
    args = dict(m=np.ones((8, 8)), center=(4, 4)) | kwargs
    with pytest.raises(ValueError):  # ERFMapError is a ValueError
        compute_metrics(**args)
    with pytest.raises(ERFMapError, match="transform"):
        area_ratios(np.ones((8, 8)), (4, 4), transform="log")


def test_as_dict_is_a_flat_json_row():
    m = gaussian((48, 40), 23, 19.5, 6, 4, 0.3)
    res = compute_metrics(m, (23, 19.5), (math.inf, math.inf))
    row = res.as_dict()
    for key in (
        "area_ratio_0.2",
        "area_ratio_0.99",
        "mass_area_ratio_0.5",
        "area_side_h_0.3",
        "erf_rf_ratio_h",
        "erf_input_ratio_w",
        "r50",
        "r95",
        "centroid_dx",
        "gauss_sigma_y",
        "gauss_sigma_x_stderr",
        "gauss_rotation",
        "gauss_r2",
        "gauss_like",
        "warnings",
    ):
        assert key in row
    assert all(v is None or type(v) in (int, float, bool, str) for v in row.values())
    assert row["rf_h"] is None and row["erf_rf_ratio_h"] is None and row["erf_input_ratio_h"] > 0
    json.dumps(row, allow_nan=False)
    assert compute_metrics(m, (23, 19.5), fit=False).as_dict().keys() == row.keys()
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.center = (0, 0)


# ------------------------------------------------------------------------------- centred on the ERF itself


def sizes(res) -> dict:
    """Every size metric of a :class:`ERFMetrics`, the things a shift must not change."""
    return {
        "erf_side": res.erf_rf.side,
        "erf_ratio": res.erf_rf.ratio,
        "area": [(r.side, r.area_ratio) for r in res.area_ratios],
        "mass_area": [(r.side, r.area_ratio) for r in res.area_ratios_mass],
        "radii": (res.radial.r50, res.radial.r90, res.radial.r95),
    }


def discrete_gaussian_side(sigma: float, mass: float) -> int:
    """Smallest odd side 2n + 1 of a pixel-centred interval holding ``mass`` of a sampled 1-D Gaussian (the
    marginal of an axis-aligned 2-D one), by direct summation."""
    i = np.arange(-200, 201)
    p = np.exp(-0.5 * (i / sigma) ** 2)
    p /= p.sum()
    n = next(n for n in range(201) if p[np.abs(i) <= n].sum() >= mass)
    return 2 * n + 1


@pytest.mark.parametrize("shift", [(0, 0), (5, -7), (-9, 3), (0, 12)])
def test_sizes_of_a_shifted_gaussian_blob_do_not_change(shift):
    analytic = (40.0, 40.0)  # the unit's analytic centre stays where it is
    blob = gaussian((96, 96), 36 + shift[0], 44 + shift[1], 4.0, 2.5, 0.0)  # major axis along x
    res = compute_metrics(blob, analytic, rf_size=(31, 31), fit=False)
    assert res.centroid.position == pytest.approx((36 + shift[0], 44 + shift[1]), abs=1e-9)
    assert res.centroid.offset == pytest.approx((-4 + shift[0], 4 + shift[1]), abs=1e-9)
    assert res.erf_rf.side == (discrete_gaussian_side(2.5, 0.95), discrete_gaussian_side(4.0, 0.95))
    reference = compute_metrics(gaussian((96, 96), 36, 44, 4.0, 2.5, 0.0), analytic, (31, 31), fit=False)
    for key in ("erf_side", "area", "mass_area"):
        assert sizes(res)[key] == sizes(reference)[key]
    assert sizes(res)["radii"] == pytest.approx(sizes(reference)["radii"], abs=1e-9)
    # centred on the analytic point instead, the same blob looks larger: what the ERF centre fixes
    assert erf_rf_ratio(blob, analytic, (31, 31)).side[1] > res.erf_rf.side[1] or shift[1] == -4


def test_a_half_pixel_centre_gets_even_boxes_by_hand():
    m = np.zeros((32, 32))
    m[10:14, 20:24] = 1.0  # 4 x 4 uniform block: centre of mass (11.5, 21.5), between pixels
    for k in (0, 3):
        res = compute_metrics(np.roll(m, k, axis=0), (16, 16), rf_size=(15, 15), fit=False)
        assert res.centroid.position == (11.5 + k, 21.5)
        by_t = {r.threshold: (r.side, r.area_ratio) for r in res.area_ratios_mass}
        # box 2 x 2 holds 4/16 (< 0.3), box 4 x 4 holds everything
        assert by_t[0.2] == ((2, 2), 4 / 1024) and by_t[0.3] == ((4, 4), 16 / 1024)
        assert res.erf_rf.side == (4, 4)
        assert res.radial.r50 == pytest.approx(math.hypot(0.5, 1.5))  # 4 pixels at 0.71, 8 at 1.58: 12/16


def test_sizes_of_a_real_tiny_model_map_rolled_do_not_change():
    import torch.nn as nn

    import rfkit

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU())
    res = rfkit.erf(net, layers=["2"], images="noise", num_images=2, input_size=(40, 40), device="cpu")
    m, center, rf = res.maps["2"], res.center["2"], res.rf("2").size
    assert res.metrics["2"].centroid.position == pytest.approx(center, abs=1.5)  # one unit: RF 5 px
    base = compute_metrics(m, center, rf, fit=False)
    assert sizes(base) == sizes(res.metrics["2"])
    for k in ((4, 0), (-6, 5)):
        rolled = np.roll(m, k, axis=(0, 1))  # the RF window (5 px around the centre) stays inside
        res_k = compute_metrics(rolled, center, rf, fit=False)
        assert res_k.centroid.position == pytest.approx(np.add(base.centroid.position, k), abs=1e-9)
        assert sizes(res_k)["erf_side"] == sizes(base)["erf_side"]
        assert sizes(res_k)["area"] == sizes(base)["area"] and sizes(res_k)["mass_area"] == sizes(base)["mass_area"]
        assert sizes(res_k)["radii"] == pytest.approx(sizes(base)["radii"], abs=1e-9)


# ----------------------------------------------------------------------------- the seed's table, exactly


@pytest.mark.parametrize("size", [64, 65, 96])
def test_seed_table_equals_their_code_bitwise(size):
    rng = np.random.default_rng(size)
    c = size // 2
    m = 0.3 * gaussian((size, size), c + 6.5, c - 3, 7.0, 4.0, 0.4) * (1 + rng.random((size, size)))
    m += 1e-4 * rng.random((size, size))  # a background: the 0.99 box grows large
    data = np.log10(m + 1)
    data = data / np.max(data)
    ours = seed_area_ratios(m)
    for t, r in zip(THRESHOLDS, ours):
        theirs = replknet_get_rectangle(data, t)
        if theirs is None:
            assert r.side == (None, None) and math.isnan(r.area_ratio)
        else:
            assert r.side == (theirs[0], theirs[0]) and r.area_ratio == theirs[1]
    assert len({r.side for r in ours}) > 2
    row = compute_metrics(m, (c, c), fit=False).as_dict()
    assert [row[f"area_ratio_{t:g}"] for t in THRESHOLDS] == [None if r.side[0] is None else r.area_ratio for r in ours]


def test_seed_table_keeps_their_strict_threshold_on_an_exact_tie():
    m = np.zeros((9, 9))
    m[4, 4] = 99.0  # log10(100) / 2 = 1: the 3 x 3 box holds 1 ...
    m[0, 4] = m[8, 4] = 9.0  # ... of 2 (two pixels of log10(10) / 2 = 0.5, on the ring of side 9)
    (half,) = seed_area_ratios(m, (0.5,))
    # 1 / 2 is not more than 0.5: the seed's loop goes on to side 5, 7 and stops before 9 (i < 9 // 2)
    assert half.side == (None, None)
    m[2, 4] = 9.0  # now on the ring of side 5: 3x3 holds 1/2.5, 5x5 holds 1.5/2.5
    assert seed_area_ratios(m, (0.4, 0.5))[0].side == (5, 5)
    assert seed_area_ratios(m, (0.5,))[0].side == (5, 5)
    assert replknet_get_rectangle(np.log10(m + 1) / 2, 0.4)[0] == 5


def test_seed_table_is_on_the_map_centre_the_erf_sizes_on_the_erf():
    blob = gaussian((64, 64), 20, 40, 3.0, 3.0, 0.0)  # far off the map's centre (32, 32)
    res = compute_metrics(blob, (32, 32), fit=False)
    # the seed's square has to reach most of the way to the blob 12 px above the map's centre
    assert res.seed_table[0].side[0] > 12
    assert res.area_ratios[0].side[0] < 7  # around the blob: 20% of the log map within 3 px
    assert res.centroid.offset == pytest.approx((-12, 8), abs=1e-6)
