"""The RF graph of a Keras 3 model, read from Keras' own layer graph and layer configs.

Each layer (or ``keras.ops`` operation) of the functional graph is mapped onto a
:class:`~rfkit.graph.handbuilt.GraphBuilder` call, so the RF arithmetic is rfkit's one implementation (exact
fractions, TF 'SAME' padding, interpolation taps, transposed convolutions, merges): convolutions of every rank
with stride, dilation and groups, depthwise and separable convolutions, transposed convolutions (with the
asymmetric crop Keras' torch backend applies), pooling with 'valid' and 'same' (TensorFlow's: the odd pixel
padded after), zero padding and cropping, upsampling and resizing, merges, normalisations, activations,
rescaling, global pooling, dense layers, and attention (global). Nodes are named after Keras layers
(:func:`rfkit.models.keras_module.walk`); each record's ``op`` is the Keras class.

Never a silently wrong graph: a layer without a rule is an opaque node with an unknown RF (and so is every
node after it), listed in :attr:`RFGraph.unsupported`; and every node's shape is checked against the shape
Keras computes for it (symbolically, on the meta device: no weights are touched). A node whose shape differs
marks the graph :attr:`~RFGraph.incomplete` and its RF, and all after it, unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import networkx as nx

import rfkit.validate as validate
from rfkit.errors import ArchitectureError, InputTooSmallError, TraceError
from rfkit.graph.handbuilt import GraphBuilder
from rfkit.graph.propagate import UnsupportedNode
from rfkit.graph.rfgraph import RFGraph
from rfkit.models.keras_module import INPUT, KerasCall, KerasModule, input_name, walk

DEFAULT_SIZE = 224


class Unsupported(Exception):
    """The layer, or this use of it, has no RF rule (the message says why)."""


@dataclasses.dataclass
class _Sym:
    """What the walk carries along an edge: the builder node and Keras' symbolic tensor for it."""

    node: str
    spec: object  # keras.KerasTensor


@dataclasses.dataclass
class LayerCall:
    """A layer call as a rule sees it."""

    name: str
    op: object
    config: dict
    inputs: list[_Sym]  # the tensor arguments, in order
    outputs: list  # Keras' symbolic outputs
    channels_last: bool
    ndim: int

    @property
    def source(self) -> str:
        return self.inputs[0].node

    def graph_shape(self, spec) -> tuple[int, ...]:
        return graph_shape(spec.shape, self.channels_last, self.ndim)

    def check_format(self) -> None:
        fmt = self.config.get("data_format")
        if fmt is not None and (fmt == "channels_last") != self.channels_last:
            raise Unsupported(f"data_format {fmt} differs from the model's")

    def spatial_axes(self, axis) -> set[int]:
        """The Keras axes (of the first input) among ``axis`` that are spatial."""
        rank = len(self.inputs[0].spec.shape)
        axes = axis if isinstance(axis, (list, tuple)) else (axis,)
        axes = {a % rank for a in axes}
        if rank == 2:  # a vector per image: no positions
            return set()
        if rank != self.ndim + 2:
            raise Unsupported(f"a {rank}-D tensor that is neither a map nor a vector")
        spatial = set(range(1, rank - 1)) if self.channels_last else set(range(2, rank))
        return axes & spatial


def graph_shape(shape, channels_last: bool, ndim: int) -> tuple[int, ...]:
    """A Keras tensor shape in rfkit's layout: batch 1, a map's channels second.

    >>> graph_shape((None, 32, 32, 8), True, 2), graph_shape((None, 10), True, 2)
    ((1, 8, 32, 32), (1, 10))
    """
    shape = tuple(1 if s is None else int(s) for s in shape)
    if channels_last and len(shape) == ndim + 2:
        return (1, shape[-1], *shape[1:-1])
    return (1, *shape[1:])


Rule = Callable[[GraphBuilder, LayerCall], None]
RULES: dict[str, Rule] = {}


def rule(*names: str):
    """Register a rule for Keras layer or operation classes (by class name)."""

    def register(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn

    return register


def _ints(value, n: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    return values * n if len(values) == 1 else values


# --- convolutions and pooling -------------------------------------------------------------------------------


def _padding(cfg: dict, kernel, dilation, n: int):
    padding = cfg.get("padding", "valid")
    if padding == "causal":  # Conv1D: everything padded before
        return tuple(((k - 1) * d, 0) for k, d in zip(_ints(kernel, n), _ints(dilation, n)))
    if padding not in ("valid", "same"):
        raise Unsupported(f"padding {padding!r}")
    return padding


@rule("Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D")
def _conv(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    cfg, n = c.config, c.ndim
    k, d = cfg["kernel_size"], cfg.get("dilation_rate", 1)
    b.conv(c.name, _ints(k, n), _ints(cfg["strides"], n), _padding(cfg, k, d, n), _ints(d, n), input=c.source,
           channels=cfg["filters"])  # fmt: skip


@rule("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    cfg, n = c.config, c.ndim
    k, d = cfg["kernel_size"], cfg.get("dilation_rate", 1)
    chans = c.graph_shape(c.inputs[0].spec)[1] * cfg.get("depth_multiplier", 1)
    b.conv(c.name, _ints(k, n), _ints(cfg["strides"], n), _padding(cfg, k, d, n), _ints(d, n), input=c.source,
           channels=chans)  # fmt: skip


@rule("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def _conv_transpose(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    try:  # the crop Keras' torch backend applies to torch's full transposed output: Keras' own helper
        from keras.src.backend.common.backend_utils import compute_conv_transpose_output_crops_for_torch
    except ImportError as e:
        raise Unsupported("this Keras version has no compute_conv_transpose_output_crops_for_torch") from e
    cfg, n = c.config, c.ndim
    k, s, d = _ints(cfg["kernel_size"], n), _ints(cfg["strides"], n), _ints(cfg.get("dilation_rate", 1), n)
    crops = compute_conv_transpose_output_crops_for_torch(
        input_shape=(None,) * (n + 2),
        kernel_shape=(*k, 1, 1),
        strides=s,
        padding=cfg["padding"],
        output_padding=cfg.get("output_padding"),
        dilation_rate=d,
    )
    b.conv_transpose(c.name, k, s, tuple(tuple(p) for p in crops), d, input=c.source, channels=cfg["filters"])


@rule("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def _pool(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    cfg, n = c.config, c.ndim
    kernel = _ints(cfg["pool_size"], n)
    stride = kernel if cfg.get("strides") is None else _ints(cfg["strides"], n)
    mode = "max" if type(c.op).__name__.startswith("Max") else "avg"
    b.pool(c.name, kernel, stride, _padding(cfg, kernel, 1, n), input=c.source, mode=mode)


@rule(
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
)
def _global_pool(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    mode = "max" if "Max" in type(c.op).__name__ else "avg"
    if c.config.get("keepdims"):
        b.global_pool(c.name, input=c.source, mode=mode)
    else:  # a vector per image: what a flatten of the pooled cell gives
        b.linear(c.name, c.graph_shape(c.inputs[0].spec)[1], input=c.source)


# --- padding, cropping, resampling -----------------------------------------------------------------------


def _pairs(value, n: int) -> tuple[tuple[int, int], ...]:
    """Keras' padding/cropping argument (an int, one int per axis, or one pair per axis) as pairs."""
    if isinstance(value, int):
        return ((value, value),) * n
    value = tuple(value)
    if n == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (tuple(value),)  # Conv1D's (before, after)
    return tuple((v, v) if isinstance(v, int) else tuple(v) for v in value)


@rule("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def _zero_pad(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    b.pad(c.name, _pairs(c.config["padding"], c.ndim), input=c.source)


@rule("Cropping1D", "Cropping2D", "Cropping3D")
def _crop(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    b.crop(c.name, _pairs(c.config["cropping"], c.ndim), input=c.source)


#: Keras' interpolation -> the PyTorch mode its torch backend runs (``ops.image.resize``).
RESIZE_MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}


@rule("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsample(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    cfg, n = c.config, c.ndim
    interpolation = cfg.get("interpolation", "nearest")
    if interpolation not in RESIZE_MODES:
        raise Unsupported(f"interpolation {interpolation!r}")
    mode = "nearest" if interpolation == "nearest" else RESIZE_MODES[interpolation]  # nearest: a repeat
    b.upsample(c.name, _ints(cfg["size"], n), mode=mode, input=c.source)


@rule("Resizing")
def _resize(b: GraphBuilder, c: LayerCall) -> None:
    c.check_format()
    cfg = c.config
    if cfg.get("crop_to_aspect_ratio") or cfg.get("pad_to_aspect_ratio"):
        raise Unsupported("resizing to another aspect ratio (crop or pad)")
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in RESIZE_MODES:
        raise Unsupported(f"interpolation {interpolation!r}")
    size_in = c.graph_shape(c.inputs[0].spec)[2:]
    size = (cfg["height"], cfg["width"])
    if cfg.get("antialias") and any(o < i for i, o in zip(size_in, size)):
        raise Unsupported("antialiased downsampling (its filter widens with the scale)")
    b.upsample(c.name, size=size, mode=RESIZE_MODES[interpolation], input=c.source)


# --- merges ------------------------------------------------------------------------------------------------


@rule("Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply", "Concatenate", "CustomScaleLayer")
def _merge(b: GraphBuilder, c: LayerCall) -> None:
    if type(c.op).__name__ == "Concatenate":
        rank = len(c.inputs[0].spec.shape)
        channel = rank - 1 if c.channels_last else 1
        if c.config.get("axis", -1) % rank != channel:
            raise Unsupported(f"concatenation along axis {c.config.get('axis')} (not the channels)")
        op = "concat"
    else:
        op = "mul" if type(c.op).__name__ == "Multiply" else "add"
    names = [s.node for s in c.inputs]
    if len(set(names)) == 1:
        b.pointwise(c.name, op, input=names[0])
    else:
        b.merge(c.name, names, op)


# --- position-wise layers ------------------------------------------------------------------------------

#: Layers that act on each position alone (or are the identity at inference): the RF is unchanged.
POINTWISE = (
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "ThresholdedReLU",
    "BatchNormalization",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "Rescaling",
    "Normalization",
    "Masking",
    "LayerScale",
    "StochasticDepth",
)


@rule(*POINTWISE)
def _pointwise(b: GraphBuilder, c: LayerCall) -> None:
    if type(c.op).__name__ == "Activation" and c.config.get("activation") in ("softmax", "log_softmax"):
        return _over_axes(b, c, -1)
    b.pointwise(c.name, type(c.op).__name__, input=c.source)


def _over_axes(b: GraphBuilder, c: LayerCall, axis) -> None:
    """A layer whose output at a position depends on every position along ``axis``: position-wise when none
    of them is spatial, else every position (the local RF kept)."""
    if c.spatial_axes(axis):
        b.mix(c.name, type(c.op).__name__, input=c.source)
    else:
        b.pointwise(c.name, type(c.op).__name__, input=c.source)


@rule("LayerNormalization", "UnitNormalization", "RMSNormalization", "Softmax")
def _normalisation(b: GraphBuilder, c: LayerCall) -> None:
    _over_axes(b, c, c.config.get("axis", -1))


@rule("GroupNormalization")
def _group_norm(b: GraphBuilder, c: LayerCall) -> None:
    b.mix(c.name, "GroupNormalization", input=c.source)  # statistics over every position of a group


@rule("Dense")
def _dense(b: GraphBuilder, c: LayerCall) -> None:
    units = c.config["units"]
    shape = c.graph_shape(c.inputs[0].spec)
    if len(shape) == 2 + b.ndim and c.channels_last:  # applied to the last axis: the channels of each position
        b.pointwise(c.name, "Dense", input=c.source, channels=units)
    elif len(shape) == 2:
        b.linear(c.name, units, input=c.source)
    else:
        raise Unsupported(f"a dense layer on a {len(shape)}-D tensor")


@rule("Flatten")
def _flatten(b: GraphBuilder, c: LayerCall) -> None:
    b.linear(c.name, None, input=c.source)  # every unit of the vector stands for the whole map


@rule("Reshape")
def _reshape(b: GraphBuilder, c: LayerCall) -> None:
    try:
        b.reshape(c.name, c.graph_shape(c.outputs[0]), input=c.source)
    except ArchitectureError as e:
        raise Unsupported(str(e).split(": ", 1)[-1]) from e


@rule("MultiHeadAttention", "GroupedQueryAttention", "Attention", "AdditiveAttention")
def _attention(b: GraphBuilder, c: LayerCall) -> None:
    query = c.inputs[0]
    if len(c.graph_shape(query.spec)) != b.ndim + 2:
        raise Unsupported("attention over a token sequence (rfkit follows Keras models on their image grid)")
    context = list(dict.fromkeys(s.node for s in c.inputs[1:] if s.node != query.node))
    b.attention(c.name, input=query.node, context=context)


# --- keras.ops operations in a functional graph (x + 3.0, ops.relu(x)...) ------------------------------

#: Elementwise operations of two or more tensors (broadcasting a one-cell map, as a gate does).
ELEMENTWISE_BINARY = {
    "Add": "add",
    "Subtract": "add",
    "Maximum": "add",
    "Minimum": "add",
    "Multiply": "mul",
    "Divide": "mul",
    "TrueDivide": "mul",
    "Power": "mul",
}
#: Elementwise operations of one tensor.
ELEMENTWISE_UNARY = frozenset(
    "Abs Negative Square Sqrt Exp Log Log1p Expm1 Tanh Sin Cos Floor Ceil Round Sign Reciprocal Clip Cast "
    "Relu Relu6 Sigmoid HardSigmoid Silu Swish HardSilu HardSwish Gelu Elu Selu Softplus Softsign LeakyRelu "
    "Mish Celu Glu TanhShrink SoftShrink HardShrink HardTanh LogSigmoid SparsePlus SquarePlus Erf".split()
)


def _op_rule(b: GraphBuilder, c: LayerCall) -> None:
    cls = type(c.op).__name__
    names = list(dict.fromkeys(s.node for s in c.inputs))
    if cls in ELEMENTWISE_BINARY and len(names) > 1:
        b.merge(c.name, names, ELEMENTWISE_BINARY[cls])
    elif (cls in ELEMENTWISE_BINARY or cls in ELEMENTWISE_UNARY) and len(names) == 1:
        b.pointwise(c.name, cls, input=names[0])
    elif cls in ("Softmax", "LogSoftmax"):
        _over_axes(b, c, getattr(c.op, "axis", -1))
    else:
        raise Unsupported("keras.ops operation without an RF rule")


# --- the graph ----------------------------------------------------------------------------------------------


def keras_graph(
    model, input_size: int | Sequence[int] | None = None, *, in_chans: int | None = None, name: str | None = None
) -> RFGraph:
    """The RF graph of a Keras model at ``input_size``, from its layer graph and layer configs.

    Parameters
    ----------
    model : KerasModule or keras.Model
        A functional or ``Sequential`` Keras model (torch backend), or rfkit's wrapper of one.
    input_size : int or tuple, optional
        Spatial input size; default the model's own (its ``Input`` shape), else 224 per axis.
    in_chans : int, optional
        Input channels; default the model's.
    name : str, optional
        The model's name in the graph (default: the wrapper's label).

    Returns
    -------
    RFGraph
        Nodes named after the Keras layers (``g["conv1_conv"]``); the input is ``"input"`` (also under the
        Keras input layer's name), the model output ``""``. ``method`` is ``"keras"``.

    Raises
    ------
    TraceError
        The model has no functional graph (subclassed), or Keras cannot compute its shapes at this size.
    InputTooSmallError
        A feature map shrinks to nothing at this size.

    Examples
    --------
    >>> from rfkit.models.keras_build import import_keras
    >>> keras = import_keras()
    >>> inp = keras.Input((32, 32, 3))
    >>> x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inp)
    >>> x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    >>> g = keras_graph(keras.Model(inp, x))
    >>> g["stem"].size, g["stem"].center, g["pool"].size, g["pool"].stride
    ((3, 3), (1, 1), (7, 7), (4, 4))
    """
    import keras

    km = model if isinstance(model, KerasModule) else KerasModule(model)
    ndim = km.ndim
    size = validate.input_size(input_size if input_size is not None else km.input_size or DEFAULT_SIZE, ndim)
    chans = in_chans or km.in_chans or 3
    b = GraphBuilder(size, name=name or km.label, in_chans=chans)
    keras_shape = (None, *size, chans) if km.channels_last else (None, chans, *size)
    ops: dict[str, str] = {INPUT: "InputLayer"}
    findings: list[UnsupportedNode] = []

    def apply(call: KerasCall):
        symbolic = [a for a in _flat((call.args, call.kwargs)) if isinstance(a, _Sym)]
        try:
            args, kwargs = _specs(call.args), _specs(call.kwargs)
            outputs = _flat(call.op.compute_output_spec(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - Keras refuses the shapes: the graph cannot go on
            raise TraceError(
                f"Keras cannot compute the output of layer {call.name} ({type(call.op).__name__}) at input "
                f"{'x'.join(map(str, size))}: {_first_line(e)}"
            ) from e
        cls = type(call.op).__name__
        layer = LayerCall(call.name, call.op, _config(call.op), symbolic, outputs, km.channels_last, ndim)
        if len(outputs) != 1:
            return _opaque_outputs(b, layer, ops, "a layer with several outputs")
        ops[call.name] = cls
        expected = layer.graph_shape(outputs[0])
        if not symbolic:
            b.opaque(call.name, [], expected, "a layer that reads no tensor of the input", cls)
            return _Sym(call.name, outputs[0])
        fn = RULES.get(cls) if isinstance(call.op, keras.layers.Layer) else _op_rule
        try:
            if fn is None:
                raise Unsupported("no RF rule for this Keras layer")
            fn(b, layer)
        except InputTooSmallError:
            raise
        except (Unsupported, ArchitectureError) as e:
            why = str(e).split(": ", 1)[-1] if isinstance(e, ArchitectureError) else str(e)
            b.opaque(call.name, [s.node for s in symbolic], expected, f"{cls}: {why}", cls)
        got = b.shape(call.name)
        if tuple(got) != expected:
            findings.append(
                UnsupportedNode(
                    call.name, cls, f"{cls} {call.name}: rfkit's output shape {got} is not Keras' {expected}"
                )
            )
        return _Sym(call.name, outputs[0])

    outs = walk(km.keras_model, [_Sym(INPUT, keras.KerasTensor(keras_shape))], apply)
    return _finish(b, km, ops, findings, outs)


def _opaque_outputs(b: GraphBuilder, layer: LayerCall, ops: dict, why: str) -> list[_Sym]:
    out = []
    for i, spec in enumerate(layer.outputs):
        node = f"{layer.name}[{i}]"
        ops[node] = type(layer.op).__name__
        b.opaque(node, [s.node for s in layer.inputs], layer.graph_shape(spec), f"{ops[node]}: {why}", ops[node])
        out.append(_Sym(node, spec))
    return out


def _finish(b: GraphBuilder, km: KerasModule, ops: dict, findings: list, outs: list) -> RFGraph:
    """The builder's graph with Keras' class names as ops, the model output as ``""``, the Keras input
    layer's name for the input, and the nodes of ``findings`` and everything after them unknown."""
    g = b.build()
    flagged = {f.node for f in findings}
    after = set(flagged)
    if flagged:
        edges = nx.DiGraph([(src, r.name) for r in g.records.values() for src in r.inputs])
        for node in flagged:
            after |= nx.descendants(edges, node) if node in edges else set()
    records = []
    for r in g.records.values():
        info = dataclasses.replace(r.info, unknown=True) if r.name in after else r.info
        records.append(dataclasses.replace(r, op=ops.get(r.name, r.op), info=info))
    modules = dict(g.module_outputs)
    keras_input = input_name(km.keras_model)
    if keras_input:
        modules.setdefault(keras_input, INPUT)
    if len(outs) == 1 and isinstance(outs[0], _Sym):
        modules[""] = outs[0].node
    incomplete = "; ".join(f.reason for f in findings) or None
    return RFGraph(
        records,
        modules,
        [*b.unsupported_nodes, *findings],
        g.input_size,
        g.model_name,
        g.in_chans,
        method="keras",
        incomplete=incomplete,
    )


def trace_keras(model, input_size=None, *, in_chans=None, registry=None, trust=False, spec=None):
    """The keras source's tracer (:attr:`rfkit.models.sources.ModelSource.tracer`), called like
    :func:`rfkit.graph.tracing.trace_fx`: ``model`` is a ``keras:`` spec (built here, for ``input_size``), a
    :class:`~rfkit.models.keras_module.KerasModule` or a Keras model. ``registry`` (torch op rules) does not
    apply: Keras layers have their rules here.

    Returns
    -------
    (RFGraph, None)
        No torch.fx trace: graphs at other sizes are read from Keras again.
    """
    from rfkit.models.spec import build_model, parse_spec

    name = None
    if isinstance(model, str):
        spec = parse_spec(model)
        sized = {"img_size": validate.input_size(input_size, fill=2)} if input_size is not None else {}
        model = build_model(spec, trust=trust, device="cpu", **sized)
    if spec is not None and isinstance(model, KerasModule):
        from rfkit.models.sources import get_source

        name = get_source(spec.source).label(spec)
    return keras_graph(model, input_size, in_chans=in_chans, name=name), None


def _config(op) -> dict:
    try:
        return dict(op.get_config())
    except Exception:  # noqa: BLE001 - an operation without a config (keras.ops): its attributes are read
        return {}


def _specs(structure):
    from keras import tree

    return tree.map_structure(lambda v: v.spec if isinstance(v, _Sym) else v, structure)


def _flat(structure) -> list:
    from keras import tree

    return list(tree.flatten(structure))


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(e).__name__
