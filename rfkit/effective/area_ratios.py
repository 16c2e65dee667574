"""RepLKNet's high-contribution area ratios, centred on the ERF: the side and area ratio of the smallest
centred box holding 20/30/50/99% of a transform of the map (:func:`area_ratios`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfkit.effective.boxes import _boxes, _first_reaching
from rfkit.effective.centres import _fraction, _prepare, _unit
from rfkit.effective.gaussian import ERFMapError

#: RepLKNet's thresholds of the high-contribution area ratio.
THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


#: Transforms of :func:`area_ratios`.
TRANSFORMS = ("replknet", "mass", "log1p_max")


@dataclass(frozen=True)
class AreaRatio:
    """The smallest centred box holding ``threshold`` of the transformed map's sum.

    Attributes
    ----------
    threshold : float
    side : tuple
        ``(h, w)`` of the box clipped to the image, in pixels (None when the map is empty).
    nominal_side : tuple
        ``(h, w)`` before clipping.
    area_ratio : float
        ``side_h * side_w / (H * W)``; NaN for an all-zero map.
    fraction : float
        The fraction of the sum actually inside the box (>= threshold).
    """

    threshold: float
    side: tuple[int | None, int | None]
    nominal_side: tuple[int | None, int | None]
    area_ratio: float
    fraction: float


def _transform(m: np.ndarray, transform: str) -> np.ndarray:
    if transform == "replknet":
        z = np.log1p(m)  # log10(m + 1) up to a factor that / max cancels; exact for m < 1e-16 too
        top = z.max()
        return z / top if top > 0 else z
    if transform == "mass":
        z = _unit(m)
        total = z.sum()
        return z / total if total > 0 else z
    if transform == "log1p_max":
        top = m.max()
        return np.log1p(m / top) if top > 0 else m
    raise ERFMapError(f"unknown transform {transform!r}; choose one of {TRANSFORMS}")


def area_ratios(m, center=None, thresholds=THRESHOLDS, transform: str = "replknet") -> tuple[AreaRatio, ...]:
    """RepLKNet's high-contribution area ratios, centred on the ERF (or on ``center``).

    RepLKNet (Ding et al., CVPR 2022, App. B; ``erf/analyze_erf.py`` of DingXiaoH/RepLKNet-pytorch)
    transforms the map with ``data = np.log10(data + 1)`` ("the scores differ in magnitude"), then
    ``data = data / max(data)`` ("rescale to [0, 1]"), and for each threshold t in (0.2, 0.3, 0.5, 0.99)
    reports the side ``2i + 1`` of the smallest square centred on pixel ``(H // 2, W // 2)`` whose sum
    exceeds ``t * data.sum()``, and the area ratio ``side**2 / (H * W)``.

    Differences here, all deliberate (:func:`seed_area_ratios` has RepLKNet's rule to the letter):

    - the box is centred on the **ERF's own centre** (:func:`erf_center`, the raw map's centre of mass;
      or on ``center`` when given), snapped to the nearest half pixel, with odd sides on a pixel-centred
      axis and even sides on a half-pixel axis (module docstring), instead of the image centre;
    - boxes are clipped to the image, and grow until they cover it, so every threshold is reached
      (RepLKNet stops at side ``H - 1`` or so and returns None; it also wraps negative slice starts
      on non-square maps);
    - the search starts at side 1 (RepLKNet's loop starts at side 3, so a delta map gives it 9 / (H W));
    - the test is ``fraction >= t`` (up to 1e-12) where RepLKNet has a strict ``>``: they differ only
      when a box holds exactly ``t``.

    The base of the logarithm does not matter (the division by the maximum cancels it); the ``+ 1``
    does: it is what makes the transform depend on the gradient's scale. It is computed here as
    ``log1p(m) / max(log1p(m))``, the same map without the cancellation of ``m + 1`` (RepLKNet's
    literal form turns gradients below 1e-16 into exactly 0, and an all-tiny map into 0 / 0).

    On a square map whose centre of mass is the image-centre pixel ``(H // 2, W // 2)`` the results equal
    RepLKNet's for every box of side 3 or more.

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw ERF map. Only its non-negative finite part is used.
    center : pair of float, optional
        Centre ``(cy, cx)`` of the boxes; None (default): the ERF's own centre, the centre of mass of the
        raw map's non-negative part (for every transform: the log transform lifts the far background,
        whose centre of mass would pull the log map's own centre towards the image centre).
    thresholds : sequence of float
        Fractions in (0, 1].
    transform : {"replknet", "mass", "log1p_max"}
        ``"replknet"``: ``log10(m + 1) / max``, RepLKNet's exact transform. It is **not** scale
        invariant: ``log10(c m + 1)`` is not proportional to ``log10(m + 1)``, so the same network gives
        other ratios when the gradient is scaled (input normalisation, loss scale, an extra factor).
        ``"mass"``: the raw map divided by its sum (the fraction of gradient mass); exactly invariant
        to multiplying ``m`` by a positive constant. ``"log1p_max"``: ``log1p(m / max)``, a log
        compression like RepLKNet's but applied after normalising by the maximum, so also invariant.

    Returns
    -------
    tuple of AreaRatio
        One per threshold, in the given order.

    Examples
    --------
    A uniform 10 x 10 map, whose centre of mass lies between pixels 4 and 5: the boxes have even sides 2,
    4, 6, ... holding 4, 16, 36, ... of 100 pixels.

    >>> [(r.side, r.area_ratio) for r in area_ratios(np.ones((10, 10)), transform="mass")]
    [((6, 6), 0.36), ((6, 6), 0.36), ((8, 8), 0.64), ((10, 10), 1.0)]

    The RepLKNet transform depends on the scale of the gradients, the mass one does not:

    >>> yy, xx = np.mgrid[0:33, 0:33]
    >>> blob = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 50.0)
    >>> area_ratios(blob, (16, 16), (0.5,))[0].side, area_ratios(blob * 1e4, (16, 16), (0.5,))[0].side
    ((13, 13), (21, 21))
    >>> a, b = area_ratios(blob, (16, 16), (0.5,), "mass")[0], area_ratios(blob * 1e4, (16, 16), (0.5,), "mass")[0]
    >>> a.side == b.side, a.area_ratio == b.area_ratio, abs(a.fraction - b.fraction) < 1e-12
    (True, True, True)
    """
    arr, c = _prepare(m, center, unit=False)
    ts = tuple(_fraction(t, "threshold") for t in thresholds)
    z = _transform(arr, transform)
    if not float(z.max()) > 0:
        return tuple(AreaRatio(t, (None, None), (None, None), math.nan, math.nan) for t in ts)
    H, W = arr.shape
    boxes = _boxes(z, c)
    fractions = boxes.sums / boxes.total
    out = []
    for t in ts:
        i = _first_reaching(fractions, t)
        side = (int(boxes.clipped[0][i]), int(boxes.clipped[1][i]))
        out.append(
            AreaRatio(
                t,
                side,
                (int(boxes.nominal[0][i]), int(boxes.nominal[1][i])),
                side[0] * side[1] / (H * W),
                float(fractions[i]),
            )
        )
    return tuple(out)
