"""Radial mass: the radii around the ERF's centre that hold 50, 90 and 95% of the map's mass
(:func:`radial_mass`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfkit.effective.centres import _EPS, _prepare


@dataclass(frozen=True)
class RadialMass:
    """Cumulative mass fraction against Euclidean distance from the ERF's centre.

    Attributes
    ----------
    radii : tuple of int
        0, 1, ..., up to the distance of the farthest pixel (rounded up).
    cumulative : tuple of float
        Fraction of the mass on pixels whose centre lies within ``radii[i]`` of the centre.
    r50, r90, r95 : float
        Smallest pixel distance ``d`` such that the pixels within ``d`` hold 50 / 90 / 95% of the mass
        (exact pixel distances, not rounded to the integer radii). NaN for an all-zero map.
    """

    radii: tuple[int, ...]
    cumulative: tuple[float, ...]
    r50: float
    r90: float
    r95: float


def radial_mass(m, center=None) -> RadialMass:
    """Fraction of the (non-negative) mass within radius r of the ERF's centre, and r50/r90/r95.

    Parameters
    ----------
    m : array_like, shape (H, W)
    center : pair of float, optional
        Centre ``(cy, cx)`` of the circles, may be outside the image; None (default): the map's own centre
        of mass (:func:`erf_center`) snapped to the nearest half pixel (:func:`half_pixel`), as every size
        metric of :func:`compute_metrics`.

    Returns
    -------
    RadialMass

    Examples
    --------
    A point mass 5 pixels right of a given centre; around its own centre, everything is at distance 0:

    >>> m = np.zeros((11, 11)); m[5, 10] = 2.0
    >>> rm = radial_mass(m, (5, 5))
    >>> rm.cumulative[:7], rm.r50, rm.r95
    ((0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0), 5.0, 5.0)
    >>> radial_mass(m).r95
    0.0
    """
    arr, (cy, cx) = _prepare(m, center)
    H, W = arr.shape
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot(yy - cy, xx - cx).ravel()
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    cum = np.cumsum(arr.ravel()[order])
    total = float(cum[-1])
    radii = np.arange(0, int(math.ceil(d_sorted[-1])) + 1)
    idx = np.searchsorted(d_sorted, radii + 1e-9, side="right")
    if not total > 0:
        nan = math.nan
        return RadialMass(tuple(int(r) for r in radii), (nan,) * len(radii), nan, nan, nan)
    frac = cum / total
    curve = np.where(idx > 0, frac[np.maximum(idx - 1, 0)], 0.0)

    def quantile(q: float) -> float:
        return float(d_sorted[int(np.argmax(frac >= q - _EPS))])

    return RadialMass(
        tuple(int(r) for r in radii), tuple(float(v) for v in curve), quantile(0.5), quantile(0.9), quantile(0.95)
    )
