"""Ops joining several feature maps: elementwise arithmetic (with broadcasting), cat and stack."""

from __future__ import annotations

import operator

import torch

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, merge


def _broadcast(ctx: OpContext, out_ndim: int) -> list[tuple[torch.Tensor, RFState]]:
    """Tensor inputs carrying a state, their layouts padded with leading dims to the output's rank."""
    out = []
    for value, s in ctx.tensor_inputs():
        if s is None:
            continue
        if s.layout is not None and value.dim() < out_ndim:
            s = s.with_layout(tuple(lay.DimLayout.other(1) for _ in range(out_ndim - value.dim())) + s.layout)
        out.append((value, s))
    return out


def merged_layout(states: list[RFState]) -> lay.Layout | None:
    """The layout of a merge: dims holding the grid must agree between inputs (broadcast dims aside)."""
    layouts = [s.layout for s in sorted(states, key=lambda s: s.axes is None) if s.layout is not None]
    if not layouts:
        return None

    def grid(dl: lay.DimLayout) -> bool:  # a broadcast dim of size 1 holds nothing to align
        return (dl.spatial or bool(dl.prefix)) and dl.size > 1

    result = list(layouts[0])
    for other in layouts[1:]:
        for d, (a, b) in enumerate(zip(result, other)):
            if grid(b) and not grid(a):
                result[d] = b
            elif grid(a) and grid(b) and a != b:
                raise UnsupportedOp(f"inputs hold the grid differently in dim {d}")
    return tuple(result)


@R.function(
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.floordiv,
    operator.pow,
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    torch.add,
    torch.sub,
    torch.subtract,
    torch.mul,
    torch.multiply,
    torch.div,
    torch.divide,
    torch.true_divide,
    torch.maximum,
    torch.minimum,
    torch.pow,
    torch.addcmul,
    torch.addcdiv,
    torch.lerp,
    torch.where,
    torch.rsub,
    torch.remainder,
    torch.eq,
    torch.ne,
    torch.gt,
    torch.lt,
    torch.ge,
    torch.le,
    torch.logical_and,
    torch.logical_or,
    torch.logical_xor,
)
@R.method(
    "add",
    "add_",
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
    "true_divide",
    "pow",
    "pow_",
    "maximum",
    "minimum",
    "addcmul",
    "addcmul_",
    "addcdiv",
    "addcdiv_",
    "lerp",
    "lerp_",
    "__add__",
    "__mul__",
    "__radd__",
    "__rmul__",
    "__sub__",
    "__rsub__",
    "__truediv__",
)
def elementwise(ctx: OpContext):
    """Elementwise op over broadcast inputs: union of the windows (see :func:`rfkit.graph.state.merge`)."""
    states = [s for _, s in _broadcast(ctx, ctx.out.dim())]
    return merge(states, merged_layout(states))


@R.function(torch.cat, torch.concat, torch.concatenate)
def cat(ctx: OpContext):
    """Concatenation along channels is a merge; along a token dim, constant tokens put in front of the
    grid (class, register, distillation tokens) become its prefix."""
    dim = ctx.arg(1, "dim", 0) % ctx.out.dim()
    pairs = [(v, s) for v, s in ctx.tensor_inputs()]
    states = [s for _, s in pairs if s is not None]
    layout = merged_layout(states)
    if layout is None or not (layout[dim].spatial or layout[dim].prefix):
        return merge(states, layout)
    grid = [
        i
        for i, (_, s) in enumerate(pairs)
        if s is not None and s.layout is not None and (s.layout[dim].spatial or s.layout[dim].prefix)
    ]
    if len(grid) != 1 or grid[0] != len(pairs) - 1:
        raise UnsupportedOp(f"concatenation along dim {dim}, which holds a spatial axis")
    tokens = sum(v.shape[dim] for v, _ in pairs[:-1])
    others = [s for _, s in pairs[:-1] if s is not None]
    base = pairs[-1][1]
    dl = base.layout[dim]
    new = list(base.layout)
    new[dim] = lay.DimLayout(dl.factors, dl.prefix + tokens)
    return merge([base] + others, tuple(new)) if others else base.with_layout(tuple(new))


@R.function(torch.stack)
def stack(ctx: OpContext):
    dim = ctx.arg(1, "dim", 0) % ctx.out.dim()
    states = [
        s if s.layout is None else s.with_layout(lay.insert(s.layout, dim))
        for _, s in ctx.tensor_inputs()
        if s is not None
    ]
    return merge(states, merged_layout(states))
