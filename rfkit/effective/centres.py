"""The inputs every ERF metric shares (a centre, an RF size, a fraction, a map made ready), and the ERF's own
centre: the centre of mass of the map's non-negative finite part (:func:`erf_center`), on which every size metric
of :mod:`rfkit.effective.metrics` is centred.

>>> import numpy as np
>>> m = np.zeros((5, 6)); m[1, 4] = 1.0
>>> erf_center(m)
(1.0, 4.0)
"""

from __future__ import annotations

import math

import numpy as np

from rfkit.effective.gaussian import ERFMapError, check_map, check_pair, clean_map

#: Tolerance of "fraction >= threshold" (cumulative sums are not exact).
_EPS = 1e-12


_MAX_COORD = 1e9


def _center(center) -> tuple[float, float]:
    c = check_pair(center, "center")
    if max(abs(c[0]), abs(c[1])) > _MAX_COORD:
        raise ERFMapError(f"center {center!r} is absurdly far from the image")
    return c


def _rf(rf_size) -> tuple[float, float] | None:
    """Validated RF size: None when unknown; NaN entries read as unknown (inf)."""
    if rf_size is None:
        return None
    try:
        vals = tuple(float(v) for v in rf_size)
    except (TypeError, ValueError):
        raise ERFMapError(f"rf_size must be a pair (h, w) of numbers or None; got {rf_size!r}") from None
    if len(vals) != 2:
        raise ERFMapError(f"rf_size must be a pair (h, w) of numbers or None; got {rf_size!r}")
    if any(v <= 0 for v in vals):
        raise ERFMapError(f"rf_size must be positive; got {rf_size!r}")
    return tuple(math.inf if math.isnan(v) else v for v in vals)


def _fraction(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ERFMapError(f"{name} must be a number in (0, 1]; got {value!r}") from None
    if not 0 < v <= 1:
        raise ERFMapError(f"{name} must be in (0, 1]; got {value!r}")
    return v


def _unit(arr: np.ndarray) -> np.ndarray:
    """``arr`` scaled by the power of two that brings its maximum into [0.5, 1): exact (no rounding, so
    results are bitwise those of the raw map), and sums of 1e308-sized maps do not overflow."""
    top = float(arr.max())
    return np.ldexp(arr, -math.frexp(top)[1]) if top > 0 else arr


def _prepare(m, center, unit: bool = True) -> tuple[np.ndarray, tuple[float, float]]:
    """The non-negative finite part of the map (scaled by :func:`_unit` unless ``unit`` is False) and the
    centre to use: ``center``, or the map's own centre of mass when it is None."""
    arr, _, _ = clean_map(check_map(m))
    return (_unit(arr) if unit else arr), _box_center(arr, center)


def _mass_center(profile: np.ndarray) -> float:
    """Centre of mass of a non-negative 1-D profile (NaN when it is all zero)."""
    p = _unit(profile)
    total = float(p.sum())
    return float(p @ np.arange(p.size)) / total if total > 0 else math.nan


def _box_center(arr: np.ndarray, center) -> tuple[float, float]:
    """``center`` validated, or for None the centre of mass of the non-negative map ``arr`` (its middle
    when the map is all zero: every size is NaN then, wherever the box is)."""
    if center is not None:
        return _center(center)
    return _own_center((arr.sum(axis=1), arr.sum(axis=0)))


def _own_center(profiles) -> tuple[float, float]:
    """The centre the size metrics use: the centre of mass ``(cy, cx)`` from the row and column sums of a
    non-negative map, snapped to the nearest half pixel (:func:`half_pixel`; the map's middle when it is all
    zero)."""
    c = tuple(_mass_center(np.asarray(p, dtype=np.float64)) for p in profiles)
    if any(math.isnan(v) for v in c):
        return tuple((p.size - 1) / 2 for p in profiles)
    return tuple(half_pixel(v) for v in c)


def half_pixel(c: float) -> float:
    """``c`` snapped to the nearest half pixel, as the centred boxes are (:func:`_snap`): every size metric of
    :func:`compute_metrics` is centred on the ERF's centre of mass snapped so, one centre for boxes, intervals and
    circles alike (which also lets the bootstrap share work among resamples whose centres snap alike).

    >>> half_pixel(10.2), half_pixel(10.3), half_pixel(10.76)
    (10.0, 10.5, 11.0)
    """
    return math.floor(2 * round(c, 6) + 0.5) / 2


def erf_center(m) -> tuple[float, float]:
    """The ERF's own centre: the centre of mass ``(y, x)`` of the non-negative finite part of the raw map, in
    input pixel coordinates; ``(nan, nan)`` for an all-zero map.

    Every size metric of :func:`compute_metrics` is centred here. Shifting the map (with its mass inside the
    image) shifts this centre by the same amount, so the sizes do not change.

    Examples
    --------
    >>> m = np.zeros((6, 6)); m[2, 1] = 1.0; m[2, 4] = 3.0; m[3, 4] = 4.0
    >>> erf_center(m)
    (2.5, 3.625)
    >>> erf_center(np.zeros((4, 4)))
    (nan, nan)
    """
    arr, _, _ = clean_map(check_map(m))
    return _mass_center(arr.sum(axis=1)), _mass_center(arr.sum(axis=0))
