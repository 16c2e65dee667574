"""Convolutions: nn.ConvNd, F.convNd and timm's input-size-dependent ('SAME') convolutions."""

from __future__ import annotations

import math

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext, UnsupportedOp, as_tuple
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, compact, mix


def same_pad_left(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Left padding of TensorFlow/timm 'SAME' padding, which depends on the input size.

    >>> same_pad_left(224, 3, 2, 1), same_pad_left(225, 3, 2, 1)
    (0, 1)
    """
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2


def resolve_padding(padding, kernel, stride, dilation, spatial_sizes) -> tuple:
    """Left padding per axis for a torch padding argument: ints, tuples, ``'same'`` or ``'valid'``."""
    n = len(kernel)
    if padding == "valid":
        return (0,) * n
    if padding == "same":  # torch pads the extra pixel on the right
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    if padding == "tf_same":
        return tuple(same_pad_left(i, k, s, d) for i, k, s, d in zip(spatial_sizes, kernel, stride, dilation))
    return as_tuple(padding, n)


def conv_state(ctx: OpContext, kernel, stride, padding, dilation):
    x, s = ctx.main()
    n = len(kernel)
    stride, dilation = as_tuple(stride, n), as_tuple(dilation, n)
    pad = resolve_padding(padding, kernel, stride, dilation, x.shape[-n:])
    return ctx.local_op(kernel, stride, pad, dilation, state=mix_channels(s, x.dim() - n - 1))


def mix_channels(s: RFState, channel_dim: int) -> RFState:
    """A convolution mixes its input channels: pieces of the grid that a space-to-depth moved into the
    channel dim (TResNet, TNT) are mixed, and what is left of the grid is re-indexed at its stride."""
    if s.layout is None or channel_dim < 0 or not s.layout[channel_dim].spatial:
        return s
    mixed = mix(s, {channel_dim})
    layout = list(mixed.layout)
    layout[channel_dim] = lay.DimLayout.other(layout[channel_dim].size)
    return compact(mixed.with_layout(tuple(layout)))


@R.module(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv_module(ctx: OpContext):
    m = ctx.module
    return conv_state(ctx, m.kernel_size, m.stride, m.padding, m.dilation)


@R.function(F.conv1d, F.conv2d, F.conv3d)
def conv_function(ctx: OpContext):
    kernel = tuple(ctx.arg(1, "weight").shape[2:])
    return conv_state(ctx, kernel, ctx.arg(3, "stride", 1), ctx.arg(4, "padding", 0), ctx.arg(5, "dilation", 1))


def _register_timm() -> None:
    try:
        from timm.layers.cond_conv2d import CondConv2d
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.std_conv import ScaledStdConv2dSame, StdConv2dSame
    except ImportError:
        return

    @R.module(Conv2dSame, leaf=True)
    def conv2d_same_module(ctx: OpContext):
        m = ctx.module
        return conv_state(ctx, m.kernel_size, m.stride, "tf_same", m.dilation)

    @R.module(StdConv2dSame, ScaledStdConv2dSame, leaf=True)
    def std_conv_same(ctx: OpContext):
        m = ctx.module
        return conv_state(ctx, m.kernel_size, m.stride, "tf_same" if m.same_pad else m.padding, m.dilation)

    @R.module(CondConv2d, leaf=True)
    def cond_conv(ctx: OpContext):
        m = ctx.module
        padding = "tf_same" if m.dynamic_padding else m.padding
        return conv_state(ctx, m.kernel_size, m.stride, padding, m.dilation)


_register_timm()


def unfold_state(ctx: OpContext, kernel, dilation, padding, stride):
    """``F.unfold`` (im2col): (B, C, H, W) → (B, C·kh·kw, L); each column is a window, L the grid of
    window positions, flattened row-major."""
    x, s = ctx.main()
    n = x.dim() - 2
    kernel, dilation = as_tuple(kernel, n), as_tuple(dilation, n)
    padding, stride = as_tuple(padding, n), as_tuple(stride, n)
    out = ctx.local_op(kernel, stride, padding, dilation)
    if out.layout is None or s.dims is None:
        return out
    sizes = [
        (x.shape[d] + 2 * p - dl * (k - 1) - 1) // st + 1
        for d, k, dl, p, st in zip(s.dims, kernel, dilation, padding, stride)
    ]
    grid = tuple(lay.Factor(a, size) for a, size in enumerate(sizes))
    return out.with_layout((out.layout[0], lay.DimLayout.other(ctx.out.shape[1]), lay.DimLayout(grid)))


@R.module(nn.Unfold)
def unfold_module(ctx: OpContext):
    m = ctx.module
    return unfold_state(ctx, m.kernel_size, m.dilation, m.padding, m.stride)


@R.function(F.unfold)
def unfold_function(ctx: OpContext):
    return unfold_state(
        ctx, ctx.arg(1, "kernel_size"), ctx.arg(2, "dilation", 1), ctx.arg(3, "padding", 0), ctx.arg(4, "stride", 1)
    )


def fold_state(ctx: OpContext, output_size, kernel, dilation, padding, stride):
    """``F.fold`` (col2im): (B, C·kh·kw, L) → (B, C, H, W), summing overlapping windows; output pixel v
    reads the windows ``j`` with ``v = j*stride - padding + t*dilation`` — a transposed convolution over
    the grid of window positions L (VOLO's outlook attention). It reads one entry of each window only,
    so where the entries were not mixed first (VOLO mixes them) this is an upper bound: the node is
    flagged approximate."""
    from rfkit.graph.handlers.resample import transposed_axis

    x, s = ctx.main()
    n = len(ctx.out.shape) - 2
    kernel, dilation = as_tuple(kernel, n), as_tuple(dilation, n)
    padding, stride = as_tuple(padding, n), as_tuple(stride, n)
    if s.layout is None or s.layout[-1].prefix:
        raise UnsupportedOp("fold of columns whose grid of windows was lost")
    grid = [f for f in s.layout[-1].factors if f.size > 1]
    if [f.axis for f in grid] != list(range(n)) or any(f.step != 1 for f in grid):
        raise UnsupportedOp("fold of columns that are not a plain grid of window positions")
    state = mix_channels(s, 1).replace(approximate=True)
    if state.axes is not None:
        state = state.with_axes(
            transposed_axis(state.axes[a], kernel[a], stride[a], padding[a], dilation[a]) for a in range(n)
        )
    return state.with_layout(lay.plain(tuple(ctx.out.shape), tuple(range(2, 2 + n))))


@R.module(nn.Fold)
def fold_module(ctx: OpContext):
    m = ctx.module
    return fold_state(ctx, m.output_size, m.kernel_size, m.dilation, m.padding, m.stride)


@R.function(F.fold)
def fold_function(ctx: OpContext):
    return fold_state(
        ctx,
        ctx.arg(1, "output_size"),
        ctx.arg(2, "kernel_size"),
        ctx.arg(3, "dilation", 1),
        ctx.arg(4, "padding", 0),
        ctx.arg(5, "stride", 1),
    )
