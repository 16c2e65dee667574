"""ERF metrics added by name: one :class:`ERFMetric` record per metric, in the registry :data:`ERF_METRICS`.

rfkit's own metrics (:mod:`rfkit.effective.metrics`) are computed together and, for the bootstrap intervals,
vectorised over resamples (:mod:`rfkit.effective.resampled`). A metric registered here is a function of one map,
and reaches every output without another edit: :func:`~rfkit.effective.metrics.compute_metrics` computes it for
every measured layer, :meth:`~rfkit.effective.metrics.ERFMetrics.as_dict` adds its columns (so ``erf.csv``,
``metrics.json``, ``rfkit collect``, the site and :meth:`rfkit.effective.result.ERFResult.to_frame` have them),
and :func:`~rfkit.effective.bootstrap.bootstrap_cis` gives each column a 95% interval (by computing the metric on
every resample's mean map) unless the record says ``interval=False``.

A metric sees the **non-negative finite part of the raw map** (NaN and inf as 0, negative values clipped to
0, as rfkit's mass metrics) and a :class:`MetricContext`: the unit's analytic RF centre and size and the
ERF's own centre (its centre of mass snapped to the nearest half pixel, the centre every size metric of
rfkit uses). It returns ``{column: value}`` for exactly the columns it declares; NaN where undefined.

>>> import numpy as np
>>> peak = ERFMetric("peak_share", lambda m, ctx: {"peak_share": m.max() / m.sum()}, ("peak_share",))
>>> with ERF_METRICS.scoped():
...     _ = register_metric(peak)
...     metric_columns(np.array([[0.0, 1.0], [1.0, 2.0]]), center=(0.5, 0.5), erf_center=(1.0, 1.0), rf_size=None)
{'peak_share': 0.5}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from rfkit.errors import ERFMetricError
from rfkit.registry import NamedRegistry


@dataclass(frozen=True)
class MetricContext:
    """What a registered metric knows of the map besides its values.

    Attributes
    ----------
    shape : tuple
        ``(H, W)`` of the map, input pixels.
    center : tuple
        The measured unit's analytic RF centre ``(cy, cx)``.
    erf_center : tuple
        The ERF's own centre ``(cy, cx)``: its centre of mass, snapped to the nearest half pixel (the centre of
        rfkit's size metrics).
    rf_size : tuple or None
        The analytic RF size ``(h, w)``, ``inf`` where global; None when unknown.
    """

    shape: tuple[int, int]
    center: tuple[float, float]
    erf_center: tuple[float, float]
    rf_size: tuple[float, float] | None


@dataclass(frozen=True)
class ERFMetric:
    """One metric of an ERF map, as columns of the per-layer row.

    Attributes
    ----------
    name : str
    compute : callable
        ``compute(m, ctx) -> {column: value}``: ``m`` the non-negative finite map ``(H, W)`` (float64), ``ctx``
        a :class:`MetricContext`.
    columns : tuple of str
        The columns it returns, in order (names not used by rfkit's own metrics).
    summary : str
        One line: what it measures, on which map, in which unit.
    interval : bool
        Give each column a bootstrap interval (the metric is computed on every resample's mean map).
    """

    name: str
    compute: Callable[[np.ndarray, MetricContext], Mapping[str, float]]
    columns: tuple[str, ...]
    summary: str = ""
    interval: bool = True


ERF_METRICS: NamedRegistry[ERFMetric] = NamedRegistry("ERF metric", ERFMetricError)
"""The metrics added to rfkit's own (:func:`register_metric`); empty unless something registered one."""


def register_metric(metric: ERFMetric, *, replace: bool = False) -> ERFMetric:
    """Add ``metric``'s columns to every per-layer row of ERF metrics from now on.

    Raises
    ------
    ERFMetricError
        Not an :class:`ERFMetric`, ``compute`` not callable, no columns, or a name or column that another
        registered metric has (without ``replace``).
    """
    if not isinstance(metric, ERFMetric):
        raise ERFMetricError(f"register an ERFMetric record, not {type(metric).__name__}")
    if not callable(metric.compute):
        raise ERFMetricError(f"ERF metric {metric.name!r}: compute must be callable")
    columns = tuple(metric.columns) if not isinstance(metric.columns, str) else ()
    if not columns or not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns):
        raise ERFMetricError(f"ERF metric {metric.name!r}: columns must be distinct non-empty names, got {columns!r}")
    for other in ERF_METRICS.values():
        taken = sorted(set(columns) & set(other.columns))
        if taken and other.name != metric.name:
            raise ERFMetricError(f"ERF metric {metric.name!r}: column {taken[0]!r} belongs to metric {other.name!r}")
    return ERF_METRICS.register(metric.name, metric, replace=replace)


def metric_columns(m: np.ndarray, center, erf_center, rf_size, *, intervals_only: bool = False) -> dict[str, float]:
    """The columns of every registered metric (with ``intervals_only``: of those with ``interval=True``) for the
    non-negative finite map ``m``, as Python floats (NaN where undefined).

    Raises
    ------
    ERFMetricError
        A metric returned other columns than it declares, or a value that is not a real number.
    """
    ctx = MetricContext(
        (int(m.shape[0]), int(m.shape[1])),
        tuple(float(c) for c in center),
        tuple(float(c) for c in erf_center),
        None if rf_size is None else tuple(float(r) for r in rf_size),
    )
    out: dict[str, float] = {}
    for metric in ERF_METRICS.values():
        if intervals_only and not metric.interval:
            continue
        values = metric.compute(m, ctx)
        if not isinstance(values, Mapping) or set(values) != set(metric.columns):
            got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ERFMetricError(f"ERF metric {metric.name!r} returned {got}, not its columns {list(metric.columns)}")
        for column in metric.columns:
            out[column] = _real(values[column], metric.name, column)
    return out


def interval_free_columns() -> set[str]:
    """The columns of registered metrics that get no bootstrap interval (``interval=False``)."""
    return {c for metric in ERF_METRICS.values() if not metric.interval for c in metric.columns}


def _real(value, metric: str, column: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ERFMetricError(f"ERF metric {metric!r}: column {column!r} is {value!r}, not a number") from None
    return v
