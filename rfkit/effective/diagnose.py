"""Degenerate ERF maps, flagged: mass concentrated on a few pixels, mass outside the RF, a centre far from the
analytic one (:func:`diagnose`).
"""

from __future__ import annotations

import math

import numpy as np

from rfkit.effective.centres import _EPS, _center, _rf, _unit
from rfkit.effective.centroid import centroid
from rfkit.effective.gaussian import check_map, clean_map

#: Degeneracy rules of :func:`diagnose`.
CONCENTRATED_MASS = 0.99


CONCENTRATED_PIXELS = 0.001


CONCENTRATED_RF_AREA = 0.05


OUTSIDE_RF_MASS = 0.01


FAR_FRACTION = 0.25


FAR_MIN_PX = 2.0


def _rf_window(c: float, r: float, n: int) -> tuple[int, int]:
    """Pixels [first, last) of the analytic RF along one axis, clipped to the image."""
    half = (r - 1) / 2
    first = max(math.ceil(c - half - 1e-9), 0)
    last = min(math.floor(c + half + 1e-9) + 1, n)
    return first, max(last, first)


def diagnose(m, center, rf_size=None) -> tuple[str, ...]:
    """Warnings about a map whose metrics should not be trusted; never raises for bad *values*.

    Each warning starts with a code and a colon:

    - ``nonfinite``: NaN/inf values (the metrics count them as 0);
    - ``negative``: negative values (clipped to 0 by the mass metrics);
    - ``zero``: nothing left after that: no gradient reached the input, the metrics are NaN;
    - ``concentrated``: 99% of the mass lies in at most ``max(1, 0.1% of H*W)`` pixels (a collapsed
      ERF: random-init ResNets, dead units) and, when a finite ``rf_size`` is known, in fewer than 5% of
      the RF's pixels inside the image (so a genuinely tiny RF, a stem conv, is not flagged);
    - ``outside_rf``: more than 1% of the mass lies outside the analytic RF box (a finite RF: the
      gradient must be zero there, so the RF analysis or the centre is wrong);
    - ``far_from_center``: the centroid is more than ``max(2 px, 25%)`` of the RF size (or of the image
      size when the RF is global/unknown, or larger than the image) from the analytic centre along an
      axis;
    - ``center_outside_image``: the analytic centre is not inside the image (informational).

    Examples
    --------
    >>> diagnose(np.zeros((8, 8)), (4, 4))
    ('zero: the map is all zero: no gradient reached the input; the metrics are NaN',)
    >>> m = np.ones((8, 8)); m[0, 0] = np.nan
    >>> diagnose(m, (3.5, 3.5))
    ('nonfinite: 1 NaN/inf value(s) in the map, counted as 0',)
    """
    raw = check_map(m)
    cy, cx = _center(center)
    rf = _rf(rf_size)
    arr, n_nonfinite, n_negative = clean_map(raw)
    arr = _unit(arr)
    H, W = arr.shape
    out = []
    if n_nonfinite:
        out.append(f"nonfinite: {n_nonfinite} NaN/inf value(s) in the map, counted as 0")
    if n_negative:
        out.append(f"negative: {n_negative} negative value(s) in the map, clipped to 0 by the mass metrics")
    if not (-0.5 <= cy <= H - 0.5 and -0.5 <= cx <= W - 0.5):
        out.append(f"center_outside_image: the analytic centre ({cy:g}, {cx:g}) lies outside the {H}x{W} input")
    total = float(arr.sum())
    if not total > 0:
        out.append("zero: the map is all zero: no gradient reached the input; the metrics are NaN")
        return tuple(out)

    finite_rf = rf is not None and all(math.isfinite(r) for r in rf)
    windows = [_rf_window(c, r, n) for c, r, n in zip((cy, cx), rf, (H, W))] if finite_rf else None

    cum = np.cumsum(np.sort(arr.ravel())[::-1])
    n99 = int(np.searchsorted(cum, CONCENTRATED_MASS * total - _EPS * total)) + 1
    limit = max(1.0, CONCENTRATED_PIXELS * H * W)
    if n99 <= limit:
        rf_area = (windows[0][1] - windows[0][0]) * (windows[1][1] - windows[1][0]) if finite_rf else None
        if rf_area is None or n99 < CONCENTRATED_RF_AREA * rf_area:
            where = "" if rf_area is None else f" of an RF covering {rf_area} pixels of the input"
            out.append(f"concentrated: 99% of the mass lies in {n99} pixel(s){where}: a collapsed ERF")

    if finite_rf:
        (y0, y1), (x0, x1) = windows
        inside = float(arr[y0:y1, x0:x1].sum())
        outside = 1.0 - inside / total
        if outside > OUTSIDE_RF_MASS:
            out.append(
                f"outside_rf: {outside:.1%} of the mass lies outside the analytic RF box "
                f"(rows {y0}..{y1 - 1}, cols {x0}..{x1 - 1}): the RF or its centre is wrong"
            )

    cen = centroid(arr, (cy, cx))
    for axis, (d, n) in enumerate(zip(cen.offset, (H, W))):
        ref = n if not finite_rf or rf[axis] > n else rf[axis]
        limit_px = max(FAR_MIN_PX, FAR_FRACTION * ref)
        if abs(d) > limit_px:
            name = "dy" if axis == 0 else "dx"
            out.append(
                f"far_from_center: the centroid is {d:+.1f} px ({name}) from the analytic centre "
                f"(more than {limit_px:.1f} px)"
            )
    return tuple(out)
