"""Attention and other products over positions: ``scaled_dot_product_attention``, ``matmul``/``@``/
``bmm``, ``einsum``, ``nn.MultiheadAttention``, and timm's window/grid reverse functions.

An output position sees its own query plus every key and value it attends to: the union of the query's
state and the keys'/values' states mixed over the attended dim (:func:`rfkit.graph.state.mix`). Attention
over all tokens is global (the local path, the token's own patch, stays in ``local_size``); attention
inside Swin windows or MaxViT grids widens each window exactly.
"""

from __future__ import annotations

import operator
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.handlers.merge import merged_layout
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.graph.state import RFState, merge, mix


def _padded(s: RFState | None, ndim: int, out_ndim: int) -> RFState | None:
    if s is None or s.layout is None or ndim >= out_ndim:
        return s
    return s.with_layout(tuple(lay.DimLayout.other(1) for _ in range(out_ndim - ndim)) + s.layout)


def _union(states: list[RFState | None], layout) -> RFState:
    states = [s for s in states if s is not None]
    return merge(states, layout)


@R.function(F.scaled_dot_product_attention)
def sdpa(ctx: OpContext):
    """Queries (…, L, E), keys (…, S, E), values (…, S, Ev): output (…, L, Ev) mixes the key/value dim -2."""
    return sdpa_state(ctx, ctx.out)


def sdpa_state(ctx: OpContext, out: torch.Tensor) -> RFState:
    q, k, v = (ctx.arg(i, n) for i, n in enumerate(("query", "key", "value")))
    sq, sk, sv = (ctx.state(i, n) for i, n in enumerate(("query", "key", "value")))
    nd = out.dim()
    mixed = [mix(_padded(s, t.dim(), nd), {nd - 2}) if s is not None else None for s, t in ((sk, k), (sv, v))]
    sq = _padded(sq, q.dim(), nd)
    layout = sq.layout if sq is not None else None
    if layout is not None:
        layout = layout[:-1] + (lay.DimLayout.other(out.shape[-1]),)
    return _union([sq, *mixed], layout)


def matmul_state(a: torch.Tensor, b: torch.Tensor, sa: RFState | None, sb: RFState | None, out: torch.Tensor):
    """``a @ b`` for (…, n, k) @ (…, k, m): the contracted dims are mixed; the output keeps a's rows and
    b's columns, and where both would hold the grid (attention logits), b's columns are mixed too."""
    if a.dim() < 2 or b.dim() < 2:
        raise UnsupportedOp("matmul with a vector operand")
    nd = out.dim()
    sa, sb = _padded(sa, a.dim(), nd), _padded(sb, b.dim(), nd)

    def holds_grid(s: RFState | None, d: int) -> bool:
        return s is not None and s.layout is not None and (s.layout[d].spatial or bool(s.layout[d].prefix))

    b_cols_mixed = holds_grid(sa, nd - 2)
    parts = []
    if sa is not None:
        parts.append(mix(sa, {nd - 1}))
    if sb is not None:
        parts.append(mix(sb, {nd - 2, nd - 1} if b_cols_mixed else {nd - 2}))
    layouts = [p.layout for p in parts if p.layout is not None]
    if not layouts:
        return _union(parts, None)
    batch = merged_layout([RFState(None, lay_[: nd - 2]) for lay_ in layouts]) or ()
    row = sa.layout[nd - 2] if sa is not None and sa.layout is not None else lay.DimLayout.other(out.shape[-2])
    col = (
        sb.layout[nd - 1]
        if (sb is not None and sb.layout is not None and not b_cols_mixed)
        else lay.DimLayout.other(out.shape[-1])
    )
    return _union(parts, tuple(batch) + (row, col))


@R.function(operator.matmul, torch.matmul, torch.bmm)
@R.method("matmul", "bmm", "__matmul__")
def matmul(ctx: OpContext):
    return matmul_state(ctx.args[0], ctx.args[1], ctx.arg_states[0], ctx.arg_states[1], ctx.out)


@R.function(torch.baddbmm)
@R.method("baddbmm")
def baddbmm(ctx: OpContext):
    """``beta * input + alpha * (b1 @ b2)``."""
    prod = matmul_state(ctx.args[1], ctx.args[2], ctx.arg_states[1], ctx.arg_states[2], ctx.out)
    base = ctx.arg_states[0]
    return prod if base is None else merge([prod, base], prod.layout)


_EINSUM_TERM = re.compile(r"\s")


@R.function(torch.einsum, torch.functional.einsum)
def einsum(ctx: OpContext):
    """Each operand is mixed over its letters that leave the output (or whose output dim another operand
    already places on the grid); the output dims take the layout of the operand they come from."""
    eq = _EINSUM_TERM.sub("", ctx.args[0])
    states = ctx.arg_states[1:] if not isinstance(ctx.args[1], (list, tuple)) else ctx.arg_states[1]
    if "->" not in eq or "." in eq:
        raise UnsupportedOp("einsum without an explicit output or with ellipses")
    ins, out = eq.split("->")
    ins = ins.split(",")
    placed: dict[str, lay.DimLayout] = {}
    placed_axes: set[int] = set()
    parts = []
    for letters, s in zip(ins, states):
        if s is None:
            continue
        mixed, own_axes = set(), set()
        for d, c in enumerate(letters):
            holds_grid = s.layout is not None and (s.layout[d].spatial or s.layout[d].prefix)
            axes = {f.axis for f in s.layout[d].factors if f.axis is not None} if holds_grid else set()
            if c not in out:
                mixed.add(d)  # contracted
            elif holds_grid and c not in placed and axes & placed_axes:
                mixed.add(d)  # a second copy of the grid (keys next to queries): the output cannot hold both
            elif holds_grid and c not in placed:
                placed[c] = s.layout[d]
                own_axes |= axes  # other pieces of the same axes may follow in this operand (MaxViT's G, I)
        placed_axes |= own_axes
        parts.append(mix(s, mixed))
    layout = tuple(placed.get(c, lay.DimLayout.other(n)) for c, n in zip(out, ctx.out.shape))
    return _union(parts, layout if any(c in placed for c in out) else None)


@R.module(nn.MultiheadAttention)
def multihead_attention(ctx: OpContext):
    """``(attn_output, attn_weights)``; tokens on dim 1 with ``batch_first``, else dim 0."""
    m = ctx.module
    q, k, v = (ctx.arg(i, n) for i, n in enumerate(("query", "key", "value")))
    sq, sk, sv = (ctx.state(i, n) for i, n in enumerate(("query", "key", "value")))
    tok = 1 if m.batch_first and q.dim() == 3 else 0
    mixed = [mix(s, {tok}) if s is not None else None for s in (sk, sv)]
    layout = None
    if sq is not None and sq.layout is not None:
        layout = sq.layout[:-1] + (lay.DimLayout.other(ctx.out[0].shape[-1]),)
    state = _union([sq, *mixed], layout)
    weights = state.made_global() if state.is_global else state
    return (state, weights.with_layout(None))


# --- timm's window/grid reverse functions (kept whole by the tracer) -------------------------------------
def grid_restore(ctx: OpContext):
    """A function that puts windows back on the grid: the output holds each axis as one whole dim, the
    axes in order, found by their lengths (NHWC, or NCHW for the ``*_nchw`` variants)."""
    x, s = ctx.main()
    if s.layout is None:
        raise UnsupportedOp("windows whose layout was lost")
    n = s.naxes
    lengths = [1] * n
    for dl in s.layout:
        for f in dl.factors:
            if f.axis is not None:
                lengths[f.axis] *= f.size
    shape = list(ctx.out.shape)
    dims, start = [], 1
    for length in lengths:
        d = next((d for d in range(start, len(shape)) if shape[d] == length), None)
        if d is None:
            raise UnsupportedOp(f"cannot find an axis of length {length} in the output {tuple(shape)}")
        dims.append(d)
        start = d + 1
    return s.with_layout(lay.plain(shape, dims))


def _register_timm_reverse() -> None:
    try:
        from timm.layers import get_notrace_functions
    except ImportError:
        return
    names = {"window_reverse", "grid_reverse", "window_reverse_nchw", "grid_reverse_nchw", "deblockify"}
    R.function(*[f for f in get_notrace_functions() if getattr(f, "__name__", "") in names])(grid_restore)


_register_timm_reverse()


@R.module(nn.LSTM, nn.GRU, nn.RNN)
def recurrent(ctx: OpContext):
    """An RNN over a sequence dim: a bidirectional one sees the whole sequence at every step; a forward-only
    one sees the steps up to its own, bounded here by the whole sequence (flagged approximate)."""
    m = ctx.module
    x, s = ctx.main()
    seq = 1 if m.batch_first and x.dim() == 3 else 0
    state = mix(s, {seq})
    if not m.bidirectional:
        state = state.replace(approximate=True)
    if state.layout is not None:
        state = state.with_layout(state.layout[:-1] + (lay.DimLayout.other(ctx.out[0].shape[-1]),))
    hidden = state.made_global() if state.is_global else state
    return (
        state,
        tuple(hidden.with_layout(None) for _ in ctx.out[1])
        if isinstance(ctx.out[1], tuple)
        else hidden.with_layout(None),
    )
