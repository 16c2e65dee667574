"""Measuring receptive fields: the gradient support of output units, independent of the analytic pass.

The model is made measurable, as the RF literature does: float64, every weight positive (scaled by
fan-in so that activations stay O(1) and no sigmoid gate saturates to an exactly zero gradient),
BatchNorm statistics neutral, max pooling replaced by average pooling with the same window (a max sends
the gradient to one pixel per window), clamping activations (ReLU6, hard sigmoid/swish/tanh) replaced by
the identity (their flat parts have zero gradient), softmax replaced by a softplus normalisation (a
softmax of large logits underflows to exact zeros), inputs positive. Then the set of input pixels with a
non-zero gradient of a unit is exactly the set of pixels it can see. Every swap is reported.
"""

from __future__ import annotations

import warnings

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from rfkit.errors import RFKitError, WeightsWarning
from rfkit.graph.tracer import MARK, record_model, trace_module
from rfkit.graph.tracer import outputs_of as graph_outputs_of
from rfkit.models.keras_module import KerasModule
from rfkit.models.onnx_file import is_onnx
from rfkit.models.spec import copy_module
from rfkit.pipeline.prepare import Prepared, prepare

_MAX_TO_AVG_MODULES = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
_MAX_TO_AVG_FUNCTIONS = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d}


def _avg_like(m: nn.Module) -> nn.Module:
    dilation = getattr(m, "dilation", 1)
    if any(d != 1 for d in (dilation if isinstance(dilation, (list, tuple)) else [dilation])):  # onnx2torch: a list
        raise ValueError("dilated max pooling has no average-pooling twin")
    try:
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

        if isinstance(m, MaxPool2dSame):
            return AvgPool2dSame(m.kernel_size, m.stride, ceil_mode=m.ceil_mode)
    except ImportError:
        pass
    cls = _MAX_TO_AVG_MODULES[type(m)]
    return cls(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)


_CLAMPING_MODULES = (nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish)
_CLAMPING_FUNCTIONS = {F.relu6, F.hardtanh, F.hardsigmoid, F.hardswish, torch.clamp, torch.clip}
_CLAMPING_METHODS = {"clamp", "clamp_", "clip", "clip_", "hardtanh", "hardtanh_"}


def _identity(x, *args, **kwargs):
    return x


def _soft_normalize(x, dim=None, *args, **kwargs):
    """Softmax's stand-in for measurement: softmax of large logits underflows to exact zeros, which would
    hide positions the unit does see; softplus(x) / sum keeps every weight positive."""
    y = F.softplus(x)
    return y / y.sum(dim=dim, keepdim=True)


def _attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """scaled_dot_product_attention with :func:`_soft_normalize` instead of softmax (masks kept)."""
    logits = (q @ k.transpose(-2, -1)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if attn_mask is not None:
        logits = logits + attn_mask if attn_mask.dtype != torch.bool else logits.masked_fill(~attn_mask, -1e9)
    return _soft_normalize(logits, -1) @ v


_SOFTMAX_FUNCTIONS = {F.softmax, torch.softmax}


def _max_pool_type():
    try:
        from timm.layers.pool2d_same import MaxPool2dSame

        return (*_MAX_TO_AVG_MODULES, MaxPool2dSame)
    except ImportError:
        return tuple(_MAX_TO_AVG_MODULES)


def positive_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Set every parameter positive (fan-in normalised, small biases) and BatchNorm statistics to 0/1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() >= 2 else 1
            scale = 0.01 if name.endswith("bias") else 1.0
            p.copy_(scale * (0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype)) / fan_in)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)
    return model


def swap_modules(model: nn.Module) -> list[str]:
    """Max pools → average pools, clamping activations → identity, in place; returns what was swapped."""
    notes: list[str] = []
    max_types = _max_pool_type()
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            path = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, max_types):
                setattr(parent, child_name, _avg_like(child))
                notes.append(f"{path}: {type(child).__name__} measured as average pooling")
            elif isinstance(child, _CLAMPING_MODULES):
                setattr(parent, child_name, nn.Identity())
                notes.append(f"{path}: {type(child).__name__} measured as identity")
    return notes


def swap_functions(gm: fx.GraphModule) -> list[str]:
    """The same swaps for functional calls in a traced graph."""
    notes = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in _MAX_TO_AVG_FUNCTIONS:
            kwargs = {k: v for k, v in node.kwargs.items() if k in ("kernel_size", "stride", "padding", "ceil_mode")}
            node.target = _MAX_TO_AVG_FUNCTIONS[node.target]
            node.args, node.kwargs = tuple(node.args[:4]), kwargs
            notes.append(f"{node.name}: max pooling measured as average pooling")
        elif (node.op == "call_function" and node.target in _CLAMPING_FUNCTIONS) or (
            node.op == "call_method" and node.target in _CLAMPING_METHODS
        ):
            node.op, node.target = "call_function", _identity
            notes.append(f"{node.name}: clamping measured as identity")
        elif (node.op == "call_function" and node.target in _SOFTMAX_FUNCTIONS) or (
            node.op == "call_method" and node.target == "softmax"
        ):
            node.op, node.target = "call_function", _soft_normalize
            notes.append(f"{node.name}: softmax measured as softplus normalisation (no underflow to zero)")
        elif node.op == "call_function" and node.target is F.scaled_dot_product_attention:
            node.target = _attention
            notes.append(f"{node.name}: attention softmax measured as softplus normalisation")
    gm.recompile()
    return notes


def unmark(gm: fx.GraphModule) -> fx.GraphModule:
    """Make a graph recorded by :func:`rfkit.graph.tracer.record_model` differentiable: its ``rfkit::mark``
    nodes (which name module outputs) have no autograd formula, so they become plain clones (same names)."""
    changed = False
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is MARK:
            node.target, node.args, node.kwargs = torch.clone, (node.args[0],), {}
            changed = True
    if changed:
        gm.recompile()
    return gm


def measurable(model: nn.Module, seed: int = 0, with_notes: bool = False):
    """A traced float64 copy of ``model`` with positive weights, average instead of max pooling and no
    clamping (``with_notes``: also return the list of swaps)."""
    model = positive_weights(copy_module(model).double().eval(), seed)
    notes = swap_modules(model)
    gm, _ = trace_module(model)
    notes += swap_functions(gm)
    return (gm, notes) if with_notes else gm


def prepared_for_measuring(
    model, input_size=None, in_chans: int | None = None, seed: int = 0, trust: bool = False
) -> Prepared:
    """``model`` prepared for a measurement that replaces its weights with positive ones: a spec is built at
    random init (nothing downloaded), a module taken as given, a :class:`~rfkit.pipeline.Prepared` used as
    it is. The init traps of random weights do not matter here, so they are not warned about. ``trust``: a
    spec whose file runs code may be built (:func:`rfkit.prepare`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)
        weights = "random" if isinstance(model, str) and not is_onnx(model) else "auto"  # ONNX: the file's
        return prepare(model, weights, input_size, in_chans=in_chans, seed=seed, trust=trust)


class Measurable:
    """A prepared model made measurable once: a float64 eval copy with positive weights, max pooling as
    average pooling and no clamping (``notes`` lists every swap), its torch.fx graph (None for a model
    recorded with make_fx: :meth:`record` records it per input), and its analytic graph per input size.

    Parameters
    ----------
    prepared : Prepared
        The model (left unchanged: it is copied).
    seed : int
        Seed of the positive weights.
    """

    def __init__(self, prepared: Prepared, seed: int = 0) -> None:
        self.prepared = prepared
        self.g = prepared.graph
        self.gm = None
        self._module_nodes: dict[str, str] = {}
        if isinstance(prepared.model, KerasModule):  # a float64 clone of its Keras graph, run as it is
            from rfkit.verification.keras_measure import keras_measurable

            self.real, self.notes = keras_measurable(prepared.model, seed)
            self.gm = self.real
        else:
            self.real = positive_weights(copy_module(prepared.model).double().eval(), seed)
            self.notes = swap_modules(self.real)
        if self.g.method not in ("make_fx", "keras"):
            if prepared.fx is not None:
                self.gm = prepared.fx.bind(self.real)
            else:
                self.gm, self._module_nodes = trace_module(self.real)
            self.notes += swap_functions(self.gm)
        self._graphs: dict[tuple[int, ...], object] = {}

    @property
    def in_chans(self) -> int:
        return self.g.in_chans

    def node_in_gm(self, node: str) -> str:
        """The node of :attr:`gm` computing ``node`` of the graph: the same name, except for an ONNX model, whose
        graph is read from the file rather than traced from the converted module: its module's output there."""
        if self.g.method != "onnx":
            return node
        module = self.g.records[node].module
        if module not in self._module_nodes:
            raise RFKitError(
                f"node {node} of {self.g.model_name} is no module's output: measure a module (rfkit graph)"
            )
        return self._module_nodes[module]

    def graph(self, size: tuple[int, ...]):
        """The analytic graph at input ``size`` (from the prepared trace; cached)."""
        if size not in self._graphs:
            self._graphs[size] = self.prepared.graph_at(size)
        return self._graphs[size]

    def x(self, size: tuple[int, ...]) -> torch.Tensor:
        """The positive input the supports are measured on (seeded)."""
        gen = torch.Generator().manual_seed(1)
        return 0.5 + torch.rand((1, self.in_chans, *size), generator=gen, dtype=torch.float64)

    def record(self, x: torch.Tensor) -> tuple[fx.GraphModule, dict[str, str]]:
        """The measurable copy recorded with make_fx on ``x`` (differentiable), and its module outputs."""
        gm, outputs = record_model(self.real, x)
        return unmark(gm), outputs


def outputs_of(gm, names: list[str]):
    """A function of the input returning the outputs of the named nodes: a torch.fx GraphModule cut there
    (:func:`rfkit.graph.tracer.outputs_of`), or a run of a Keras model's graph that stops there."""
    if isinstance(gm, KerasModule):
        capture = gm.capture({n: n for n in names})

        def run(x: torch.Tensor) -> list[torch.Tensor]:
            found = capture(x)
            return [found[n] for n in names]

        return run
    return graph_outputs_of(gm, names)


def support_extent(grad: torch.Tensor) -> list[tuple[int, int]]:
    """(first, last) input index with a non-zero gradient, per spatial axis of a (1, C, *spatial) grad."""
    mask = grad.abs().sum(dim=(0, 1)) > 0
    extents = []
    for axis in range(mask.dim()):
        other = tuple(d for d in range(mask.dim()) if d != axis)
        idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
        extents.append((int(idx.min()), int(idx.max())) if len(idx) else (None, None))
    return extents


def measure(
    gm: fx.GraphModule,
    names: list[str],
    input_shape: tuple[int, ...],
    units: dict[str, tuple],
    dims: dict[str, tuple[int, ...]],
):
    """Support extent per named node of the unit ``units[name]`` (one index per spatial axis, held in the
    tensor dims ``dims[name]``; every other dim but the batch is summed)."""
    sub = outputs_of(gm, names)
    gen = torch.Generator().manual_seed(1)
    x = (0.5 + torch.rand(input_shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
    outs = sub(x)
    result = {}
    for name, y in zip(names, outs):
        idx = units[name]
        index = [slice(None)] * y.dim()
        index[0] = 0
        for d, u in zip(dims[name], idx):
            index[d] = u
        score = y[tuple(index)].sum()
        (grad,) = torch.autograd.grad(score, x, retain_graph=True)
        result[name] = (idx, support_extent(grad))
    return result
