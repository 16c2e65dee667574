"""RF rules for ATen ops, the vocabulary of graphs recorded by ``make_fx``.

rfkit traces with torch.fx at the level of Python calls. A module that torch.fx cannot trace (shape-
dependent control flow: MobileViT blocks, TinyViT and EfficientViT attention) is recorded once more,
when the propagation reaches it, with ``make_fx`` on its concrete meta inputs; the ops of that recording
are ATen ops, and most map onto the rules of the Python-level functions with the same arguments.
"""

from __future__ import annotations

import torch

from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.handlers import attention, conv, linear, merge, neutral, norm, pad, pool, reduce, resample, shape
from rfkit.graph.registry import DEFAULT_REGISTRY as R

aten = torch.ops.aten


def _packets(*names: str):
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


def register_packets(handler, *names: str) -> None:
    """Register ``handler`` for every overload of the named ATen ops."""
    for packet in _packets(*names):
        R.functions[packet] = handler


register_packets(
    neutral.neutral,
    "relu",
    "relu_",
    "gelu",
    "gelu_",
    "silu",
    "silu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "hardtanh",
    "hardtanh_",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "mish",
    "mish_",
    "softplus",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_max",
    "clone",
    "_to_copy",
    "detach",
    "alias",
    "lift_fresh_copy",
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "erf",
    "reciprocal",
    "sign",
    "contiguous",
    "dropout",
    "prelu",
    "_prelu_kernel",
    "channel_shuffle",
    "relu6",
    "logit",
    "square",
)
register_packets(
    merge.elementwise,
    "add",
    "add_",
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
    "where",
    "maximum",
    "minimum",
    "pow",
    "rsub",
    "addcmul",
    "addcdiv",
    "lerp",
    "masked_fill",
    "masked_fill_",
    "copy",
)
register_packets(merge.cat, "cat", "concat")
register_packets(
    neutral.constant,
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "scalar_tensor",
    "arange",
)
register_packets(merge.stack, "stack")
# recordings are functionalised (in-place ops on views become out-of-place): views come as *_copy ops
register_packets(neutral.neutral, "alias_copy", "detach_copy", "lift_fresh_copy")
register_packets(
    shape.reshape,
    "view",
    "_unsafe_view",
    "reshape",
    "squeeze",
    "unsqueeze",
    "flatten",
    "unflatten",
    "view_copy",
    "_unsafe_view_copy",
    "squeeze_copy",
    "unsqueeze_copy",
)
register_packets(shape.permute, "permute", "permute_copy")
register_packets(shape.transpose, "transpose", "transpose_copy")
register_packets(shape.t, "t", "t_copy")
register_packets(shape.expand, "expand", "expand_copy")
register_packets(shape.roll, "roll")
register_packets(
    shape.split, "split", "split_with_sizes", "chunk", "tensor_split", "split_copy", "split_with_sizes_copy"
)
register_packets(shape.unbind, "unbind", "unbind_copy")
register_packets(attention.matmul, "mm", "bmm", "matmul")
register_packets(attention.baddbmm, "addmm", "baddbmm")
register_packets(linear.linear, "linear")
register_packets(norm.softmax, "_softmax", "_log_softmax", "softmax", "_safe_softmax")
register_packets(reduce.reduction, "mean", "sum", "amax", "amin", "var", "std", "logsumexp", "prod")
register_packets(reduce.vector_norm, "linalg_vector_norm")
register_packets(reduce.max_min, "max", "min")  # max.dim: (values, indices); max.other: elementwise


def _vector_norm(ctx: OpContext):
    """aten.linalg_vector_norm(x, ord, dim, keepdim)."""
    x, s = ctx.main()
    return reduce.reduce_state(s, x.dim(), ctx.arg(2, "dim"), bool(ctx.arg(3, "keepdim", False)))


register_packets(_vector_norm, "linalg_vector_norm", "norm")
register_packets(
    pad.pad_function,
    "constant_pad_nd",
    "reflection_pad1d",
    "reflection_pad2d",
    "reflection_pad3d",
    "replication_pad1d",
    "replication_pad2d",
    "replication_pad3d",
    "pad",
)
register_packets(
    pool.max_pool_function,
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
)
register_packets(pool.avg_pool_function, "avg_pool1d", "avg_pool2d", "avg_pool3d")
register_packets(resample.pixel_shuffle, "pixel_shuffle")
register_packets(conv.unfold_function, "im2col")
register_packets(conv.fold_function, "col2im")
register_packets(shape.repeat_interleave, "repeat_interleave")
register_packets(resample.pixel_unshuffle, "pixel_unshuffle")


def _tuple_out(ctx: OpContext, state):
    """Ops returning (output, statistics...): every part carries the output's state."""
    return tuple(state for _ in ctx.out) if isinstance(ctx.out, (tuple, list)) else state


def _native_batch_norm(ctx: OpContext):
    return _tuple_out(ctx, neutral.neutral_first(ctx))


register_packets(
    _native_batch_norm,
    "native_batch_norm",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit",
    "native_dropout",
)


def _native_layer_norm(ctx: OpContext):
    x, s = ctx.main()
    n = len(ctx.arg(1, "normalized_shape"))
    return _tuple_out(ctx, norm.over(s, set(range(x.dim() - n, x.dim()))))


register_packets(_native_layer_norm, "native_layer_norm")


def _native_group_norm(ctx: OpContext):
    x, s = ctx.main()
    return _tuple_out(ctx, norm.over(s, set(range(2, x.dim()))))


register_packets(_native_group_norm, "native_group_norm")


def _convolution(ctx: OpContext):
    """aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)."""
    kernel = tuple(ctx.args[1].shape[2:])
    stride, padding, dilation, transposed = ctx.args[3], ctx.args[4], ctx.args[5], ctx.args[6]
    if transposed:
        return resample._conv_transpose(ctx, kernel, stride, padding, dilation)
    return conv.conv_state(ctx, kernel, stride, padding, dilation)


register_packets(_convolution, "convolution", "_convolution")
register_packets(conv.conv_function, "conv1d", "conv2d", "conv3d")


def _adaptive(ctx: OpContext):
    return pool.adaptive_pool_n(ctx, len(ctx.arg(1, "output_size")))


register_packets(
    _adaptive,
    "_adaptive_avg_pool2d",
    "_adaptive_avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "adaptive_avg_pool2d",
)


def _upsample(mode: str):
    def handler(ctx: OpContext):
        x, _ = ctx.main()
        align = False
        if mode not in ("nearest", "nearest-exact") and len(ctx.args) > 2 and isinstance(ctx.args[2], bool):
            align = ctx.args[2]
        return resample._interpolate(ctx, x.dim() - 2, mode, None, align)

    return handler


register_packets(_upsample("nearest"), "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d")
register_packets(
    _upsample("nearest-exact"), "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d"
)
register_packets(
    _upsample("linear"), "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "_upsample_bilinear2d_aa"
)
register_packets(_upsample("bicubic"), "upsample_bicubic2d", "_upsample_bicubic2d_aa")


def _slice(ctx: OpContext):
    """aten.slice(x, dim, start, end, step)."""
    x, s = ctx.main()
    dim = ctx.arg(1, "dim", 0) % x.dim()
    start, stop, step = slice(ctx.arg(2, "start"), ctx.arg(3, "end"), ctx.arg(4, "step", 1)).indices(x.shape[dim])
    return shape.slice_dim(s, dim, x.shape[dim], start, max(start, stop), step)


register_packets(_slice, "slice", "slice_copy")


def _copy(ctx: OpContext):
    """aten.copy(self, src): src's values in self's shape."""
    src = ctx.state(1, "src")
    if src is None:
        return ctx.state(0, "self")
    return src if src.layout is not None or ctx.state(0, "self") is None else src.with_layout(ctx.state(0).layout)


register_packets(_copy, "copy", "copy_")


def _slice_scatter(ctx: OpContext):
    """aten.slice_scatter(base, src, dim, start, end, step): base with a slice replaced by src. A unit sees
    what base's unit sees, or src's there: the union, with src re-indexed into base's grid. Exact when the
    slice is the whole grid (a prefix of class tokens left out), else an upper bound, flagged approximate."""
    base = ctx.args[0]
    sb, ss = ctx.arg_states[0], ctx.arg_states[1]
    dim = ctx.arg(2, "dim", 0) % base.dim()
    start, stop, step = slice(ctx.arg(3, "start"), ctx.arg(4, "end"), ctx.arg(5, "step", 1)).indices(base.shape[dim])
    if ss is None:
        return sb
    if sb is None or sb.layout is None:
        return ss.with_layout(None if sb is None else sb.layout)
    dl = sb.layout[dim]
    if not (dl.spatial or dl.prefix):
        return merge_states(sb, ss, sb.layout)
    if dl.prefix and start == dl.prefix and stop == base.shape[dim] and step == 1:
        return merge_states(sb, ss, sb.layout)
    dims = sb.dims
    if step != 1 or dims is None or dim not in dims or ss.axes is None:
        raise UnsupportedOp(f"scattering a strided or partial slice into grid dim {dim}")
    i = dims.index(dim)
    axes = list(ss.axes)
    axes[i] = axes[i].shifted(-start)
    exact = start == 0 and stop == base.shape[dim]
    return merge_states(sb, ss.with_axes(axes).replace(approximate=ss.approximate or not exact), sb.layout)


def merge_states(a, b, layout):
    from rfkit.graph.state import merge

    return merge([a, b], layout)


register_packets(_slice_scatter, "slice_scatter")


def _select(ctx: OpContext):
    """aten.select(x, dim, index): indexing one dim with an int."""
    x, s = ctx.main()
    dim = ctx.arg(1, "dim") % x.dim()
    index = (slice(None),) * dim + (ctx.arg(2, "index"),)
    return shape.index_state(ctx, x, s, index)


register_packets(_select, "select", "select_copy")


def _sdpa(ctx: OpContext):
    state = attention.sdpa_state(ctx, ctx.out[0] if isinstance(ctx.out, (tuple, list)) else ctx.out)
    return _tuple_out(ctx, state)


register_packets(
    _sdpa,
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_attention_math",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention",
)


def _register_mark() -> None:
    from rfkit.graph.tracer import MARK

    R.functions[MARK] = neutral.neutral_first


_register_mark()
