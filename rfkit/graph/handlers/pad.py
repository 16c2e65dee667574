"""Explicit padding (``F.pad`` and the padding modules). Negative padding crops."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R


def pad_state(ctx: OpContext, pad):
    """``pad`` is in F.pad order: (left, right) of the last dim, then of the one before, ..."""
    x, s = ctx.main()
    pad = list(pad)
    left = {x.dim() - 1 - j: pad[2 * j] for j in range(len(pad) // 2)}
    return ctx.map_axes(s, lambda d, a: a.shifted(-left[d]) if d in left else a)


@R.module(
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
    nn.CircularPad1d,
    nn.CircularPad2d,
    nn.CircularPad3d,
)
def pad_module(ctx: OpContext):
    return pad_state(ctx, ctx.module.padding)


@R.function(F.pad)
def pad_function(ctx: OpContext):
    return pad_state(ctx, ctx.arg(1, "pad"))
