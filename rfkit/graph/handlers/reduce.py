"""Reductions (mean, sum, amax, ...): reducing a spatial dim makes the RF global (or, over a window
dim, widens it to the window)."""

from __future__ import annotations

import torch

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, mix


def reduce_state(s: RFState, ndim: int, dims, keepdim: bool) -> RFState:
    dims = set(range(ndim)) if dims is None else {d % ndim for d in ([dims] if isinstance(dims, int) else dims)}
    out = mix(s, dims)
    if keepdim or out.layout is None:
        return out
    return out.with_layout(lay.drop(out.layout, dims))


_REDUCTIONS = ["mean", "sum", "amax", "amin", "std", "var", "logsumexp", "norm", "nansum", "nanmean", "prod"]


@R.function(*[getattr(torch, n) for n in _REDUCTIONS])
@R.method(*_REDUCTIONS)
def reduction(ctx: OpContext):
    x, s = ctx.main()
    name = ctx.node.target if isinstance(ctx.node.target, str) else ctx.node.target.__name__
    at = 2 if name.split(".")[0] == "norm" else 1  # norm(x, p, dim, keepdim)
    dims = ctx.arg(at, "dim")
    keepdim = ctx.arg(at + 1, "keepdim", False)
    return reduce_state(s, x.dim(), dims, bool(keepdim) if isinstance(keepdim, bool) else False)


@R.function(torch.linalg.vector_norm)
def vector_norm(ctx: OpContext):
    """``torch.linalg.vector_norm(x, ord, dim, keepdim)``: a reduction over ``dim`` (ConvNeXt-V2's global response
    norm over the spatial dims: global)."""
    x, s = ctx.main()
    keepdim = ctx.arg(3, "keepdim", False)
    return reduce_state(s, x.dim(), ctx.arg(2, "dim"), bool(keepdim) if isinstance(keepdim, bool) else False)


@R.function(torch.max, torch.min)
@R.method("max", "min")
def max_min(ctx: OpContext):
    """``max(x)`` reduces everything; ``max(x, dim)`` returns (values, indices); ``max(x, y)`` is elementwise."""
    x, s = ctx.main()
    second = ctx.arg(1, "dim")
    if isinstance(second, torch.Tensor):
        from rfkit.graph.handlers.merge import elementwise

        return elementwise(ctx)
    state = reduce_state(s, x.dim(), second, bool(ctx.arg(2, "keepdim", False)))
    return (state, state) if isinstance(ctx.out, tuple) else state
