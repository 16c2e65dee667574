"""Linear layers act on the last dim: pointwise over positions when it holds channels; when it holds
grid positions (token-mixing MLPs, a flattened map) every output sees all of them."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import mix


@R.module(nn.Linear, nn.LazyLinear)
@R.function(F.linear)
def linear(ctx: OpContext):
    x, s = ctx.main()
    last = x.dim() - 1
    out = mix(s, {last})
    if out.layout is None:
        return out
    return out.with_layout(out.layout[:last] + (lay.DimLayout.other(ctx.out.shape[-1]),))
