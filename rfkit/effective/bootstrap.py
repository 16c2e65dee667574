"""How many images are enough: bootstrap confidence intervals of the ERF metrics, the stopping rule of
``until_stable``, and the ERF's size against the number of images seen.

Everything here works on the group sums an ERF run keeps (:class:`rfkit.effective.groups.GroupSums`): blocks of
``k`` independent **sources** (a photo with all its crop/flip views, or one image) whose sums are
independent and identically distributed, so that resampling the groups with replacement is the cluster
bootstrap over independent images (one image per source and ``k = 1``: the ordinary bootstrap; see
:mod:`rfkit.effective.groups`). Views of one photo are never resampled apart: treating 32 views of 10 photos as
32 independent images would make the intervals far too narrow.

Confidence intervals (:func:`bootstrap_cis`). With fewer than :data:`MIN_SOURCES` independent sources there
are none (:func:`no_interval_reason` says why; a percentile interval from a handful of sources is not a 95%
interval). Otherwise ``B`` resamples (seeded: the same seed gives the same intervals) each draw as many
groups as there are, with replacement, as a ``B × G`` matrix of counts; a resample's mean map is its summed
map over its summed image count, and its metrics are those of
:func:`rfkit.effective.metrics.compute_metrics` (``fit=False``), computed for all resamples at once by
:func:`rfkit.effective.resampled.resampled_metrics` (one matrix product over per-group reductions). The interval
of a metric is the 2.5th to 97.5th percentile of its ``B`` values (the percentile bootstrap; resamples whose
metric is undefined, NaN, are left out). Every numeric column of
:meth:`~rfkit.effective.metrics.ERFMetrics.as_dict` gets one except those constant by construction (the map's size,
the analytic centre and RF, the mass fraction, the count of warnings) and the Gaussian fit's: no Gaussian is
fitted per resample (it would cost far more than the run); the fit has its own standard errors from the
least-squares fit (``gauss_*_stderr``).

``until_stable`` (:class:`StopRule`). After each batch, the **half-width** of the 95% interval of the
ERF/RF ratio, ``(high - low) / 2``, is computed for each measured layer and each axis (h and w) from a
cheaper bootstrap (:data:`CHECK_RESAMPLES` resamples, of the maps' row and column sums, which is all the
ratio depends on); for a layer whose RF is global or unknown the ratio is the ERF over the input size
(the value the summary shows). The run stops as soon as the largest half-width, over all layers and both
axes, is below the tolerance, and never before :data:`MIN_IMAGES` images from :data:`MIN_SOURCES` sources.

Examples
--------
Identical images: every resample is the same map, the intervals have zero width.

>>> from rfkit.effective.groups import GroupSums
>>> yy, xx = np.mgrid[0:15, 0:15]
>>> blob = np.exp(-((yy - 7.0) ** 2 + (xx - 7.0) ** 2) / 8.0)
>>> stats = GroupSums(["l"], (15, 15), capacity=16, expected=8)
>>> stats.add({"l": np.stack([blob] * 8)}, np.arange(8))
>>> ci = bootstrap_cis(stats, {"l": (7, 7)}, {"l": (9, 9)}, resamples=50)
>>> ci["l"]["erf_rf_ratio_h"], ci["l"]["r50"] == (ci["l"]["r50"][0],) * 2
((1.0, 1.0), True)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

import rfkit.validate as validate
from rfkit.effective.groups import GroupSums
from rfkit.effective.metric_registry import ERF_METRICS, interval_free_columns, metric_columns
from rfkit.effective.metrics import _box_center, compute_metrics
from rfkit.effective.resampled import erf_sides, linear_ok, resampled_metrics
from rfkit.errors import ArgumentError
from rfkit.pipeline.distributed import SINGLE, World, all_reduce_max, gather_rows

LEVEL = 0.95
"""Coverage of the intervals."""
RESAMPLES = 200
"""Bootstrap resamples of the reported intervals (``bootstrap=``)."""
CHECK_RESAMPLES = 100
"""Resamples of each ``until_stable`` check and of each point of :func:`convergence`."""
MIN_IMAGES = 8
"""``until_stable`` never stops before this many images."""
MIN_SOURCES = 8
"""Fewer independent sources than this: no interval (and ``until_stable`` does not stop)."""

CONSTANT_COLUMNS = frozenset({"height", "width", "center_y", "center_x", "rf_h", "rf_w", "erf_mass", "n_warnings"})
"""Columns of :meth:`~rfkit.effective.metrics.ERFMetrics.as_dict` that no resample can change."""

_CHUNK_BYTES = 64 * 2**20


def checked_options(bootstrap, until_stable) -> tuple[int, float | None]:
    """``bootstrap`` (resamples, 0 for none) and ``until_stable`` (a tolerance > 0, or None), checked.

    >>> checked_options(200, None), checked_options(0, 0.05)
    ((200, None), (0, 0.05))
    >>> checked_options(200, 0)
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: until_stable must be a number > 0 (a half-width of the ERF/RF ratio, e.g. 0.02), got 0
    """
    bootstrap = validate.count(bootstrap, "bootstrap", minimum=0)
    if until_stable is None:
        return bootstrap, None
    try:
        tol = float(until_stable)
    except (TypeError, ValueError):
        tol = math.nan
    if isinstance(until_stable, bool) or not (math.isfinite(tol) and tol > 0):
        raise ArgumentError(
            f"until_stable must be a number > 0 (a half-width of the ERF/RF ratio, e.g. 0.02), got {until_stable!r}"
        )
    return bootstrap, tol


SEED_TABLE = re.compile(r"area_(side_h|side_w|ratio)_[0-9.]+")
"""The seed's area-ratio table (``area_side_h_0.2``, ...; :func:`~rfkit.effective.metrics.seed_area_ratios`): a
peer's numbers reproduced as its script computes them, which has no intervals."""


def ci_columns(row: dict) -> list[str]:
    """The columns of a metrics row (:meth:`~rfkit.effective.metrics.ERFMetrics.as_dict`) that get an interval: the
    numeric ones, except those constant by construction, the Gaussian fit's, the seed's table
    (:data:`SEED_TABLE`) and those of registered metrics that ask for none.

    >>> ci_columns({"height": 9, "total_mass": 1.5, "r50": None, "gauss_r2": 0.9, "warnings": "", "gauss_like": True})
    ['total_mass', 'r50']
    """
    no_interval = interval_free_columns()
    return [
        k
        for k, v in row.items()
        if k not in CONSTANT_COLUMNS
        and k not in no_interval
        and not k.startswith("gauss_")
        and not SEED_TABLE.fullmatch(k)
        and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
    ]


def resample_counts(groups: int, resamples: int, seed: int = 0) -> np.ndarray:
    """``(resamples, groups)``: how often each group is drawn in each resample (``groups`` draws with
    replacement), from ``numpy.random.default_rng(seed)``.

    >>> w = resample_counts(5, 3, seed=1)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, groups, size=(resamples, groups))
    counts = np.zeros((resamples, groups), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts


def _means(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray):
    """The mean map of each resample (rows of ``weights``), in chunks that bound the memory."""
    G = counts.shape[0]
    flat = sums[:G].reshape(G, -1)
    step = max(1, _CHUNK_BYTES // (8 * flat.shape[1]))
    for start in range(0, weights.shape[0], step):
        w = weights[start : start + step].astype(np.float64)
        means = (w @ flat) / (w @ counts)[:, None]
        yield from means.reshape(-1, *sums.shape[1:])


def _interval(values, level: float) -> tuple[float | None, float | None]:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size * 2 < values.size or finite.size == 0:  # undefined in most resamples: no interval
        return None, None
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def no_interval_reason(sources: int, minimum: int = MIN_SOURCES) -> str:
    """Why a run of ``sources`` independent sources gets no interval; ``""`` when it gets one.

    >>> no_interval_reason(10)
    ''
    >>> print(no_interval_reason(2))  # doctest: +NORMALIZE_WHITESPACE
    no 95% intervals: 2 independent images (views of one photo count once), fewer than the 8 a bootstrap
    interval needs; measure more distinct images
    """
    if sources >= minimum:
        return ""
    return (
        f"no 95% intervals: {sources} independent image{'s' * (sources != 1)} (views of one photo count once), "
        f"fewer than the {minimum} a bootstrap interval needs; measure more distinct images"
    )


def _looped_columns(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray, center, rf_size) -> dict:
    """The interval columns of each resample by :func:`compute_metrics`, one resample at a time: for group sums
    with NaN, inf or negative pixels, which each mean map cleans on its own."""
    rows = [compute_metrics(m, center, rf_size=rf_size, fit=False).as_dict() for m in _means(sums, counts, weights)]
    columns = ci_columns(rows[0]) if rows else []
    return {c: np.array([np.nan if r[c] is None else r[c] for r in rows], float) for c in columns}


def resampled_columns(stats: GroupSums, key: str, weights: np.ndarray, center, rf_size) -> dict[str, np.ndarray]:
    """``{column: (R,) values}`` of layer ``key`` for each resample (row of ``weights``) of ``stats``' groups."""
    G = weights.shape[1]
    sums, counts = stats.sums[key][:G], stats.counts[:G].astype(np.float64)
    if linear_ok(sums):
        return resampled_metrics(sums, counts, weights, center, rf_size) | _registered_columns(
            sums, counts, weights, center, rf_size
        )
    return _looped_columns(sums, counts, weights, center, rf_size)


def _registered_columns(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray, center, rf_size) -> dict:
    """The columns of the registered metrics that get intervals (:mod:`rfkit.effective.metric_registry`), computed on
    each resample's mean map (finite and non-negative: :func:`linear_ok`); empty when none is registered."""
    if not any(m.interval for m in ERF_METRICS.values()):
        return {}
    centres = np.broadcast_to(np.asarray(center, dtype=np.float64), (weights.shape[0], 2))
    rows = [
        metric_columns(m, c, _box_center(m, None), rf_size, intervals_only=True)
        for m, c in zip(_means(sums, counts, weights), centres)
    ]
    return {col: np.array([r[col] for r in rows], float) for col in rows[0]} if rows else {}


def bootstrap_cis(
    stats: GroupSums,
    centers: dict,
    rf_sizes: dict,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    world: World = SINGLE,
) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """Percentile bootstrap intervals of every metric of every layer (module docstring).

    Parameters
    ----------
    stats : GroupSums
        The run's groups (added up over the processes of a torchrun run).
    centers, rf_sizes : dict
        Per layer, the centre and the analytic RF size the metrics use
        (:func:`~rfkit.effective.metrics.compute_metrics`); a centre may also be ``(resamples, 2)``, one per resample.
    resamples : int
        ``B``; 0 gives no intervals.
    seed : int
        Of the resampling; every layer uses the same resamples (the intervals are joint draws).
    level : float
        Coverage.
    world : World
        Under torchrun, each process computes every ``size``-th resample and they share the results: the same
        intervals as one process, in a ``size``-th of the time.

    Returns
    -------
    dict
        Per layer, ``{column: (low, high)}`` (None where most resamples leave the metric undefined); empty
        with fewer than :data:`MIN_SOURCES` independent sources (:func:`no_interval_reason`).
    """
    G = stats.groups
    if resamples <= 0 or G < 2 or no_interval_reason(stats.sources):
        return {}
    mine = np.arange(world.rank, resamples, world.size)
    weights = resample_counts(G, resamples, seed)[mine]
    out = {}
    for key in stats.sums:
        center = centers[key]
        if np.ndim(center) == 2:
            center = np.asarray(center)[mine]
        values = resampled_columns(stats, key, weights, center, rf_sizes.get(key))
        _, values = gather_rows(mine, values, world)
        out[key] = {col: _interval(v, level) for col, v in values.items()}
    return out


def _finite(rf_size) -> bool:
    return rf_size is not None and all(math.isfinite(v) for v in rf_size)


def headline_ratios(rows: np.ndarray, cols: np.ndarray, rf_size) -> np.ndarray:
    """``(n, 2)``: the ERF/RF ratio ``(h, w)`` of maps given by their row and column sums (``(n, H)``,
    ``(n, W)``), or their ERF/input ratio where the RF is global or unknown (as the summary shows it); each
    map's size centred on its own centre, as every size metric."""
    sides = erf_sides(rows, cols)
    if _finite(rf_size):
        return np.stack([sides["erf_side_h"] / rf_size[0], sides["erf_side_w"] / rf_size[1]], axis=1)
    return np.stack([sides["erf_side_clipped_h"] / rows.shape[1], sides["erf_side_clipped_w"] / cols.shape[1]], axis=1)


def _bounds(values: np.ndarray, level: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per column of ``(n, 2)`` values, the interval, NaN where there is none: ``(low, high)`` pairs."""
    bounds = [_interval(values[:, axis], level) for axis in (0, 1)]
    low = tuple(math.nan if b[0] is None else b[0] for b in bounds)
    high = tuple(math.nan if b[1] is None else b[1] for b in bounds)
    return low, high


def ratio_intervals(
    profiles: tuple[np.ndarray, np.ndarray],
    counts: np.ndarray,
    rf_size,
    resamples: int = CHECK_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """The ratio of :func:`headline_ratios` over the groups of ``profiles`` (``(G, H)`` row and ``(G, W)``
    column sums of each group, ``counts`` images each), and its bootstrap interval per axis: ``(value, low,
    high)``, each an ``(h, w)`` pair (NaN where undefined)."""
    rows, cols = profiles
    G = counts.shape[0]
    rows, cols = rows[:G], cols[:G]
    value = headline_ratios(rows.sum(axis=0)[None], cols.sum(axis=0)[None], rf_size)[0]
    weights = resample_counts(G, resamples, seed).astype(np.float64)
    low, high = _bounds(headline_ratios(weights @ rows, weights @ cols, rf_size), level)
    return tuple(float(v) for v in value), low, high


@dataclass(frozen=True)
class Curve:
    """A layer's ERF size (the centred interval holding 95% of the map's mass, per axis, in pixels: the
    ``erf_side_h``, ``erf_side_w`` of the metrics) against the number of images it was averaged over, with its
    95% interval.

    Attributes
    ----------
    images : tuple of int
        Images seen (the images of the first groups of sources).
    value, low, high : tuple of (float, float)
        Per point, the ERF size ``(h, w)`` in pixels of the mean map over those images and its interval (NaN
        where the point has fewer than :data:`MIN_SOURCES` independent sources: no interval).
    rf : tuple of float or None
        The analytic RF size ``(h, w)`` (``inf`` for a global RF; None when unknown).
    """

    images: tuple[int, ...]
    value: tuple[tuple[float, float], ...]
    low: tuple[tuple[float, float], ...]
    high: tuple[tuple[float, float], ...]
    rf: tuple[float, float] | None = None


def _side_curve(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, sources: int, resamples, seed):
    """``(value, low, high)`` of the ERF size in pixels over the groups of ``rows``/``cols``."""
    G = counts.shape[0]
    sides = erf_sides(rows[:G].sum(axis=0)[None], cols[:G].sum(axis=0)[None])
    value = (float(sides["erf_side_h"][0]), float(sides["erf_side_w"][0]))
    if no_interval_reason(sources):
        return value, (math.nan, math.nan), (math.nan, math.nan)
    weights = resample_counts(G, resamples, seed).astype(np.float64)
    drawn = erf_sides(weights @ rows[:G], weights @ cols[:G])
    low, high = _bounds(np.stack([drawn["erf_side_h"], drawn["erf_side_w"]], axis=1), LEVEL)
    return value, low, high


def convergence(
    stats: GroupSums, rf_sizes: dict, points: int = 12, resamples: int = CHECK_RESAMPLES, seed: int = 0
) -> dict[str, Curve]:
    """Per layer, the :class:`Curve` of the ERF size over the first ``j`` groups, for about ``points`` values
    of ``j`` from 2 to every group, spaced evenly on a log scale (empty with fewer than two groups). Computed
    after the run from the group sums: the ``j``-group prefix holds the images of the first sources."""
    G = stats.groups
    if G < 2:
        return {}
    prefixes = sorted({int(round(j)) for j in np.geomspace(2, G, num=min(points, G - 1))} | {G})
    counts = stats.counts
    seen = np.cumsum(counts)
    out = {}
    for key, sums in stats.sums.items():
        rows, cols = sums[:G].sum(axis=2), sums[:G].sum(axis=1)
        points_at = [
            _side_curve(rows, cols, counts[:j], min(j * stats.size, stats.sources), resamples, seed) for j in prefixes
        ]
        rf = rf_sizes.get(key)
        out[key] = Curve(
            images=tuple(int(seen[j - 1]) for j in prefixes),
            value=tuple(p[0] for p in points_at),
            low=tuple(p[1] for p in points_at),
            high=tuple(p[2] for p in points_at),
            rf=None if rf is None else tuple(float(v) for v in rf),
        )
    return out


class StopRule:
    """``until_stable``: stop once the ERF/RF ratio's interval is narrow on every layer (module docstring).

    Parameters
    ----------
    tolerance : float
        The largest half-width allowed (a ratio, e.g. 0.02).
    rf_sizes : dict
        Per layer, as :func:`bootstrap_cis`.
    seed : int
        Of the check's resamples.
    min_images : int
        Never stop before this many images.

    Attributes
    ----------
    reason : str
        After the run, why it stopped (:meth:`finish`).
    stable : bool
        Whether the last check passed.
    widest : tuple
        ``(half-width, layer, axis)`` of the widest interval at the last check.
    """

    def __init__(self, tolerance: float, rf_sizes: dict, seed: int = 0, min_images: int = MIN_IMAGES):
        self.tolerance, self.rf_sizes = float(tolerance), rf_sizes
        self.seed, self.min_images = seed, int(min_images)
        self.stable = False
        self.widest: tuple[float, str, str] | None = None
        self.reason = ""

    def check(self, stats: GroupSums, world: World = SINGLE) -> bool:
        """Whether the run may stop now; with the groups of every process (a collective call under torchrun:
        every rank calls it after each batch and gets the same answer)."""
        profiles, counts = stats.profiles(world)
        sources = all_reduce_max(stats.sources, world) if world.distributed else stats.sources
        G = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
        if int(counts.sum()) < self.min_images or G < 2 or sources < MIN_SOURCES:
            return False
        widest = (-1.0, "", "")
        for key, prof in profiles.items():
            _, low, high = ratio_intervals(prof, counts[:G], self.rf_sizes.get(key), seed=self.seed)
            for axis, lo, hi in zip("hw", low, high):
                half = (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.inf
                if half > widest[0]:
                    widest = (half, key, axis)
        self.widest = widest
        self.stable = widest[0] < self.tolerance
        return self.stable

    def finish(self, images: int, requested: int) -> str:
        """The sentence saying where the run stopped and why (also :attr:`reason`)."""
        if self.widest is None:
            self.reason = (
                f"until_stable {self.tolerance:g}: not checked: {images} image(s), fewer than the "
                f"{self.min_images} images from {MIN_SOURCES} independent sources a check needs"
            )
            return self.reason
        half, key, axis = self.widest
        width = "undefined" if not math.isfinite(half) else f"{half:.4f}"
        where = f"layer {key or '<output>'}, axis {axis}"
        if self.stable:
            self.reason = (
                f"until_stable {self.tolerance:g}: stopped after {images} of {requested} images: the widest 95% CI "
                f"half-width of the ERF/RF ratio, over every layer and axis, is {width} ({where}), below "
                f"{self.tolerance:g}"
            )
        else:
            self.reason = (
                f"until_stable {self.tolerance:g}: not stable after all {images} images: the widest 95% CI "
                f"half-width of the ERF/RF ratio is still {width} ({where}); measure more images (-n)"
            )
        return self.reason
