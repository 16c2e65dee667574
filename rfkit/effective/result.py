"""The result of an ERF run: :class:`ERFResult`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rfkit.effective.bootstrap import Curve
from rfkit.effective.metrics import ERFMetrics
from rfkit.graph.info import RFInfo
from rfkit.graph.rfgraph import RFGraph
from rfkit.models.weights import WeightsInfo
from rfkit.pipeline.images import ImageStats


@dataclass(frozen=True)
class ERFResult:
    """Effective receptive fields of some layers of one model, measured on the same images.

    Attributes
    ----------
    model : str
        Model name (spec, or the module's class name).
    maps : dict[str, numpy.ndarray]
        Per layer, the raw ERF map at input resolution ``(H, W)``: the method's per-image map averaged
        over the images, without any transform.
    metrics : dict[str, ERFMetrics]
        Per layer (empty when measured with ``metrics=False``), :func:`rfkit.effective.metrics.compute_metrics`
        of the map: sizes centred on the ERF's own centre (its centre of mass), reported with its offset from
        the measured unit's analytic RF centre.
    num_images : int
        Images actually used.
    data_config : dict
        Preprocessing (timm data config: input_size, mean, std, interpolation, crop_pct, ...).
    weights : WeightsInfo
        The weights actually used (pretrained tag, checkpoint, random + init scheme, as given).
    unit : dict[str, tuple]
        Per layer, the measured output unit (one index per spatial axis of the layer's grid).
    method : str
        The :data:`~rfkit.effective.methods.ERF_METHODS` name: ``"replknet"``, ``"openerf"``, ...
    nodes : dict[str, str]
        Per layer, the graph node measured (``g[node]`` in :attr:`graph`).
    center : dict[str, tuple]
        Per layer, the analytic RF centre of the measured unit, in input pixels ``(y, x)``.
    grid : dict[str, tuple]
        Per layer, the number of units per spatial axis.
    images : ImageStats
        Where the images came from, how many were used and which files were skipped.
    warnings : tuple[str, ...]
        Everything a reader of the numbers must know: random weights, init traps, degenerate maps,
        skipped image files, fewer images than asked for (:meth:`rfkit.pipeline.images.ImageStats.notes`).
    device : str
        Where the gradients were computed.
    graph : RFGraph
        The analytic RF graph at the same input size.
    crops : dict[str, tuple]
        Layers measured on a crop of the input around the unit's RF window (:mod:`rfkit.effective.crop`): per
        axis the ``(start, stop)`` input pixels. The map is the same as on the whole input (checked on the
        first batch); it is just cheaper.
    rf_missing : dict[str, str]
        Layers whose analytic RF is unknown, and why (the model could not be traced, or an op before the
        layer has no RF rule): they are measured all the same, on the unit at the centre of their grid,
        but there is no RF to overlay, and their centre offsets are measured from the image centre.
    nonfinite : dict[str, str]
        Layers whose map holds NaN or inf (their unit's value, or its gradient, was not finite on some image),
        with the warning that names the first such image. Their metrics count the NaN/inf as 0.
    images_per_rank : tuple of int
        Images each process measured, by rank: ``(num_images,)`` for one process, one entry per process of
        a torchrun run (:mod:`rfkit.pipeline.distributed`); ``world_size`` is its length.
    ci : dict[str, dict[str, tuple]]
        Per layer, the 95% confidence interval ``(low, high)`` of each metric column of
        :meth:`~rfkit.effective.metrics.ERFMetrics.as_dict` (``ci["layer4"]["erf_rf_ratio_h"]``), from the cluster
        bootstrap over independent images (:mod:`rfkit.effective.bootstrap`; None where the metric is undefined in
        most resamples). Empty with ``bootstrap=0``, ``metrics=False`` or fewer than 8 independent images
        (``bootstrap["reason"]`` says why). The Gaussian fit has its own standard errors instead
        (``gauss_*_stderr``).
    sem : dict[str, numpy.ndarray]
        Per layer, the standard error of the mean map, per pixel (``sqrt(variance / num_images)`` of the
        per-image maps; zeros for one image).
    convergence : dict[str, Curve]
        Per layer, the ERF size in pixels and its 95% interval against the number of images seen
        (:class:`rfkit.effective.bootstrap.Curve`; empty with ``bootstrap=0``, ``metrics=False`` or fewer than two
        groups).
    bootstrap : dict
        How the intervals were made: ``resamples`` (0: none), ``groups`` (independent sources: a photo and its
        crop/flip views count once), ``sources_per_group`` (how many sources each resampled group pools,
        :mod:`rfkit.effective.groups`), ``seed``, and ``reason`` where intervals were asked for and there are none.
    stopped : str
        Why the measurement stopped: after every image asked for, or where ``until_stable`` stopped it.
    """

    model: str
    maps: dict[str, np.ndarray]
    metrics: dict[str, ERFMetrics]
    num_images: int
    data_config: dict
    weights: WeightsInfo
    unit: dict[str, tuple[int, ...]]
    method: str
    nodes: dict[str, str]
    center: dict[str, tuple[float, ...]]
    grid: dict[str, tuple[int, ...]]
    images: ImageStats
    warnings: tuple[str, ...] = ()
    device: str = "cpu"
    graph: RFGraph | None = field(default=None, repr=False, compare=False)
    crops: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    rf_missing: dict[str, str] = field(default_factory=dict)
    nonfinite: dict[str, str] = field(default_factory=dict)
    images_per_rank: tuple[int, ...] = ()
    ci: dict[str, dict[str, tuple]] = field(default_factory=dict)
    sem: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    convergence: dict[str, Curve] = field(default_factory=dict, repr=False)
    bootstrap: dict = field(default_factory=dict)
    stopped: str = ""

    @property
    def world_size(self) -> int:
        """Processes that measured these maps together (1 without torchrun)."""
        return max(len(self.images_per_rank), 1)

    @property
    def layers(self) -> list[str]:
        """The measured layers, in the order asked for."""
        return list(self.maps)

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(self.data_config["input_size"][1:])

    def rf(self, layer: str) -> RFInfo:
        """The analytic :class:`~rfkit.RFInfo` of a measured layer."""
        return self.graph[self.nodes[layer]]

    # --- the per-layer record -----------------------------------------------------------------------
    def rf_columns(self, layer: str) -> dict:
        """Where a layer was measured: model, layer (``"<output>"`` for the model's output), node, the unit
        and its grid, the analytic RF centre, size (``rf_*``; ``rf_local_*``: of the local paths), stride,
        globality and the unit's pixel window ``rf_first_y`` .. ``rf_last_x`` (None where the RF is unknown)."""
        info = self.rf(layer)
        window = None if info.unknown or info.windows is None else info.window_of(tuple(self.unit[layer]))
        local = info.local_size or (math.nan,)
        return {
            "model": self.model,
            "layer": layer or "<output>",
            "node": self.nodes[layer],
            "unit_h": self.unit[layer][0],
            "unit_w": self.unit[layer][-1],
            "grid_h": self.grid[layer][0],
            "grid_w": self.grid[layer][-1],
            "center_y": self.center[layer][0],
            "center_x": self.center[layer][-1],
            "rf_h": info.size[0],
            "rf_w": info.size[-1],
            "rf_local_h": local[0],
            "rf_local_w": local[-1],
            "stride_h": info.stride[0],
            "stride_w": info.stride[-1],
            "is_global": info.is_global,
            "rf_first_y": window[0][0] if window else None,
            "rf_last_y": window[0][1] if window else None,
            "rf_first_x": window[1][0] if window else None,
            "rf_last_x": window[1][1] if window else None,
        }

    def metric_columns(self, layer: str) -> dict:
        """What was measured at a layer: every ERF metric (:meth:`~rfkit.effective.metrics.ERFMetrics.as_dict`, empty
        with ``metrics=False``), the bounds of each metric's 95% interval (``<column>_ci_low``,
        ``<column>_ci_high``; :attr:`ci`), or ``ci_reason`` where intervals were asked for and there are
        none."""
        row: dict = {}
        metrics = self.metrics.get(layer)
        if metrics is not None:
            row.update(metrics.as_dict())
        for column, (low, high) in self.ci.get(layer, {}).items():
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = low, high
        reason = (self.bootstrap or {}).get("reason")
        if reason and metrics is not None:
            row["ci_reason"] = reason
        return row

    def rows(self) -> list[dict]:
        """One flat row per measured layer, in order: :meth:`rf_columns`, ``finite`` (False where the map holds
        NaN or inf, :attr:`nonfinite`), then :meth:`metric_columns`. ``erf.csv`` holds the same row with the
        layer's depth and the run's provenance added (:func:`rfkit.report.erf_files.erf_rows`)."""
        return [
            {**self.rf_columns(layer), "finite": layer not in self.nonfinite, **self.metric_columns(layer)}
            for layer in self.layers
        ]

    def to_frame(self):
        """:meth:`rows` as a :class:`pandas.DataFrame`, one row per measured layer.

        Examples
        --------
        >>> import torch.nn as nn, rfkit
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        >>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=2, input_size=32, device="cpu")
        >>> res.to_frame()[["layer", "rf_h", "stride_h"]].values.tolist()
        [['0', 5.0, 2], ['2', 9.0, 2]]
        """
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __repr__(self) -> str:
        return (
            f"ERFResult({self.model}, layers={self.layers}, method={self.method!r}, "
            f"num_images={self.num_images}, weights={getattr(self.weights, 'kind', self.weights)!r})"
        )
