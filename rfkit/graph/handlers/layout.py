"""Ops that move dims around without mixing positions: permute, transpose, reshape/view/flatten,
(un)squeeze, indexing and slicing, chunk/split. They move the spatial axes to other tensor dims, lose
the layout (when a spatial dim is merged with another), or re-index an axis (slicing)."""

from __future__ import annotations

import math
import operator

import torch
import torch.nn as nn

from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState


def reshape_map(in_shape, out_shape) -> dict[int, int]:
    """Input dims that a reshape keeps whole, mapped to their output dims.

    A dim survives when, in the smallest groups of consecutive dims whose sizes multiply to the same
    number on both sides, it is the only dim of size > 1 in its group and its group's output holds a
    single dim > 1 too.

    >>> reshape_map((2, 8, 5, 7), (2, 2, 4, 5, 7))
    {0: 0, 2: 3, 3: 4}
    >>> reshape_map((2, 8, 5, 7), (2, 8, 35))
    {0: 0, 1: 1}
    """
    mapping: dict[int, int] = {}
    i = j = 0
    n, m = len(in_shape), len(out_shape)
    while i < n and j < m:
        gi, gj = [i], [j]
        pi, pj = in_shape[i], out_shape[j]
        while pi != pj:
            if pi < pj and i + 1 < n:
                i += 1
                gi.append(i)
                pi *= in_shape[i]
            elif j + 1 < m:
                j += 1
                gj.append(j)
                pj *= out_shape[j]
            else:
                return mapping
        big_in = [d for d in gi if in_shape[d] != 1]
        big_out = [d for d in gj if out_shape[d] != 1]
        if len(big_in) == 1 and len(big_out) == 1:
            mapping[big_in[0]] = big_out[0]
        elif not big_in and not big_out and len(gi) == len(gj):
            mapping.update(zip(gi, gj))
        i += 1
        j += 1
    return mapping


@R.function(torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze)
@R.method("view", "reshape", "flatten", "squeeze", "unsqueeze", "unflatten", "view_as", "reshape_as")
@R.module(nn.Flatten, nn.Unflatten)
def reshape(ctx: OpContext):
    x, s = ctx.main()
    return s.remap_dims(reshape_map(tuple(x.shape), tuple(ctx.out.shape)))


def _perm_args(ctx: OpContext) -> list[int]:
    rest = list(ctx.args[1:])
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = list(rest[0])
    if not rest:
        rest = list(ctx.kwargs.get("dims", ()))
    return rest


@R.function(torch.permute)
@R.method("permute")
def permute(ctx: OpContext):
    x, s = ctx.main()
    perm = [p % x.dim() for p in _perm_args(ctx)]
    return s.remap_dims({p: k for k, p in enumerate(perm)})


@R.function(torch.transpose, torch.swapaxes, torch.swapdims)
@R.method("transpose", "swapaxes", "swapdims")
def transpose(ctx: OpContext):
    x, s = ctx.main()
    a, b = ctx.arg(1, "dim0") % x.dim(), ctx.arg(2, "dim1") % x.dim()
    mapping = {d: d for d in range(x.dim())}
    mapping[a], mapping[b] = b, a
    return s.remap_dims(mapping)


@R.function(torch.movedim, torch.moveaxis)
@R.method("movedim", "moveaxis")
def movedim(ctx: OpContext):
    x, s = ctx.main()
    src, dst = ctx.arg(1, "source"), ctx.arg(2, "destination")
    src = [d % x.dim() for d in ([src] if isinstance(src, int) else src)]
    dst = [d % x.dim() for d in ([dst] if isinstance(dst, int) else dst)]
    order = [d for d in range(x.dim()) if d not in src]
    perm = [None] * x.dim()
    for a, b in zip(src, dst):
        perm[b] = a
    it = iter(order)
    perm = [p if p is not None else next(it) for p in perm]
    return s.remap_dims({p: k for k, p in enumerate(perm)})


@R.method("expand", "expand_as", "broadcast_to")
@R.function(torch.broadcast_to)
def expand(ctx: OpContext):
    x, s = ctx.main()
    offset = ctx.out.dim() - x.dim()
    return s.remap_dims({d: d + offset for d in range(x.dim())})


@R.method("repeat")
def repeat(ctx: OpContext):
    x, s = ctx.main()
    offset = ctx.out.dim() - x.dim()
    tiled = {d + offset for d in range(x.dim()) if ctx.out.shape[d + offset] != x.shape[d]}
    state = s.remap_dims({d: d + offset for d in range(x.dim())})
    if state.dims and tiled & set(state.dims):
        raise UnsupportedOp("repeat tiles a spatial axis")
    return state


@R.function(operator.getitem)
def getitem(ctx: OpContext):
    """Indexing a tensor: slices re-index an axis (start, step), ints drop a dim, None adds one."""
    x, s = ctx.main()
    index = ctx.arg(1, "index")
    index = index if isinstance(index, tuple) else (index,)
    consumed = sum(1 for it in index if it is not None and it is not Ellipsis)
    mapping, shifts = {}, {}
    d_in = d_out = 0
    spatial = s.spatial_dim_set()
    for it in index:
        if it is None:
            d_out += 1
        elif it is Ellipsis:
            for _ in range(x.dim() - consumed):
                mapping[d_in] = d_out
                d_in, d_out = d_in + 1, d_out + 1
        elif isinstance(it, slice):
            start, _, step = it.indices(x.shape[d_in])
            if d_in in spatial and (start, step) != (0, 1):
                shifts[d_in] = (start, step)
            mapping[d_in] = d_out
            d_in, d_out = d_in + 1, d_out + 1
        elif isinstance(it, int) and d_in not in spatial:
            d_in += 1
        else:
            raise UnsupportedOp(f"indexing spatial dim {d_in} with {type(it).__name__}")
    while d_in < x.dim():
        mapping[d_in] = d_out
        d_in, d_out = d_in + 1, d_out + 1
    if shifts:
        s = ctx.map_axes(s, lambda d, a: a.shifted(*shifts[d]) if d in shifts else a)
    return s.remap_dims(mapping)


def _split_outputs(ctx: OpContext, dim: int, keep_dim: bool = True):
    x, s = ctx.main()
    dim %= x.dim()
    if dim in s.spatial_dim_set():
        raise UnsupportedOp(f"splitting spatial dim {dim}")
    if not keep_dim:
        s = s.remap_dims({d: d - (d > dim) for d in range(x.dim()) if d != dim})
    return tuple(s for _ in ctx.out)


@R.function(torch.chunk, torch.split, torch.tensor_split)
@R.method("chunk", "split", "tensor_split")
def split(ctx: OpContext):
    return _split_outputs(ctx, ctx.arg(2, "dim", 0))


@R.function(torch.unbind)
@R.method("unbind")
def unbind(ctx: OpContext):
    return _split_outputs(ctx, ctx.arg(1, "dim", 0), keep_dim=False)
