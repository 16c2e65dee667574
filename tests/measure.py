"""An independent measurement of receptive fields: the gradient support of one output unit.

The model is made measurable, as the RF literature does: float64, every weight positive (scaled by
fan-in so that no sigmoid gate saturates to an exactly zero gradient), BatchNorm
statistics neutral, max pooling replaced by average pooling with the same window (a max sends the
gradient to one pixel per window), inputs positive. Then the set of input pixels with a non-zero
gradient of a unit is exactly the set of pixels it can see.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.tracer import trace_module

_MAX_TO_AVG_MODULES = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
_MAX_TO_AVG_FUNCTIONS = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d}


def _avg_like(m: nn.Module) -> nn.Module:
    if getattr(m, "dilation", 1) not in (1, (1, 1), (1,), (1, 1, 1)):
        raise ValueError("dilated max pooling has no average-pooling twin")
    try:
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
        if isinstance(m, MaxPool2dSame):
            return AvgPool2dSame(m.kernel_size, m.stride, ceil_mode=m.ceil_mode)
    except ImportError:
        pass
    cls = _MAX_TO_AVG_MODULES[type(m)]
    return cls(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)


def measurable(model: nn.Module, seed: int = 0) -> fx.GraphModule:
    """A traced float64 copy of ``model`` with positive weights and average instead of max pooling."""
    model = copy.deepcopy(model).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # positive and normalised by fan-in, so activations stay O(1) and no gate saturates
            fan_in = p[0].numel() if p.dim() >= 2 else 1
            scale = 0.01 if name.endswith("bias") else 1.0
            p.copy_(scale * (0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype)) / fan_in)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            try:
                from timm.layers.pool2d_same import MaxPool2dSame
                is_max = isinstance(child, (*_MAX_TO_AVG_MODULES, MaxPool2dSame))
            except ImportError:
                is_max = isinstance(child, tuple(_MAX_TO_AVG_MODULES))
            if is_max:
                setattr(parent, child_name, _avg_like(child))
    gm, _ = trace_module(model)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in _MAX_TO_AVG_FUNCTIONS:
            args = list(node.args[:4])  # input, kernel, stride, padding
            kwargs = {k: v for k, v in node.kwargs.items() if k in ("kernel_size", "stride", "padding", "ceil_mode")}
            node.target = _MAX_TO_AVG_FUNCTIONS[node.target]
            node.args, node.kwargs = tuple(args), kwargs
    gm.recompile()
    return gm


def outputs_of(gm: fx.GraphModule, names: list[str]) -> fx.GraphModule:
    """A copy of ``gm`` returning the tensors of the named nodes."""
    gm = fx.GraphModule(gm, copy.deepcopy(gm.graph))
    nodes = {n.name: n for n in gm.graph.nodes}
    out = next(n for n in gm.graph.nodes if n.op == "output")
    out.args = (tuple(nodes[n] for n in names),)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def support_extent(grad: torch.Tensor) -> list[tuple[int, int]]:
    """(first, last) input index with a non-zero gradient, per spatial axis of a (1, C, *spatial) grad."""
    mask = grad.abs().sum(dim=(0, 1)) > 0
    extents = []
    for axis in range(mask.dim()):
        other = tuple(d for d in range(mask.dim()) if d != axis)
        idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
        extents.append((int(idx.min()), int(idx.max())) if len(idx) else (None, None))
    return extents


def measure(gm: fx.GraphModule, names: list[str], input_shape: tuple[int, ...], units: dict[str, tuple],
            dims: dict[str, tuple[int, ...]]):
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
