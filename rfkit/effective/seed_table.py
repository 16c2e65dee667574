"""The peer's table, reproduced exactly: RepLKNet's and get_model_erf.py's area ratios (seed 004), on
``log10(m + 1) / max`` with boxes centred on the map's centre pixel ``(H // 2, W // 2)``
(:func:`seed_area_ratios`), for comparisons with published numbers.
"""

from __future__ import annotations

import math

import numpy as np

from rfkit.effective.area_ratios import THRESHOLDS, AreaRatio
from rfkit.effective.centres import _fraction
from rfkit.effective.gaussian import check_map, clean_map


def seed_log_map(m) -> np.ndarray:
    """The map the seed's table sums: ``np.log10(m + 1)`` divided by its maximum, literally so, in float64
    (NaN/inf count as 0 and negative values as 0 first, as everywhere in this module). All zero when the map
    is.

    >>> seed_log_map(np.array([[0.0, 9.0], [99.0, 0.0]])).tolist()
    [[0.0, 0.5], [1.0, 0.0]]
    """
    arr, _, _ = clean_map(check_map(m))
    data = np.log10(arr + 1)
    top = np.max(data)
    return data / top if top > 0 else data


def _seed_fraction(data: np.ndarray, i: int, total: float) -> float:
    """The seed's own sum over its box of step ``i`` around ``(H // 2, W // 2)`` over ``total`` (its
    ``np.sum`` of a slice: bitwise the seed's value, for a threshold the faster sums land too close to)."""
    H, W = data.shape
    box = data[max(H // 2 - i, 0) : H // 2 + 1 + i, max(W // 2 - i, 0) : W // 2 + 1 + i]
    return float(np.sum(box) / total)


def seed_area_ratios(m, thresholds=THRESHOLDS) -> tuple[AreaRatio, ...]:
    """The area-ratio table of RepLKNet's ``erf/analyze_erf.py`` and of the get_model_erf.py script for YOLO,
    to the letter: boxes centred on the **map's centre pixel** ``(H // 2, W // 2)``, not on the ERF.

    On ``data = log10(m + 1) / max`` (:func:`seed_log_map`, float64), for each threshold ``t`` the first step
    ``i`` in ``1 .. H // 2 - 1`` whose square ``data[H//2 - i : H//2 + 1 + i, W//2 - i : W//2 + 1 + i]`` holds
    strictly more than ``t`` of ``data.sum()``; its side ``2i + 1`` (so 3 at least) and area ratio
    ``(2i + 1) / H * (2i + 1) / W``. No step reaching ``t``: side None and ratio NaN (the script crashes
    there), as for an all-zero map. The one departure: on a non-square map a box wider than the map is
    clipped to it (the script's negative slice start wraps around); on a square map the boxes never reach
    the edge and every number is the script's, bitwise in float64.

    The script itself runs in float32 (the gradients' dtype): there ``m + 1`` rounds ``m`` to multiples of
    ``2**-23`` (gradients under 6e-8 vanish) and its sums carry float32 rounding, so a box whose fraction
    lies within about 1e-6 of a threshold can be decided the other way (a side 2 px larger or smaller).

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw ERF map (the mean over images, as the script's ``AverageMeter`` keeps it).
    thresholds : sequence of float
        Fractions in (0, 1].

    Returns
    -------
    tuple of AreaRatio
        One per threshold; ``fraction`` is the box's share of the sum.

    Examples
    --------
    A delta on the centre pixel: the script's first box is 3 px wide, whatever the threshold.

    >>> m = np.zeros((9, 9)); m[4, 4] = 5.0
    >>> [(r.side, round(r.area_ratio, 4)) for r in seed_area_ratios(m, (0.5, 0.99))]
    [((3, 3), 0.1111), ((3, 3), 0.1111)]
    >>> seed_area_ratios(np.ones((9, 9)), (0.99,))[0].side
    (None, None)
    """
    ts = tuple(_fraction(t, "threshold") for t in thresholds)
    data = seed_log_map(m)
    H, W = data.shape
    total = np.sum(data)
    steps = np.arange(1, max(H // 2, 1), dtype=np.int64)
    if not total > 0 or steps.size == 0:
        return tuple(AreaRatio(t, (None, None), (None, None), math.nan, math.nan) for t in ts)
    sat = np.zeros((H + 1, W + 1))
    sat[1:, 1:] = data.cumsum(axis=0).cumsum(axis=1)
    y0, y1 = np.maximum(H // 2 - steps, 0), np.minimum(H // 2 + 1 + steps, H)
    x0, x1 = np.maximum(W // 2 - steps, 0), np.minimum(W // 2 + 1 + steps, W)
    fractions = (sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]) / float(sat[H, W])
    out = []
    for t in ts:
        found = None
        for j in np.flatnonzero(fractions > t - 1e-9):  # the table's fractions are monotone: a few at most
            f = float(fractions[j]) if fractions[j] > t + 1e-9 else _seed_fraction(data, int(steps[j]), total)
            if f > t:
                found = (int(j), f)
                break
        if found is None:
            out.append(AreaRatio(t, (None, None), (None, None), math.nan, math.nan))
            continue
        j, f = found
        nominal = 2 * int(steps[j]) + 1
        side = (int(y1[j] - y0[j]), int(x1[j] - x0[j]))
        out.append(AreaRatio(t, side, (nominal, nominal), side[0] / H * side[1] / W, f))
    return tuple(out)
