"""The metrics of many bootstrap resamples at once: what :func:`rfkit.effective.bootstrap.bootstrap_cis` computes
instead of calling :func:`~rfkit.effective.metrics.compute_metrics` once per resample.

A resample ``r`` is a row ``w`` of weights over the ``G`` groups (how often each was drawn); its mean map is
``M_r = (w @ sums) / (w @ counts)``. Most metrics are linear in the map up to their normalisation (a sum over
a box, a row profile, a first moment, the mass within a distance): each is computed **once per group**
(``G`` reductions of ``H × W`` maps) and the resamples' values are one matrix product ``weights @ per_group``
away. Only RepLKNet's transform ``log10(M + 1) / max`` is not linear: its box sums need the ``R × H × W``
resampled maps, built by one matrix product (in chunks that bound the memory) with the pixels already
sorted by the box that first holds them, so that the box sums are one cumulative sum per row.

The values are those of :func:`~rfkit.effective.metrics.compute_metrics` on each resample's mean map up to
rounding (sums in another order): ``tests/test_resampled.py`` compares them resample by resample, and the
bootstrap bounds with those of a loop over the same resamples. As in
:func:`~rfkit.effective.metrics.compute_metrics`, the sizes are **centred on each resample's own centre of mass**,
snapped to the nearest half pixel (:func:`own_centres`), and the centroid offsets are measured from ``center``,
the unit's analytic RF centre: resamples whose centres snap alike are computed together (a handful of
distinct centres among a thousand resamples).

Vectorised here, one column each as :meth:`~rfkit.effective.metrics.ERFMetrics.as_dict` names it:
``total_mass``; the area sides and ratios of both transforms (:func:`~rfkit.effective.metrics.area_ratios`,
``"replknet"`` and ``"mass"``); ``erf_side_*``, ``erf_side_clipped_*``, ``erf_rf_ratio_*``,
``erf_input_ratio_*`` (:func:`~rfkit.effective.metrics.erf_rf_ratio`); ``r50``, ``r90``, ``r95``
(:func:`~rfkit.effective.metrics.radial_mass`); ``centroid_y``, ``centroid_x``, ``centroid_dy``, ``centroid_dx``
(:func:`~rfkit.effective.metrics.centroid`). No Gaussian is fitted (the fit has its own standard errors).

>>> sums = np.zeros((2, 5, 5)); sums[0, 2, 2] = 1.0; sums[1, 2, 1:4] = 1.0  # a dot, a 1×3 bar
>>> cols = resampled_metrics(sums, np.array([1, 1]), np.array([[2, 0], [1, 1], [0, 2]]), (2, 2), (5, 5))
>>> cols["erf_side_w"].tolist(), cols["total_mass"].tolist()
([1.0, 3.0, 3.0], [1.0, 2.0, 3.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from rfkit.effective.metrics import _EPS, MASS, THRESHOLDS, _boxes, _rf, _snap

_CHUNK_BYTES = 64 * 2**20


def linear_ok(sums: np.ndarray) -> bool:
    """Whether the group sums are finite and non-negative, as every mean of them then is: what
    :func:`resampled_metrics` needs (a NaN or negative pixel is cleaned per mean map, which no per-group sum
    can do)."""
    return bool(np.isfinite(sums).all() and not (sums < 0).any())


def _first(fractions: np.ndarray, t: float) -> np.ndarray:
    """Per row, the index of the first column ``>= t`` (up to :data:`~rfkit.effective.metrics._EPS`); the last
    column always qualifies (it holds everything)."""
    return np.argmax(fractions >= t - _EPS, axis=1)


def resampled_metrics(
    sums: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    center,
    rf_size=None,
    thresholds=THRESHOLDS,
    mass: float = MASS,
) -> dict[str, np.ndarray]:
    """Every interval column of :func:`~rfkit.effective.metrics.compute_metrics` for each resample (module docstring).

    Parameters
    ----------
    sums : numpy.ndarray
        ``(G, H, W)`` per-group map sums, finite and non-negative (:func:`linear_ok`).
    counts : numpy.ndarray
        ``(G,)`` images per group.
    weights : numpy.ndarray
        ``(R, G)`` draws of each group per resample.
    center : array_like
        ``(cy, cx)`` for every resample, or ``(R, 2)``: one per resample.
    rf_size : pair of float, optional
        The analytic RF ``(h, w)`` (``inf``: global; None: unknown) of the ERF/RF ratio.
    thresholds, mass : as :func:`~rfkit.effective.metrics.compute_metrics`.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``{column: (R,) float64}``, NaN where the metric is undefined (an all-zero resample).
    """
    sums = np.asarray(sums, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    R = weights.shape[0]
    g = _Groups.of(sums, counts)
    totals = weights @ g.rows.sum(axis=1)
    empty = ~(totals > 0)
    out: dict[str, np.ndarray] = {"total_mass": totals / (weights @ counts)}
    own = own_centres(weights @ g.rows, weights @ g.cols)
    _fill(out, own, lambda c, i: _size_columns(g, weights[i], c, rf_size, thresholds, mass))
    analytic = np.broadcast_to(np.asarray(center, dtype=np.float64), (R, 2))
    _fill(out, analytic, lambda c, i: _centroid_columns(g.rows, g.cols, weights[i], c))
    for column in out.values():
        column[empty] = math.nan
    return out


@dataclass(frozen=True)
class _Groups:
    """The groups' maps in the forms every centre's metrics read, prepared once."""

    shape: tuple[int, int]
    counts: np.ndarray  # (G,) images per group
    rows: np.ndarray  # (G, H) row sums
    cols: np.ndarray  # (G, W) column sums
    flat_t: np.ndarray  # (H*W, G): the maps, flattened, as columns
    flat32_t: np.ndarray  # the same in float32
    low: float  # the smallest positive pixel (0: none)
    high: float  # the largest pixel

    @classmethod
    def of(cls, sums: np.ndarray, counts: np.ndarray) -> _Groups:
        G, H, W = sums.shape
        flat_t = np.ascontiguousarray(sums.reshape(G, H * W).T)
        positive = flat_t[flat_t > 0]
        low = float(positive.min()) if positive.size else 0.0
        rows, cols = sums.sum(axis=2), sums.sum(axis=1)
        return cls((H, W), counts, rows, cols, flat_t, flat_t.astype(np.float32), low, float(flat_t.max(initial=0)))


def _size_columns(g: _Groups, weights, c, rf_size, thresholds, mass) -> dict[str, np.ndarray]:
    """The size columns (boxes, intervals, circles) of resamples sharing the centre ``c``."""
    part = _area_columns(g, weights, c, thresholds)
    part |= _erf_columns(g.rows, g.cols, weights, c, rf_size, mass)
    return part | _radial_columns(g.flat_t, weights, g.shape, c)


def _fill(out: dict, centres: np.ndarray, columns) -> None:
    """Add to ``out`` the ``(R,)`` columns that ``columns(centre, indices)`` computes for the rows (resamples,
    maps) ``indices`` sharing each distinct centre of ``centres`` (``(R, 2)``)."""
    uniq, which = np.unique(centres, axis=0, return_inverse=True)
    for k, c in enumerate(uniq):
        chosen = np.flatnonzero(which.ravel() == k)
        for name, values in columns(tuple(float(v) for v in c), chosen).items():
            out.setdefault(name, np.full(len(centres), math.nan))[chosen] = values


def own_centres(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(n, 2)``: the centre every size metric of each map uses (its centre of mass snapped to the nearest
    half pixel, the middle for an all-zero map: :func:`~rfkit.effective.metrics.half_pixel`), from the maps' row and
    column sums ``(n, H)`` and ``(n, W)``.

    >>> m = np.zeros((8, 8)); m[2, 5] = 1.0; m[3, 5] = 3.0
    >>> own_centres(m.sum(axis=1)[None], m.sum(axis=0)[None]).tolist()
    [[3.0, 5.0]]
    """
    out = []
    for profiles in (np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)):
        total = profiles.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (profiles @ np.arange(profiles.shape[1])) / total
        c = np.floor(2 * np.round(c, 6) + 0.5) / 2
        out.append(np.where(total > 0, c, (profiles.shape[1] - 1) / 2))
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------------------- centred boxes


@dataclass(frozen=True)
class _Bins:
    """Pixels grouped by an integer key, without sorting them (a sort per centre is what this avoids)."""

    keys: np.ndarray  # the keys present, increasing
    matrix: sparse.csc_array  # (len(keys), H*W): one 1 per pixel, in the row of its key
    sizes: np.ndarray  # pixels per key

    @classmethod
    def of(cls, key: np.ndarray) -> _Bins:
        counts = np.bincount(key)
        present = np.flatnonzero(counts)
        row = (np.cumsum(counts > 0) - 1)[key]
        n = key.size
        matrix = sparse.csc_array((np.ones(n), row, np.arange(n + 1)), shape=(present.size, n))
        return cls(present, matrix, counts[present])

    def sums(self, columns: np.ndarray, dtype=np.float64) -> np.ndarray:
        """``(k, len(keys))``: the sums over each key's pixels of the ``k`` maps that are the columns of
        ``columns`` (``(H*W, k)``, C-contiguous); each sum adds its pixels one by one, in pixel order."""
        return (self.matrix.astype(dtype, copy=False) @ columns).T


@dataclass(frozen=True)
class _Plan:
    """The growing centred boxes of :func:`~rfkit.effective.metrics.area_ratios` around one centre, as rings: ring
    ``k`` holds the pixels that box step ``k`` adds."""

    bins: _Bins  # the pixels binned by the step that first holds them (non-empty rings only)
    at: np.ndarray  # per box, the last ring it holds (index into the non-empty rings; -1: none)
    boxes: object  # steps and sides (rfkit.effective.metrics._Boxes)


def _plan(shape: tuple[int, int], center) -> _Plan:
    boxes = _boxes(np.zeros(shape), center)
    reach = []
    for (lo, hi), n in zip((_snap(v) for v in center), shape):
        i = np.arange(n)
        reach.append(np.maximum(np.maximum(lo - i, i - hi), 0))
    ring = np.maximum(reach[0][:, None], reach[1][None, :]).ravel()  # the step that first holds each pixel
    bins = _Bins.of(ring)
    return _Plan(bins, np.searchsorted(bins.keys, boxes.steps, side="right") - 1, boxes)


def _inside_outside(rings: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box, the sum inside it and outside it, from the ring sums ``(n, rings)``; each a sum of
    non-negative terms (no cancellation)."""
    zero = np.zeros((rings.shape[0], 1))
    inside = np.concatenate([zero, np.cumsum(rings, axis=1)], axis=1)[:, at + 1]
    after = np.concatenate([np.cumsum(rings[:, ::-1], axis=1)[:, ::-1], zero], axis=1)
    return inside, after[:, at + 1]


def _crossings(rings: np.ndarray, plan: _Plan, thresholds) -> dict[float, np.ndarray]:
    """Per threshold, the first box holding that share of the ring sums' total, per row."""
    inside, _ = _inside_outside(rings, plan.at)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = inside / inside[:, -1:]
    return {t: _first(fractions, t) for t in thresholds}


def _side_columns(prefix: str, crossings: dict, boxes, area: int) -> dict[str, np.ndarray]:
    out = {}
    for t, i in crossings.items():
        h, w = boxes.clipped[0][i].astype(np.float64), boxes.clipped[1][i].astype(np.float64)
        key = f"{t:g}"
        out[f"{prefix}area_side_h_{key}"], out[f"{prefix}area_side_w_{key}"] = h, w
        out[f"{prefix}area_ratio_{key}"] = h * w / area
    return out


def _area_columns(g: _Groups, weights, center, thresholds) -> dict[str, np.ndarray]:
    """The area sides and ratios of both transforms: ``"mass"`` from the groups' ring sums, ``"replknet"``
    from ``log1p`` of the resampled maps (the division by the maximum cancels in the fractions)."""
    plan = _plan(g.shape, center)
    area = g.shape[0] * g.shape[1]
    mass = weights @ plan.bins.sums(g.flat_t)
    out = _side_columns("mass_", _crossings(mass, plan, thresholds), plan.boxes, area)
    scaled = weights / (weights @ g.counts)[:, None]  # a resample's mean map is flat_t @ scaled.T
    return _side_columns("erf_", _log_crossings(g, scaled, plan, thresholds), plan.boxes, area) | out


_U32 = 2.0**-24
"""The unit roundoff of float32."""
_SAFE32 = (1e-30, 1e30)
"""Map values whose float32 products, sums and log1p keep their relative error bound."""


def _log_crossings(g: _Groups, scaled: np.ndarray, plan: _Plan, thresholds) -> dict[float, np.ndarray]:
    """The boxes of RepLKNet's transform: per threshold, the first box holding that share of
    ``log1p(mean map)``, per resample (rows of ``scaled``).

    The resampled maps are built, transformed and summed per ring in float32, the rings added up in float64:
    each ring sum is then within a relative ``delta`` of the exact one (sums of non-negative terms: ``G + 4``
    roundings of the map, a few ulp of ``log1p``, one rounding per pixel of the largest ring). A box is
    taken only where that bound decides it (it holds the share, the box before does not); the few resamples
    with a box too close to call are redone in float64. The boxes are therefore those of float64
    arithmetic, at a fraction of its cost."""
    n, G = scaled.shape
    found = {t: np.zeros(n, dtype=np.int64) for t in thresholds}
    fast = g.low == 0 or (
        g.low * scaled[scaled > 0].min() > _SAFE32[0] and g.high * scaled.sum(axis=1).max() < _SAFE32[1]
    )
    doubt = np.ones(n, dtype=bool)
    if fast:
        delta = (G + 4 + int(plan.bins.sizes.max())) * _U32 + 16 * 2.0**-23
        step = max(1, _CHUNK_BYTES // (4 * g.flat_t.shape[0]))
        for start in range(0, n, step):
            rows = slice(start, start + step)
            z = g.flat32_t @ np.ascontiguousarray(scaled[rows].T, dtype=np.float32)
            np.log1p(z, out=z)
            rings = plan.bins.sums(z, np.float32).astype(np.float64)
            inside, outside = _inside_outside(rings, plan.at)
            sure = np.ones(inside.shape[0], dtype=bool)
            every = np.arange(inside.shape[0])
            for t in thresholds:
                tt = t - _EPS
                yes = (1 - tt) * inside * (1 - delta) >= tt * outside * (1 + delta)
                no = (1 - tt) * inside * (1 + delta) < tt * outside * (1 - delta)
                i = np.argmax(yes, axis=1)
                sure &= yes[every, i] & ((i == 0) | no[every, np.maximum(i - 1, 0)])
                found[t][rows] = i
            doubt[rows] = ~sure
    rest, step = np.flatnonzero(doubt), max(1, _CHUNK_BYTES // (8 * g.flat_t.shape[0]))
    for start in range(0, rest.size, step):
        rows = rest[start : start + step]
        rings = plan.bins.sums(np.log1p(g.flat_t @ np.ascontiguousarray(scaled[rows].T)))
        for t, i in _crossings(rings, plan, thresholds).items():
            found[t][rows] = i
    return found


# -------------------------------------------------------------------------------------------- ERF / RF


def _interval_sides(profiles: np.ndarray, c: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``profiles`` (``(n, L)``), the nominal and clipped length of the smallest interval centred on
    ``c`` holding ``q`` of the row (:func:`~rfkit.effective.metrics.erf_rf_ratio`'s rule)."""
    L = profiles.shape[1]
    cum = np.concatenate([np.zeros((profiles.shape[0], 1)), np.cumsum(profiles, axis=1)], axis=1)
    lo, hi = _snap(c)
    steps = np.arange(max(0, lo - (L - 1), -hi), max(0, lo, L - 1 - hi) + 1, dtype=np.int64)
    a, b = np.clip(lo - steps, 0, L), np.clip(hi + steps + 1, 0, L)
    with np.errstate(invalid="ignore", divide="ignore"):
        i = _first((cum[:, b] - cum[:, a]) / cum[:, -1:], q)
    return (hi - lo + 1 + 2 * steps[i]).astype(np.float64), (b[i] - a[i]).astype(np.float64)


def erf_sides(rows: np.ndarray, cols: np.ndarray, center=None, mass: float = MASS) -> dict[str, np.ndarray]:
    """The ERF's nominal and clipped sides per axis (``erf_side_h``, ..., ``erf_side_clipped_w``) of maps given
    by their row and column sums, ``(n, H)`` and ``(n, W)``: :func:`~rfkit.effective.metrics.erf_rf_ratio` of
    each (NaN for an all-zero map), centred on ``center``, or by default on each map's own centre
    (:func:`own_centres`).

    >>> m = np.zeros((32, 32)); m[12:21, 14:19] = 1.0
    >>> s = erf_sides(m.sum(axis=1)[None], m.sum(axis=0)[None], (16, 16), mass=1.0)
    >>> s["erf_side_h"].tolist(), s["erf_side_w"].tolist()
    ([9.0], [5.0])
    """
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    if center is None:
        out: dict[str, np.ndarray] = {}
        _fill(out, own_centres(rows, cols), lambda c, i: erf_sides(rows[i], cols[i], c, mass))
        return out
    out = {}
    for axis, profiles, c in (("h", rows, center[0]), ("w", cols, center[1])):
        nominal, clipped = _interval_sides(profiles, c, mass)
        bad = ~(profiles.max(axis=1) > 0)
        nominal[bad], clipped[bad] = math.nan, math.nan
        out[f"erf_side_{axis}"], out[f"erf_side_clipped_{axis}"] = nominal, clipped
    return out


def _erf_columns(rows, cols, weights, center, rf_size, mass) -> dict[str, np.ndarray]:
    out = erf_sides(weights @ rows, weights @ cols, center, mass)
    rf = _rf(rf_size)
    for i, (axis, n) in enumerate((("h", rows.shape[1]), ("w", cols.shape[1]))):
        r = math.nan if rf is None or not math.isfinite(rf[i]) else rf[i]
        out[f"erf_rf_ratio_{axis}"] = out[f"erf_side_{axis}"] / r
        out[f"erf_input_ratio_{axis}"] = out[f"erf_side_clipped_{axis}"] / n
    return out


# ------------------------------------------------------------------------------------ radial mass, centroid


def _radial_columns(flat_t, weights, shape, center) -> dict[str, np.ndarray]:
    """r50, r90, r95: the smallest pixel distance from ``center`` within which the pixels hold that share of
    the mass (:func:`~rfkit.effective.metrics.radial_mass`), from each group's mass within every distinct distance.
    The distances are binned by ``4 d²``, an integer for the half-pixel centres sizes use (a finer centre is
    binned by its distinct distances)."""
    dy, dx = np.arange(shape[0]) - center[0], np.arange(shape[1]) - center[1]
    if all(float(2 * c).is_integer() for c in center):
        key = ((2 * dy[:, None]) ** 2 + (2 * dx[None, :]) ** 2).astype(np.int64).ravel()
        bins = _Bins.of(key)
        distances = np.sqrt(bins.keys) / 2
    else:
        distances, key = np.unique(np.hypot(dy[:, None], dx[None, :]).ravel(), return_inverse=True)
        bins = _Bins.of(key.ravel())
    within = weights @ np.cumsum(bins.sums(flat_t), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = within / within[:, -1:]
    return {f"r{round(q * 100)}": distances[_first(fractions, q)] for q in (0.5, 0.9, 0.95)}


def _centroid_columns(rows, cols, weights, center) -> dict[str, np.ndarray]:
    total = weights @ rows.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (weights @ (rows @ np.arange(rows.shape[1]))) / total
        x = (weights @ (cols @ np.arange(cols.shape[1]))) / total
    dy, dx = y - center[0], x - center[1]
    return {
        "centroid_y": y,
        "centroid_x": x,
        "centroid_dy": dy,
        "centroid_dx": dx,
        "centroid_distance": np.hypot(dy, dx),
    }
