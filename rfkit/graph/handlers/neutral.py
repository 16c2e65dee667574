"""Ops that leave the RF unchanged: activations, dropout, identity, channel-wise norms, casts."""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R


def neutral(ctx: OpContext):
    """Pass the state of the main input through (the op is pointwise over positions). A method called on
    a constant (``pos_embed.type_as(x)``) stays a constant, whatever its arguments."""
    if ctx.node.op == "call_method" and ctx.state(0) is None:
        return None
    x, s = ctx.main()
    if ctx.out_ndim is not None and ctx.out_ndim != x.dim():
        raise UnsupportedOp(f"pointwise op changed the rank from {x.dim()} to {ctx.out_ndim}")
    return s


def constant(ctx: OpContext):
    """Ops whose values do not depend on their input's values (``new_zeros``, ``zeros_like``...)."""
    return None


def neutral_first(ctx: OpContext):
    """The main input's state, for pointwise ops that also return side outputs (statistics, masks)."""
    return ctx.main()[1]


_ACTIVATION_MODULES = [
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    nn.Softplus,
    nn.Softsign,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Tanh,
    nn.Threshold,
]
_OTHER_NEUTRAL_MODULES = [
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,  # across channels, one position at a time
    nn.ChannelShuffle,
]
_NEUTRAL_FUNCTIONS = [
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    F.relu6,
    F.elu,
    F.elu_,
    F.selu,
    F.celu,
    F.leaky_relu,
    F.leaky_relu_,
    F.prelu,
    F.rrelu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.hardtanh_,
    F.hardshrink,
    F.softshrink,
    F.tanhshrink,
    F.softplus,
    F.softsign,
    F.threshold,
    F.logsigmoid,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    torch.exp,
    torch.log,
    torch.sqrt,
    torch.rsqrt,
    torch.abs,
    torch.neg,
    torch.clamp,
    torch.clip,
    torch.erf,
    torch.sign,
    torch.square,
    torch.reciprocal,
    torch.sin,
    torch.cos,
    torch.floor,
    torch.ceil,
    torch.round,
    torch.nan_to_num,
    torch.clamp_min,
    torch.clamp_max,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    F.batch_norm,
    F.local_response_norm,
    F.channel_shuffle,
    torch.channel_shuffle,
    torch.Tensor.contiguous,
    operator.neg,
    operator.pos,
    abs,
]
_NEUTRAL_METHODS = [
    "relu",
    "relu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "exp",
    "exp_",
    "log",
    "sqrt",
    "rsqrt",
    "abs",
    "neg",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_min_",
    "clamp_max",
    "clamp_max_",
    "clip",
    "clip_",
    "erf",
    "sign",
    "square",
    "reciprocal",
    "sin",
    "cos",
    "floor",
    "ceil",
    "round",
    "nan_to_num",
    "float",
    "half",
    "double",
    "bfloat16",
    "to",
    "type",
    "type_as",
    "contiguous",
    "detach",
    "clone",
    "requires_grad_",
    "cpu",
    "cuda",
    "__neg__",
    "neg_",
    "abs_",
]


@R.module(nn.GLU)
@R.function(F.glu)
def glu(ctx: OpContext):
    """GLU halves a dim and gates one half with the other: pointwise unless that dim is spatial."""
    x, s = ctx.main()
    dim = (ctx.module.dim if ctx.module is not None else ctx.arg(1, "dim", -1)) % x.dim()
    if dim in s.spatial_dim_set():
        raise UnsupportedOp(f"GLU over spatial dim {dim} pairs positions half a map apart")
    return s


R.register_all(
    constant,
    functions=[torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.rand_like, torch.randn_like],
    methods=["new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"],
)
R.register_all(
    neutral,
    modules=_ACTIVATION_MODULES + _OTHER_NEUTRAL_MODULES,
    functions=_NEUTRAL_FUNCTIONS,
    methods=_NEUTRAL_METHODS,
)


def _register_timm() -> None:
    """timm's fused norm+activation leaves are channel-wise (BatchNorm statistics, pointwise activation)."""
    try:
        from timm.layers import norm_act
    except ImportError:  # timm is a dependency, but the graph pass works without it
        return
    names = ["BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d"]
    R.module(*[getattr(norm_act, n) for n in names if hasattr(norm_act, n)])(neutral)
    try:
        from timm.layers.inplace_abn import InplaceAbn

        R.module(InplaceAbn)(neutral)
    except ImportError:
        pass


_register_timm()


def _register_torchvision() -> None:
    """Stochastic depth scales whole samples (identity in eval mode)."""
    try:
        from torchvision.ops import StochasticDepth, stochastic_depth
    except ImportError:
        return
    R.function(stochastic_depth)(neutral)
    R.module(StochasticDepth)(neutral)


_register_torchvision()
