"""How many images are enough: bootstrap confidence intervals of the ERF metrics, the stopping rule of
``until_stable``, and the ERF/RF ratio against the number of images seen.

Everything here works on the group sums an ERF run keeps (:class:`rfkit.erf.groups.GroupSums`): blocks of
``k`` consecutive images whose sums are independent and identically distributed, so that resampling the
blocks with replacement is the bootstrap over images (``k = 1``: the ordinary bootstrap; see
:mod:`rfkit.erf.groups` for why blocks are kept).

Confidence intervals (:func:`bootstrap_cis`). ``B`` resamples (seeded: the same seed gives the same
intervals) each draw as many groups as there are, with replacement; the resample's mean map is its summed
map over its summed image count; :func:`rfkit.erf.metrics.compute_metrics` (``fit=False``) gives every
metric of it, and the interval of a metric is the 2.5th to 97.5th percentile of its ``B`` values (the
percentile bootstrap; resamples whose metric is undefined, NaN, are left out). Every numeric column of
:meth:`~rfkit.erf.metrics.ERFMetrics.as_dict` gets one except those constant by construction (the map's size,
the analytic centre and RF, the mass fraction, the count of warnings) and the Gaussian fit's, which has
its own standard errors from the least-squares fit (``gauss_*_stderr``: refitting ``B`` Gaussians would cost
far more than the run).

``until_stable`` (:class:`StopRule`). After each batch, the **half-width** of the 95% interval of the
ERF/RF ratio, ``(high - low) / 2``, is computed for each measured layer and each axis (h and w) from a
cheaper bootstrap (:data:`CHECK_RESAMPLES` resamples, of the maps' row and column sums, which is all the
ratio depends on); for a layer whose RF is global or unknown the ratio is the ERF over the input size
(the value the summary shows). The run stops as soon as the largest half-width, over all layers and both
axes, is below the tolerance, and never before :data:`MIN_IMAGES` images.

Examples
--------
Identical images: every resample is the same map, the intervals have zero width.

>>> from rfkit.erf.groups import GroupSums
>>> yy, xx = np.mgrid[0:15, 0:15]
>>> blob = np.exp(-((yy - 7.0) ** 2 + (xx - 7.0) ** 2) / 8.0)
>>> stats = GroupSums(["l"], (15, 15), capacity=16, expected=4)
>>> stats.add({"l": np.stack([blob] * 4)}, np.arange(4))
>>> ci = bootstrap_cis(stats, {"l": (7, 7)}, {"l": (9, 9)}, resamples=50)
>>> ci["l"]["erf_rf_ratio_h"], ci["l"]["r50"] == (ci["l"]["r50"][0],) * 2
((1.0, 1.0), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import rfkit.validate as validate
from rfkit.erf.groups import GroupSums
from rfkit.erf.metrics import compute_metrics, erf_rf_ratio_of_profiles
from rfkit.errors import ArgumentError
from rfkit.pipeline.distributed import SINGLE, World, gather_rows

LEVEL = 0.95
"""Coverage of the intervals."""
RESAMPLES = 200
"""Bootstrap resamples of the reported intervals (``bootstrap=``)."""
CHECK_RESAMPLES = 100
"""Resamples of each ``until_stable`` check and of each point of :func:`convergence`."""
MIN_IMAGES = 8
"""``until_stable`` never stops before this many images (and two groups)."""

CONSTANT_COLUMNS = frozenset({"height", "width", "center_y", "center_x", "rf_h", "rf_w", "erf_mass", "n_warnings"})
"""Columns of :meth:`~rfkit.erf.metrics.ERFMetrics.as_dict` that no resample can change."""

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


def ci_columns(row: dict) -> list[str]:
    """The columns of a metrics row (:meth:`~rfkit.erf.metrics.ERFMetrics.as_dict`) that get an interval: the
    numeric ones, except those constant by construction and the Gaussian fit's.

    >>> ci_columns({"height": 9, "total_mass": 1.5, "r50": None, "gauss_r2": 0.9, "warnings": "", "gauss_like": True})
    ['total_mass', 'r50']
    """
    return [
        k
        for k, v in row.items()
        if k not in CONSTANT_COLUMNS
        and not k.startswith("gauss_")
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


def _interval(values: list, level: float) -> tuple[float | None, float | None]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size * 2 < len(values) or finite.size == 0:  # undefined in most resamples: no interval
        return None, None
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


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
        Per layer, the analytic RF centre and size the metrics use (:func:`~rfkit.erf.metrics.compute_metrics`).
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
        with fewer than two groups.
    """
    G = stats.groups
    if resamples <= 0 or G < 2:
        return {}
    mine = np.arange(world.rank, resamples, world.size)
    weights = resample_counts(G, resamples, seed)[mine]
    counts = stats.counts[:G].astype(np.float64)
    out = {}
    for key in stats.sums:
        rows = [
            compute_metrics(m, centers[key], rf_size=rf_sizes.get(key), fit=False).as_dict()
            for m in _means(stats.sums[key], counts, weights)
        ]
        columns = ci_columns(rows[0]) if rows else []
        values = {c: np.array([np.nan if r[c] is None else r[c] for r in rows], float) for c in columns}
        _, values = gather_rows(mine, values, world)
        out[key] = {col: _interval(list(v), level) for col, v in values.items()}
    return out


def headline_ratio(rows: np.ndarray, cols: np.ndarray, center, rf_size) -> tuple[float, float]:
    """The ERF/RF ratio ``(h, w)`` of a map given by its row and column sums, or its ERF/input ratio where the
    RF is global or unknown (as the summary shows it). Centred, as every size metric, on the map's own centre
    of mass (``center``, the analytic one, is not used)."""
    r = erf_rf_ratio_of_profiles(rows, cols, None, rf_size)
    finite = rf_size is not None and all(math.isfinite(v) for v in rf_size)
    return r.ratio if finite else r.input_ratio


def ratio_intervals(
    profiles: tuple[np.ndarray, np.ndarray],
    counts: np.ndarray,
    center,
    rf_size,
    resamples: int = CHECK_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """The ratio of :func:`headline_ratio` over the groups of ``profiles`` (``(G, H)`` row and ``(G, W)``
    column sums of each group, ``counts`` images each), and its bootstrap interval per axis: ``(value, low,
    high)``, each an ``(h, w)`` pair (NaN where undefined)."""
    rows, cols = profiles
    G = counts.shape[0]
    value = headline_ratio(rows[:G].sum(axis=0), cols[:G].sum(axis=0), center, rf_size)
    weights = resample_counts(G, resamples, seed).astype(np.float64)
    ratios = [headline_ratio(w @ rows[:G], w @ cols[:G], center, rf_size) for w in weights]
    bounds = [_interval([r[axis] for r in ratios], level) for axis in (0, 1)]
    low = tuple(math.nan if b[0] is None else b[0] for b in bounds)
    high = tuple(math.nan if b[1] is None else b[1] for b in bounds)
    return value, low, high


@dataclass(frozen=True)
class Curve:
    """A layer's ERF/RF ratio against the number of images it was averaged over, with its 95% interval.

    Attributes
    ----------
    images : tuple of int
        Images seen (the first groups of the stream, in order).
    value, low, high : tuple of (float, float)
        Per point, the ratio ``(h, w)`` of the mean map over those images and its interval.
    of : str
        ``"RF"``, or ``"input"`` for a layer whose RF is global or unknown (the ratio is then ERF/input).
    """

    images: tuple[int, ...]
    value: tuple[tuple[float, float], ...]
    low: tuple[tuple[float, float], ...]
    high: tuple[tuple[float, float], ...]
    of: str = "RF"


def convergence(
    stats: GroupSums, centers: dict, rf_sizes: dict, points: int = 12, resamples: int = CHECK_RESAMPLES, seed: int = 0
) -> dict[str, Curve]:
    """Per layer, the :class:`Curve` of the ratio over the first ``j`` groups, for about ``points`` values of
    ``j`` from 2 to every group, spaced evenly on a log scale (empty with fewer than two groups). Computed
    after the run from the group sums: the ``j``-group prefix is exactly the first images of the stream."""
    G = stats.groups
    if G < 2:
        return {}
    prefixes = sorted({int(round(j)) for j in np.geomspace(2, G, num=min(points, G - 1))} | {G})
    counts = stats.counts
    seen = np.cumsum(counts)
    out = {}
    for key, sums in stats.sums.items():
        rows, cols = sums[:G].sum(axis=2), sums[:G].sum(axis=1)
        stats_at = [
            ratio_intervals((rows, cols), counts[:j], centers[key], rf_sizes.get(key), resamples, seed)
            for j in prefixes
        ]
        rf = rf_sizes.get(key)
        out[key] = Curve(
            images=tuple(int(seen[j - 1]) for j in prefixes),
            value=tuple(s[0] for s in stats_at),
            low=tuple(s[1] for s in stats_at),
            high=tuple(s[2] for s in stats_at),
            of="RF" if rf is not None and all(math.isfinite(v) for v in rf) else "input",
        )
    return out


class StopRule:
    """``until_stable``: stop once the ERF/RF ratio's interval is narrow on every layer (module docstring).

    Parameters
    ----------
    tolerance : float
        The largest half-width allowed (a ratio, e.g. 0.02).
    centers, rf_sizes : dict
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

    def __init__(self, tolerance: float, centers: dict, rf_sizes: dict, seed: int = 0, min_images: int = MIN_IMAGES):
        self.tolerance, self.centers, self.rf_sizes = float(tolerance), centers, rf_sizes
        self.seed, self.min_images = seed, int(min_images)
        self.stable = False
        self.widest: tuple[float, str, str] | None = None
        self.reason = ""

    def check(self, stats: GroupSums, world: World = SINGLE) -> bool:
        """Whether the run may stop now; with the groups of every process (a collective call under torchrun:
        every rank calls it after each batch and gets the same answer)."""
        profiles, counts = stats.profiles(world)
        G = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
        if int(counts.sum()) < self.min_images or G < 2:
            return False
        widest = (-1.0, "", "")
        for key, prof in profiles.items():
            _, low, high = ratio_intervals(prof, counts[:G], self.centers[key], self.rf_sizes.get(key), seed=self.seed)
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
                f"{self.min_images} (and 2 groups) a check needs"
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
