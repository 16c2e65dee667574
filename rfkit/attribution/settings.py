"""How the attribution methods run: :class:`Settings`, the same for every image of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Path steps the path methods start from; with automatic steps they are doubled per image until the
#: completeness error is under :data:`STEPS_TARGET_ERROR`, up to :data:`MAX_AUTO_STEPS`.
DEFAULT_STEPS = 50
MAX_AUTO_STEPS = 512
STEPS_TARGET_ERROR = 0.05


@dataclass(frozen=True)
class Settings:
    """How the methods run (the same for every image).

    Attributes
    ----------
    steps : int
        Path steps of the path methods (``ig``, ``blur_ig``, ``blur_ig_pair``, ``guided_ig``; with
        ``auto_steps``: the steps they start from).
    auto_steps : bool
        Double the steps image by image until the completeness error is under :data:`STEPS_TARGET_ERROR`, up
        to :data:`MAX_AUTO_STEPS` (False: ``steps`` exactly, as the user gave them).
    ig_method : str
        captum's integration rule for ``ig``: ``"gausslegendre"`` (default) or ``"riemann_trapezoid"``,
        ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``.
    baseline : str or Tensor
        The baseline of ``ig``, ``guided_ig`` and ``occlusion`` (:mod:`rfkit.attribution.baselines`).
    noise : float
        ``smoothgrad``'s noise sigma as a fraction of the input range (the span of a [0, 1] picture after the
        model's normalisation: ``1 / std``, averaged over channels).
    samples : int
        ``smoothgrad``'s noisy samples per image.
    blur_sigma : float or None
        Largest blur of ``blur_ig`` and ``blur_ig_pair`` (and of the ``"blur"`` baseline and the insertion
        canvas); None: 50 px at 224 px, in proportion to the input
        (:func:`rfkit.attribution.baselines.default_sigma`).
    batch_size : int
        Inputs per forward pass: images, and also path points, SmoothGrad samples, occluded or ablated
        copies, which are fed in chunks of this size.
    seed : int
        Seeds SmoothGrad's noise.
    score : str
        What a class target's map explains: ``"logit"`` (pre-softmax) or ``"probability"`` (softmax).
    channels : str
        How a per-channel attribution becomes one map (:data:`rfkit.attribution.registry.CHANNEL_RULES`):
        ``"sum"`` (signed) or ``"max_relu_minmax"`` (seed 002's rule).
    options : dict
        Per method, its own options (:attr:`rfkit.attribution.registry.Method.options`) as they ran.
    """

    steps: int = DEFAULT_STEPS
    auto_steps: bool = False
    ig_method: str = "gausslegendre"
    baseline: Any = "zeros"
    noise: float = 0.15
    samples: int = 25
    blur_sigma: float | None = None
    batch_size: int = 8
    seed: int = 0
    score: str = "logit"
    channels: str = "sum"
    options: dict = field(default_factory=dict)

    @property
    def class_score(self) -> str:
        """What a class target's maps explain, in words.

        >>> Settings().class_score, Settings(score="probability").class_score
        ('logit (pre-softmax)', 'softmax probability')
        """
        return "softmax probability" if self.score == "probability" else "logit (pre-softmax)"

    @property
    def channels_text(self) -> str:
        """How the maps were made from per-channel attributions, in words.

        >>> Settings().channels_text
        'maps: the signed sum over colour channels'
        """
        if self.channels == "max_relu_minmax":
            return (
                "maps: max over colour channels, ReLU, each map rescaled to [0, 1] by its minimum and maximum "
                "(seed 002's rule)"
            )
        return "maps: the signed sum over colour channels"

    def as_dict(self) -> dict:
        """Plain values for reports (a tensor baseline shows as its shape)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if not isinstance(self.baseline, str):
            d["baseline"] = f"tensor {tuple(getattr(self.baseline, 'shape', ()))}"
        d["options"] = {m: dict(o) for m, o in self.options.items()}
        return d
