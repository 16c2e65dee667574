"""``rfkit.trace``: model (spec or module) → :class:`RFGraph`."""

from __future__ import annotations

import copy
import importlib
import os
import warnings
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_map

import rfkit.validate as validate
from rfkit.errors import ArgumentError, InputTooSmallError, RuleFailedWarning, TraceError
from rfkit.graph import handlers  # noqa: F401 - fills the default registry
from rfkit.graph.check import Finding, check_graph, downstream, reference_forward
from rfkit.graph.hooked import RealRun, hooked_graph
from rfkit.graph.info import RFInfo
from rfkit.graph.propagate import _TOO_SMALL, RFPropagator, UnsupportedNode, op_key, rule_failures
from rfkit.graph.registry import DEFAULT_REGISTRY, Registry
from rfkit.graph.rfgraph import NodeRecord, RFGraph
from rfkit.graph.state import RFState
from rfkit.graph.tracer import element_name, record_model, trace_module
from rfkit.models.keras_module import KerasModule
from rfkit.models.onnx_file import is_onnx_proto
from rfkit.models.sources import ModelSource, get_source, owner_of
from rfkit.models.spec import ModelSpec, build_model, default_input, input_dtype, meta_copy, parse_spec
from rfkit.models.transformers_view import as_measured

DEFAULT_SIZE = 224  # per axis, for models that do not say


def spatial_rank(model: nn.Module) -> int | None:
    """Spatial axes of the model's input, from its first convolution (None without one)."""
    if isinstance(model, KerasModule):
        return model.ndim
    for m in model.modules():
        for cls, n in ((nn.Conv1d, 1), (nn.Conv2d, 2), (nn.Conv3d, 3)):
            if isinstance(m, cls):
                return n
    return None


def trace(
    model: str | nn.Module,
    input_size: int | tuple[int, ...] | None = None,
    *,
    in_chans: int | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    trust: bool = False,
) -> RFGraph:
    """Trace a model and compute the receptive field of every node.

    Parameters
    ----------
    model : str, nn.Module or onnx.ModelProto
        A model spec (timm name, ``torchvision:NAME``, ``FILE.py:FACTORY``; built on the meta device,
        without weights), a module (copied to the meta device; the original is not touched), or an ONNX model
        (``PATH.onnx`` or a ``ModelProto``: its graph is read from the file, :mod:`rfkit.graph.onnx_graph`).
    input_size : int or tuple, optional
        Spatial input size, ``(h, w)`` for images (an int means square). Default: the model's own
        (timm's pretrained config, torchvision's weights), else 224×224.
    in_chans : int, optional
        Input channels; default from the model (first conv), else 3.
    registry : Registry
        RF rules to use.
    trust : bool
        Build a spec whose file runs code: ``FILE.py:FACTORY`` (the file is imported), an ``ultralytics:``
        ``.pt`` checkpoint, or a yaml rfkit did not ship that goes beyond torch.nn activations and
        ultralytics layers; refused otherwise. A module needs no trust.

    Returns
    -------
    RFGraph

    Raises
    ------
    ModelNotFoundError, ModelBuildError
        The spec names no model, or building it failed.
    UntrustedFileError
        The spec's file can run code and ``trust`` is not set.
    TraceError
        torch.fx cannot trace the model, or running a node failed (the message names it).
    InputTooSmallError
        A feature map shrinks to nothing at this input size, or the size is not positive.
    InputSizeError, ArgumentError
        ``input_size`` is not an int or a tuple of ints, ``in_chans`` not a positive int, ``model`` neither
        a spec nor a module.

    Examples
    --------
    >>> import rfkit
    >>> g = rfkit.trace("torchvision:resnet50")
    >>> g["layer4"].size, g["layer4"].stride, g["layer4"].center
    ((427, 427), (32, 32), (0, 0))
    """
    return trace_fx(model, input_size, in_chans=in_chans, registry=registry, trust=trust)[0]


@dataclass(frozen=True)
class FxModel:
    """A model traced by torch.fx on the meta device: its RF graph at any input size without tracing it
    again, and the same graph bound to a live copy of the model (to capture the output of any node).

    Attributes
    ----------
    gm : torch.fx.GraphModule
        The traced model, parameters on the meta device.
    module_outputs : dict
        Qualified module name -> the node holding its output.
    name : str
        The model's display name.
    in_chans : int
    ndim : int
        Spatial axes of the input.
    registry : Registry
        The RF rules the graph was computed with.
    """

    gm: fx.GraphModule
    module_outputs: dict[str, str]
    name: str
    in_chans: int
    ndim: int
    registry: Registry = DEFAULT_REGISTRY
    source: str | nn.Module | None = None
    #: where the graph departs from the model (:mod:`rfkit.graph.check`), at any input size
    findings: tuple[Finding, ...] = ()
    trust: bool = False

    def graph(self, input_size) -> RFGraph:
        """The RF graph at another input size (an int or one size per spatial axis).

        Raises
        ------
        InputTooSmallError, TraceError
            A feature map shrinks to nothing, or the graph cannot run at this size.
        """
        size = validate.input_size(input_size, self.ndim)
        x = torch.empty((2, self.in_chans, *size), device="meta")
        result = _propagate(self.gm, self.registry, x, RealRun(self.source, tuple(x.shape), trust=self.trust))
        return _build_graph(
            self.gm, result, self.module_outputs, size, self.name, self.in_chans, "torch.fx", self.findings
        )

    def bind(self, model: nn.Module) -> fx.GraphModule:
        """The traced graph running ``model`` (a live copy of the traced model: same module names), sharing
        its parameters; traced again only if the graph refers to an attribute ``model`` does not have."""
        try:
            return fx.GraphModule(model, copy.deepcopy(self.gm.graph), type(model).__name__)
        except AttributeError:
            return trace_module(model, self.registry)[0]


def trace_fx(
    model: str | nn.Module,
    input_size: int | tuple[int, ...] | None = None,
    *,
    in_chans: int | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    trust: bool = False,
    spec: ModelSpec | None = None,
    copy: bool = True,
    last_resort: bool = True,
) -> tuple[RFGraph, FxModel | None]:
    """:func:`trace`, also returning the torch.fx trace it was computed from (:class:`FxModel`; None for a
    model recorded with ``make_fx``, whose ATen graph holds one input size and no module structure).

    ``spec`` is the spec a module ``model`` was built from: a source with its own tracer
    (:attr:`rfkit.models.sources.ModelSource.tracer`) then traces it its own way, as it does a spec string
    (``PATH.onnx`` and an ``onnx.ModelProto``: :func:`rfkit.graph.onnx_graph.trace_onnx`).

    ``copy=False`` traces the module ``model`` itself, which must already be on the meta device (one the caller
    built for this, e.g. with :func:`~rfkit.models.spec.build_model`: copying a large model costs more than
    tracing it). ``last_resort=False`` raises :class:`TraceError` for a model neither torch.fx nor ``make_fx``
    can trace, instead of running it for real with hooks (a graph of unknown RF, the model's weights in
    memory: the time of a real forward pass at this size)."""
    if is_onnx_proto(model):  # an ONNX model in memory: the ONNX source's tracer reads it as it reads its files
        return source_tracer(get_source("onnx"))(model, input_size, in_chans=in_chans, registry=registry)
    model = os.fspath(model) if isinstance(model, os.PathLike) else model  # a path is a spec (PATH.onnx)
    validate.model(model)
    in_chans = validate.count(in_chans, "in_chans", optional=True)
    if input_size is not None:
        validate.input_size(input_size)  # type and sign now, before building; axes once the model is known
    spec = parse_spec(model) if isinstance(model, str) else spec
    source = get_source(spec.source) if spec is not None else owner_of(model)  # owner: a Keras model object
    if source is not None and source.tracer:  # a source that makes its graph its own way, not with torch.fx
        trace_source = source_tracer(source)
        return trace_source(model, input_size, in_chans=in_chans, registry=registry, trust=trust, spec=spec)
    if isinstance(model, str):
        name = spec.display_name
        sized = input_size is not None and source.builds_for_size  # ViT, Swin, ...: built for the size asked for
        module = build_model(spec, trust=trust, **(source.size_kwargs(input_size) if sized else {}))
    elif copy:
        model = as_measured(model)  # a transformers model: the image tensor in, one tensor out
        name = type(model).__name__
        module = meta_copy(model).eval()
        spec = None  # a module's own config and first conv say its input
    else:
        if any(not t.is_meta for t in (*model.parameters(), *model.buffers())):
            raise ArgumentError("trace_fx(copy=False) takes a model on the meta device; pass copy=True")
        name, module = type(model).__name__, model.eval()
        spec = None

    default_size, default_chans = default_input(module, spec)
    rank = spatial_rank(module)
    if input_size is None:
        input_size = default_size or (DEFAULT_SIZE,) * (rank or 2)
    size = validate.input_size(input_size, fill=rank or 2)
    chans = in_chans or default_chans or 3

    x = torch.empty((2, chans, *size), device="meta", dtype=input_dtype(module))
    try:
        gm, module_outputs = trace_module(module, registry)
        result = _propagate(gm, registry, x, RealRun(model, tuple(x.shape), trust=trust))
        method = "torch.fx"
    except InputTooSmallError as e:
        smallest = smallest_square_input(gm, registry, chans, len(size), start=max(size) + 1)
        hint = f" The smallest square input it takes is {'×'.join([str(smallest)] * len(size))}." if smallest else ""
        raise InputTooSmallError(f"{e}{hint}") from e
    except TraceError as fx_error:  # shape-dependent control flow, untraceable inputs...: record it instead
        try:
            gm, module_outputs = record_model(module, x)
        except TraceError as e:
            if _TOO_SMALL.search(str(e)):
                raise InputTooSmallError(f"input too small for this network: {e}") from e
            why = f"{fx_error} (recording it with make_fx failed too: {e})"
            if not last_resort:
                raise TraceError(why) from e
            try:  # the last resort: every module's output from a real forward pass, RF unknown
                return hooked_graph(RealRun(model, tuple(x.shape), trust=trust), size, name, chans, why), None
            except TraceError as run_error:
                raise TraceError(f"{why}; {run_error}") from e
        result = _propagate(gm, registry, x)
        method = "make_fx"
    findings = tuple(check_graph(gm, result.states, module_outputs, reference_forward(module, x)))
    g = _build_graph(gm, result, module_outputs, size, name, chans, method, findings)
    fxm = (
        FxModel(gm, dict(module_outputs), name, chans, len(size), registry, model, findings, trust)
        if method == "torch.fx"
        else None
    )
    return g, fxm


def source_tracer(source: ModelSource):
    """The function named by ``source.tracer`` (``"package.module:function"``), imported now.

    Raises
    ------
    TraceError
        It cannot be imported or is not there.
    """
    module_name, _, function = source.tracer.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), function, None)
    except ImportError as e:
        raise TraceError(f"the {source.name} source's tracer {source.tracer!r} cannot be imported: {e}") from e
    if not callable(found):
        raise TraceError(f"the {source.name} source's tracer {source.tracer!r} is not a function")
    return found


def _propagate(gm: fx.GraphModule, registry: Registry, x: torch.Tensor, real_outputs=None):
    return RFPropagator(gm, registry, real_outputs).propagate(x, x.dim() - 2)


def smallest_square_input(
    gm: fx.GraphModule, registry: Registry, chans: int, ndim: int, start: int = 1, limit: int = 4096
) -> int | None:
    """Smallest n (≥ ``start``) such that an n×n input runs through ``gm``: doubling, then bisection
    (assumes that every size above the smallest works, as it does for conv/pool stacks)."""

    def fits(n: int) -> bool:
        try:
            with warnings.catch_warnings():  # a failing rule was reported at the size asked for
                warnings.simplefilter("ignore", RuleFailedWarning)
                _propagate(gm, registry, torch.empty((2, chans) + (n,) * ndim, device="meta"))
            return True
        except InputTooSmallError:
            return False
        except Exception:  # noqa: BLE001 - other sizes may fail for other reasons: no hint then
            return False

    hi = start
    while not fits(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = max(start, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return hi


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    return last[0] if isinstance(last, tuple) else str(last)


def _build_graph(
    gm: fx.GraphModule,
    result,
    module_outputs: dict[str, str],
    size,
    name: str,
    chans: int,
    method: str,
    findings: tuple[Finding, ...] = (),
) -> RFGraph:
    """Keep the nodes whose output is one tensor reached by the input; connect them through the rest. The
    nodes of ``findings`` and everything after them get an unknown RF (kept even where the input does not
    reach them: the model's output, at least, is then in the graph)."""
    kept: dict[str, NodeRecord] = {}
    flagged = {f.node for f in findings}
    after = downstream(gm, flagged)

    def sources(n: fx.Node, seen: set) -> list[str]:
        out = []
        for a in n.all_input_nodes:
            if a.name in kept:
                out.append(a.name)
            elif a.name not in seen:
                seen.add(a.name)
                out.extend(sources(a, seen))
        return list(dict.fromkeys(out))

    module_outputs = dict(module_outputs)
    for n in gm.graph.nodes:
        state = result.states.get(n.name)
        if n.name in flagged and state is None and isinstance(result.shapes.get(n.name), tuple):
            state = RFState(axes=None, layout=None, unknown=True)
        elif n.name in after:
            state = tree_map(lambda s: s.replace(unknown=True) if isinstance(s, RFState) else s, state)
        if not isinstance(state, RFState):
            if n.op == "call_module" and n.name in result.element_shapes:
                _add_elements(gm, n, state, result.element_shapes[n.name], kept, module_outputs, len(size))
            continue
        module = gm.get_submodule(n.target) if n.op == "call_module" else None
        op = "input" if n.op == "placeholder" else op_key(n, module)
        kept[n.name] = NodeRecord(
            name=n.name,
            op=op,
            kind=n.op,
            module=n.target if n.op == "call_module" else None,
            scope=_scope(n),
            inputs=tuple(sources(n, set())),
            info=RFInfo.from_state(state, len(size), result.shapes.get(n.name)),
            layout=state.layout,
        )
    untraced = gm.meta.get("untraced", {})
    unsupported = [*result.unsupported, *(UnsupportedNode(f.node, f.op, f.reason) for f in findings)]
    reasons = [f.reason for f in findings] + [r for r in [rule_failures(result.unsupported)] if r]
    incomplete = "; ".join(reasons) or None
    return RFGraph(list(kept.values()), module_outputs, unsupported, size, name, chans, method, untraced, incomplete)


def _add_elements(gm, n: fx.Node, states, shapes: dict, kept: dict, module_outputs: dict, naxes: int) -> None:
    """Records for the tensors of a tuple, list or dict output of a module kept whole (a leaf: torch.fx did
    not see its elements), one level deep: node ``<node>[k]`` is module ``<module>[k]``, so that
    ``g["model.23[0]"]`` (``23-0``) finds it and its output can be caught with a forward hook."""
    module = gm.get_submodule(n.target)
    inputs = tuple(a.name for a in n.all_input_nodes if a.name in kept)
    for key, shape in shapes.items():
        name = element_name(n.target, key)
        if name in module_outputs:  # the tracer saw this element (a traced module's tuple)
            continue
        try:
            state = states[key]
        except (KeyError, IndexError, TypeError):
            state = None
        if not isinstance(state, RFState):
            continue
        node = element_name(n.name, key)
        kept[node] = NodeRecord(
            name=node,
            op=op_key(n, module),
            kind=n.op,
            module=name,
            scope=_scope(n),
            inputs=inputs,
            info=RFInfo.from_state(state, naxes, shape),
            layout=state.layout,
        )
        module_outputs[name] = node
