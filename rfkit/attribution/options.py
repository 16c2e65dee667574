"""How :func:`rfkit.attribute` computes its maps (:class:`AttributionOptions`) and which checks it runs on them
(:class:`Checks`): its ``options=`` and ``checks=``, built by ``rfkit attribute`` from its options too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rfkit.errors import ArgumentError
from rfkit.pipeline.options import OptionObject

if TYPE_CHECKING:
    import torch


def _of(cls, value: Any, name: str):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    raise ArgumentError(f"{name}={value!r}: give rfkit.{cls.__name__}(...) or leave it out")


@dataclass(frozen=True)
class AttributionOptions(OptionObject):
    """How the methods run (the same for every image).

    Attributes
    ----------
    baseline : str or Tensor
        The baseline of IG and Guided IG and Occlusion's fill: ``"zeros"`` (model-input space), ``"black"``,
        ``"blur"``, or a tensor ``(C, H, W)`` (:mod:`rfkit.attribution.baselines`).
    steps : int, optional
        Path steps of the path methods (IG, Blur IG, Guided IG), used as given. Default: automatic, from 50
        steps, doubled image by image until the completeness error is under 5%, up to 512.
    ig_method : str
        captum's integration rule: ``"gausslegendre"`` or a Riemann rule.
    noise, samples : float, int
        SmoothGrad's noise (fraction of the input range) and number of samples.
    blur_sigma : float, optional
        Blur IG's largest blur in pixels (default 50 at 224 px, in proportion).
    score : str
        What a class target's maps explain: ``"logit"`` (pre-softmax) or ``"probability"`` (its softmax
        probability, seed 002's Blur IG target). Unit targets are the unit's value.
    channels : str
        How a per-channel attribution becomes one map: ``"sum"`` (signed sum over colour channels) or
        ``"max_relu_minmax"`` (seed 002's rule: the largest channel value, ReLU, each map rescaled to [0, 1]).
    method_options : mapping or list of str, optional
        Methods' own options: ``{"occlusion": {"window": 8}}``, ``{"occlusion.window": 8}`` or
        ``["occlusion.window=8"]`` (each record's ``options``; docs/attribution.md lists them).

    Examples
    --------
    >>> AttributionOptions(steps=32).replace(method_options={"occlusion.window": 8}).steps
    32
    """

    baseline: str | torch.Tensor = "zeros"
    steps: int | None = None
    ig_method: str = "gausslegendre"
    noise: float = 0.15
    samples: int = 25
    blur_sigma: float | None = None
    score: str = "logit"
    channels: str = "sum"
    method_options: Mapping[str, Any] | Sequence[str] | None = None

    @classmethod
    def of(cls, value: Any) -> AttributionOptions:
        """``value`` as :class:`AttributionOptions` (None: the defaults)."""
        return _of(cls, value, "options")


@dataclass(frozen=True)
class Checks(OptionObject):
    """The checks run on the maps once they are computed.

    Attributes
    ----------
    sanity : bool
        The model-randomisation check (:mod:`rfkit.attribution.sanity`) on ``sanity_layers`` layers.
    sanity_layers : int
        Layers the sanity check re-initialises, from the top.
    faithfulness : bool
        Deletion/insertion AUC per method and image (:mod:`rfkit.attribution.faithfulness`).
    faithfulness_steps : int
        Steps of the deletion/insertion curves.

    Examples
    --------
    >>> Checks(sanity=True).sanity_layers
    3
    """

    sanity: bool = False
    sanity_layers: int = 3
    faithfulness: bool = False
    faithfulness_steps: int = 16

    @classmethod
    def of(cls, value: Any) -> Checks:
        """``value`` as :class:`Checks` (None: none of them)."""
        return _of(cls, value, "checks")
