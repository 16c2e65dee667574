"""The RF propagation pass: an ``fx.Interpreter`` that runs the traced graph on meta tensors (shapes
without memory) and computes each node's :class:`RFState` with the registry's handlers, in the manner of
torch's ``ShapeProp``."""

from __future__ import annotations

import operator
import re
import types
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from rfkit.errors import InputTooSmallError, RFKitError, RuleFailedWarning, TraceError
from rfkit.graph import layout as lay
from rfkit.graph.context import OpContext, UnsupportedOp
from rfkit.graph.meta_shortcuts import shape_only_call, shape_only_output
from rfkit.graph.registry import DEFAULT_REGISTRY, Registry
from rfkit.graph.state import RFState, compact

_TOO_SMALL = re.compile(
    r"too small|can't be greater than actual input size|non-positive|greater than input size|"
    r"Padding size should be less than|must be less than the corresponding input",
    re.I,
)


@dataclass
class UnsupportedNode:
    """One node with no RF rule (or whose use of the op cannot be modelled, or whose rule failed:
    ``rule_failed``, which makes the graph incomplete)."""

    node: str
    op: str
    reason: str
    rule_failed: bool = False


@dataclass
class PropagationResult:
    states: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    #: node -> {index or key: shape} of the tensors one level inside a tuple, list or dict output
    element_shapes: dict[str, dict] = field(default_factory=dict)
    unsupported: list[UnsupportedNode] = field(default_factory=list)


def op_key(node: fx.Node, module: torch.nn.Module | None) -> str:
    """Human-readable name of the op a node runs: module class, function or method name."""
    if node.op == "call_module":
        t = type(module)
        return f"{t.__module__}.{t.__qualname__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", str(target))
    if "<locals>" in name:  # wrappers such as torch's boolean_dispatch keep the public name in __name__
        name = getattr(target, "__name__", name)
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    return f"{mod}.{name}" if mod else name


def _fitted(state: Any, out: Any) -> Any:
    """Bring each state's layout in line with the shape of its output tensor (see :func:`layout.fit`)."""
    if isinstance(state, RFState):
        if isinstance(out, torch.Tensor) and state.layout is not None:
            return compact(state.with_layout(lay.fit(state.layout, tuple(out.shape)))).narrowed(tuple(out.shape))
        return state
    if isinstance(state, (tuple, list)) and isinstance(out, (tuple, list)) and len(state) == len(out):
        return type(state)(_fitted(s, o) for s, o in zip(state, out))
    return state


def _has_tensor(value: Any) -> bool:
    leaves, _ = tree_flatten(value)
    return any(isinstance(v, torch.Tensor) for v in leaves)


def _per_element(state: Any, value: tuple | list) -> list:
    """The state of each element of a tuple or list ``value`` (None for elements no input reaches), for the
    concatenation of tuples (``(x,) + outputs[1:]``)."""
    if isinstance(state, (tuple, list)) and len(state) == len(value):
        return list(state)
    return [None] * len(value)


def _unknown_like(out: Any, base: RFState | None, in_shape: tuple | None) -> Any:
    """Unknown state for each tensor of ``out``; the spatial layout is kept where the shape is unchanged."""
    base = base or RFState(axes=None, layout=None)

    def one(v):
        if not isinstance(v, torch.Tensor):
            return None
        layout = base.layout if in_shape is not None and v.dim() == len(in_shape) else None  # assume it stays put
        return base.replace(unknown=True, layout=layout and lay.fit(layout, v.shape))

    return tree_map(one, out)


def _describe(n: fx.Node, root: torch.nn.Module) -> str:
    if n.op == "call_module":
        return f"{type(root.get_submodule(n.target)).__name__} {n.target}"
    return op_key(n, None)


def _raise(cls, message: str, cause: BaseException | None = None):
    err = cls(message)
    err.message = message  # kept whole: fx.Interpreter edits the args of exceptions passing through it
    raise err from cause


class _Recordings:
    """The ATen graphs ``make_fx`` recorded for plain functions (timm's no-trace functions), by
    :func:`_recording_key`: at most ``size`` of them, the least recently used dropped first. A function called
    again on tensors of the same shapes, dtypes and strides, with the same other arguments, records the same
    graph: MViTv2 calls ``cal_rel_pos_type`` once per block, on four distinct shapes (its recording was a third
    of its trace time)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._graphs: OrderedDict = OrderedDict()

    def get(self, key):
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
        return graph

    def put(self, key, graph) -> None:
        self._graphs[key] = graph
        if len(self._graphs) > self.size:
            self._graphs.popitem(last=False)


_RECORDINGS = _Recordings()

#: Arguments a recording may depend on by value (anything else: the call is recorded afresh).
_CONSTANTS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format)


def _recording_key(fn, flat: list, where: list[int]):
    """What a recording of the plain function ``fn`` on the flattened arguments ``flat`` (tensors at ``where``)
    depends on: the function, each tensor's shape, stride, dtype, device and ``requires_grad``, which inputs are
    the same tensor, and the value of every other argument; None where an argument is not such a constant.

    >>> x = torch.empty(2, 3, device="meta")
    >>> _recording_key(torch.add, [x, 1], [0]) == _recording_key(torch.add, [torch.empty(2, 3, device="meta"), 1], [0])
    True
    >>> _recording_key(torch.add, [x, [1]], [0]) is None
    True
    """
    tensors = []
    first: dict[int, int] = {}
    for i in where:
        t = flat[i]
        tensors.append(
            (tuple(t.shape), t.stride(), t.dtype, t.device.type, t.requires_grad, first.setdefault(id(t), i))
        )
    others = [(i, v) for i, v in enumerate(flat) if i not in set(where)]
    if not all(isinstance(v, _CONSTANTS) for _, v in others):
        return None
    return (fn, tuple(tensors), tuple((i, type(v), v) for i, v in others))


class RFPropagator(fx.Interpreter):
    """Run ``gm`` on meta tensors, attaching ``node.meta['rf']`` and ``node.meta['shape']``.

    Parameters
    ----------
    gm : torch.fx.GraphModule
        A traced model whose parameters live on the meta device.
    registry : Registry
        Where RF handlers are looked up.
    """

    def __init__(self, gm: fx.GraphModule, registry: Registry = DEFAULT_REGISTRY, real_outputs=None) -> None:
        super().__init__(gm)
        self.registry = registry
        #: module name -> its output, as meta tensors, from a real forward pass; for the modules torch.fx
        #: could not trace into whose forward cannot run on meta tensors either (data-dependent code)
        self.real_outputs = real_outputs
        self.untraced = getattr(gm, "meta", {}).get("untraced", {})
        self.result = PropagationResult()
        self._seen_input = False
        self._given_states: list | None = None  # states of the placeholders, for a recorded sub-graph
        self._prefix = ""  # "<node>/" before the node names of a recorded sub-graph, in warnings

    def propagate(self, x: torch.Tensor, ndim_spatial: int) -> PropagationResult:
        self.ndim_spatial = ndim_spatial
        try:
            self.run(x)
        except RFKitError as e:  # fx.Interpreter appends "While executing ..." to the message: drop it
            raise type(e)(getattr(e, "message", str(e))) from e.__cause__
        return self.result

    def call_module(self, target, args, kwargs) -> Any:
        out = shape_only_output(self.fetch_attr(target), args, kwargs)
        return out if out is not None else super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs) -> Any:
        out = shape_only_call(target, args, kwargs)
        return out if out is not None else super().call_function(target, args, kwargs)

    # ---------------------------------------------------------------------------------------------
    def run_node(self, n: fx.Node) -> Any:
        try:
            out = super().run_node(n)
        except RFKitError:
            raise
        except Exception as e:  # noqa: BLE001 - re-raised with the node that failed
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if n.op == "call_module" and n.target in self.untraced and self.real_outputs is not None:
                out = self._from_real_run(n, msg)
                return self._record_state(n, out)
            where = f"node {n.name} ({_describe(n, self.module)})"
            if _TOO_SMALL.search(str(e)):
                _raise(
                    InputTooSmallError,
                    f"input too small for this network: {where} failed: {msg.rstrip('.')}. Use a larger input size.",
                    e,
                )
            _raise(TraceError, f"running the traced graph failed at {where}: {type(e).__name__}: {msg}", e)
        return self._record_state(n, out)

    def _record_state(self, n: fx.Node, out: Any) -> Any:
        if n.op in ("output", "get_attr"):
            return out
        state = self._state_of(n, out)
        self.result.states[n.name] = state
        self.result.shapes[n.name] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        elements = out.items() if isinstance(out, dict) else enumerate(out) if isinstance(out, (tuple, list)) else ()
        shapes = {k: tuple(v.shape) for k, v in elements if isinstance(v, torch.Tensor)}
        if shapes:
            self.result.element_shapes[n.name] = shapes
        n.meta["rf"] = state
        n.meta["shape"] = self.result.shapes[n.name]
        if isinstance(state, RFState) and state.dims is not None and isinstance(out, torch.Tensor):
            if any(out.shape[d] == 0 for d in state.dims if d < out.dim()):
                _raise(
                    InputTooSmallError,
                    f"input too small for this network: the feature map of node {n.name} "
                    f"({_describe(n, self.module)}) has shape {tuple(out.shape)}. "
                    "Use a larger input size.",
                )
        return out

    def _from_real_run(self, n: fx.Node, why: str) -> Any:
        """The output of an untraced module that cannot run on meta tensors, from a real forward pass of
        the model (its shape only: the module is then recorded, or marked opaque, as any other)."""
        try:
            return self.real_outputs(n.target)
        except RFKitError:
            raise
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _raise(TraceError, f"module {n.target} runs neither on meta tensors ({why}) nor for real ({msg})", e)

    def _state_of(self, n: fx.Node, out: Any) -> Any:
        if n.op == "placeholder":
            if self._given_states is not None:
                return self._given_states.pop(0) if self._given_states else None
            if self._seen_input or not isinstance(out, torch.Tensor):
                return None
            self._seen_input = True
            return RFState.input(self.ndim_spatial, tuple(out.shape))
        if not _has_tensor(out):
            return None
        states = self.result.states
        arg_states = fx.node.map_arg(n.args, lambda a: states.get(a.name))
        kwarg_states = fx.node.map_arg(n.kwargs, lambda a: states.get(a.name))
        carried, _ = tree_flatten((arg_states, kwarg_states), is_leaf=lambda x: isinstance(x, RFState))
        carried = [s for s in carried if isinstance(s, RFState)]
        if not carried:
            return None  # a constant: no input pixel reaches it

        args, kwargs = self.fetch_args_kwargs_from_env(n)
        if n.target is operator.getitem and not isinstance(args[0], torch.Tensor):
            container = arg_states[0]
            return container[args[1]] if isinstance(container, (tuple, list, dict)) else container
        if n.target is getattr and isinstance(args[0], dict) and isinstance(arg_states[0], dict):
            return arg_states[0].get(args[1])  # a field of a dict-like output (transformers' ModelOutput)
        if n.target is operator.add and all(isinstance(a, (tuple, list)) for a in args[:2]):
            return tuple(_per_element(arg_states[0], args[0])) + tuple(_per_element(arg_states[1], args[1]))

        module = self.fetch_attr(n.target) if n.op == "call_module" else None
        handler = self._lookup(n, module)
        in_shape = tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else None
        base = carried[0]
        if handler is None and (module is not None or isinstance(n.target, types.FunctionType)):
            fn = module if module is not None else n.target  # a Python function kept whole (timm's no-trace)
            return self._recorded(n, fn, module, args, kwargs, out, base, in_shape)
        if handler is None:
            return self._unsupported(n, module, out, base, in_shape, "no RF rule for this op")
        ctx = OpContext(
            node=n, module=module, args=args, kwargs=kwargs, arg_states=arg_states, kwarg_states=kwarg_states, out=out
        )
        unknown_input = any(s.unknown for s in carried)
        try:
            state = handler(ctx)
        except UnsupportedOp as e:
            if unknown_input:  # downstream of an unsupported op: already reported there
                return _unknown_like(out, base, in_shape)
            return self._unsupported(n, module, out, base, in_shape, str(e))
        except Exception as e:  # noqa: BLE001 - a rule that breaks on an unforeseen use: warn, report, go on
            return self._rule_failed(n, module, out, base, in_shape, handler, e)
        state = _fitted(state, out)
        if unknown_input:
            state = tree_map(lambda s: s.replace(unknown=True) if isinstance(s, RFState) else s, state)
        return state

    def _recorded(self, n, fn, module, args, kwargs, out, base, in_shape):
        """A module or function with no rule that torch.fx could not trace: record it with ``make_fx`` on
        its concrete meta inputs (shape-dependent control flow is fine then) and propagate through the
        ATen ops."""
        from torch.func import functionalize
        from torch.fx.experimental.proxy_tensor import make_fx

        flat, spec = tree_flatten((args, kwargs), is_leaf=lambda x: x is None)
        where = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]
        state_of = self._states_by_tensor(n)

        def call(*tensors):
            values = list(flat)
            for i, t in zip(where, tensors):
                values[i] = t
            a, k = tree_unflatten(values, spec)
            return fn(*a, **k)

        key = _recording_key(fn, flat, where) if module is None else None
        try:
            recorded = _RECORDINGS.get(key) if key is not None else None
            if recorded is None:
                recorded = make_fx(functionalize(call, remove="mutations_and_views"), tracing_mode="real")(
                    *[flat[i] for i in where]
                )
                if key is not None:
                    _RECORDINGS.put(key, recorded)
        except Exception as e:  # noqa: BLE001
            return self._unsupported(
                n,
                module,
                out,
                base,
                in_shape,
                f"no RF rule, and recording it with make_fx failed: {type(e).__name__}: {e}",
            )
        sub = RFPropagator(recorded, self.registry)
        sub._given_states = [state_of.get(id(flat[i])) for i in where]
        sub._prefix = f"{self._prefix}{n.name}/"
        sub.ndim_spatial = self.ndim_spatial
        try:
            sub.run(*[flat[i] for i in where])
        except RFKitError as e:
            return self._unsupported(n, module, out, base, in_shape, f"recorded ATen graph failed: {e}")
        for u in sub.result.unsupported:
            self.result.unsupported.append(UnsupportedNode(f"{n.name}/{u.node}", u.op, u.reason, u.rule_failed))
        out_node = next(x for x in recorded.graph.nodes if x.op == "output")
        return fx.node.map_arg(out_node.args[0], lambda a: sub.result.states.get(a.name))

    def _states_by_tensor(self, n: fx.Node) -> dict[int, RFState | None]:
        """The state of every tensor among ``n``'s inputs, by object id (inputs may be tensors or
        tuples of tensors from multi-output nodes)."""
        found: dict[int, RFState | None] = {}

        def pair(value, state):
            if isinstance(value, torch.Tensor):
                found[id(value)] = state if isinstance(state, RFState) else None
            elif isinstance(value, (tuple, list)):
                states = (
                    state if isinstance(state, (tuple, list)) and len(state) == len(value) else [state] * len(value)
                )
                for v, st in zip(value, states):
                    pair(v, st)

        for node in n.all_input_nodes:
            pair(self.env.get(node), self.result.states.get(node.name))
        return found

    def _lookup(self, n: fx.Node, module):
        if n.op == "call_module":
            return self.registry.for_module(module)
        if n.op == "call_method":
            return self.registry.for_method(n.target)
        return self.registry.for_function(n.target)

    def _unsupported(self, n, module, out, base, in_shape, reason, rule_failed: bool = False):
        self.result.unsupported.append(UnsupportedNode(n.name, op_key(n, module), reason, rule_failed))
        return _unknown_like(out, base, in_shape)

    def _rule_failed(self, n, module, out, base, in_shape, handler, error: Exception):
        """A rule that raised something other than :class:`UnsupportedOp`: a :class:`RuleFailedWarning` naming
        the rule, the op, the node (and module) and the error; the op is listed as unsupported with the error,
        and the graph is marked incomplete (:func:`rule_failures`)."""
        op = op_key(n, module)
        rule = getattr(handler, "__qualname__", None) or repr(handler)
        where = f"node {self._prefix}{n.name}" + (f" (module {n.target})" if n.op == "call_module" else "")
        first = (str(error).strip().splitlines() or [""])[0]
        message = f"{type(error).__name__}: {first}" if first else type(error).__name__
        warnings.warn(
            f"the RF rule {rule} for {op} failed at {where}: {message}; its RF and every RF after it are unknown "
            "(fix the rule, or raise UnsupportedOpError where it cannot model the op)",
            RuleFailedWarning,
            stacklevel=2,
        )
        return self._unsupported(n, module, out, base, in_shape, f"RF rule {rule} failed: {message}", True)


def rule_failures(unsupported) -> str | None:
    """Why a graph whose propagation had failing rules is incomplete (None when none failed).

    >>> rule_failures([UnsupportedNode("conv", "torch.nn.Conv2d", "RF rule r failed: ValueError: bad", True)])
    'an RF rule failed at node conv (torch.nn.Conv2d): RF rule r failed: ValueError: bad'
    """
    failed = [u for u in unsupported if u.rule_failed]
    return "; ".join(f"an RF rule failed at node {u.node} ({u.op}): {u.reason}" for u in failed) or None
