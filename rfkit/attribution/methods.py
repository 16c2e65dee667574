"""The attribution methods rfkit runs, by name, and how a list of names (with ``A*B`` combinations) is read.

Gradient family (input attributions, from captum, Blur IG by hand): ``saliency``, ``input_x_gradient``,
``smoothgrad``, ``ig``, ``blur_ig``, ``guided_backprop``. CAM family (a layer's activations weighted per
channel, from pytorch-grad-cam): ``gradcam``, ``gradcam++``, ``layercam``, ``scorecam``. A combination
``A*B`` of one gradient and one CAM method (either order) is their element-wise product after each map is
divided by its largest absolute value per image, as Guided Grad-CAM multiplies guided backprop by Grad-CAM.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rfkit.attribution.errors import MethodError

#: Input-gradient methods: the map is the attribution summed over colour channels (signed).
GRADIENT_METHODS = ("saliency", "input_x_gradient", "smoothgrad", "ig", "blur_ig", "guided_backprop")
#: Class-activation-map methods: ReLU'd at the layer's grid, upsampled bilinearly to the input.
CAM_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")
METHODS = GRADIENT_METHODS + CAM_METHODS
#: Methods whose attributions add up to ``f(x) - f(baseline)`` (completeness), and so report its error.
PATH_METHODS = ("ig", "blur_ig")
#: Path steps ``ig`` and ``blur_ig`` start from; with automatic steps they are doubled per image until the
#: completeness error is under :data:`STEPS_TARGET_ERROR`, up to :data:`MAX_AUTO_STEPS`.
DEFAULT_STEPS = 50
MAX_AUTO_STEPS = 512
STEPS_TARGET_ERROR = 0.05

#: The names the literature gives the methods (figure titles, report.md and the terminal); files, CSV and
#: JSON keep the ids.
DISPLAY_NAMES = {
    "saliency": "Saliency",
    "input_x_gradient": "Input × Gradient",
    "smoothgrad": "SmoothGrad",
    "ig": "Integrated Gradients",
    "blur_ig": "Blur IG",
    "guided_backprop": "Guided Backprop",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "LayerCAM",
    "scorecam": "Score-CAM",
}
#: Combinations the literature names (Selvaraju et al. 2017), in either order.
_NAMED_COMBINATIONS = {frozenset(("guided_backprop", "gradcam")): "Guided Grad-CAM"}


def parts(name: str) -> tuple[str, ...]:
    """The base methods of a method name: ``("gradcam", "saliency")`` for ``"gradcam*saliency"``.

    >>> parts("ig"), parts("guided_backprop*gradcam")
    (('ig',), ('guided_backprop', 'gradcam'))
    """
    return tuple(name.split("*"))


def is_cam(name: str) -> bool:
    """Whether ``name`` is a CAM method alone (a combination counts as a gradient method)."""
    return name in CAM_METHODS


def uses_cam(name: str) -> bool:
    """Whether ``name`` needs a CAM layer (a CAM method, alone or in a combination)."""
    return any(p in CAM_METHODS for p in parts(name))


def is_gradient(name: str) -> bool:
    """Whether ``name``'s map is an input gradient attribution (zero where the score has no gradient): a
    gradient method alone or combined with a CAM method."""
    return any(p in GRADIENT_METHODS for p in parts(name))


def _unknown(name: str) -> MethodError:
    close = difflib.get_close_matches(name, METHODS, n=3, cutoff=0.5)
    hint = f" (close matches: {', '.join(close)})" if close else ""
    return MethodError(
        f"unknown attribution method {name!r}{hint}; use one of {', '.join(METHODS)}, or "
        "GRADIENT*CAM (e.g. guided_backprop*gradcam)"
    )


def check_method(name: str) -> str:
    """``name`` itself, when it is a method or a gradient*CAM combination; else :class:`MethodError`.

    >>> check_method("gradcam*saliency")
    'gradcam*saliency'
    >>> check_method("saliancy")
    Traceback (most recent call last):
    ...
    rfkit.errors.MethodError: unknown attribution method 'saliancy' (close matches: saliency); ...
    """
    if not isinstance(name, str):
        raise MethodError(f"a method name must be a string, got {name!r} ({type(name).__name__})")
    names = parts(name.strip())
    for p in names:
        if p not in METHODS:
            raise _unknown(p)
    if len(names) == 1:
        return names[0]
    cams = [p for p in names if p in CAM_METHODS]
    if len(names) != 2 or len(cams) != 1:
        raise MethodError(
            f"combination {name!r}: multiply one gradient method ({', '.join(GRADIENT_METHODS)}) by "
            f"one CAM method ({', '.join(CAM_METHODS)}), e.g. guided_backprop*gradcam"
        )
    return "*".join(names)


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Method names from a sequence or a comma-separated string, checked, duplicates dropped, in order.

    >>> parse_methods("saliency, ig,gradcam*saliency,ig")
    ('saliency', 'ig', 'gradcam*saliency')
    """
    items = methods.split(",") if isinstance(methods, str) else methods
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise MethodError(f"methods must be a list of method names or a comma-separated string, got {methods!r}")
    names = [
        check_method(m.strip() if isinstance(m, str) else m)
        for m in items
        if not (isinstance(m, str) and not m.strip())
    ]
    if not names:
        raise MethodError(f"no attribution method given; use one or more of {', '.join(METHODS)}")
    return tuple(dict.fromkeys(names))


def display_name(method: str) -> str:
    """The name the literature gives ``method`` (:data:`DISPLAY_NAMES`); a combination ``A*B`` is
    ``"A × B"`` (a part that holds a ``×`` itself in parentheses), Guided Grad-CAM by its own name.

    >>> display_name("ig"), display_name("gradcam++"), display_name("gradcam*guided_backprop")
    ('Integrated Gradients', 'Grad-CAM++', 'Guided Grad-CAM')
    >>> display_name("saliency*layercam"), display_name("input_x_gradient*gradcam")
    ('Saliency × LayerCAM', '(Input × Gradient) × Grad-CAM')
    """
    names = parts(method)
    if len(names) == 1:
        return DISPLAY_NAMES.get(method, method)
    if frozenset(names) in _NAMED_COMBINATIONS:
        return _NAMED_COMBINATIONS[frozenset(names)]
    shown = [DISPLAY_NAMES.get(p, p) for p in names]
    return " × ".join(f"({n})" if "×" in n else n for n in shown)


def base_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Every base method the list needs, each once, in order.

    >>> base_methods(("saliency", "gradcam*saliency", "ig"))
    ('saliency', 'gradcam', 'ig')
    """
    return tuple(dict.fromkeys(p for m in methods for p in parts(m)))


@dataclass(frozen=True)
class Settings:
    """How the methods run (the same for every image).

    Attributes
    ----------
    steps : int
        Path steps of ``ig`` and ``blur_ig`` (with ``auto_steps``: the steps they start from).
    auto_steps : bool
        Double the steps image by image until the completeness error is under :data:`STEPS_TARGET_ERROR`, up
        to :data:`MAX_AUTO_STEPS` (False: ``steps`` exactly, as the user gave them).
    ig_method : str
        captum's integration rule for ``ig``: ``"gausslegendre"`` (default) or ``"riemann_trapezoid"``,
        ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``.
    baseline : str or Tensor
        ``ig``'s baseline (:mod:`rfkit.attribution.baselines`).
    noise : float
        ``smoothgrad``'s noise sigma as a fraction of the input range (the span of a [0, 1] picture after the
        model's normalisation: ``1 / std``, averaged over channels).
    samples : int
        ``smoothgrad``'s noisy samples per image.
    blur_sigma : float or None
        Largest blur of ``blur_ig`` (and of the ``"blur"`` baseline and the insertion canvas); None: 50 px
        at 224 px, in proportion to the input (:func:`rfkit.attribution.baselines.default_sigma`).
    batch_size : int
        Inputs per forward pass: images, and also IG path points, SmoothGrad samples and Blur IG steps,
        which are fed in chunks of this size.
    seed : int
        Seeds SmoothGrad's noise.
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

    def as_dict(self) -> dict:
        """Plain values for reports (a tensor baseline shows as its shape)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if not isinstance(self.baseline, str):
            d["baseline"] = f"tensor {tuple(getattr(self.baseline, 'shape', ()))}"
        return d
