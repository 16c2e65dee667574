"""Catching the outputs of chosen layers during one forward pass, and leaving the model as it was found.

Two ways in: forward hooks on modules (any model, nothing rebuilt), or, for graph nodes that are not a
module's output (``add_3``, a reshape), a ``torch.fx`` GraphModule that returns those nodes and shares the
model's parameters. Either way the forward stops as soon as every layer has been seen: measuring ``layer1``
does not pay for ``layer4`` and the head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from rfkit.errors import LayerError
from rfkit.graph.layers import module_of
from rfkit.graph.tracer import outputs_of, split_element, trace_module
from rfkit.models.keras_module import KerasModule


class _Seen(Exception):
    """Raised from a hook once every requested output exists, to skip the rest of the forward."""


@contextmanager
def frozen(model: nn.Module, device: torch.device | None, channels_last: bool = False) -> Iterator[nn.Module]:
    """``model`` in eval mode with frozen parameters (no weight gradients), optionally moved to ``device``
    and to channels-last; afterwards every module's mode, every parameter's ``requires_grad`` and the
    tensors behind every parameter and buffer (so device, dtype and memory format) are put back, also when
    the body raises."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.data) for p in model.parameters()]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    try:
        model.eval()
        for p, _, _ in params:
            p.requires_grad_(False)
        if device is not None:
            model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad, data in params:
            p.data = data
            p.requires_grad_(requires_grad)
        for m, name, b in buffers:
            m._buffers[name] = b


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; CPU for a model without tensors."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


class HookCapture:
    """Outputs of the modules ``modules`` (qualified name -> key) from one call of ``model``. A name
    ``module[k]`` takes element ``k`` of a module's tuple, list (``k`` an index) or dict output; a plain name
    of a module returning a tuple, list or dict takes its first element.

    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    >>> cap = HookCapture(net, {"1": "relu"})
    >>> out = cap(torch.zeros(1, 1, 8, 8))
    >>> tuple(out["relu"].shape), len(cap.handles)
    ((1, 2, 6, 6), 0)
    """

    def __init__(self, model: nn.Module, modules: dict[str, str]) -> None:
        self.model = model
        self.modules = dict(modules)
        self.handles: list = []
        named = dict(model.named_modules())
        self._targets: dict[nn.Module, list[tuple[str | None, str]]] = {}
        for name, key in self.modules.items():
            module, element = split_element(name)
            if module not in named:
                raise KeyError(f"no module named {module!r}")
            self._targets.setdefault(named[module], []).append((element, key))
        self._want = len(set(self.modules.values()))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}

        def hook(module, args, out):
            for element, key in self._targets[module]:
                found[key] = _element(out, element)
            if len(found) == self._want:
                raise _Seen

        self.handles = [m.register_forward_hook(hook) for m in self._targets]
        try:
            self.model(x)
        except _Seen:
            pass
        finally:
            for h in self.handles:
                h.remove()
            self.handles = []
        return found


def _element(out, element: str | None):
    """Element ``element`` of a module's output (None: the output, or the first element of a tuple, list
    or dict: torchvision's segmentation models return ``{"out": ...}``)."""
    if element is None:
        if isinstance(out, dict):
            return next(iter(out.values()))
        return out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(out, dict):
        return out[element] if element in out else out[int(element)]
    return out[int(element)]


class GraphCapture:
    """Outputs of named nodes of ``gm`` (a torch.fx GraphModule of the model, node -> key)."""

    def __init__(self, gm, nodes: dict[str, str]) -> None:
        self.keys = list(nodes.values())
        self.sub = outputs_of(gm, list(nodes))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.keys, self.sub(x)))


Capture = Callable[[torch.Tensor], dict]


def element_of(g, node: str) -> str | None:
    """The element name ``module[k]`` whose tensor is ``node`` (an element of a module's tuple, list or dict
    output; None when there is none), for a hook to catch it: the only way to reach the elements of a module
    kept whole, which the torch.fx graph does not split."""
    return next((m for m, n in g.module_outputs.items() if n == node and split_element(m)[1] is not None), None)


class LayerCapture:
    """Captures of sets of layers (layer name -> graph node) of one live model: forward hooks when every
    layer is a module's output, else a torch.fx GraphModule returning the nodes. The GraphModule is made
    once per :class:`LayerCapture` (bound from the prepared trace ``fx``, or traced from ``model``) and shared
    by every set of layers.

    Parameters
    ----------
    g : RFGraph
        The model's graph (names, module outputs, how it was recorded).
    model : nn.Module
        The live model the captures run.
    fx : FxModel, optional
        The prepared torch.fx trace of the model (:func:`rfkit.graph.tracing.trace_fx`).
    """

    def __init__(self, g, model: nn.Module, fx=None) -> None:
        self.g, self.model, self.fx = g, model, fx
        self._gm = None

    def graph_module(self):
        """The model as one torch.fx GraphModule sharing its parameters (made on first use)."""
        if self._gm is None:
            self._gm = self.fx.bind(self.model) if self.fx is not None else trace_module(self.model)[0]
        return self._gm

    def __call__(self, layers: dict[str, str]) -> Capture:
        if isinstance(self.model, KerasModule):  # a run of its Keras graph returning the layers' outputs
            return self.model.capture(layers)
        modules = {}
        for key, node in layers.items():
            module = key if key in self.g.module_outputs else module_of(self.g, node) or element_of(self.g, node)
            if module is None:
                break
            modules[module] = key
        else:
            return HookCapture(self.model, modules)
        if self.g.method != "torch.fx":
            raise LayerError(
                f"{self.g.model_name} was recorded with make_fx, so only module outputs can be measured; "
                f"{key!r} is not one"
            )
        return GraphCapture(self.graph_module(), {node: key for key, node in layers.items()})
