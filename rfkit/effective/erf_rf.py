"""ERF size against the analytic RF: the side of the centred interval holding 95% of the mass along each axis,
and its ratio to the RF size (:func:`erf_rf_ratio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfkit.effective.boxes import _first_reaching, _snap
from rfkit.effective.centres import _center, _fraction, _own_center, _prepare, _rf, _unit

#: Mass fraction of the ERF/RF box.
MASS = 0.95


@dataclass(frozen=True)
class ERFRFRatio:
    """Size of the ERF (per axis, the centred interval holding ``mass`` of the map) against the RF.

    Attributes
    ----------
    mass : float
        Requested mass fraction.
    side : tuple
        ``(h, w)``: per axis, the nominal (unclipped, symmetric about the centre) length of the smallest
        centred interval holding ``mass`` of the map's marginal along that axis (rows for h, columns
        for w): twice the ERF's reach from the centre, like the RF size. None for an all-zero map.
    side_clipped : tuple
        The same intervals clipped to the image.
    fraction : tuple
        ``(h, w)`` mass actually inside each interval (>= ``mass``).
    rf_size : tuple or None
        Analytic RF size ``(h, w)`` as given (``inf`` for a global RF).
    ratio : tuple
        ``side / rf_size`` per axis; NaN where the RF is infinite or unknown.
    input_ratio : tuple
        ``side_clipped / (H, W)``: the ERF's share of the input, defined for global layers too.
    """

    mass: float
    side: tuple[int | None, int | None]
    side_clipped: tuple[int | None, int | None]
    fraction: tuple[float, float]
    rf_size: tuple[float, float] | None
    ratio: tuple[float, float]
    input_ratio: tuple[float, float]


def _interval(profile: np.ndarray, c: float, q: float) -> tuple[int, int, float]:
    """Nominal and clipped length of the smallest centred interval holding ``q`` of a 1-D profile."""
    n = profile.size
    cum = np.concatenate([[0.0], np.cumsum(profile)])
    lo, hi = _snap(c)
    start, stop = max(0, lo - (n - 1), -hi), max(0, lo, n - 1 - hi)
    steps = np.arange(start, stop + 1, dtype=np.int64)
    a = np.clip(lo - steps, 0, n)
    b = np.clip(hi + steps + 1, 0, n)
    fractions = (cum[b] - cum[a]) / cum[-1]
    i = _first_reaching(fractions, q)
    return int(hi - lo + 1 + 2 * steps[i]), int(max(b[i] - a[i], 0)), float(fractions[i])


def erf_rf_ratio(m, center=None, rf_size=None, mass: float = MASS) -> ERFRFRatio:
    """ERF size over analytic RF size, per axis.

    The ERF size along an axis is the length of the smallest interval centred on the ERF's own centre
    (:func:`erf_center`: the centre of mass of the map, which along an axis is that of its marginal; or
    ``center`` when given; snapped to a half pixel, odd lengths on a pixel, even ones between two, as the boxes of the
    module docstring) holding ``mass`` (default 0.95) of the non-negative part of the raw map's
    marginal along that axis: the rows holding 95% of the mass for h, the columns for w. Per-axis
    intervals rather than one square: an elongated ERF, or a non-square RF (7x1 kernels), keeps its
    aspect. 0.95 rather than RepLKNet's 0.99: a 99% interval is dominated by the long, noisy tail of
    the gradient, while 95% still says where almost all of the contribution lies. The nominal length
    (not clipped to the image) is compared with the RF size, which is not clipped either, so the ratio
    stays like-for-like when the RF overhangs the input; ``input_ratio`` uses the clipped length.

    Parameters
    ----------
    m : array_like, shape (H, W)
    center : pair of float, optional
        Centre ``(cy, cx)`` of the intervals; None (default): the map's own centre of mass.
    rf_size : pair of float, optional
        Analytic RF size ``(h, w)``; ``math.inf`` entries (global RF) or None give NaN ratios.
    mass : float
        Mass fraction in (0, 1].

    Returns
    -------
    ERFRFRatio

    Examples
    --------
    A uniform 9 x 5 box on a 32 x 32 map (centre of mass (16, 16)), whose RF is 27 x 15 pixels; moved 3
    pixels down, its size is the same; centred on a point 2 pixels off, the interval grows by 4:

    >>> m = np.zeros((32, 32)); m[12:21, 14:19] = 1.0
    >>> r = erf_rf_ratio(m, rf_size=(27, 15), mass=1.0)
    >>> r.side, r.ratio, r.input_ratio
    ((9, 5), (0.3333333333333333, 0.3333333333333333), (0.28125, 0.15625))
    >>> erf_rf_ratio(np.roll(m, 3, axis=0), rf_size=(27, 15), mass=1.0).side
    (9, 5)
    >>> erf_rf_ratio(m, (14, 16), (27, 15), mass=1.0).side
    (13, 5)
    >>> erf_rf_ratio(m, None, (math.inf, math.inf)).ratio
    (nan, nan)
    """
    arr, c = _prepare(m, center)
    return erf_rf_ratio_of_profiles(arr.sum(axis=1), arr.sum(axis=0), c, rf_size, mass)


def erf_rf_ratio_of_profiles(rows, cols, center=None, rf_size=None, mass: float = MASS) -> ERFRFRatio:
    """:func:`erf_rf_ratio` from the map's marginals: ``rows = m.sum(axis=1)``, ``cols = m.sum(axis=0)`` of a
    non-negative map (what the ratio depends on; :mod:`rfkit.effective.bootstrap` resamples them instead of maps).
    ``center`` None (default): the centre of mass of the profiles, the map's own centre.

    >>> m = np.zeros((32, 32)); m[12:21, 14:19] = 1.0
    >>> erf_rf_ratio_of_profiles(m.sum(axis=1), m.sum(axis=0), None, (27, 15), mass=1.0).side
    (9, 5)
    """
    rows, cols = (_unit(np.asarray(p, dtype=np.float64)) for p in (rows, cols))
    c = _own_center((rows, cols)) if center is None else _center(center)
    rf = _rf(rf_size)
    q = _fraction(mass, "mass")
    H, W = rows.size, cols.size
    nan2 = (math.nan, math.nan)
    if not (float(rows.max()) > 0 and float(cols.max()) > 0):
        return ERFRFRatio(q, (None, None), (None, None), nan2, rf, nan2, nan2)
    (sh, ch, fh), (sw, cw, fw) = _interval(rows, c[0], q), _interval(cols, c[1], q)
    side = (sh, sw)
    ratio = nan2 if rf is None else tuple(s / r if math.isfinite(r) else math.nan for s, r in zip(side, rf))
    return ERFRFRatio(q, side, (ch, cw), (fh, fw), rf, ratio, (ch / H, cw / W))
