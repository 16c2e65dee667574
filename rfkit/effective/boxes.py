"""Centred boxes: the smallest square around a centre that holds a fraction of a map, grown one pixel per side
at a time (the rule :mod:`rfkit.effective.metrics` describes: centre rounded to 1e-6 px, snapped to the nearest
half pixel, boxes clipped to the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfkit.effective.centres import _EPS


def _snap(c: float) -> tuple[int, int]:
    """First and last pixel of the step-0 box along one axis: (k, k) or (k, k + 1)."""
    c2 = math.floor(2 * round(c, 6) + 0.5)
    lo = c2 // 2
    return lo, lo + c2 % 2


@dataclass(frozen=True)
class _Boxes:
    steps: np.ndarray  # n, one per box
    sums: np.ndarray  # mass inside each clipped box
    total: float  # the same sum over the whole image (the last box's)
    nominal: tuple  # (h, w) arrays of unclipped sides
    clipped: tuple  # (h, w) arrays of clipped sides


def _boxes(z: np.ndarray, center: tuple[float, float]) -> _Boxes:
    """Sums of ``z`` over the growing centred boxes, from the first box that meets the image to the
    first that covers it."""
    H, W = z.shape
    sat = np.zeros((H + 1, W + 1))
    sat[1:, 1:] = z.cumsum(axis=0).cumsum(axis=1)
    ends = [_snap(c) for c in center]
    start = max(max(0, lo - (n - 1), -hi) for (lo, hi), n in zip(ends, (H, W)))
    stop = max(max(0, lo, n - 1 - hi) for (lo, hi), n in zip(ends, (H, W)))
    steps = np.arange(start, stop + 1, dtype=np.int64)
    a, b, nominal, clipped = [], [], [], []
    for (lo, hi), n in zip(ends, (H, W)):
        first, last = lo - steps, hi + steps
        a.append(np.clip(first, 0, n))
        b.append(np.clip(last + 1, 0, n))
        nominal.append(last - first + 1)
        clipped.append(np.maximum(b[-1] - a[-1], 0))
    sums = sat[b[0], b[1]] - sat[a[0], b[1]] - sat[b[0], a[1]] + sat[a[0], a[1]]
    return _Boxes(steps, sums, float(sat[H, W]), tuple(nominal), tuple(clipped))


def _first_reaching(fractions: np.ndarray, t: float) -> int:
    return int(np.argmax(fractions >= t - _EPS))  # the last box holds everything: always found
