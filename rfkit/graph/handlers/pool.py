"""Pooling: max/avg/LP pooling (ceil_mode only changes the output length, not the RF of unit 0),
timm's 'SAME' pools, and adaptive pooling (global when the output is 1, a regular pool when the input
divides evenly, approximate otherwise)."""

from __future__ import annotations

import math
from fractions import Fraction

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext, UnsupportedOp, as_tuple
from rfkit.graph.handlers.conv import resolve_padding
from rfkit.graph.handlers.reduce import reduce_state
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import AxisRF

_NDIM = {
    nn.MaxPool1d: 1,
    nn.MaxPool2d: 2,
    nn.MaxPool3d: 3,
    nn.AvgPool1d: 1,
    nn.AvgPool2d: 2,
    nn.AvgPool3d: 3,
    nn.LPPool1d: 1,
    nn.LPPool2d: 2,
    nn.AdaptiveAvgPool1d: 1,
    nn.AdaptiveAvgPool2d: 2,
    nn.AdaptiveAvgPool3d: 3,
    nn.AdaptiveMaxPool1d: 1,
    nn.AdaptiveMaxPool2d: 2,
    nn.AdaptiveMaxPool3d: 3,
}
_FN_NDIM = {
    F.max_pool1d: 1,
    F.max_pool2d: 2,
    F.max_pool3d: 3,
    F.avg_pool1d: 1,
    F.avg_pool2d: 2,
    F.avg_pool3d: 3,
    F.lp_pool1d: 1,
    F.lp_pool2d: 2,
    F.lp_pool3d: 3,
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    F.max_pool3d_with_indices: 3,
    F.adaptive_avg_pool1d: 1,
    F.adaptive_avg_pool2d: 2,
    F.adaptive_avg_pool3d: 3,
    F.adaptive_max_pool1d: 1,
    F.adaptive_max_pool2d: 2,
    F.adaptive_max_pool3d: 3,
    F.adaptive_max_pool1d_with_indices: 1,
    F.adaptive_max_pool2d_with_indices: 2,
    F.adaptive_max_pool3d_with_indices: 3,
}


def _ndim_of(ctx: OpContext) -> int:
    if ctx.module is not None:
        for cls in type(ctx.module).__mro__:
            if cls in _NDIM:
                return _NDIM[cls]
    if ctx.node.target in _FN_NDIM:
        return _FN_NDIM[ctx.node.target]
    kernel = ctx.arg(1, "kernel_size")  # ATen ops spell the window out per axis
    return len(kernel) if isinstance(kernel, (list, tuple)) and len(kernel) > 1 else ctx.main()[0].dim() - 2


def pool_state(ctx: OpContext, n: int, kernel, stride, padding, dilation=1):
    kernel = as_tuple(kernel, n)
    stride = as_tuple(kernel if stride is None or stride == [] or stride == () else stride, n)
    dilation = as_tuple(dilation, n)
    x, _ = ctx.main()
    pad = resolve_padding(padding, kernel, stride, dilation, x.shape[-n:])
    state = ctx.local_op(kernel, stride, pad, dilation)
    return (state, state) if isinstance(ctx.out, tuple) else state  # (values, indices)


@R.module(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool_module(ctx: OpContext):
    m = ctx.module
    return pool_state(ctx, _ndim_of(ctx), m.kernel_size, m.stride, m.padding, m.dilation)


@R.module(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool_module(ctx: OpContext):
    m = ctx.module
    return pool_state(ctx, _ndim_of(ctx), m.kernel_size, m.stride, m.padding)


@R.module(nn.LPPool1d, nn.LPPool2d)
def lp_pool_module(ctx: OpContext):
    m = ctx.module
    return pool_state(ctx, _ndim_of(ctx), m.kernel_size, m.stride, 0)


@R.function(
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.max_pool1d_with_indices,
    F.max_pool2d_with_indices,
    F.max_pool3d_with_indices,
)
def max_pool_function(ctx: OpContext):
    return pool_state(
        ctx,
        _ndim_of(ctx),
        ctx.arg(1, "kernel_size"),
        ctx.arg(2, "stride"),
        ctx.arg(3, "padding", 0),
        ctx.arg(4, "dilation", 1),
    )


@R.function(F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
def avg_pool_function(ctx: OpContext):
    return pool_state(ctx, _ndim_of(ctx), ctx.arg(1, "kernel_size"), ctx.arg(2, "stride"), ctx.arg(3, "padding", 0))


@R.function(F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)
def lp_pool_function(ctx: OpContext):
    return pool_state(ctx, _ndim_of(ctx), ctx.arg(2, "kernel_size"), ctx.arg(3, "stride"), 0)


def adaptive_axis(axis: AxisRF, size_in: int, size_out: int) -> AxisRF:
    """RF of adaptive pooling along one axis: output bin ``i`` spans input units
    ``floor(i * In / Out) .. ceil((i + 1) * In / Out) - 1`` (PyTorch's bins). When Out divides In this is a
    pool with kernel = stride = In/Out; otherwise the bins' widths and offsets repeat with a period, which
    the axis keeps exactly.
    """
    g = math.gcd(size_in, size_out)
    period, advance = size_out // g, size_in // g

    def src(i: int) -> tuple[int, int]:
        return (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out) - 1

    return axis.resample(src, Fraction(size_in, size_out), period, advance)


@R.module(
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
@R.function(
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.adaptive_max_pool1d_with_indices,
    F.adaptive_max_pool2d_with_indices,
    F.adaptive_max_pool3d_with_indices,
)
def adaptive_pool(ctx: OpContext):
    return adaptive_pool_n(ctx, _ndim_of(ctx))


def adaptive_pool_n(ctx: OpContext, n: int):
    """Adaptive pooling over the last ``n`` dims of the main input."""
    x, s = ctx.main()
    out = ctx.out[0] if isinstance(ctx.out, tuple) else ctx.out
    if s.axes is None:
        return (s, s) if isinstance(ctx.out, tuple) else s
    window_dims = range(x.dim() - n, x.dim())
    if s.dims is None and s.layout is not None and all(out.shape[d] == 1 for d in window_dims):
        # pooled to one value over flattened tokens (Swin's pooler on (B, C, H*W)): a mean over them
        state = reduce_state(s, x.dim(), window_dims, keepdim=True)
        return (state, state) if isinstance(ctx.out, tuple) else state
    if s.dims is None:
        raise UnsupportedOp("adaptive pooling over a tensor whose spatial layout was lost")
    if any(d not in s.dims for d in window_dims):
        raise UnsupportedOp(f"adaptive pooling over non-spatial dims (spatial: {s.dims})")
    sizes = [(x.shape[d], out.shape[d]) for d in window_dims]
    if any(o == 1 and i > 1 for i, o in sizes):
        state = s.made_global()
    else:
        axes = list(s.axes)
        for d, (i, o) in zip(window_dims, sizes):
            j = s.dims.index(d)
            axes[j] = adaptive_axis(axes[j], i, o)
        state = s.with_axes(axes)
    return (state, state) if isinstance(ctx.out, tuple) else state


def _register_timm() -> None:
    try:
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except ImportError:
        return

    @R.module(MaxPool2dSame, AvgPool2dSame, leaf=True)
    def pool2d_same(ctx: OpContext):
        m = ctx.module
        return pool_state(ctx, 2, m.kernel_size, m.stride, "tf_same", getattr(m, "dilation", 1))


_register_timm()
