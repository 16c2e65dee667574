"""The ERF's centre of mass against the analytic RF centre, and their offset (:func:`centroid`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rfkit.effective.centres import _center, erf_center


@dataclass(frozen=True)
class Centroid:
    """The ERF's own centre (the mass-weighted mean position of the map) and its offset from the analytic
    centre.

    Attributes
    ----------
    position : tuple
        ``(y, x)`` centroid of the non-negative part of the map, :func:`erf_center` (NaN for an all-zero
        map): the centre of every size metric of :func:`compute_metrics`.
    offset : tuple
        ``(dy, dx) = position - center``.
    distance : float
        ``hypot(dy, dx)``.
    """

    position: tuple[float, float]
    offset: tuple[float, float]
    distance: float


def centroid(m, center) -> Centroid:
    """Mass-weighted centroid of the non-negative part of ``m`` and its offset from ``center``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 8)); m[1, 2] = 1.0; m[3, 6] = 3.0
    >>> c = centroid(m, (2, 3.5))
    >>> c.position, c.offset
    ((2.5, 5.0), (0.5, 1.5))
    """
    cy, cx = _center(center)
    y, x = erf_center(m)
    return Centroid((y, x), (y - cy, x - cx), math.hypot(y - cy, x - cx))
