"""One record per attribution method: what it is, which library call computes it, its options and what it
accepts. :func:`rfkit.attribute` runs every method through its record, with no per-name branches.

A record's ``compute`` takes one :class:`Call` (the batch, its targets, the score model, the method's
options, the CAM layer where it needs one) and returns, by the record's ``output``:

``"input"``
    an attribution per input channel, ``(B, C, H, W)``; the engine combines the channels
    (:data:`CHANNEL_RULES`).
``"pixel"``
    one value per input pixel, ``(B, H, W)`` (FullGrad, Occlusion, XRAI).
``"grid"``
    a CAM at the layer's grid, ``(B, *grid)``, before ReLU; the engine ReLUs it and upsamples it bilinearly
    (``align_corners=False``) to the input.

A path method (``path=True``) integrates gradients from ``start(call)`` to the input: its attributions add up
to ``f(x) - f(start)``, and the engine reports that completeness error and raises the steps until it is small
(``settings.steps`` is the steps the call must use).

Examples
--------
Register a method, use it, take it away again:

>>> import torch.nn as nn, rfkit
>>> from rfkit.attribution.registry import Method, register, unregister
>>> register(Method("doubled_gradient", "Doubled Gradient", family="gradient", library="rfkit",
...                 call="2 * torch.autograd.grad", compute=lambda call: 2 * call.input_gradient()))
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
>>> res = rfkit.attribute(net, images="noise", num_images=1, methods="saliency,doubled_gradient",
...                       input_size=2, device="cpu", target=0)
>>> bool(abs(res.maps["doubled_gradient"] - 2 * res.maps["saliency"]).max() < 1e-6)
True
>>> _ = unregister("doubled_gradient")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rfkit.attribution.errors import MethodError

#: How an ``"input"`` attribution ``(B, C, H, W)`` becomes one map per image: ``"sum"`` (rfkit's convention:
#: the signed sum over colour channels) or ``"max_relu_minmax"`` (the rule of the attribution library of seed
#: 002, its ``normalize_saliency``: the largest of the signed channel values, ReLU, then each map rescaled to
#: [0, 1] by its own minimum and maximum; pixel and CAM maps, which have one channel, get the ReLU and the
#: rescaling).
CHANNEL_RULES = ("sum", "max_relu_minmax")
#: What a map explains for a class target: the logit (pre-softmax, rfkit's default) or the softmax
#: probability (the score of Blur IG in seed 002 and in PAIR's examples).
SCORES = ("logit", "probability")
OUTPUTS = ("input", "pixel", "grid")
#: ``"grid"``: any layer the graph can put on its grid; ``"nchw"``: a module whose output is ``(N, C, H, W)``
#: as it is (captum's layer methods average over the dims after the channels).
LAYERS = (None, "grid", "nchw")
TARGETS = frozenset({"class", "unit"})


@dataclass(frozen=True)
class Option:
    """One option of one method: its name, default, type and what it means.

    ``default=None`` means "chosen from the input" (the help says how); ``choices`` limits a string,
    ``minimum`` and ``maximum`` a number.
    """

    name: str
    default: Any
    kind: type
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def check(self, method: str, value) -> Any:
        """``value`` converted to the option's type, or :class:`MethodError` naming the method and option."""
        where = f"option {method}.{self.name}"
        kind = {int: "an integer", float: "a number", str: "a string"}.get(self.kind, self.kind.__name__)
        if value is None and self.default is None:
            return None
        if isinstance(value, str) and self.kind is not str:
            try:
                value = self.kind(value)
            except ValueError:
                raise MethodError(f"{where} must be {kind}, got {value!r}") from None
        if self.kind in (int, float):
            ok = _is_int(value) or (self.kind is float and isinstance(value, float))
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise MethodError(f"{where} must be {kind}, got {value!r} ({type(value).__name__})")
        if self.choices and value not in self.choices:
            raise MethodError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.kind in (int, float) and not self._in_range(value):
            raise MethodError(f"{where} must be a finite number{self._range_text()}, got {value!r}")
        return self.kind(value)

    def _in_range(self, value) -> bool:
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        return math.isfinite(value) and low <= value <= high

    def _range_text(self) -> str:
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return " " + " and ".join(bounds) if bounds else ""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CamLayer:
    """The layer a CAM-style method reads: the module, its name, and how its output goes on the grid."""

    name: str
    module: torch.nn.Module
    transform: Callable
    layout: Any


@dataclass(frozen=True)
class Call:
    """Everything one method needs for one batch.

    Attributes
    ----------
    model : ScoreModel
        Input -> ``(B, K)`` scores; column ``targets[i]`` of row ``i`` is what image ``i``'s map explains.
    x : Tensor
        The batch, model-ready, ``(B, C, H, W)``.
    targets : list of int
    settings : Settings
        How the methods run (:class:`rfkit.attribution.methods.Settings`); ``settings.steps`` is the steps a
        path method must use.
    options : Mapping
        This method's options (:attr:`Method.options`, with the user's values).
    data_config : dict
        The model's preprocessing (mean, std, input size).
    sigma : float
        The largest blur in pixels (Blur IG's start, the ``"blur"`` baseline).
    index : sequence of int
        The images' places in the stream (seeds per image).
    layer : CamLayer or None
        The CAM layer, for methods whose record names one.
    start : Tensor or None
        A path method's start (from its record's ``start``), shaped like ``x``.
    """

    model: Any
    x: torch.Tensor
    targets: list[int]
    settings: Any
    options: Mapping[str, Any]
    data_config: dict
    sigma: float
    index: Sequence[int]
    layer: CamLayer | None = None
    start: torch.Tensor | None = None

    def input_gradient(self) -> torch.Tensor:
        """The gradient of each image's target score with respect to the input, ``(B, C, H, W)``."""
        x = self.x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = self.model(x).gather(1, torch.as_tensor(self.targets, device=x.device).view(-1, 1)).sum()
            return torch.autograd.grad(scores, x)[0]


@dataclass(frozen=True)
class Method:
    """One attribution method.

    Attributes
    ----------
    name : str
        Its id: files, CSV, JSON, the ``methods`` argument.
    display : str
        Its name in the literature (figure titles, report.md, the terminal).
    family : str
        ``"gradient"``, ``"path"``, ``"cam"``, ``"gradient × CAM"``, ``"perturbation"`` or ``"region"``.
    library : str
        Who computes it: ``"captum"``, ``"pytorch-grad-cam"``, ``"saliency (PAIR)"`` or ``"rfkit"``.
    call : str
        The library call (for the docs and reports).
    compute : callable
        ``compute(call: Call) -> Tensor``, shaped by ``output``.
    output : str
        ``"input"``, ``"pixel"`` or ``"grid"`` (module docstring).
    options : tuple of Option
        Its own options, with defaults (shared settings such as ``steps`` or ``baseline`` are in
        :class:`~rfkit.attribution.methods.Settings`).
    targets : frozenset of str
        The target kinds it accepts: ``"class"``, ``"unit"``.
    layer : str or None
        Whether it reads a CAM layer: None, ``"grid"`` or ``"nchw"`` (:data:`LAYERS`).
    path : bool
        A path method with completeness: ``start`` gives where the path starts.
    start : callable, optional
        ``start(call) -> Tensor`` shaped like ``call.x`` (path methods).
    input_gradient : bool
        Its map is zero wherever the score has no input gradient: a unit's maps are checked against its
        analytic RF window, and it can be the gradient factor of a ``GRADIENT*CAM`` product.
    signed : bool
        Its maps can be negative (drawn with a diverging colour scale).
    target_free : bool
        Its map does not depend on the target (Eigen-CAM: the first principal component of the layer).
    check : callable, optional
        ``check(model, graph) -> None``: raises :class:`MethodError` (one line) for a model it cannot run on.
    note : callable, optional
        ``note(model) -> str or None``: a warning about the maps on this model.
    needs : str
        What it needs and costs, in words (docs and errors).
    reference : str
        The paper.
    """

    name: str
    display: str
    family: str
    library: str
    call: str
    compute: Callable[[Call], torch.Tensor]
    output: str = "input"
    options: tuple[Option, ...] = ()
    targets: frozenset = TARGETS
    layer: str | None = None
    path: bool = False
    start: Callable[[Call], torch.Tensor] | None = None
    input_gradient: bool = True
    signed: bool = True
    target_free: bool = False
    check: Callable | None = None
    note: Callable | None = None
    needs: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not all(c.isalnum() or c in "_+-" for c in self.name):
            problems.append(f"name {self.name!r}: letters, digits, '_', '+' or '-' only (it names files)")
        if self.output not in OUTPUTS:
            problems.append(f"output {self.output!r} (use {', '.join(OUTPUTS)})")
        if self.layer not in LAYERS:
            problems.append(f"layer {self.layer!r} (use None, 'grid' or 'nchw')")
        if self.output == "grid" and self.layer is None:
            problems.append("a 'grid' output needs a layer ('grid' or 'nchw')")
        if self.path and (self.start is None or self.output != "input"):
            problems.append("a path method needs start= and output='input'")
        if not self.targets or not set(self.targets) <= TARGETS:
            problems.append(f"targets {set(self.targets)} (a non-empty subset of {set(TARGETS)})")
        if not callable(self.compute):
            problems.append("compute must be callable")
        if problems:
            raise MethodError(f"attribution method record {self.name!r}: " + "; ".join(problems))

    @property
    def defaults(self) -> dict:
        """Its options' default values, by name."""
        return {o.name: o.default for o in self.options}

    def resolve(self, given: Mapping[str, Any] | None) -> dict:
        """Its options: the defaults, overridden by ``given`` (checked, converted)."""
        given = dict(given or {})
        known = {o.name: o for o in self.options}
        unknown = [k for k in given if k not in known]
        if unknown:
            offered = ", ".join(known) or "none"
            raise MethodError(f"{self.name} has no option {unknown[0]!r} (its options: {offered})")
        return {k: (o.check(self.name, given[k]) if k in given else o.default) for k, o in known.items()}


_REGISTRY: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> None:
    """Add ``method`` under its name (``replace=True`` to put a new record in place of one of that name).

    A name with ``*`` is a product of two methods and cannot be registered.
    """
    if not isinstance(method, Method):
        raise MethodError(f"register takes a Method record, got {type(method).__name__}")
    if method.name in _REGISTRY and not replace:
        raise MethodError(f"attribution method {method.name!r} is registered already (pass replace=True)")
    _REGISTRY[method.name] = method


def unregister(name: str) -> Method:
    """Remove and return the record of ``name``."""
    if name not in _REGISTRY:
        raise MethodError(f"attribution method {name!r} is not registered")
    return _REGISTRY.pop(name)


def registered() -> dict[str, Method]:
    """Every record, by name, in the order they were registered (a copy)."""
    return dict(_REGISTRY)


def lookup(name: str) -> Method | None:
    """The record of ``name``, or None."""
    return _REGISTRY.get(name)
