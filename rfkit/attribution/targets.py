"""What an attribution explains: a class logit or one unit of a layer, and the model as the attribution
libraries see it (input -> one score column per target choice).

A **class target** is the pre-softmax logit of a class (or, with ``score="probability"``, its softmax
probability): a fixed index, or the predicted (arg-max) class of each image. A **unit target** is one unit
of a layer's spatial grid (the centre unit by default, the ERF's rule ``n // 2`` per axis); its score is the
unit's value **summed over channels, signed** (the ERF's ``replknet`` score takes ``relu`` first; for a layer
that ends in a ReLU, like a ResNet stage, both are the same). Whatever the layer's layout (NCHW,
channels-last, tokens behind a class token, Swin windows), the unit's entries are found from the graph
(:func:`rfkit.graph.units.select_unit`).
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn

from rfkit.attribution.errors import TargetError
from rfkit.errors import LayerError
from rfkit.graph.layers import resolve_layers
from rfkit.graph.units import centre_unit, grid_shape, select_unit
from rfkit.pipeline.capture import LayerCapture

_UNIT_TEXT = re.compile(r"^(?P<layer>[^@]+)@(?P<unit>\d+(?:[,x]\d+)*)$")


@dataclass(frozen=True)
class TargetSpec:
    """A target as asked for, before it meets the model: ``kind`` is ``"predicted"``, ``"class"`` (``index``)
    or ``"unit"`` (``layer``, and ``unit`` or None for the centre)."""

    kind: str
    index: int | None = None
    layer: str | None = None
    unit: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Target:
    """The target of one image's maps.

    Attributes
    ----------
    kind : str
        ``"class"`` or ``"unit"``.
    index : int or None
        The class (for a class target).
    name : str or None
        The class's ImageNet-1k name when the head has 1000 classes (timm's bundled class list).
    layer, node : str or None
        The unit's layer as asked for, and its graph node.
    unit : tuple or None
        The unit, one index per spatial axis of the layer's grid.
    """

    kind: str
    index: int | None = None
    name: str | None = None
    layer: str | None = None
    node: str | None = None
    unit: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        """``"207 (golden retriever)"``, ``"207"`` or ``"layer2@3,3"``.

        >>> Target("class", 207, "golden retriever").label, Target("unit", layer="layer2", unit=(3, 4)).label
        ('207 (golden retriever)', 'layer2@3,4')
        """
        if self.kind == "unit":
            return f"{self.layer}@{','.join(map(str, self.unit))}"
        return f"{self.index} ({self.name})" if self.name else str(self.index)


def parse_target(target) -> TargetSpec:
    """Read a target: an int class, ``"predicted"``, a class index as text, ``"LAYER"`` (its centre unit),
    ``"LAYER@i,j"`` or ``(LAYER, (i, j))``.

    >>> parse_target(207)
    TargetSpec(kind='class', index=207, layer=None, unit=None)
    >>> parse_target("predicted").kind, parse_target("layer2@14,14")
    ('predicted', TargetSpec(kind='unit', index=None, layer='layer2', unit=(14, 14)))
    >>> parse_target(("blocks.2", (1, 0))).unit, parse_target("layer2").unit is None
    ((1, 0), True)
    """
    if isinstance(target, bool):
        raise TargetError(f"target must be a class index, 'predicted' or a unit, got {target!r}")
    if isinstance(target, numbers.Integral):
        if target < 0:
            raise TargetError(f"class index {target} is negative: classes are numbered from 0")
        return TargetSpec("class", index=int(target))
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        unit = target[1]
        if not (
            isinstance(unit, (tuple, list))
            and unit
            and all(isinstance(u, int) and not isinstance(u, bool) and u >= 0 for u in unit)
        ):
            raise TargetError(f"a unit target is (LAYER, (i, j)) with non-negative ints, got {target!r}")
        return TargetSpec("unit", layer=target[0], unit=tuple(unit))
    if not isinstance(target, str) or not target.strip():
        raise TargetError(f"target must be a class index, 'predicted', 'LAYER' or 'LAYER@i,j', got {target!r}")
    text = target.strip()
    if text == "predicted":
        return TargetSpec("predicted")
    if text.isdigit():
        return TargetSpec("class", index=int(text))
    found = _UNIT_TEXT.match(text)
    if found:
        unit = tuple(int(u) for u in re.split(r"[,x]", found["unit"]))
        return TargetSpec("unit", layer=found["layer"], unit=unit)
    if "@" in text:
        raise TargetError(f"target {text!r}: write a unit as LAYER@i,j (e.g. layer2@3,3)")
    return TargetSpec("unit", layer=text)


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...] | None:
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k")
        return tuple(info.index_to_description(i) for i in range(1000))
    except Exception:  # noqa: BLE001 -- names are a convenience; without them targets show the index
        return None


def class_name(index: int, num_classes: int) -> str | None:
    """The ImageNet-1k name of class ``index`` when the head has 1000 classes (else None).

    >>> class_name(207, 1000), class_name(3, 10)
    ('golden retriever', None)
    """
    if num_classes != 1000:
        return None
    names = _imagenet_names()
    return names[index] if names else None


def num_classes(g) -> int:
    """The width of the model's output ``(N, classes)``; :class:`TargetError` for any other output."""
    shape = g.output.shape
    if shape is None or len(shape) != 2:
        what = f"of shape {tuple(shape)}" if shape else "not a single tensor"
        raise TargetError(
            f"class targets need a model that returns (N, classes) scores; its output is {what}: "
            "pass a unit target instead (LAYER or LAYER@i,j)"
        )
    return int(shape[1])


def check_class(index: int, classes: int) -> None:
    """:class:`TargetError` unless ``0 <= index < classes``."""
    if not 0 <= index < classes:
        raise TargetError(
            f"class {index} is outside the head's {classes} classes (0..{classes - 1}): pass a class "
            "index the model has, or 'predicted'"
        )


def resolve_unit(spec: TargetSpec, g, model: nn.Module) -> Target:
    """The unit target ``spec`` checked against the graph: layer with a grid, unit inside it."""
    try:
        node = resolve_layers(g, model, [spec.layer])[0][spec.layer]
    except LayerError as e:
        raise TargetError(f"target {spec.layer!r}: {e}") from None
    naxes = len(g.input_size)
    grid = grid_shape(g.records[node].layout, naxes)
    unit = spec.unit if spec.unit is not None else centre_unit(grid)
    if len(unit) != naxes or any(not 0 <= u < n for u, n in zip(unit, grid)):
        raise TargetError(
            f"unit {tuple(unit)} is outside the {'x'.join(map(str, grid))} grid of layer {spec.layer!r}"
            f" (indices from 0, one per axis): pick a unit inside it, or give the layer alone for "
            "its centre"
        )
    return Target("unit", layer=spec.layer, node=node, unit=tuple(unit))


class UnitScore:
    """The channel sum of one unit of a layer, per image: ``(B, 1)``. The forward stops at the layer."""

    def __init__(self, capture, key: str, layout, unit: tuple[int, ...]) -> None:
        self.capture, self.key, self.layout, self.unit = capture, key, layout, unit

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.capture(x)
        if self.key not in outs:
            raise TargetError(f"layer {self.key!r} was not reached by the forward pass")
        y = outs[self.key]
        return select_unit(y, self.layout, self.unit).reshape(x.shape[0], -1).sum(dim=1, keepdim=True)


class ScoreModel(nn.Module):
    """``model`` as captum and pytorch-grad-cam see it: input -> ``(B, K)`` scores, the target chosen by
    column. For class targets the logits (their softmax with ``probability=True``); for a unit target one
    column, the unit's channel sum."""

    def __init__(self, model: nn.Module, unit: UnitScore | None = None, probability: bool = False) -> None:
        super().__init__()
        self.model = model
        self._unit = unit
        self.probability = probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._unit is not None:
            return self._unit(x)
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TargetError(
                f"class targets need a model that returns (N, classes) scores, got {shape}: pass a "
                "unit target instead (LAYER or LAYER@i,j)"
            )
        return out.softmax(dim=1) if self.probability else out


def unit_model(model: nn.Module, g, target: Target, captures: LayerCapture | None = None) -> ScoreModel:
    """A :class:`ScoreModel` scoring ``target``'s unit, capturing its layer with hooks (or a torch.fx graph for a
    node that is no module's output) through ``captures`` (default: a new
    :class:`~rfkit.pipeline.capture.LayerCapture` of ``model``)."""
    captures = captures if captures is not None else LayerCapture(g, model)
    capture = captures({target.layer: target.node})
    return ScoreModel(model, UnitScore(capture, target.layer, g.records[target.node].layout, target.unit))
