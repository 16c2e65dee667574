"""Normalisations and softmax: pointwise when their statistics span channels only; when the statistics
span grid positions (GroupNorm, InstanceNorm, LayerNorm over C×H×W, softmax over tokens) each output
still follows its own position but also sees all the others: the union of the two."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, merge, mix


def over(s: RFState, dims: set[int]) -> RFState:
    """State after an op whose output at a position also depends on all positions along ``dims``."""
    return merge([s, mix(s, dims)], s.layout)


@R.module(nn.LayerNorm, nn.RMSNorm)
@R.function(F.layer_norm, F.rms_norm)
def layer_norm(ctx: OpContext):
    x, s = ctx.main()
    shape = ctx.module.normalized_shape if ctx.module is not None else ctx.arg(1, "normalized_shape")
    n = 1 if isinstance(shape, int) else len(shape)
    return over(s, set(range(x.dim() - n, x.dim())))


@R.module(nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
@R.function(F.group_norm, F.instance_norm)
def spatial_norm(ctx: OpContext):
    """Statistics over every position of the sample (and a group or one channel)."""
    x, s = ctx.main()
    return over(s, set(range(2, x.dim())))


@R.module(nn.Softmax, nn.Softmin, nn.LogSoftmax)
@R.function(F.softmax, F.softmin, F.log_softmax, torch.softmax, torch.log_softmax)
@R.method("softmax", "log_softmax")
def softmax(ctx: OpContext):
    x, s = ctx.main()
    dim = ctx.module.dim if ctx.module is not None else ctx.arg(1, "dim")
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if x.dim() in (0, 1, 3) else 1
    return over(s, {dim % x.dim()})


@R.function(F.normalize)
def normalize(ctx: OpContext):
    x, s = ctx.main()
    return over(s, {ctx.arg(2, "dim", 1) % x.dim()})


@R.module(nn.Softmax2d)
def softmax2d(ctx: OpContext):
    x, s = ctx.main()
    return over(s, {x.dim() - 3})
