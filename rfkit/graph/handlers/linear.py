"""Linear layers act on the last dim: pointwise over positions when it holds channels, global when it
holds a spatial axis or a flattened map."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R


@R.module(nn.Linear, nn.LazyLinear)
@R.function(F.linear)
def linear(ctx: OpContext):
    x, s = ctx.main()
    if s.dims is None or (x.dim() - 1) in s.dims:
        return s.made_global().replace(dims=None if s.dims is None else s.dims)
    return s
