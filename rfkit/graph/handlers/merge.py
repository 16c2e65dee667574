"""Ops joining several feature maps: elementwise arithmetic (with broadcasting), cat and stack."""

from __future__ import annotations

import operator

import torch

from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, merge


def _aligned_inputs(ctx: OpContext, out_ndim: int) -> list[RFState]:
    """States of the tensor inputs with their spatial dims expressed in output dims (broadcasting)."""
    states = []
    for value, s in ctx.tensor_inputs():
        if s is None:
            continue
        offset = out_ndim - value.dim()
        states.append(s if s.dims is None else s.replace(dims=tuple(d + offset for d in s.dims)))
    return states


def _merged_dims(states: list[RFState]) -> tuple[int, ...] | None:
    with_layout = [s.dims for s in states if s.dims is not None and s.axes is not None]
    if not with_layout:
        with_layout = [s.dims for s in states if s.dims is not None]
    if not with_layout:
        return None
    if any(d != with_layout[0] for d in with_layout):
        raise UnsupportedOp(f"inputs hold their spatial axes in different dims: {with_layout}")
    return with_layout[0]


@R.function(operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
            operator.iadd, operator.isub, operator.imul, operator.itruediv,
            torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
            torch.true_divide, torch.maximum, torch.minimum, torch.pow, torch.addcmul, torch.addcdiv, torch.lerp,
            torch.where, torch.rsub)
@R.method("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "pow", "pow_", "maximum",
          "minimum", "addcmul", "addcmul_", "addcdiv", "addcdiv_", "lerp", "lerp_", "__add__", "__mul__",
          "__radd__", "__rmul__", "__sub__", "__rsub__", "__truediv__")
def elementwise(ctx: OpContext):
    """Elementwise op over broadcast inputs: union of the windows (see :func:`rfkit.graph.state.merge`)."""
    states = _aligned_inputs(ctx, ctx.out.dim())
    return merge(states, _merged_dims(states))


@R.function(torch.cat, torch.concat, torch.concatenate)
def cat(ctx: OpContext):
    dim = ctx.arg(1, "dim", 0)
    dim = dim % ctx.out.dim()
    states = _aligned_inputs(ctx, ctx.out.dim())
    dims = _merged_dims(states)
    if dims is None or dim in dims:
        raise UnsupportedOp(f"concatenation along dim {dim}, which holds a spatial axis")
    return merge(states, dims)


@R.function(torch.stack)
def stack(ctx: OpContext):
    dim = ctx.arg(1, "dim", 0) % ctx.out.dim()
    states = [s.remap_dims({d: d + (d >= dim) for d in s.dims}) if s.dims is not None else s
              for _, s in ctx.tensor_inputs() if s is not None]
    return merge(states, _merged_dims(states))
