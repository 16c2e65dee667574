"""ONNX ops as the torch ops of the same geometry, for the RF pass over an ONNX graph
(:mod:`rfkit.graph.onnx_graph`).

One translator per ONNX op type in :data:`OPS` (registered with :func:`op`). A translator receives an
:class:`OnnxNode` — the node's attributes, its inputs as :class:`Dyn` values (they depend on the model's input)
or constant arrays — and returns its outputs, written with :meth:`OnnxNode.call` as torch calls on the meta
device. Only shapes and window geometry matter there: a MaxPool's padding value, a Resize's cubic coefficient
or a BatchNormalization's statistics do not change a receptive field, so pointwise ops of every kind become one
RF-neutral call, and the values computed on the meta device are never read. Geometry is never approximated: an
attribute combination without an exact torch equivalent raises :class:`NotTranslated`, which lists the node as
unsupported (its RF unknown) rather than guessing.

Adding an op is one decorated function::

    @op("MyPool")
    def _my_pool(n):
        return n.call(F.max_pool2d, n.x(), kernel_size=n.ints("kernel_shape"))
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F

from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.registry import DEFAULT_REGISTRY as R


@dataclass
class Dyn:
    """A value that depends on the model's input: its fx node and its meta tensor."""

    node: fx.Node
    meta: torch.Tensor


class NotTranslated(Exception):
    """This use of an ONNX op has no exact torch equivalent: the node is listed as unsupported, with the
    message as the reason."""


class OpaqueOp:
    """Stands for an ONNX op rfkit cannot model: returns empty meta tensors of the shapes ONNX infers. It
    has no RF rule (not a registered function, not a Python function to record), so the RF pass lists it as
    unsupported and every RF after it is unknown."""

    def __init__(self, op_type: str, shapes: tuple, dtypes: tuple) -> None:
        self.op_type, self.shapes, self.dtypes = op_type, shapes, dtypes
        self.__name__ = self.__qualname__ = op_type
        self.__module__ = "onnx"

    def __call__(self, *args):
        out = tuple(torch.empty(s, dtype=d, device="meta") for s, d in zip(self.shapes, self.dtypes))
        return out[0] if len(out) == 1 else out

    def __repr__(self) -> str:
        return f"onnx.{self.op_type}"


class OnnxNode:
    """One ONNX node as its translator sees it."""

    def __init__(self, builder, proto, inputs: list, opset: int) -> None:
        from onnx.helper import get_attribute_value

        self.builder, self.proto, self.inputs, self.opset = builder, proto, inputs, opset
        self.attrs = {}
        for a in proto.attribute:
            value = get_attribute_value(a)
            self.attrs[a.name] = value.decode() if isinstance(value, bytes) else value

    # --- inputs and attributes -------------------------------------------------------------------------
    @property
    def op_type(self) -> str:
        return self.proto.op_type

    def x(self, i: int = 0) -> Dyn | np.ndarray:
        """Input ``i`` (a Dyn, or an array for a constant operand)."""
        v = self.inputs[i] if i < len(self.inputs) else None
        if v is None:
            raise NotTranslated(f"{self.op_type} without input {i}")
        return v

    def dyn(self, i: int = 0) -> Dyn:
        v = self.x(i)
        if not isinstance(v, Dyn):
            raise NotTranslated(f"{self.op_type} whose input {i} is a constant while another depends on the image")
        return v

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def const(self, i: int) -> np.ndarray:
        """Input ``i`` as a constant array."""
        v = self.x(i)
        if isinstance(v, Dyn):
            raise NotTranslated(f"{self.op_type} whose input {i} is computed from the image at run time")
        return v

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def ints(self, name: str, default=None) -> list[int] | None:
        v = self.attrs.get(name, default)
        return None if v is None else [int(i) for i in v]

    def param(self, index: int, name: str, default=None):
        """A parameter given as input ``index`` (newer opsets) or as attribute ``name`` (older ones)."""
        if self.has(index):
            return self.const(index).tolist()
        return self.attrs.get(name, default)

    def shape(self, v) -> tuple[int, ...]:
        return tuple(v.meta.shape) if isinstance(v, Dyn) else tuple(v.shape)

    def rank(self, i: int = 0) -> int:
        return len(self.shape(self.x(i)))

    # --- writing ---------------------------------------------------------------------------------------
    def call(self, fn, *args, **kwargs) -> Dyn:
        return self.builder.call(fn, *args, **kwargs)

    def neutral(self, x: Dyn, dtype: torch.dtype | None = None) -> Dyn:
        """An RF-neutral op (pointwise): ``x.to(dtype)``."""
        return self.call("to", x, dtype or x.meta.dtype)

    def out_dtype(self, i: int = 0, default: torch.dtype | None = None) -> torch.dtype | None:
        return self.builder.expected_types.get(self.proto.output[i], default) if i < len(self.proto.output) else default


OPS: dict[str, Callable[[OnnxNode], object]] = {}
"""ONNX op type -> translator."""


def op(*names: str):
    """Register a translator for the given ONNX op types."""

    def deco(fn):
        for n in names:
            OPS[n] = fn
        return fn

    return deco


# --- windows: pads, auto_pad -------------------------------------------------------------------------------
def _window(n: OnnxNode, x: Dyn, kernel: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """(strides, dilations, pads at the start, pads at the end) per spatial axis, with ``auto_pad`` resolved
    at the input's size."""
    k = len(kernel)
    strides = n.ints("strides") or [1] * k
    dilations = n.ints("dilations") or [1] * k
    auto = n.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        sizes = x.meta.shape[-k:]
        begin, end = [], []
        for size, kk, s, d in zip(sizes, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
            small = total // 2
            begin.append(small if auto == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return strides, dilations, begin, end
    if auto == "VALID":
        return strides, dilations, [0] * k, [0] * k
    pads = n.ints("pads") or [0] * (2 * k)
    return strides, dilations, pads[:k], pads[k:]


def torch_pads(begin, end) -> list[int]:
    """ONNX per-axis (begin, end) pads in ``F.pad``'s order: last axis first.

    >>> torch_pads([1, 2], [3, 4])
    [2, 4, 1, 3]
    """
    out = []
    for b, e in reversed(list(zip(begin, end))):
        out += [int(b), int(e)]
    return out


def _pad(n: OnnxNode, x: Dyn, begin, end) -> Dyn:
    if not any(begin) and not any(end):
        return x
    return n.call(F.pad, x, torch_pads(begin, end))


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_LP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}
_GAP = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_GMP = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def _spatial(n: OnnxNode, table: dict, x: Dyn):
    k = x.meta.dim() - 2
    if k not in table:
        raise NotTranslated(f"{n.op_type} over {k} spatial axes")
    return table[k]


def _weight(n: OnnxNode, i: int):
    """A conv's weight: constant (its shape is all the RF needs) or computed at run time."""
    return n.x(i)


# --- convolutions ------------------------------------------------------------------------------------------
@op("Conv")
def _conv(n: OnnxNode):
    x, w = n.dyn(0), _weight(n, 1)
    kernel = list(n.shape(w)[2:])
    strides, dilations, begin, end = _window(n, x, kernel)
    fn = _spatial(n, _CONV, x)
    bias = n.x(2) if n.has(2) else None
    group = int(n.attr("group", 1))
    if begin == end:
        return n.call(fn, x, w, bias, strides, begin, dilations, group)
    return n.call(fn, _pad(n, x, begin, end), w, bias, strides, 0, dilations, group)


@op("ConvTranspose")
def _conv_transpose(n: OnnxNode):
    """The full transposed convolution (no padding), then ``F.pad`` to the ONNX output: negative pads crop the
    ``pads`` (or what ``output_shape`` / ``auto_pad`` imply), positive ones add ``output_padding``."""
    x, w = n.dyn(0), _weight(n, 1)
    kernel = list(n.shape(w)[2:])
    k = len(kernel)
    strides = n.ints("strides") or [1] * k
    dilations = n.ints("dilations") or [1] * k
    out_pad = n.ints("output_padding") or [0] * k
    sizes = list(x.meta.shape[-k:])
    full = [s * (i - 1) + (kk - 1) * d + 1 for s, i, kk, d in zip(strides, sizes, kernel, dilations)]
    output_shape = n.ints("output_shape")
    auto = n.attr("auto_pad", "NOTSET")
    if output_shape or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = output_shape[-k:] if output_shape else [i * s for i, s in zip(sizes, strides)]
        total = [f + op_ - o for f, op_, o in zip(full, out_pad, want)]
        half = [int(t / 2) for t in total]  # C division, as onnxruntime: toward zero for a negative total
        begin = [t - q if auto == "SAME_LOWER" else q for t, q in zip(total, half)]
        end = [t - b for t, b in zip(total, begin)]
    elif auto == "VALID":
        begin, end = [0] * k, [0] * k
    else:
        pads = n.ints("pads") or [0] * (2 * k)
        begin, end = pads[:k], pads[k:]
    fn = _spatial(n, _CONV_T, x)
    bias = n.x(2) if n.has(2) else None
    group = int(n.attr("group", 1))
    if begin == end and not any(out_pad) and all(b >= 0 for b in begin):
        return n.call(fn, x, w, bias, strides, begin, 0, group, dilations)
    y = n.call(fn, x, w, bias, strides, 0, 0, group, dilations)
    return _pad(n, y, [-b for b in begin], [p - e for p, e in zip(out_pad, end)])


# --- pooling -----------------------------------------------------------------------------------------------
def _pool_length(size: int, kernel: int, stride: int, dilation: int, begin: int, end: int, ceil: bool) -> int:
    """Output length of an ONNX pool (ceil_mode: a last window that starts past the input and its start
    padding is dropped, as in PyTorch and ONNX Runtime)."""
    span = (kernel - 1) * dilation + 1
    room = size + begin + end - span
    out = (-(-room // stride) if ceil else room // stride) + 1
    if ceil and (out - 1) * stride >= size + begin:
        out -= 1
    return out


def _pool(n: OnnxNode, table: dict, *, lp: float | None = None):
    x = n.dyn(0)
    kernel = n.ints("kernel_shape")
    if not kernel:
        raise NotTranslated(f"{n.op_type} without kernel_shape")
    strides, dilations, begin, end = _window(n, x, kernel)
    ceil = bool(n.attr("ceil_mode", 0))
    sizes = list(x.meta.shape[-len(kernel) :])
    outs = [_pool_length(*a, ceil) for a in zip(sizes, kernel, strides, dilations, begin, end)]
    fn = _spatial(n, table, x)
    simple = (
        begin == end
        and all(b <= ((k - 1) * d + 1) // 2 for b, k, d in zip(begin, kernel, dilations))
        and all(_pool_length(*a, False) == o for a, o in zip(zip(sizes, kernel, strides, dilations, begin, end), outs))
    )
    if not simple:  # pad to exactly the windows ONNX takes, then pool without padding
        end = [
            (o - 1) * s + (k - 1) * d + 1 - size - b
            for o, s, k, d, size, b in zip(outs, strides, kernel, dilations, sizes, begin)
        ]
        x, begin = _pad(n, x, begin, end), [0] * len(kernel)
    if table is _MAX:
        return n.call(fn, x, kernel, strides, begin, dilations)
    if any(d != 1 for d in dilations):  # a dilated average or LP window covers the pixels a dilated max does
        return n.call(_spatial(n, _MAX, x), x, kernel, strides, begin, dilations)
    if table is _LP:
        if any(begin):
            x = _pad(n, x, begin, begin)
        return n.call(fn, x, float(lp), kernel, strides)
    return n.call(fn, x, kernel, strides, begin, False, bool(n.attr("count_include_pad", 0)))


@op("MaxPool")
def _max_pool(n: OnnxNode):
    if n.attr("storage_order", 0):
        raise NotTranslated("MaxPool with storage_order=1 (column-major indices)")
    y = _pool(n, _MAX)
    return [y, n.neutral(y, torch.int64)] if len(n.proto.output) > 1 and n.proto.output[1] else [y]


@op("AveragePool")
def _avg_pool(n: OnnxNode):
    return _pool(n, _AVG)


@op("LpPool")
def _lp_pool(n: OnnxNode):
    return _pool(n, _LP, lp=float(n.attr("p", 2)))


@op("GlobalAveragePool", "GlobalLpPool")
def _global_avg(n: OnnxNode):
    x = n.dyn(0)
    return n.call(_spatial(n, _GAP, x), x, 1)


@op("GlobalMaxPool")
def _global_max(n: OnnxNode):
    x = n.dyn(0)
    return n.call(_spatial(n, _GMP, x), x, 1)


# --- resampling --------------------------------------------------------------------------------------------
def _resize_sizes(n: OnnxNode, x: Dyn, scales, sizes, axes) -> tuple[list[int], list[float] | None]:
    """Output size of every dim, and the scale of every dim where the node gives scales."""
    shape = list(x.meta.shape)
    rank = len(shape)
    axes = [a % rank for a in (axes or range(rank))]
    if sizes is not None and len(sizes):
        out = list(shape)
        policy = n.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            raise NotTranslated(f"Resize with keep_aspect_ratio_policy={policy}")
        for a, s in zip(axes, sizes):
            out[a] = int(s)
        return out, None
    if scales is None or not len(scales):
        raise NotTranslated("Resize without scales or sizes")
    full = [1.0] * rank
    for a, s in zip(axes, scales):
        full[a] = float(s)
    return [math.floor(i * s) for i, s in zip(shape, full)], full


def onnx_resize(x, size, mode: str, coordinate: str, nearest: str, scales):
    """Stands for an ONNX Resize without a torch equivalent (asymmetric linear, nearest rounding half down):
    an empty meta tensor of the output size; its RF rule (:func:`resize_rule`) follows the ONNX spec."""
    return x.new_empty((*x.shape[:2], *size))


def resize_taps(mode: str, coordinate: str, nearest: str, size_in: int, size_out: int, scale: Fraction):
    """``src(v) -> (first, last)`` input index read by output ``v`` of an ONNX Resize along one axis, with its
    repeat (period, advance). ``scale`` is output/input as the node gives it (sizes: ``size_out/size_in``).

    >>> src, period, advance = resize_taps("nearest", "half_pixel", "round_prefer_floor", 8, 4, Fraction(1, 2))
    >>> [src(v) for v in range(4)], period, advance
    ([(0, 0), (2, 2), (4, 4), (6, 6)], 1, 2)
    """
    if coordinate == "align_corners":
        ratio = Fraction(size_in - 1, size_out - 1) if size_out > 1 else Fraction(0)
        offset = Fraction(0)
    else:
        ratio = 1 / scale
        offset = {
            "half_pixel": Fraction(1, 2) * ratio - Fraction(1, 2),
            "pytorch_half_pixel": Fraction(1, 2) * ratio - Fraction(1, 2) if size_out > 1 else None,
            "asymmetric": Fraction(0),
            "tf_half_pixel_for_nn": Fraction(1, 2) * ratio,
        }.get(coordinate, "unknown")
        if offset == "unknown":
            raise UnsupportedOp(f"Resize with coordinate_transformation_mode={coordinate}")
        if offset is None:  # one output pixel: it reads input 0 (pytorch_half_pixel)
            ratio, offset = Fraction(size_in), Fraction(0)
    period, advance = ratio.denominator, ratio.numerator

    def position(v: int) -> Fraction:
        return v * ratio + offset

    def clip(i: int) -> int:
        return min(max(i, 0), size_in - 1)

    if mode == "nearest":
        rounding = {
            "round_prefer_floor": lambda p: math.ceil(p - Fraction(1, 2)),
            "round_prefer_ceil": lambda p: math.floor(p + Fraction(1, 2)),
            "floor": math.floor,
            "ceil": math.ceil,
        }
        if nearest not in rounding:
            raise UnsupportedOp(f"Resize with nearest_mode={nearest}")
        r = rounding[nearest]
        return (lambda v: (clip(r(position(v))),) * 2), period, advance
    first, last = {"linear": (0, 1), "cubic": (-1, 2)}.get(mode, (None, None))
    if first is None:
        raise UnsupportedOp(f"Resize with mode={mode}")

    def src(v: int) -> tuple[int, int]:
        p = position(v)
        i = math.floor(p)
        if p == i:
            return clip(i), clip(i)
        return clip(i + first), clip(i + last)

    return src, period, advance


@R.function(onnx_resize)
def resize_rule(ctx: OpContext):
    """RF of an ONNX Resize: each spatial axis resampled with :func:`resize_taps`."""
    from rfkit.graph.handlers.resample import _apply

    x, _ = ctx.main()
    mode, coordinate, nearest, scales = (
        ctx.arg(i, k) for i, k in ((2, "mode"), (3, "coordinate"), (4, "nearest"), (5, "scales"))
    )
    ndim = x.dim() - 2

    def per_axis(axis, j, size_in, size_out):
        scale = Fraction(scales[2 + j]).limit_denominator(10_000) if scales else Fraction(size_out, size_in)
        src, period, advance = resize_taps(mode, coordinate, nearest, size_in, size_out, scale)
        return axis.resample(src, Fraction(advance, period), period, advance)

    return _apply(ctx, ndim, per_axis)


_TORCH_MODES = {("linear", 1): "linear", ("linear", 2): "bilinear", ("linear", 3): "trilinear", ("cubic", 2): "bicubic"}


def _resize(n: OnnxNode, x: Dyn, mode: str, coordinate: str, nearest: str, scales, sizes, axes):
    out, full = _resize_sizes(n, x, scales, sizes, axes)
    if out[:2] != list(x.meta.shape[:2]):
        raise NotTranslated("Resize of the batch or channel dim")
    if n.attr("antialias", 0) and any(o < i for o, i in zip(out[2:], x.meta.shape[2:])):
        raise NotTranslated("Resize with antialias when downsampling (a wider filter)")
    ndim = len(out) - 2
    spatial_scales = full[2:] if full is not None else None
    as_given = (
        {"scale_factor": spatial_scales}
        if spatial_scales is not None
        and [math.floor(i * s) for i, s in zip(x.meta.shape[2:], spatial_scales)] == out[2:]
        else {"size": out[2:]}
    )
    if mode == "nearest" and coordinate == "asymmetric" and nearest == "floor":
        return n.call(F.interpolate, x, mode="nearest", **as_given)
    if mode == "nearest" and coordinate in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
        return n.call(F.interpolate, x, mode="nearest-exact", **as_given)
    if mode in ("linear", "cubic") and (mode, ndim) in _TORCH_MODES:
        if (
            coordinate in ("half_pixel", "pytorch_half_pixel")
            and all(o > 1 for o in out[2:])
            or coordinate == "align_corners"
        ):
            kwargs = as_given if coordinate != "align_corners" else {"size": out[2:]}
            return n.call(
                F.interpolate, x, mode=_TORCH_MODES[(mode, ndim)], align_corners=coordinate == "align_corners", **kwargs
            )
    if coordinate == "tf_crop_and_resize":
        raise NotTranslated("Resize with tf_crop_and_resize (a region of interest)")
    return n.call(onnx_resize, x, out[2:], mode, coordinate, nearest, full)


@op("Resize")
def _resize_op(n: OnnxNode):
    x = n.dyn(0)
    if n.opset < 11:  # Resize-10: (X, scales), asymmetric coordinates
        return _resize(n, x, n.attr("mode", "nearest"), "asymmetric", "floor", n.const(1).tolist(), None, None)
    scales = n.const(2).tolist() if n.has(2) else None
    sizes = n.const(3).tolist() if n.has(3) else None
    return _resize(
        n,
        x,
        n.attr("mode", "nearest"),
        n.attr("coordinate_transformation_mode", "half_pixel"),
        n.attr("nearest_mode", "round_prefer_floor"),
        scales,
        sizes,
        n.ints("axes"),
    )


@op("Upsample")
def _upsample(n: OnnxNode):
    """Upsample (opsets 7-9): asymmetric coordinates, nearest rounds down."""
    x = n.dyn(0)
    scales = n.const(1).tolist() if n.has(1) else n.attr("scales")
    mode = n.attr("mode", "nearest")
    return _resize(
        n, x, "linear" if mode in ("linear", "bilinear") else mode, "asymmetric", "floor", scales, None, None
    )


@op("DepthToSpace")
def _depth_to_space(n: OnnxNode):
    """Output pixel v reads input unit v // blocksize in DCR and CRD order alike (the order only says which
    channel holds which phase)."""
    return n.call(F.pixel_shuffle, n.dyn(0), int(n.attr("blocksize")))


@op("SpaceToDepth")
def _space_to_depth(n: OnnxNode):
    return n.call(F.pixel_unshuffle, n.dyn(0), int(n.attr("blocksize")))


# --- padding and cropping ----------------------------------------------------------------------------------
@op("Pad")
def _pad_op(n: OnnxNode):
    """Every mode pads the same geometry (reflect and edge read other pixels near the border, as
    PyTorch's padding modules do, for which rfkit uses the same rule)."""
    x = n.dyn(0)
    rank = x.meta.dim()
    pads = n.param(1, "pads") if n.opset >= 11 else n.ints("pads") or n.ints("paddings")
    if pads is None:
        raise NotTranslated("Pad without pads")
    axes = n.const(3).tolist() if n.has(3) else list(range(rank))
    axes = [a % rank for a in axes]
    k = len(axes)
    begin, end = [0] * rank, [0] * rank
    for j, a in enumerate(axes):
        begin[a], end[a] = int(pads[j]), int(pads[k + j])
    first = next((d for d in range(rank) if begin[d] or end[d]), rank)
    return n.call(F.pad, x, torch_pads(begin[first:], end[first:])) if first < rank else n.neutral(x)


def _slices(rank: int, axes, starts, ends, steps) -> tuple:
    index = [slice(None)] * rank
    for a, s, e, st in zip(axes, starts, ends, steps):
        if st <= 0:
            raise NotTranslated("Slice with a negative step (a flip)")
        index[a % rank] = slice(int(s), int(e), int(st))
    while index and index[-1] == slice(None):
        index.pop()
    return tuple(index)


@op("Slice")
def _slice(n: OnnxNode):
    x = n.dyn(0)
    rank = x.meta.dim()
    if n.opset < 10:
        starts, ends = n.ints("starts"), n.ints("ends")
        axes = n.ints("axes") or list(range(len(starts)))
        steps = [1] * len(starts)
    else:
        starts, ends = n.const(1).tolist(), n.const(2).tolist()
        axes = n.const(3).tolist() if n.has(3) else list(range(len(starts)))
        steps = n.const(4).tolist() if n.has(4) else [1] * len(starts)
    index = _slices(rank, axes, starts, ends, steps)
    return n.call(operator.getitem, x, index) if index else n.neutral(x)


@op("Crop")
def _crop(n: OnnxNode):
    """Crop (opset 1): ``border`` = (left, top, right, bottom), or a window of ``scale`` = (h, w) from the
    top-left border."""
    x = n.dyn(0)
    left, top, right, bottom = n.ints("border")
    h, w = x.meta.shape[-2:]
    scale = n.ints("scale")
    stop = (top + scale[0], left + scale[1]) if scale else (h - bottom, w - right)
    return n.call(operator.getitem, x, (slice(None), slice(None), slice(top, stop[0]), slice(left, stop[1])))


# --- merges and arithmetic ---------------------------------------------------------------------------------
_BINARY = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,
    "PRelu": torch.mul,  # slope * x where negative: pointwise, per channel
    "Mod": torch.remainder,
    "BitShift": torch.add,
    "Equal": torch.eq,
    "Greater": torch.gt,
    "Less": torch.lt,
    "GreaterOrEqual": torch.ge,
    "LessOrEqual": torch.le,
    "And": torch.logical_and,
    "Or": torch.logical_or,
    "Xor": torch.logical_xor,
}


@op(*_BINARY)
def _binary(n: OnnxNode):
    a, b = n.x(0), n.x(1)
    if n.opset < 7 and n.attr("broadcast", 0) and n.attr("axis") is not None:
        raise NotTranslated(f"{n.op_type} with opset-6 axis broadcasting")
    fn = _BINARY[n.op_type]
    out = n.call(fn, a, b)
    dtype = n.out_dtype(0, out.meta.dtype)
    return out if out.meta.dtype == dtype else n.neutral(out, dtype)


_VARIADIC = {"Sum": torch.add, "Mean": torch.add, "Max": torch.maximum, "Min": torch.minimum}


@op(*_VARIADIC)
def _variadic(n: OnnxNode):
    values = [v for v in n.inputs if v is not None]
    out = values[0]
    for v in values[1:]:
        out = n.call(_VARIADIC[n.op_type], out, v)
    if not isinstance(out, Dyn):
        raise NotTranslated(f"{n.op_type} of constants")
    return out if len(values) > 1 else n.neutral(out)


@op("Where")
def _where(n: OnnxNode):
    return n.call(torch.where, n.x(0), n.x(1), n.x(2))


@op("Concat")
def _concat(n: OnnxNode):
    values = [v for v in n.inputs if v is not None and math.prod(n.shape(v)) > 0]
    return n.call(torch.cat, values, int(n.attr("axis")))


@op("Einsum")
def _einsum(n: OnnxNode):
    return n.call(torch.einsum, n.attr("equation"), *n.inputs)


@op("MatMul")
def _matmul(n: OnnxNode):
    return n.call(torch.matmul, n.x(0), n.x(1))


@op("Gemm")
def _gemm(n: OnnxNode):
    """Y = alpha·A'·B' + beta·C: a linear layer on A (the scales do not change the RF)."""
    a, b = n.x(0), n.x(1)
    if n.attr("transA", 0):
        a = n.call(torch.t, a)
    if not isinstance(b, Dyn):
        weight = b if n.attr("transB", 0) else np.ascontiguousarray(b.T)
        bias = (
            n.x(2)
            if n.has(2) and not isinstance(n.x(2), Dyn) and n.x(2).ndim == 1 and n.x(2).shape[0] == weight.shape[0]
            else None
        )
        out = n.call(F.linear, a, weight, bias)
        if n.has(2) and bias is None:
            out = n.call(torch.add, out, n.x(2))
        return out
    if n.attr("transB", 0):
        b = n.call(torch.t, b)
    out = n.call(torch.matmul, a, b)
    return n.call(torch.add, out, n.x(2)) if n.has(2) else out


# --- pointwise: every op that maps each position to itself -------------------------------------------------
POINTWISE = (
    "Relu LeakyRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Swish Mish Tanh Softplus Softsign "
    "ThresholdedRelu Shrink Clip Exp Log Sqrt Abs Neg Reciprocal Erf Floor Ceil Round Sign Sin Cos Tan Asin Acos "
    "Atan Sinh Cosh Asinh Acosh Atanh Not IsNaN IsInf BitwiseNot Identity Cast CastLike BatchNormalization "
    "QuantizeLinear DequantizeLinear LRN Dropout Relu6 Affine ScaledTanh ParametricSoftplus ImageScaler "
    "MeanVarianceNormalization_channels"
).split()


@op(*POINTWISE)
def _pointwise(n: OnnxNode):
    """RF-neutral: each output position reads its own position (BatchNormalization's statistics and
    Quantize's scales are per channel; LRN mixes channels at one position)."""
    x = n.dyn(0)
    outs = [n.neutral(x, n.out_dtype(0, x.meta.dtype))]
    if n.op_type == "Dropout" and len(n.proto.output) > 1 and n.proto.output[1]:
        outs.append(n.neutral(x, torch.bool))
    return outs


@op("RandomNormalLike", "RandomUniformLike", "EyeLike")
def _constant_like(n: OnnxNode):
    """Values that depend on the input's shape only: no pixel reaches them."""
    x = n.dyn(0)
    return n.call(torch.zeros_like, x, dtype=n.out_dtype(0, x.meta.dtype))


# --- normalisation over positions --------------------------------------------------------------------------
@op("InstanceNormalization")
def _instance_norm(n: OnnxNode):
    return n.call(F.instance_norm, n.dyn(0))


@op("GroupNormalization")
def _group_norm(n: OnnxNode):
    return n.call(F.group_norm, n.dyn(0), int(n.attr("num_groups")))


@op("LayerNormalization")
def _layer_norm(n: OnnxNode):
    x = n.dyn(0)
    axis = int(n.attr("axis", -1)) % x.meta.dim()
    return n.call(F.layer_norm, x, list(x.meta.shape[axis:]))


@op("LpNormalization")
def _lp_norm(n: OnnxNode):
    return n.call(F.normalize, n.dyn(0), float(n.attr("p", 2)), int(n.attr("axis", -1)))


@op("MeanVarianceNormalization")
def _mvn(n: OnnxNode):
    x = n.dyn(0)
    mean = n.call(torch.mean, x, n.ints("axes") or [0, 2, 3], True)
    return n.call(torch.sub, x, mean)


@op("Softmax", "LogSoftmax", "Hardmax")
def _softmax(n: OnnxNode):
    """Opset 13+: along ``axis``; before, over the input flattened to 2-D at ``axis`` (default 1)."""
    x = n.dyn(0)
    rank = x.meta.dim()
    if n.opset >= 13:
        return n.call(F.softmax, x, int(n.attr("axis", -1)) % rank)
    axis = int(n.attr("axis", 1)) % rank
    shape = list(x.meta.shape)
    flat = n.call(torch.reshape, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))
    return n.call(torch.reshape, n.call(F.softmax, flat, 1), shape)


# --- reductions --------------------------------------------------------------------------------------------
_REDUCE = {
    "ReduceMean": torch.mean,
    "ReduceMax": torch.amax,
    "ReduceMin": torch.amin,
    "ReduceSum": torch.sum,
    "ReduceProd": torch.sum,  # torch.prod takes one dim; the RF is that of any reduction
    "ReduceL1": torch.sum,
    "ReduceL2": torch.sum,
    "ReduceLogSum": torch.sum,
    "ReduceLogSumExp": torch.sum,
    "ReduceSumSquare": torch.sum,
}


@op(*_REDUCE)
def _reduce(n: OnnxNode):
    x = n.dyn(0)
    rank = x.meta.dim()
    axes_in_input = n.opset >= 18 or (n.op_type == "ReduceSum" and n.opset >= 13)
    axes = (n.const(1).tolist() if n.has(1) else None) if axes_in_input else n.ints("axes")
    keep = bool(n.attr("keepdims", 1))
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return n.neutral(x)
        axes = list(range(rank))
    return n.call(_REDUCE[n.op_type], x, [a % rank for a in axes], keep)


@op("ArgMax", "ArgMin")
def _arg_extreme(n: OnnxNode):
    x = n.dyn(0)
    axis = int(n.attr("axis", 0)) % x.meta.dim()
    out = n.call(torch.amax, x, [axis], bool(n.attr("keepdims", 1)))
    return n.neutral(out, torch.int64)


# --- shapes ------------------------------------------------------------------------------------------------
def onnx_reshape_target(shape_in, target, allowzero: bool = False) -> list[int]:
    """The shape ONNX Reshape gives: 0 copies the input dim (unless ``allowzero``), -1 is inferred.

    >>> onnx_reshape_target((2, 512, 1, 1), [0, -1])
    [2, 512]
    """
    out = [int(shape_in[i]) if t == 0 and not allowzero else int(t) for i, t in enumerate(target)]
    if -1 in out:
        known = math.prod(t for t in out if t != -1)
        out[out.index(-1)] = math.prod(shape_in) // known if known else 0
    return out


@op("Reshape")
def _reshape(n: OnnxNode):
    x = n.dyn(0)
    target = n.const(1).tolist() if n.opset >= 5 else n.ints("shape")
    return n.call(torch.reshape, x, onnx_reshape_target(x.meta.shape, target, bool(n.attr("allowzero", 0))))


@op("Flatten")
def _flatten(n: OnnxNode):
    x = n.dyn(0)
    shape = list(x.meta.shape)
    axis = int(n.attr("axis", 1)) % (len(shape) + 1)
    return n.call(torch.reshape, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))


@op("Squeeze", "Unsqueeze")
def _squeeze(n: OnnxNode):
    x = n.dyn(0)
    shape = list(x.meta.shape)
    axes = n.param(1, "axes") if n.opset >= 13 else n.ints("axes")
    if n.op_type == "Squeeze":
        rank = len(shape)
        drop = {a % rank for a in axes} if axes else {d for d, s in enumerate(shape) if s == 1}
        out = [s for d, s in enumerate(shape) if d not in drop]
    else:
        rank = len(shape) + len(axes)
        out = list(shape)
        for a in sorted(a % rank for a in axes):
            out.insert(a, 1)
    return n.call(torch.reshape, x, out)


@op("Transpose")
def _transpose(n: OnnxNode):
    x = n.dyn(0)
    perm = n.ints("perm") or list(range(x.meta.dim()))[::-1]
    return n.call(torch.permute, x, perm)


@op("Expand")
def _expand(n: OnnxNode):
    x = n.dyn(0)
    target = torch.broadcast_shapes(tuple(x.meta.shape), tuple(int(s) for s in n.const(1).tolist()))
    return n.call("expand", x, *target)


@op("Tile")
def _tile(n: OnnxNode):
    return n.call("repeat", n.dyn(0), *[int(r) for r in n.const(1).tolist()])


@op("Split")
def _split(n: OnnxNode):
    x = n.dyn(0)
    axis = int(n.attr("axis", 0)) % x.meta.dim()
    parts = len(n.proto.output)
    split = n.param(1, "split") if n.opset >= 13 else n.ints("split")
    if not split:
        size = x.meta.shape[axis]
        step = -(-size // parts)
        split = [min(step, size - i * step) for i in range(parts)]
    pieces = n.call(torch.split, x, [int(s) for s in split], axis)
    return [n.call(operator.getitem, pieces, i) for i in range(parts)]


@op("Gather")
def _gather(n: OnnxNode):
    """Indexing one dim with constant indices: a scalar drops the dim, a list keeps the entries it names."""
    x = n.dyn(0)
    indices = n.const(1)
    axis = int(n.attr("axis", 0)) % x.meta.dim()
    lead = (slice(None),) * axis
    if indices.ndim == 0:
        return n.call(operator.getitem, x, (*lead, int(indices)))
    if indices.ndim == 1:
        return n.call(operator.getitem, x, (*lead, [int(i) for i in indices]))
    raise NotTranslated(f"Gather with {indices.ndim}-D indices")
