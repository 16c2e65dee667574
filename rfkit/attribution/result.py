"""The result of :func:`rfkit.attribute`: :class:`AttributionResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AttributionResult:
    """Per-image contribution maps of one model, for several methods, on the same images and targets.

    Attributes
    ----------
    model : str
        Model name (spec, or the module's class name).
    maps : dict[str, numpy.ndarray]
        Per method, ``(N, H, W)`` float32 at input resolution: **signed**, summed over colour channels (or by
        ``settings.channels``); CAM and FullGrad maps are non-negative; a product ``A*B`` is the product of both
        maps, each divided by its largest absolute value.
    targets : tuple of Target
        Per image, what its maps explain (:class:`rfkit.attribution.targets.Target`).
    scores : numpy.ndarray
        ``(N,)`` the target's score on each image: the class logit (or probability), or the unit's channel sum.
    logits : numpy.ndarray or None
        ``(N, classes)`` the model's output for class targets, as the methods saw it: logits, or softmax
        probabilities with ``score="probability"`` (None for a unit target).
    images : numpy.ndarray
        ``(N, C, H, W)`` float32: the model-ready images the maps were computed on.
    labels : tuple of str
        A short name per image (the sample photograph's name, else ``"image i"``).
    source : str
        Where the images came from (:attr:`rfkit.pipeline.images.ImageStats.source`).
    weights : WeightsInfo
        The weights actually used.
    data_config : dict
        The preprocessing (timm data config).
    settings : Settings
        How the methods ran (steps, baseline, noise, ...).
    cam_layer : str or None
        The CAM methods' layer (module name); None without CAM methods.
    cam_note : str
        Why that layer (the default rule's reason, or "as given").
    window : tuple or None
        For a unit target, the unit's analytic RF window ``((y0, y1), (x0, x1))`` in input pixels (may
        reach beyond the image); None for class targets or a global unit.
    completeness : dict[str, numpy.ndarray]
        For the path methods (``ig``, ``blur_ig``, ``blur_ig_pair``, ``guided_ig``), per image
        ``|sum(attr) - (f(x) - f(start))| / |f(x) - f(start)|``.
    steps : dict[str, numpy.ndarray]
        For the path methods, per image the path steps its map was computed with (int64): the steps
        given, or with automatic steps those that brought its completeness error under 5% (or the cap).
    outside_rf : dict[str, numpy.ndarray]
        For a unit target with a window, per gradient method and image, the share of ``|map|`` outside the
        window (:func:`rfkit.attribution.sanity.outside_fraction`): must be 0.
    sanity : dict[str, SanityResult]
        The model-randomisation check per method (empty unless asked for).
    faithfulness : dict[str, numpy.ndarray]
        Per method ``(N, 2)``: deletion and insertion AUC (empty unless asked for).
    warnings : tuple of str
        Everything a reader must know: random weights, skipped images, failed checks, large completeness
        errors, methods that are not model-sensitive.
    device : str
    graph : RFGraph
    """

    model: str
    maps: dict[str, np.ndarray]
    targets: tuple
    scores: np.ndarray
    logits: np.ndarray | None
    images: np.ndarray
    labels: tuple[str, ...]
    source: str
    weights: Any
    data_config: dict
    settings: Any
    cam_layer: str | None = None
    cam_note: str = ""
    window: tuple | None = None
    completeness: dict[str, np.ndarray] = field(default_factory=dict)
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    outside_rf: dict[str, np.ndarray] = field(default_factory=dict)
    sanity: dict[str, Any] = field(default_factory=dict)
    faithfulness: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    device: str = "cpu"
    graph: Any = field(default=None, repr=False, compare=False)

    @property
    def methods(self) -> list[str]:
        """The methods, in the order asked for."""
        return list(self.maps)

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(self.data_config["input_size"][1:])

    def rows(self) -> list[dict]:
        """One flat row per image and method: target, score, whether the score and the map are finite
        (``score_finite``, ``map_finite``: False where they hold NaN or inf), path steps (None but for the path
        methods) and completeness error, share outside
        the RF window, deletion/insertion AUC and sanity rank correlation (NaN where not computed)."""
        nan = float("nan")
        out = []
        for method in self.methods:
            for i, target in enumerate(self.targets):
                aucs = self.faithfulness.get(method)
                check = self.sanity.get(method)
                out.append(
                    {
                        "image": i,
                        "label": self.labels[i],
                        "target": target.label,
                        "method": method,
                        "score": float(self.scores[i]),
                        "score_finite": bool(np.isfinite(self.scores[i])),
                        "map_finite": bool(np.isfinite(self.maps[method][i]).all()),
                        "steps": int(self.steps[method][i]) if method in self.steps else None,
                        "completeness_error": float(self.completeness[method][i])
                        if method in self.completeness
                        else nan,
                        "outside_rf": float(self.outside_rf[method][i]) if method in self.outside_rf else nan,
                        "deletion_auc": float(aucs[i, 0]) if aucs is not None else nan,
                        "insertion_auc": float(aucs[i, 1]) if aucs is not None else nan,
                        "sanity_rank_corr": float(check.rank_correlation[i]) if check is not None else nan,
                    }
                )
        return out

    def to_frame(self):
        """:meth:`rows` as a :class:`pandas.DataFrame`: one row per image and method."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __repr__(self) -> str:
        return (
            f"AttributionResult({self.model}, methods={self.methods}, num_images={self.num_images}, "
            f"target={self.targets[0].label if self.targets else None!r}, "
            f"weights={getattr(self.weights, 'kind', self.weights)!r})"
        )
