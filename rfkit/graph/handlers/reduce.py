"""Reductions (mean, sum, amax, ...): reducing a spatial dim makes the RF global."""

from __future__ import annotations

import torch

from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState


def reduce_state(s: RFState, ndim: int, dims, keepdim: bool) -> RFState:
    if dims is None:
        dims = list(range(ndim))
    dims = {d % ndim for d in ([dims] if isinstance(dims, int) else dims)}
    if s.dims is None:  # layout lost: any reduction over the flattened dim mixes positions
        return s.made_global() if (ndim - 1) in dims or not dims else s
    out = s.made_global() if dims & set(s.dims) else s
    if keepdim:
        return out
    kept = [d for d in range(ndim) if d not in dims]
    return out.remap_dims({d: kept.index(d) for d in kept})


_REDUCTIONS = ["mean", "sum", "amax", "amin", "std", "var", "logsumexp", "norm", "nansum", "nanmean", "prod"]


@R.function(*[getattr(torch, n) for n in _REDUCTIONS])
@R.method(*_REDUCTIONS)
def reduction(ctx: OpContext):
    x, s = ctx.main()
    name = ctx.node.target if isinstance(ctx.node.target, str) else ctx.node.target.__name__
    dim_pos = 2 if name == "norm" else 1
    dims = ctx.arg(dim_pos, "dim")
    return reduce_state(s, x.dim(), dims, bool(ctx.kwargs.get("keepdim", False)))


@R.function(torch.max, torch.min)
@R.method("max", "min")
def max_min(ctx: OpContext):
    """``max(x)`` reduces everything; ``max(x, dim)`` returns (values, indices); ``max(x, y)`` is elementwise."""
    x, s = ctx.main()
    second = ctx.arg(1, "dim")
    if isinstance(second, torch.Tensor):
        from rfkit.graph.handlers.merge import elementwise
        return elementwise(ctx)
    keepdim = bool(ctx.arg(2, "keepdim", False))
    state = reduce_state(s, x.dim(), second, keepdim)
    return (state, state) if isinstance(ctx.out, tuple) else state
