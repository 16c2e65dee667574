"""``rfkit.trace("model.onnx")``: the RF graph read straight from an ONNX graph, no conversion to PyTorch.

Each ONNX node that the input reaches is written into a torch.fx graph on the meta device as the torch op of
the same geometry (:mod:`rfkit.graph.onnx_ops`: Conv → ``F.conv2d`` with its strides, dilations, groups and
pads, an ``F.pad`` first where the pads are asymmetric; MaxPool → ``F.max_pool2d``; Resize →
``F.interpolate``; Flatten → ``torch.reshape``; ...), and rfkit's one RF pass runs over that graph with the
rules it uses for PyTorch models. Values that do not depend on the input (weights, Constant nodes, shapes and
what is computed from them) are folded with ONNX's reference evaluator; ``Shape`` of a feature map is read
from its meta tensor.

Every output's shape is checked against ONNX's own shape inference: where rfkit's translation disagrees (or an
op has no translation) the node is kept as an opaque op of the inferred shape, listed as unsupported, and
every RF after it is unknown — never a silently wrong graph.

Node names: the graph shows each ONNX node under the name of the module that onnx2torch makes of it (its
ONNX name with ``.`` → ``/``, the leading ``/`` dropped: ``layer1/layer1/0/conv1/Conv``), so the same name
measures its ERF on the converted model; the ONNX node name (``/layer1/layer1.0/conv1/Conv``) and its output
names (``/layer1/layer1.0/conv1/Conv_output_0``) are accepted too (:attr:`RFGraph.aliases`).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_map

from rfkit.errors import ModelBuildError
from rfkit.graph import handlers  # noqa: F401 - fills the default registry
from rfkit.graph.onnx_ops import OPS, Dyn, NotTranslated, OnnxNode, OpaqueOp
from rfkit.graph.propagate import RFPropagator, UnsupportedNode
from rfkit.graph.registry import DEFAULT_REGISTRY, Registry
from rfkit.graph.rfgraph import RFGraph
from rfkit.graph.tracing import _build_graph
from rfkit.models.onnx_file import image_input, inferred_shapes, load_onnx, np_dtype, onnx_display_name, torch_dtype

#: What an unknown value is (the output of an op whose shape nobody knows): everything after it is lost.
LOST = object()


def torch_module_names(proto) -> dict[str, str]:
    """ONNX output name -> the name of the module onnx2torch makes of its node (``name`` with ``.`` → ``/``,
    the leading ``/`` dropped, the op type for an unnamed node, ``_1``, ``_2``... for repeats), with
    ``[k]`` for output ``k`` of a node with several outputs.

    >>> import onnx.helper as h
    >>> g = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="/layer1/layer1.0/relu/Relu"),
    ...                   h.make_node("Relu", ["y"], ["z"])], "g", [], [])
    >>> torch_module_names(h.make_model(g))
    {'y': 'layer1/layer1/0/relu/Relu', 'z': 'Relu'}
    """
    names, counts = {}, {}
    for node in proto.graph.node:
        name = (f"{node.domain}/" + (node.name.replace(".", "/") or node.op_type)).lstrip("/")
        k = counts.setdefault(name, 0)
        counts[name] += 1
        unique = name + (f"_{k}" if k else "")
        outputs = [o for o in node.output]
        for i, out in enumerate(outputs):
            if out:
                names[out] = unique if len(outputs) == 1 else f"{unique}[{i}]"
    return names


@dataclass
class _Origin:
    """The ONNX node an fx node was written for."""

    node: str  # the ONNX node's name (its op type when unnamed)
    op: str  # onnx.<OpType> (onnx.<domain>.<OpType> outside the default domain)
    reason: str | None = None  # why it is opaque


class OnnxGraphBuilder:
    """Writes an ONNX graph into a torch.fx graph on the meta device (see the module docstring).

    Parameters
    ----------
    proto : onnx.ModelProto
    input_shape : tuple of int
        The concrete input shape (N, C, spatial...).
    module_names : dict
        ONNX output name -> module name (:func:`torch_module_names`), used to name the fx nodes.
    shown : str
        The model's name in messages.
    """

    def __init__(self, proto, input_shape: tuple[int, ...], module_names: dict[str, str], shown: str) -> None:
        self.proto, self.input_shape, self.module_names, self.shown = proto, tuple(input_shape), module_names, shown
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.values: dict = {}
        self.origins: dict[str, _Origin] = {}  # fx node name -> the ONNX node it was written for
        self.outputs: dict[str, str] = {}  # ONNX value name -> fx node name
        self.lost: list[str] = []  # ONNX nodes after an op of unknown output shape: left out
        self.opsets = {o.domain or "": o.version for o in proto.opset_import}
        self._init = {t.name: t for t in proto.graph.initializer}
        self._consts: dict[int, tuple] = {}
        self._used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
        self.inferred = inferred_shapes(proto, self.input_shape)

    @property
    def expected_types(self) -> dict[str, torch.dtype]:
        return self.inferred.dtypes

    # --- values -----------------------------------------------------------------------------------------
    def value(self, name: str):
        """A :class:`Dyn` (depends on the input), an ``np.ndarray`` (a constant), None (an omitted optional
        input) or :data:`LOST`."""
        if not name:
            return None
        if name not in self.values and name in self._init:
            from onnx import numpy_helper

            self.values[name] = numpy_helper.to_array(self._init[name])
        if name not in self.values:
            raise ModelBuildError(
                f"{self.shown}: value {name!r} is used before a node makes it (the graph is not sorted)"
            )
        return self.values[name]

    def const_node(self, array: np.ndarray) -> fx.Node:
        """A get_attr node of ``array``'s shape and dtype on the meta device (its values are not needed)."""
        key = id(array)
        if key not in self._consts:
            name = f"onnx_const_{len(self._consts)}"
            self.root.register_buffer(name, torch.empty(array.shape, dtype=torch_dtype(array.dtype), device="meta"))
            self._consts[key] = (self.graph.get_attr(name), array)  # the array kept alive: its id stays unique
        return self._consts[key][0]

    def call(self, fn, *args, **kwargs) -> Dyn:
        """An fx node calling ``fn`` (a function, or a tensor method given by name) on ``args``: Dyn values
        become their nodes, arrays meta constants; the meta output is computed at once."""

        def node_of(v):
            if isinstance(v, Dyn):
                return v.node
            return self.const_node(v) if isinstance(v, np.ndarray) else v

        def meta_of(v):
            if isinstance(v, Dyn):
                return v.meta
            if isinstance(v, np.ndarray):
                return torch.empty(v.shape, dtype=torch_dtype(v.dtype), device="meta")
            return v

        def is_leaf(v):
            return isinstance(v, (Dyn, np.ndarray))

        nargs, nkwargs = tree_map(node_of, (args, kwargs), is_leaf=is_leaf)
        margs, mkwargs = tree_map(meta_of, (args, kwargs), is_leaf=is_leaf)
        if isinstance(fn, str):
            meta = getattr(margs[0], fn)(*margs[1:], **mkwargs)
            node = self.graph.call_method(fn, tuple(nargs), nkwargs)
        else:
            meta = fn(*margs, **mkwargs)
            node = self.graph.call_function(fn, tuple(nargs), nkwargs)
        return Dyn(node, meta)

    # --- the walk ---------------------------------------------------------------------------------------
    def build(self) -> fx.GraphModule:
        """The fx graph of every node the input reaches."""
        inp = image_input(self.proto, self.shown)
        x = torch.empty(self.input_shape, dtype=torch_dtype(np_dtype(inp.elem_type)), device="meta")
        value = Dyn(self.graph.placeholder(identifier(inp.name)), x)
        if inp.channels_last:  # rfkit's input is channels-first: hand the graph what the file takes
            rank = x.dim()
            value = self.call(torch.permute, value, [0, *range(2, rank), 1])
            value.node.name = self.graph._graph_namespace.create_name("to_channels_last", None)
            self.origins[value.node.name] = _Origin("input", "onnx.input_channels_last")
        self.values[inp.name] = value
        for node in self.proto.graph.node:
            self._node(node)
        outs = [self.values[o.name].node for o in self.proto.graph.output if isinstance(self.values.get(o.name), Dyn)]
        self.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
        return fx.GraphModule(self.root, self.graph, class_name="OnnxGraph")

    def _node(self, node) -> None:
        inputs = [self.value(i) for i in node.input]
        if any(v is LOST for v in inputs):
            self.lost.append(node.name or node.op_type)
            return self._set(node, [LOST] * len(node.output))
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx") and isinstance(inputs[0], Dyn):
            return self._set(node, [_shape_of(node, inputs[0].meta)])
        if not any(isinstance(v, Dyn) for v in inputs):
            return self._set(node, self._fold(node, inputs))
        origin = _Origin(node.name or node.op_type, op_label(node))
        start = len(self.graph.nodes)
        try:
            translate = OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if translate is None:
                raise NotTranslated(f"no RF rule for ONNX op {origin.op[5:]}")
            outs = translate(OnnxNode(self, node, inputs, self.opsets.get(node.domain or "", 1)))
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            outs += [None] * (len(node.output) - len(outs))
            self._check_shapes(node, outs)
        except Exception as e:  # noqa: BLE001 - no exact translation, or one that breaks: opaque, reported
            self._erase_from(start)
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            origin.reason = (
                why if isinstance(e, NotTranslated) else f"rfkit's translation failed: {type(e).__name__}: {why}"
            )
            outs = self._opaque(node, inputs, origin)
        for n in list(self.graph.nodes)[start:]:
            self.origins[n.name] = origin
        for out_name, v in zip(node.output, outs):
            if isinstance(v, Dyn) and out_name:
                self._rename(v.node, self.module_names.get(out_name, out_name))
                self.outputs[out_name] = v.node.name
        self._set(node, outs)

    def _rename(self, n: fx.Node, name: str) -> None:
        old = n.name
        n.name = self.graph._graph_namespace.create_name(identifier(name), None)
        if old in self.origins:
            self.origins[n.name] = self.origins.pop(old)

    def _set(self, node, outs) -> None:
        for name, v in zip(node.output, outs):
            if name:
                self.values[name] = v

    def _erase_from(self, start: int) -> None:
        for n in reversed(list(self.graph.nodes)[start:]):
            self.graph.erase_node(n)

    def _check_shapes(self, node, outs) -> None:
        for name, v in zip(node.output, outs):
            want = self.inferred.shapes.get(name)
            if isinstance(v, Dyn) and want is not None and tuple(v.meta.shape) != want:
                raise NotTranslated(
                    f"rfkit's translation gives shape {tuple(v.meta.shape)} where ONNX's shape inference gives {want}"
                )
            if v is None and name in self._used:
                raise NotTranslated(f"output {name!r} has no translation")

    def _opaque(self, node, inputs, origin: _Origin) -> list:
        """An op whose RF is unknown, with ONNX's inferred output shapes (LOST where it has none)."""
        shapes = [self.inferred.shapes.get(name) for name in node.output]
        if any(s is None for s, name in zip(shapes, node.output) if name in self._used):
            return [LOST] * len(node.output)
        shapes = [s if s is not None else (0,) for s in shapes]
        dtypes = [self.inferred.dtypes.get(name, torch.float32) for name in node.output]
        fn = OpaqueOp(origin.op[5:], tuple(shapes), tuple(dtypes))
        out = self.call(fn, *[v for v in inputs if isinstance(v, Dyn)])
        if len(shapes) == 1:
            return [out]
        return [self.call(operator.getitem, out, i) for i in range(len(shapes))]

    def _fold(self, node, inputs) -> list:
        """Outputs of a node whose inputs are all constant, from ONNX's reference evaluator (LOST where it
        cannot run it: a custom op)."""
        from onnx.reference import ReferenceEvaluator

        try:
            run = ReferenceEvaluator(node, opsets=dict(self.opsets))
            outs = run.run(None, {name: v for name, v in zip(node.input, inputs) if name})
        except Exception:  # noqa: BLE001 - cannot fold: whatever depends on it is unknown
            return [LOST] * len(node.output)
        return [np.asarray(o) if o is not None else None for o in outs]


def _shape_of(node, meta: torch.Tensor) -> np.ndarray:
    shape = np.array(meta.shape, dtype=np.int64)
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    return shape[slice(attrs.get("start", 0), attrs.get("end", len(shape)))]


def op_label(node) -> str:
    """``onnx.Conv``; ``onnx.<domain>.<op>`` outside the default domain."""
    return f"onnx.{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else f"onnx.{node.op_type}"


def identifier(name: str) -> str:
    """A Python identifier from an ONNX name (fx node names must be one).

    >>> identifier("/layer1/layer1.0/conv1/Conv_output_0")
    'layer1_layer1_0_conv1_Conv_output_0'
    """
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_") or "v"
    return name if not name[0].isdigit() else f"_{name}"


def trace_onnx(
    model,
    input_size=None,
    *,
    in_chans: int | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    module_names: dict[str, str] | None = None,
    name: str | None = None,
) -> RFGraph:
    """The RF graph of an ONNX model, read from its graph (see the module docstring).

    Parameters
    ----------
    model : str, path or onnx.ModelProto
        An ``.onnx`` file or a loaded model.
    input_size : int or tuple, optional
        Spatial input size, for a model exported with dynamic height and width (default 224); a model whose
        file fixes the size is analysed at that size.
    in_chans : int, optional
        Input channels, where the file leaves them open.
    registry : Registry
        RF rules to use.
    module_names : dict, optional
        ONNX output name -> module name in the PyTorch model converted from it (default: onnx2torch's names,
        :func:`torch_module_names`).
    name : str, optional
        The model's name in the graph and in messages (default: its file name, or its graph's name).

    Returns
    -------
    RFGraph
        ``method`` is ``"onnx"``; ops are named ``onnx.Conv``, ``onnx.MaxPool``...; ONNX node and output
        names are :attr:`~rfkit.graph.rfgraph.RFGraph.aliases` of the nodes.

    Raises
    ------
    MissingExtraError
        onnx is not installed.
    ModelNotFoundError, ModelBuildError
        No such file, not an ONNX model, external data outside the model's folder, no single image input.
    InputSizeError
        An input size other than the one the file fixes.
    InputTooSmallError
        A feature map shrinks to nothing.

    Examples
    --------
    >>> import onnx, onnx.helper as h
    >>> x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])
    >>> w = h.make_tensor("w", onnx.TensorProto.FLOAT, [8, 3, 3, 3], [0.0] * 216)
    >>> conv = h.make_node("Conv", ["x", "w"], ["y"], name="stem.conv", strides=[2, 2], pads=[1, 1, 1, 1])
    >>> g = trace_onnx(h.make_model(h.make_graph([conv], "net", [x], [], [w])))
    >>> g["stem/conv"].size, g["stem/conv"].stride, g["stem.conv"].center, g.record("y").op
    ((3, 3), (2, 2), (0, 0), 'onnx.Conv')
    """
    proto = load_onnx(model)
    shown = name or onnx_display_name(model)
    shape = image_input(proto, shown).concrete(input_size, in_chans, shown)
    names = dict(module_names) if module_names is not None else torch_module_names(proto)
    builder = OnnxGraphBuilder(proto, shape, names, shown)
    gm = builder.build()
    return _rf_graph(gm, builder, shape, registry)


def _rf_graph(gm: fx.GraphModule, builder: OnnxGraphBuilder, shape, registry: Registry) -> RFGraph:
    """Run the RF pass over ``gm`` and name its nodes as the ONNX model does."""
    meta = torch.empty(shape, device="meta", dtype=builder.values[image_input(builder.proto).name].meta.dtype)
    result = RFPropagator(gm, registry).propagate(meta, len(shape) - 2)
    modules = {builder.module_names.get(out, out): node for out, node in builder.outputs.items()}
    outputs = [o.name for o in builder.proto.graph.output if o.name in builder.outputs]
    if len(outputs) == 1:
        modules[""] = builder.outputs[outputs[0]]
    g = _build_graph(gm, result, modules, shape[2:], builder.shown, shape[1], "onnx")
    module_of = {node: m for m, node in modules.items() if m}
    records = []
    for r in g.records.values():
        origin = builder.origins.get(r.name)
        if origin is not None:
            r = replace(r, op=origin.op, module=module_of.get(r.name), scope=origin.node)
        records.append(r)
    unsupported = []
    for u in g._unsupported_nodes:
        origin = builder.origins.get(u.node)
        if origin is not None:
            u = UnsupportedNode(module_of.get(u.node, u.node), origin.op, origin.reason or u.reason)
        unsupported.append(u)
    incomplete = None
    if builder.lost:
        incomplete = (
            f"{len(builder.lost)} ONNX node(s) follow an op whose output shape ONNX cannot infer and are left out "
            f"(first: {builder.lost[0]})"
        )
    out = RFGraph(records, modules, unsupported, shape[2:], builder.shown, shape[1], "onnx", {}, incomplete)
    out.aliases = _aliases(builder, modules)
    return out


def _aliases(builder: OnnxGraphBuilder, modules: dict[str, str]) -> dict[str, str]:
    """ONNX node names and output names -> module names of the graph."""
    aliases = {}
    for node in builder.proto.graph.node:
        outs = [o for o in node.output if o in builder.outputs]
        for o in outs:
            module = builder.module_names.get(o)
            if module in modules and o != module:
                aliases[o] = module
        if node.name and outs and node.name not in modules:
            module = builder.module_names.get(outs[0])
            if module in modules:
                aliases[node.name] = module
    return aliases


def trace_onnx_source(
    model,
    input_size=None,
    *,
    in_chans: int | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    trust: bool = False,
    spec=None,
) -> tuple[RFGraph, None]:
    """The ONNX source's tracer (:attr:`rfkit.models.sources.ModelSource.tracer`), called like
    :func:`rfkit.graph.tracing.trace_fx`: the graph of ``spec``'s file (or of ``model``, an ``onnx.ModelProto``),
    named after the modules of ``model`` where it is the converted module (its ``onnx_module_names``). No
    torch.fx trace comes with it (None)."""
    names = getattr(model, "onnx_module_names", None) if isinstance(model, nn.Module) else None
    source = spec.path if spec is not None else model
    return trace_onnx(source, input_size, in_chans=in_chans, registry=registry, module_names=names), None
