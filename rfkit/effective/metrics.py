"""Metrics of an effective-receptive-field map, centred on the ERF itself.

Every function takes the **raw** accumulated ERF map ``m`` (shape ``(H, W)``; for the RepLKNet method the
ReLU'd input gradient summed over channels and averaged over images, so non-negative). Per-axis values are
``(h, w)`` = ``(y, x)`` pairs; pixel centres sit at integer coordinates.

Centres. :func:`compute_metrics` takes the analytic RF centre of the measured unit and reports it, but every
size metric (the area ratios, the 95%-mass ERF side and the ERF/RF ratio, r50/r90/r95) is centred on **the
ERF's own centre**: the centre of mass of the map's non-negative finite part (:func:`erf_center`), so that
an ERF shifted by a few pixels keeps its sizes. Not on the analytic centre: after nearest upsampling (YOLO
necks) the analytic window is lopsided and its midpoint lies pixels away from the ERF. Not on the peak: one
pixel of a noisy, often checkerboarded gradient. The offset between the two centres is a metric of its own
(:func:`centroid`). The low-level functions take the box centre as ``center``; None means the map's own
centre of mass (of the raw map, whatever transform the metric sums).

The one exception is the peer's table, :func:`seed_area_ratios`: RepLKNet's and get_model_erf.py's boxes,
centred on the map's centre pixel ``(H // 2, W // 2)``, reproduced exactly for comparisons.

Which map each metric uses:

- **mass** metrics (:func:`erf_rf_ratio`, :func:`radial_mass`, :func:`centroid`, the ``"mass"`` area
  ratios) use the non-negative finite part of the raw map: NaN/inf count as 0 and negative values are
  clipped to 0 (a ReLU'd gradient has none). They are invariant to multiplying ``m`` by any positive
  constant.
- the ``"replknet"`` area ratios use RepLKNet's ``log10(m + 1) / max`` (see :func:`area_ratios`),
  which depends on the gradient's scale.
- the Gaussian fit (:func:`fit_gaussian`) uses ``m / m.max()``.

Centred boxes. All "smallest centred square" searches grow a box around the centre one pixel per side at a
time. The centre is first rounded to 1e-6 px (so that float noise in a centre of mass cannot flip a tie) and
snapped to the nearest half pixel (``floor(2c + 0.5) / 2``, ties upward). Along an axis whose snapped centre
is an integer ``k`` the box at step ``n`` covers pixels ``k - n .. k + n`` (odd side ``2n + 1``, as in
RepLKNet); along an axis whose centre is a half pixel ``k + 0.5`` it covers ``k - n .. k + 1 + n`` (even side
``2n + 2``), so the box is exactly centred. The box is therefore square up to one pixel when one axis is
centred on a pixel and the other between two. Boxes are clipped to the image (mass outside it does not
exist): ``side`` is the clipped side per axis, ``nominal_side`` the unclipped one. :func:`erf_rf_ratio` grows
1-D intervals along each axis by the same rule.

>>> m = np.zeros((9, 9)); m[4, 4] = 1.0
>>> res = compute_metrics(m, center=(4, 4), rf_size=(3, 3), fit=False)
>>> res.area_ratios[0].side, res.area_ratios[0].area_ratio == 1 / 81
((1, 1), True)
>>> res.as_dict()["erf_rf_ratio_h"]
0.3333333333333333

The same delta two pixels off the analytic centre: the same sizes, and the offset reported.

>>> res = compute_metrics(np.roll(m, 2, axis=1), center=(4, 4), rf_size=(3, 3), fit=False)
>>> res.erf_rf.side, res.centroid.position, res.centroid.offset
((1, 1), (4.0, 6.0), (0.0, 2.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rfkit.effective.gaussian import ERFMapError, GaussianFit, check_map, check_pair, clean_map, fit_gaussian
from rfkit.effective.metric_registry import metric_columns
from rfkit.errors import ERFMetricError

__all__ = [
    "AreaRatio",
    "Centroid",
    "ERFMapError",
    "ERFMetrics",
    "ERFRFRatio",
    "GaussianFit",
    "RadialMass",
    "area_ratios",
    "centroid",
    "compute_metrics",
    "diagnose",
    "erf_center",
    "erf_rf_ratio",
    "erf_rf_ratio_of_profiles",
    "fit_gaussian",
    "radial_mass",
    "seed_area_ratios",
]

#: RepLKNet's thresholds of the high-contribution area ratio.
THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
#: Mass fraction of the ERF/RF box.
MASS = 0.95
#: Transforms of :func:`area_ratios`.
TRANSFORMS = ("replknet", "mass", "log1p_max")
#: Tolerance of "fraction >= threshold" (cumulative sums are not exact).
_EPS = 1e-12
#: Degeneracy rules of :func:`diagnose`.
CONCENTRATED_MASS = 0.99
CONCENTRATED_PIXELS = 0.001
CONCENTRATED_RF_AREA = 0.05
OUTSIDE_RF_MASS = 0.01
FAR_FRACTION = 0.25
FAR_MIN_PX = 2.0
_MAX_COORD = 1e9


# ----------------------------------------------------------------------------------------------- inputs


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


# ------------------------------------------------------------------------------------------ centred boxes


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


# ------------------------------------------------------------------------------------------- area ratios


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


# -------------------------------------------------------------------------------------------- ERF / RF


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


# ---------------------------------------------------------------------------------------- radial mass


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


# ------------------------------------------------------------------------------------------- centroid


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
    >>> m = np.zeros((5, 8)); m[1, 2] = 1.0; m[3, 6] = 3.0
    >>> c = centroid(m, (2, 3.5))
    >>> c.position, c.offset
    ((2.5, 5.0), (0.5, 1.5))
    """
    cy, cx = _center(center)
    y, x = erf_center(m)
    return Centroid((y, x), (y - cy, x - cx), math.hypot(y - cy, x - cx))


# ------------------------------------------------------------------------------------------ degeneracy


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


# ------------------------------------------------------------------------------------------ all at once


def _scalar(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


_GAUSS_KEYS = (
    "center_y",
    "center_x",
    "sigma_y",
    "sigma_x",
    "sigma_major",
    "sigma_minor",
    "rotation",
    "amplitude",
    "offset",
    "r2",
)


@dataclass(frozen=True)
class ERFMetrics:
    """Every metric of one ERF map (see :func:`compute_metrics`).

    Attributes
    ----------
    shape : tuple
        ``(H, W)`` of the map.
    center : tuple
        Analytic RF centre ``(cy, cx)``.
    rf_size : tuple or None
        Analytic RF size ``(h, w)`` as floats, ``inf`` when global (a NaN given reads as ``inf``).
    total_mass : float
        Sum of the non-negative finite part of the raw map.
    area_ratios : tuple of AreaRatio
        RepLKNet transform ``log10(m + 1) / max`` (scale dependent), boxes centred on the ERF.
    area_ratios_mass : tuple of AreaRatio
        Mass transform ``m / sum`` (scale invariant), boxes centred on the ERF.
    erf_rf : ERFRFRatio
        Centred on the ERF.
    radial : RadialMass
        Centred on the ERF.
    centroid : Centroid
        The ERF's own centre, the centre of all the above, and its offset from ``center``.
    gaussian : GaussianFit or None
        None when ``fit=False``.
    warnings : tuple of str
        From :func:`diagnose`.
    seed_table : tuple of AreaRatio
        The peer's table (:func:`seed_area_ratios`: RepLKNet's and get_model_erf.py's boxes, centred on the
        map's centre pixel), for comparisons with numbers they print.
    extra : dict
        The columns of the metrics registered in :data:`rfkit.effective.metric_registry.ERF_METRICS` (empty when
        none is), in their order.
    """

    shape: tuple[int, int]
    center: tuple[float, float]
    rf_size: tuple[float, float] | None
    total_mass: float
    area_ratios: tuple[AreaRatio, ...]
    area_ratios_mass: tuple[AreaRatio, ...]
    erf_rf: ERFRFRatio
    radial: RadialMass
    centroid: Centroid
    gaussian: GaussianFit | None
    warnings: tuple[str, ...]
    seed_table: tuple[AreaRatio, ...] = ()
    extra: dict[str, float] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        """Flat ``{column: scalar}`` row for a CSV/DataFrame; JSON-serialisable.

        Values are Python ``int``/``float``/``bool``/``str`` or None; NaN and inf become None (so
        ``json.dumps(..., allow_nan=False)`` works). Per-threshold keys use ``f"{t:g}"``:
        ``area_side_h_0.2`` / ``area_side_w_0.2`` / ``area_ratio_0.2`` hold the seed's table (RepLKNet's
        rule, boxes on the map's centre pixel: :attr:`seed_table`), ``erf_area_*`` the RepLKNet transform on
        boxes centred on the ERF (:attr:`area_ratios`), ``mass_area_*`` the mass transform centred on the ERF.
        ``center_y/x`` is the analytic RF centre, ``centroid_y/x`` the ERF's own centre (that of every size),
        ``centroid_dy/dx`` and ``centroid_distance`` their offset. Gaussian keys are ``gauss_*`` (present,
        None, when no fit was made); ``warnings`` is a " | "-joined string. The columns of registered metrics
        (:attr:`extra`) come last.

        Raises
        ------
        ERFMetricError
            A registered metric's column has the name of one of rfkit's own.
        """
        d: dict = {
            "height": self.shape[0],
            "width": self.shape[1],
            "center_y": self.center[0],
            "center_x": self.center[1],
            "rf_h": None if self.rf_size is None else self.rf_size[0],
            "rf_w": None if self.rf_size is None else self.rf_size[1],
            "total_mass": self.total_mass,
        }
        tables = (("", self.seed_table), ("erf_", self.area_ratios), ("mass_", self.area_ratios_mass))
        for prefix, ratios in tables:
            for r in ratios:
                t = f"{r.threshold:g}"
                d[f"{prefix}area_side_h_{t}"] = r.side[0]
                d[f"{prefix}area_side_w_{t}"] = r.side[1]
                d[f"{prefix}area_ratio_{t}"] = r.area_ratio
        e = self.erf_rf
        d.update(
            {
                "erf_mass": e.mass,
                "erf_side_h": e.side[0],
                "erf_side_w": e.side[1],
                "erf_side_clipped_h": e.side_clipped[0],
                "erf_side_clipped_w": e.side_clipped[1],
                "erf_rf_ratio_h": e.ratio[0],
                "erf_rf_ratio_w": e.ratio[1],
                "erf_input_ratio_h": e.input_ratio[0],
                "erf_input_ratio_w": e.input_ratio[1],
                "r50": self.radial.r50,
                "r90": self.radial.r90,
                "r95": self.radial.r95,
                "centroid_y": self.centroid.position[0],
                "centroid_x": self.centroid.position[1],
                "centroid_dy": self.centroid.offset[0],
                "centroid_dx": self.centroid.offset[1],
                "centroid_distance": self.centroid.distance,
            }
        )
        g = self.gaussian
        vals = dict.fromkeys(_GAUSS_KEYS)
        errs = dict.fromkeys(_GAUSS_KEYS[:-1])
        if g is not None:
            vals.update(
                center_y=g.center[0],
                center_x=g.center[1],
                sigma_y=g.sigma[0],
                sigma_x=g.sigma[1],
                sigma_major=g.sigma_major,
                sigma_minor=g.sigma_minor,
                rotation=g.rotation,
                amplitude=g.amplitude,
                offset=g.offset,
                r2=g.r2,
            )
            errs.update(
                center_y=g.center_stderr[0],
                center_x=g.center_stderr[1],
                sigma_y=g.sigma_stderr[0],
                sigma_x=g.sigma_stderr[1],
                sigma_major=g.sigma_major_stderr,
                sigma_minor=g.sigma_minor_stderr,
                rotation=g.rotation_stderr,
                amplitude=g.amplitude_stderr,
                offset=g.offset_stderr,
            )
        d.update({f"gauss_{k}": v for k, v in vals.items()})
        d.update({f"gauss_{k}_stderr": v for k, v in errs.items()})
        d["gauss_like"] = None if g is None else g.gaussian_like
        d["gauss_reason"] = None if g is None else g.reason
        d["n_warnings"] = len(self.warnings)
        d["warnings"] = " | ".join(self.warnings)
        taken = sorted(set(self.extra) & set(d))
        if taken:
            raise ERFMetricError(f"a registered ERF metric's column {taken[0]!r} is one of rfkit's own: rename it")
        d.update(self.extra)
        return {k: _scalar(v) for k, v in d.items()}


def compute_metrics(m, center, rf_size=None, thresholds=THRESHOLDS, mass: float = MASS, fit: bool = True) -> ERFMetrics:
    """All ERF metrics of one raw map: the sizes centred on the ERF's own centre (:func:`erf_center`), its
    offset from the unit's analytic RF centre ``center``, and the seed's table (:func:`seed_area_ratios`).

    Never raises for degenerate *values* (zeros, NaN, a single pixel): the metrics come back NaN and
    ``warnings`` says why. Raises :class:`ERFMapError` (a ``ValueError``) for malformed input.

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw accumulated ERF map.
    center : pair of float
        Analytic RF centre ``(cy, cx)`` of the measured unit, input pixel coordinates.
    rf_size : pair of float, optional
        Analytic RF size ``(h, w)``; ``math.inf`` for a global layer; None when unknown.
    thresholds : sequence of float
        Area-ratio thresholds (RepLKNet's by default).
    mass : float
        Mass fraction of the ERF/RF box (:func:`erf_rf_ratio`).
    fit : bool
        Fit a Gaussian (:func:`fit_gaussian`).

    Returns
    -------
    ERFMetrics

    Raises
    ------
    ERFMapError
        ``m`` is not a non-empty real 2-D array; ``center`` is not a finite pair (or lies more than 1e9
        px away); ``rf_size`` is not None or a positive pair; a threshold or ``mass`` is outside (0, 1].

    Examples
    --------
    >>> yy, xx = np.mgrid[0:48, 0:48]
    >>> m = np.exp(-0.5 * (((yy - 20) / 4.0) ** 2 + ((xx - 24) / 2.0) ** 2))
    >>> res = compute_metrics(m, center=(20, 24), rf_size=(31, 31))
    >>> res.erf_rf.side, res.warnings, res.gaussian.gaussian_like
    ((17, 9), (), True)
    >>> compute_metrics(np.roll(m, 3, axis=1), center=(20, 24), rf_size=(31, 31), fit=False).erf_rf.side
    (17, 9)
    >>> row = res.as_dict()
    >>> row["area_ratio_0.2"] is not None, round(row["gauss_sigma_y"], 3), round(row["gauss_sigma_x"], 3)
    (True, 4.0, 2.0)
    """
    raw = check_map(m)
    c = _center(center)
    rf = _rf(rf_size)
    ts = tuple(_fraction(t, "threshold") for t in thresholds)
    q = _fraction(mass, "mass")
    warnings = diagnose(raw, c, rf)
    arr, _, _ = clean_map(raw)
    with np.errstate(over="ignore"):
        total_mass = float(arr.sum())
    own = _box_center(arr, None)
    return ERFMetrics(
        shape=(int(arr.shape[0]), int(arr.shape[1])),
        center=c,
        rf_size=rf,
        total_mass=total_mass,
        area_ratios=area_ratios(arr, own, ts, "replknet"),
        area_ratios_mass=area_ratios(arr, own, ts, "mass"),
        erf_rf=erf_rf_ratio(arr, own, rf, q),
        radial=radial_mass(arr, own),
        centroid=centroid(arr, c),
        gaussian=fit_gaussian(raw) if fit else None,
        warnings=warnings,
        seed_table=seed_area_ratios(arr, ts),
        extra=metric_columns(arr, c, own, rf),
    )
