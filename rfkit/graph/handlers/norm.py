"""Normalisations and softmax: pointwise when their statistics span channels only, global (keeping the
local path's RF) when the statistics span a spatial axis (GroupNorm, InstanceNorm, LayerNorm over
C×H×W)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState


def _over(s: RFState, ndim: int, dims: set[int]) -> RFState:
    """State after an op whose output at a position depends on all positions along ``dims``."""
    if s.dims is None:
        return s.made_global(keep_local=True) if (ndim - 1) in dims else s
    return s.made_global(keep_local=True) if dims & set(s.dims) else s


@R.module(nn.LayerNorm, nn.RMSNorm)
@R.function(F.layer_norm, F.rms_norm)
def layer_norm(ctx: OpContext):
    x, s = ctx.main()
    shape = ctx.module.normalized_shape if ctx.module is not None else ctx.arg(1, "normalized_shape")
    n = 1 if isinstance(shape, int) else len(shape)
    return _over(s, x.dim(), set(range(x.dim() - n, x.dim())))


@R.module(nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
@R.function(F.group_norm, F.instance_norm)
def spatial_norm(ctx: OpContext):
    """Statistics over every position of the sample (and a group or one channel)."""
    x, s = ctx.main()
    return _over(s, x.dim(), set(range(2, x.dim())))


@R.module(nn.Softmax, nn.Softmin, nn.LogSoftmax)
@R.function(F.softmax, F.softmin, F.log_softmax, torch.softmax, torch.log_softmax)
@R.method("softmax", "log_softmax")
def softmax(ctx: OpContext):
    x, s = ctx.main()
    dim = ctx.module.dim if ctx.module is not None else ctx.arg(1, "dim")
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if x.dim() in (0, 1, 3) else 1
    return _over(s, x.dim(), {dim % x.dim()})


@R.function(F.normalize)
def normalize(ctx: OpContext):
    x, s = ctx.main()
    return _over(s, x.dim(), {ctx.arg(2, "dim", 1) % x.dim()})


@R.module(nn.Softmax2d)
def softmax2d(ctx: OpContext):
    x, s = ctx.main()
    return _over(s, x.dim(), {x.dim() - 3})
