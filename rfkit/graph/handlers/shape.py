"""Ops that move dims around without mixing positions: permute, transpose, reshape/view/flatten,
(un)squeeze, indexing and slicing, chunk/split, roll. They move the pieces of the spatial axes between
tensor dims (:mod:`rfkit.graph.layout`), or re-index an axis (slicing, roll)."""

from __future__ import annotations

import operator

import torch
import torch.nn as nn

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, mix


@R.function(torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze)
@R.method("view", "reshape", "flatten", "squeeze", "unsqueeze", "unflatten", "view_as", "reshape_as")
@R.module(nn.Flatten, nn.Unflatten)
def reshape(ctx: OpContext):
    if ctx.node.op == "call_method" and ctx.state(0) is None:
        return None  # view_as / reshape_as of a constant
    x, s = ctx.main()
    if s.layout is None:
        return s
    try:
        return s.with_layout(lay.reshape(s.layout, tuple(x.shape), tuple(ctx.out.shape)))
    except lay.LayoutError:
        return s.with_layout(None)


def _perm_args(ctx: OpContext) -> list[int]:
    rest = list(ctx.args[1:])
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = list(rest[0])
    if not rest:
        rest = list(ctx.kwargs.get("dims", ()))
    return rest


def _permuted(s: RFState, perm) -> RFState:
    return s if s.layout is None else s.with_layout(lay.permute(s.layout, perm))


@R.function(torch.permute)
@R.method("permute")
def permute(ctx: OpContext):
    x, s = ctx.main()
    return _permuted(s, [p % x.dim() for p in _perm_args(ctx)])


@R.function(torch.transpose, torch.swapaxes, torch.swapdims)
@R.method("transpose", "swapaxes", "swapdims")
def transpose(ctx: OpContext):
    x, s = ctx.main()
    a, b = ctx.arg(1, "dim0") % x.dim(), ctx.arg(2, "dim1") % x.dim()
    perm = list(range(x.dim()))
    perm[a], perm[b] = b, a
    return _permuted(s, perm)


@R.method("t")
@R.function(torch.t)
def t(ctx: OpContext):
    x, s = ctx.main()
    return _permuted(s, list(range(x.dim()))[::-1])


@R.function(torch.movedim, torch.moveaxis)
@R.method("movedim", "moveaxis")
def movedim(ctx: OpContext):
    x, s = ctx.main()
    src, dst = ctx.arg(1, "source"), ctx.arg(2, "destination")
    src = [d % x.dim() for d in ([src] if isinstance(src, int) else src)]
    dst = [d % x.dim() for d in ([dst] if isinstance(dst, int) else dst)]
    perm = [None] * x.dim()
    for a, b in zip(src, dst):
        perm[b] = a
    rest = iter(d for d in range(x.dim()) if d not in src)
    return _permuted(s, [p if p is not None else next(rest) for p in perm])


@R.method("expand", "expand_as", "broadcast_to")
@R.function(torch.broadcast_to)
def expand(ctx: OpContext):
    x, s = ctx.main()
    if s.layout is None:
        return s
    lead = ctx.out.dim() - x.dim()
    return s.with_layout(tuple(lay.DimLayout.other(1) for _ in range(lead)) + s.layout)


@R.method("repeat")
def repeat(ctx: OpContext):
    x, s = ctx.main()
    state = expand(ctx)
    offset = ctx.out.dim() - x.dim()
    tiled = {d + offset for d in range(x.dim()) if ctx.out.shape[d + offset] != x.shape[d]}
    if tiled & state.spatial_dim_set():
        raise UnsupportedOp("repeat tiles a spatial axis")
    return state


def slice_dim(s: RFState, dim: int, size: int, start: int, stop: int, step: int) -> RFState:
    """State after keeping entries ``start:stop:step`` (already clipped) of tensor dim ``dim``."""
    if s.layout is None or (start, stop, step) == (0, size, 1):
        return s
    dl = s.layout[dim]
    if not dl.spatial and not dl.prefix:
        return s
    layout = list(s.layout)
    if not range(start, stop, step):  # an empty slice (e.g. the prefix tokens of a model that has none)
        layout[dim] = lay.DimLayout.other(0)
        return s.with_layout(tuple(layout))
    if dl.prefix:
        if stop <= dl.prefix:  # prefix tokens only: off the grid
            layout[dim] = lay.DimLayout.other(len(range(start, stop, step)))
            return s.made_global().with_layout(tuple(layout)) if s.is_global else s.with_layout(tuple(layout))
        if start == dl.prefix and stop == size and step == 1:  # the grid without its prefix tokens
            layout[dim] = lay.DimLayout(dl.factors)
            return s.with_layout(tuple(layout))
        if start < dl.prefix:
            raise UnsupportedOp("slice mixing prefix tokens and grid positions")
        start, stop = start - dl.prefix, stop - dl.prefix
        dl = lay.DimLayout(dl.factors)
    if len(dl.factors) != 1 or dl.factors[0].step != 1:
        raise UnsupportedOp(f"slicing dim {dim}, which holds several pieces of the grid")
    axis = dl.factors[0].axis
    layout[dim] = lay.DimLayout((lay.Factor(axis, len(range(start, stop, step))),))
    out = s.with_layout(tuple(layout))
    if s.axes is None:
        return out
    axes = list(s.axes)
    axes[axis] = axes[axis].shifted(start, step)
    return out.with_axes(axes)


@R.function(operator.getitem)
def getitem(ctx: OpContext):
    """Indexing a tensor: slices re-index an axis (start, step) or drop prefix tokens, ints drop a dim
    (a prefix token's index keeps only that token), None adds a dim."""
    x, s = ctx.main()
    index = ctx.arg(1, "index")
    return index_state(ctx, x, s, index if isinstance(index, tuple) else (index,))


def index_state(ctx: OpContext, x: torch.Tensor, s: RFState, index: tuple) -> RFState:
    """State of ``x[index]`` (basic indexing: slices, ints, None, Ellipsis)."""
    consumed = sum(1 for it in index if it is not None and it is not Ellipsis)
    spatial = s.spatial_dim_set()
    d = 0
    advanced = False
    kept: list[int | None] = []  # input dim (or None for a new dim) of each output dim
    for it in index:
        if it is None:
            kept.append(None)
        elif it is Ellipsis:
            for _ in range(x.dim() - consumed):
                kept.append(d)
                d += 1
        elif isinstance(it, slice):
            start, stop, step = it.indices(x.shape[d])
            s = slice_dim(s, d, x.shape[d], start, max(stop, start), step)
            kept.append(d)
            d += 1
        elif isinstance(it, int) and d not in spatial:
            d += 1
        elif isinstance(it, int) and s.layout is not None and s.layout[d].prefix > (it % x.shape[d]):
            s = slice_dim(s, d, x.shape[d], it % x.shape[d], it % x.shape[d] + 1, 1)
            d += 1
        elif not advanced and (
            isinstance(it, (list, tuple)) or (isinstance(it, torch.Tensor) and it.dim() == 1 and it.dtype != torch.bool)
        ):
            # a gather along one dim (DCT zigzag orders): an entry may come from anywhere along it, so it
            # sees the union over the dim (exact when that dim was mixed already; flagged approximate)
            advanced = True
            s = mix(s, {d}).replace(approximate=True)
            n = len(it) if not isinstance(it, torch.Tensor) else it.numel()
            if s.layout is not None:
                s = s.with_layout(s.layout[:d] + (lay.DimLayout.other(n),) + s.layout[d + 1 :])
            kept.append(d)
            d += 1
        else:
            raise UnsupportedOp(f"indexing spatial dim {d} with {type(it).__name__}")
    kept.extend(range(d, x.dim()))
    if s.layout is None:
        return s
    return s.with_layout(tuple(s.layout[k] if k is not None else lay.DimLayout.other(1) for k in kept))


def _pieces(ctx: OpContext, dim: int, keep_dim: bool = True):
    x, s = ctx.main()
    dim %= x.dim()
    out, start = [], 0
    for piece in ctx.out:
        n = piece.shape[dim] if keep_dim else 1
        state = slice_dim(s, dim, x.shape[dim], start, start + n, 1)
        if not keep_dim:
            if dim in s.spatial_dim_set():
                raise UnsupportedOp(f"unbinding spatial dim {dim}")
            state = state if state.layout is None else state.with_layout(lay.drop(state.layout, {dim}))
        out.append(state)
        start += n
    return tuple(out)


@R.function(torch.chunk, torch.split, torch.tensor_split)
@R.method("chunk", "split", "tensor_split")
def split(ctx: OpContext):
    return _pieces(ctx, ctx.arg(2, "dim", 0))


@R.function(torch.unbind)
@R.method("unbind")
def unbind(ctx: OpContext):
    return _pieces(ctx, ctx.arg(1, "dim", 0), keep_dim=False)


@R.function(torch.roll)
@R.method("roll")
def roll(ctx: OpContext):
    """A circular shift: unit v reads unit v - shift. Exact away from the borders; the units that wrap
    around see the other side of the map, so the state is flagged approximate."""
    x, s = ctx.main()
    shifts, dims = ctx.arg(1, "shifts"), ctx.arg(2, "dims", None)
    if dims is None:
        raise UnsupportedOp("roll over the flattened tensor")
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    spatial = s.dims or ()
    axes = list(s.axes) if s.axes is not None else None
    for shift, d in zip(shifts, dims):
        d %= x.dim()
        if d not in s.spatial_dim_set():
            continue
        if d not in spatial:
            raise UnsupportedOp(f"roll over dim {d}, which holds several pieces of the grid")
        if axes is not None:
            i = spatial.index(d)
            axes[i] = axes[i].shifted(-shift)
        s = s.replace(approximate=True)
    return s if axes is None else s.with_axes(axes)


@R.function(torch.repeat_interleave)
@R.method("repeat_interleave")
def repeat_interleave(ctx: OpContext):
    """Repeating entries of a channel (or head) dim leaves positions alone."""
    x, s = ctx.main()
    dim = ctx.arg(2, "dim", None)
    if dim is None or (dim % x.dim()) in s.spatial_dim_set():
        raise UnsupportedOp("repeat_interleave over a spatial (or flattened) dim")
    return s


@R.method("unfold")
def tensor_unfold(ctx: OpContext):
    """``x.unfold(dim, size, step)``: windows of ``size`` along ``dim``, entries in a new last dim. Each
    element is given its whole window's RF (halo attention then mixes the entries, which makes it exact);
    the node is flagged approximate because a single entry sees one position only."""
    x, s = ctx.main()
    d, k, st = ctx.arg(1, "dimension") % x.dim(), ctx.arg(2, "size"), ctx.arg(3, "step")
    layout = None if s.layout is None else s.layout + (lay.DimLayout.other(k),)
    if d not in s.spatial_dim_set():
        return s.with_layout(layout)
    dims = s.dims
    if dims is None or d not in dims:
        raise UnsupportedOp(f"unfolding dim {d}, which holds several pieces of the grid")
    state = s.with_layout(layout).replace(approximate=True)
    if s.axes is None:
        return state
    axes = list(s.axes)
    axes[dims.index(d)] = axes[dims.index(d)].local(k, st, 0)
    return state.with_axes(axes)
