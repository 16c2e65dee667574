"""Ops that change the sampling grid: upsampling / interpolation, pixel (un)shuffle, transposed
convolutions. Their output units do not all see the same window, so each axis keeps the exact
repeating pattern (:class:`rfkit.graph.state.AxisRF` with ``period > 1``): ``size`` is the worst case and
the node reports ``periodic``."""

from __future__ import annotations

import math
from fractions import Fraction

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext, UnsupportedOp, as_tuple
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import AxisRF, EmptyWindow, PeriodTooLong


def _apply(ctx: OpContext, n: int, per_axis) -> object:
    """Apply ``per_axis(axis_rf, j, size_in, size_out)`` to the last ``n`` dims of the main input."""
    x, s = ctx.main()
    if s.axes is None:
        return s
    if s.dims is None:
        raise UnsupportedOp("resampling a tensor whose spatial layout was lost")
    axes = list(s.axes)
    for j, d in enumerate(range(x.dim() - n, x.dim())):
        if d not in s.dims:
            raise UnsupportedOp(f"resampling dim {d}, which is not spatial (spatial: {s.dims})")
        i = s.dims.index(d)
        try:
            axes[i] = per_axis(axes[i], j, x.shape[d], ctx.out.shape[d])
        except (EmptyWindow, PeriodTooLong) as e:
            raise UnsupportedOp(str(e)) from e
    return s.with_axes(axes)


# --- interpolation -----------------------------------------------------------------------------------------
def interpolation_taps(mode: str, size_in: int, size_out: int, scale: Fraction | None, align_corners: bool):
    """``src(v) -> (first, last)`` input index with a non-zero weight for output ``v``, with its repeat
    (period, advance), following PyTorch's kernels away from the borders.

    >>> src, period, advance = interpolation_taps("bilinear", 4, 8, None, False)
    >>> [src(v) for v in range(4)], period, advance
    ([(-1, 0), (0, 1), (0, 1), (1, 2)], 2, 1)
    """
    if align_corners and mode not in ("nearest", "nearest-exact", "area"):
        ratio = Fraction(size_in - 1, size_out - 1) if size_out > 1 else Fraction(0)
        offset = Fraction(0)
    else:
        ratio = (1 / scale) if scale else Fraction(size_in, size_out)
        offset = Fraction(1, 2) * ratio - Fraction(1, 2)  # source = ratio * (v + 1/2) - 1/2
    period, advance = ratio.denominator, ratio.numerator

    if mode == "nearest":
        return (lambda v: (math.floor(v * ratio),) * 2), period, advance
    if mode == "nearest-exact":
        return (lambda v: (math.floor((v + Fraction(1, 2)) * ratio),) * 2), period, advance
    taps = {"linear": (0, 1), "bilinear": (0, 1), "trilinear": (0, 1), "bicubic": (-1, 2)}
    if mode not in taps:
        raise UnsupportedOp(f"interpolation mode {mode!r}")
    first, last = taps[mode]

    def src(v: int) -> tuple[int, int]:
        x = v * ratio + offset
        i = math.floor(x)
        if x == i:  # on a sample: the other taps have weight 0
            return i, i
        return i + first, i + last

    return src, period, advance


def _interpolate(ctx: OpContext, n: int, mode: str, scale_factor, align_corners) -> object:
    scales = as_tuple(scale_factor, n) if scale_factor is not None else (None,) * n

    def per_axis(axis: AxisRF, j: int, size_in: int, size_out: int) -> AxisRF:
        scale = Fraction(scales[j]).limit_denominator(10_000) if scales[j] else None
        src, period, advance = interpolation_taps(mode, size_in, size_out, scale, bool(align_corners))
        return axis.resample(src, Fraction(advance, period), period, advance)

    return _apply(ctx, n, per_axis)


@R.module(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample_module(ctx: OpContext):
    m = ctx.module
    x, _ = ctx.main()
    align = m.align_corners if m.align_corners is not None else isinstance(m, nn.UpsamplingBilinear2d)
    scale = None if getattr(m, "recompute_scale_factor", None) else m.scale_factor
    return _interpolate(ctx, x.dim() - 2, m.mode, scale, align)


@R.function(F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear)
def interpolate_function(ctx: OpContext):
    x, _ = ctx.main()
    mode = ctx.arg(3, "mode", "nearest")
    if ctx.node.target is F.upsample_bilinear:
        mode, align = "bilinear", True
    else:
        align = ctx.arg(4, "align_corners", None) or False
    if ctx.node.target is F.upsample_nearest:
        mode = "nearest"
    recompute = ctx.arg(5, "recompute_scale_factor", None)
    scale = None if recompute else ctx.arg(2, "scale_factor", None)
    if mode == "area":  # adaptive average pooling in disguise
        from rfkit.graph.handlers.pool import adaptive_axis

        return _apply(ctx, x.dim() - 2, lambda a, j, i, o: adaptive_axis(a, i, o))
    return _interpolate(ctx, x.dim() - 2, mode, scale, align)


# --- pixel shuffle -----------------------------------------------------------------------------------------
@R.module(nn.PixelShuffle)
@R.function(F.pixel_shuffle)
def pixel_shuffle(ctx: OpContext):
    """Output pixel v along an axis comes from input unit v // r (the channel picks the phase)."""
    r = ctx.module.upscale_factor if ctx.module is not None else ctx.arg(1, "upscale_factor")
    return _apply(ctx, 2, lambda a, j, i, o: a.resample(lambda v: (v // r, v // r), Fraction(1, r), r, 1))


@R.module(nn.PixelUnshuffle)
@R.function(F.pixel_unshuffle)
def pixel_unshuffle(ctx: OpContext):
    """Output unit v gathers input units v*r .. v*r + r - 1 into channels: an r×r window, stride r."""
    r = ctx.module.downscale_factor if ctx.module is not None else ctx.arg(1, "downscale_factor")
    return _apply(ctx, 2, lambda a, j, i, o: a.local(r, r, 0))


# --- transposed convolution --------------------------------------------------------------------------------
def transposed_taps(kernel: int, stride: int, pad: int, dilation: int):
    """``src(v)``: first and last input unit that output ``v`` of a transposed conv reads.

    Input ``j`` writes to outputs ``j * stride - pad + t * dilation`` for ``t < kernel``.

    >>> src = transposed_taps(4, 2, 1, 1)
    >>> [src(v) for v in range(4)]
    [(-1, 0), (0, 1), (0, 1), (1, 2)]
    """

    def src(v: int) -> tuple[int, int]:
        js = [(v + pad - t * dilation) // stride for t in range(kernel) if (v + pad - t * dilation) % stride == 0]
        return (min(js), max(js)) if js else (1, 0)

    return src


def transposed_axis(axis: AxisRF, kernel: int, stride: int, pad: int, dilation: int) -> AxisRF:
    """The axis after a transposed convolution (or a fold) with these parameters."""
    return axis.resample(transposed_taps(kernel, stride, pad, dilation), Fraction(1, stride), stride, 1)


def _conv_transpose(ctx: OpContext, kernel, stride, padding, dilation):
    n = len(kernel)
    stride, padding, dilation = as_tuple(stride, n), as_tuple(padding, n), as_tuple(dilation, n)
    return _apply(
        ctx, n, lambda axis, j, size_in, size_out: transposed_axis(axis, kernel[j], stride[j], padding[j], dilation[j])
    )


@R.module(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose_module(ctx: OpContext):
    m = ctx.module
    return _conv_transpose(ctx, m.kernel_size, m.stride, m.padding, m.dilation)


@R.function(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
def conv_transpose_function(ctx: OpContext):
    kernel = tuple(ctx.arg(1, "weight").shape[2:])
    return _conv_transpose(ctx, kernel, ctx.arg(3, "stride", 1), ctx.arg(4, "padding", 0), ctx.arg(7, "dilation", 1))
