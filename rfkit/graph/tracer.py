"""torch.fx tracing with timm's no-trace modules and functions kept whole, recording which node holds
the output of every module so that ``g["layer4"]`` finds it.

A module whose ``forward`` torch.fx cannot follow (shape- or data-dependent control flow, a ``len()``)
does not take the whole model down: :func:`trace_module` traces again with that module's class kept whole
(a leaf), as often as needed. The RF pass then records such a leaf with ``make_fx`` on its concrete
inputs (exact), or marks its output unknown when even that fails (:attr:`rfkit.RFGraph.opaque`).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from rfkit.errors import TraceError
from rfkit.graph.registry import DEFAULT_REGISTRY, Registry


def _timm_notrace() -> tuple[tuple[type, ...], tuple]:
    try:
        from timm.layers import get_notrace_functions, get_notrace_modules
    except ImportError:
        return (), ()
    return tuple(get_notrace_modules()), tuple(get_notrace_functions())


_VARIADIC = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


class RFTracer(fx.Tracer):
    """An ``fx.Tracer`` whose leaves are torch.nn's modules, timm's no-trace modules, the registry's leaf
    types and the classes in ``whole`` (modules whose forward torch.fx could not follow), and which records
    ``module_outputs``: qualified module name → output node name (of its first call).

    The dtype of the input and of the model's parameters and buffers is known while tracing (rfkit feeds the
    model inputs of its own dtype: :func:`rfkit.models.spec.input_dtype`), so that a comparison of dtypes, as
    in transformers' ``if pixel_values.dtype != weight.dtype: pixel_values = pixel_values.to(...)``, is decided
    then instead of stopping the trace (:class:`_Dtype`); a dtype passed on (``x.to(w.dtype)``) stays a node."""

    def __init__(self, registry: Registry = DEFAULT_REGISTRY, whole: tuple[type, ...] = ()) -> None:
        notrace_modules, notrace_functions = _timm_notrace()
        super().__init__(autowrap_functions=notrace_functions)
        self.registry = registry
        self.notrace_modules = notrace_modules
        self.registry_leaves = tuple(registry.leaf_types)
        self.whole = tuple(whole)
        self.module_outputs: dict[str, Any] = {}
        self.tracing_modules: list[str] = []  # modules being traced, innermost last
        self.tracing_stack: list[nn.Module] = []
        self.input_dtype: torch.dtype | None = None
        self._names: dict[int, str] = {}  # id of a parameter or buffer of the root -> its name

    def trace(self, root, concrete_args=None):
        from rfkit.models.spec import input_dtype

        self.input_dtype = input_dtype(root) if isinstance(root, nn.Module) else None
        self._names = {}
        if isinstance(root, nn.Module):
            self._names = {id(b): n for n, b in root.named_buffers()} if self.proxy_buffer_attributes else {}
            self._names.update({id(p): n for n, p in root.named_parameters()})  # a parameter's name first
        return super().trace(root, concrete_args)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        """torch.fx's answer (a ``get_attr`` proxy for a parameter or buffer of the root), found by identity
        in a table made once per trace: torch.fx searches all of the root's parameters at each access,
        quadratic in a model's size (a tenth of a zoo trace)."""
        from torch.fx.proxy import ParameterProxy

        name = self._names.get(id(attr_val)) if isinstance(attr_val, torch.Tensor) else None
        if name is None:
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if name not in parameter_proxy_cache:
            factory = None
            if self.param_shapes_constant and isinstance(attr_val, nn.Parameter):
                factory = lambda node: ParameterProxy(self, node, name, attr_val)  # noqa: E731
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {}, proxy_factory_fn=factory)
        return parameter_proxy_cache[name]

    def known_dtype(self, node: fx.Node) -> torch.dtype | None:
        """The dtype of the input (a placeholder) or of a parameter or buffer (a get_attr node), else None."""
        if node.op == "placeholder":
            return self.input_dtype
        if node.op != "get_attr" or not isinstance(node.target, str):
            return None
        *path, last = node.target.split(".")
        module = self.root
        for part in path:  # the module dicts, not getattr: torch.fx answers getattr with proxies while tracing
            module = module._modules.get(part) if isinstance(module, nn.Module) else None
        if not isinstance(module, nn.Module):
            return None
        value = module._parameters.get(last, module._buffers.get(last, module.__dict__.get(last)))
        return value.dtype if isinstance(value, torch.Tensor) else None

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        """A root ``forward(self, x, *args, **kwargs)`` is traced as ``forward(self, x)``: torch.fx would
        make a Proxy of ``args`` that the body then cannot unpack (ultralytics' ``DetectionModel``)."""
        code = inspect.unwrap(root_fn).__code__
        if is_module and code.co_flags & _VARIADIC and code.co_argcount == 2 and not concrete_args:
            variadic = root_fn

            def forward(self, x):
                return variadic(self, x)

            root_fn = forward
        return super().create_args_for_root(root_fn, is_module, concrete_args)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def iter(self, obj: fx.Proxy):
        """Iterating the result of ``chunk(n)`` or ``split([sizes])`` (``list(x.chunk(2, 1))`` in
        ultralytics' C2f): its length is in the call, so the elements can be traced one by one."""
        n = _known_length(obj.node)
        if n is not None:
            return iter([obj[i] for i in range(n)])
        return super().iter(obj)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, self.registry_leaves) or (self.whole and type(m) in self.whole):
            return True
        if isinstance(m, self.notrace_modules):  # timm keeps it whole; trace into it when we can
            return self.registry.for_module(m) is not None or not _traceable(type(m), m, self.registry)
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        try:
            name = self.path_of_module(m)
        except NameError:
            return super().call_module(m, forward, args, kwargs)
        self.tracing_modules.append(f"{name} ({type(m).__name__})")
        self.tracing_stack.append(m)
        out = super().call_module(m, forward, args, kwargs)
        self.tracing_modules.pop()  # left in place on an exception: the failing module stays on top
        self.tracing_stack.pop()
        leaves, _ = tree_flatten(out)
        nodes = [p.node.name for p in leaves if isinstance(p, fx.Proxy)]
        # a module called more than once (ultralytics' one SiLU shared by every Conv, torchvision's relu
        # called twice per block) names its first call, as the forward hooks that capture it see it
        if len(nodes) == 1:
            self.module_outputs.setdefault(name, nodes[0])
        for key, value in _elements(out):
            self.module_outputs.setdefault(element_name(name, key), value.node.name)
        return out


def _known_length(node: fx.Node) -> int | None:
    """How many tensors a ``chunk``/``split`` node returns, where its arguments say (else None)."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", None)
    if node.op not in ("call_method", "call_function") or name not in ("chunk", "split"):
        return None
    args = node.args[1:] if node.op == "call_method" else node.args[1:]
    first = args[0] if args else node.kwargs.get("chunks", node.kwargs.get("split_size_or_sections"))
    if name == "chunk" and isinstance(first, int):
        return first
    if name == "split" and isinstance(first, (list, tuple)) and all(isinstance(v, int) for v in first):
        return len(first)
    return None


class _Proxy(fx.Proxy):
    """A Proxy whose ``len()`` is known where the call says it (``chunk(n)``, ``split([sizes])``), so that
    ``list(x.chunk(2, 1))`` traces, and whose ``dtype`` compares as the tensor's where the tracer knows it."""

    def __len__(self) -> int:
        n = _known_length(self.node)
        return super().__len__() if n is None else n

    def __getattr__(self, name: str):
        if name == "dtype" and isinstance(self.tracer, RFTracer):
            known = self.tracer.known_dtype(self.node)
            if known is not None:
                return _Dtype(self, known)
        return super().__getattr__(name)


class _Dtype(fx.proxy.Attribute):
    """``x.dtype`` of a proxy whose dtype is known: ``==`` and ``!=`` against a dtype are decided while tracing;
    used any other way it is a graph node, as torch.fx makes it."""

    def __init__(self, root: fx.Proxy, known: torch.dtype) -> None:
        super().__init__(root, "dtype")
        self.known = known

    def _equal(self, other) -> bool | None:
        other = other.known if isinstance(other, _Dtype) else other
        return self.known == other if isinstance(other, torch.dtype) else None

    def __eq__(self, other):
        same = self._equal(other)
        return super().__eq__(other) if same is None else same

    def __ne__(self, other):
        same = self._equal(other)
        return super().__ne__(other) if same is None else not same

    __hash__ = fx.Proxy.__hash__


def element_name(module: str, key) -> str:
    """The name of one element of a module's tuple, list or dict output: ``module[key]``.

    >>> element_name("model.9", 1), element_name("backbone", "pool")
    ('model.9[1]', 'backbone[pool]')
    """
    return f"{module}[{key}]"


def split_element(name: str) -> tuple[str, str | None]:
    """``(module, key)`` of an element name ``module[key]``; ``(name, None)`` for any other name.

    >>> split_element("backbone[pool]"), split_element("layer4")
    (('backbone', 'pool'), ('layer4', None))
    """
    if name.endswith("]") and "[" in name:
        module, key = name[:-1].rsplit("[", 1)
        return module, key
    return name, None


def _elements(out) -> list[tuple[object, fx.Proxy]]:
    """The (index or key, proxy) of each tensor element of a tuple, list or dict output (one level deep)."""
    if isinstance(out, (tuple, list)):
        return [(i, v) for i, v in enumerate(out) if isinstance(v, fx.Proxy)]
    if isinstance(out, dict):
        return [(k, v) for k, v in out.items() if isinstance(v, fx.Proxy) and isinstance(k, (str, int))]
    return []


_TRACEABLE: dict[type, bool] = {}


def _traceable(cls: type, module: nn.Module, registry: Registry) -> bool:
    """Whether torch.fx can trace into a module timm marks no-trace (cached per class)."""
    if cls not in _TRACEABLE:
        try:
            RFTracer(registry).trace(module)
            _TRACEABLE[cls] = True
        except Exception:  # noqa: BLE001 - any failure: keep it whole
            _TRACEABLE[cls] = False
    return _TRACEABLE[cls]


def thread_inplace_ops(graph: fx.Graph) -> None:
    """Make later uses of a tensor changed in place (``x.mul_(g)``, ``x.add_(y)``) read the in-place
    node: torch.fx records such calls but leaves their result unused, which would drop the op, and with
    ``add_(y)`` the RF of ``y``, from the graph."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for n in list(graph.nodes):
        if n.op != "call_method" or not n.target.endswith("_") or n.target.startswith("__") or n.users:
            continue
        if not n.args or not isinstance(n.args[0], fx.Node):
            continue
        src = n.args[0]
        for user in list(src.users):
            if user is not n and order[user] > order[n]:
                user.replace_input_with(src, n)


def trace_module(model: nn.Module, registry: Registry = DEFAULT_REGISTRY) -> tuple[fx.GraphModule, dict[str, str]]:
    """Symbolically trace ``model``; return the GraphModule and the module → output node map.

    Where torch.fx fails inside a module's ``forward``, the innermost such module's class is kept whole
    and the model traced again, until it traces or the failure is in the model's own ``forward``.
    ``gm.meta["untraced"]`` maps each module kept whole that way to why torch.fx could not follow it.

    Raises
    ------
    TraceError
        torch.fx fails in the model's own ``forward`` (not inside a submodule).
    """
    whole: dict[type, str] = {}
    while True:
        tracer = RFTracer(registry, tuple(whole))
        try:
            graph = tracer.trace(model)
            break
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            failing = tracer.tracing_stack[-1] if tracer.tracing_stack else None
            if failing is None or type(failing) in whole:
                where = f" in module {tracer.tracing_modules[-1]}" if tracer.tracing_modules else ""
                raise TraceError(
                    f"torch.fx cannot trace {type(model).__name__}{where}: {type(e).__name__}: {msg}"
                ) from e
            whole[type(failing)] = f"{type(e).__name__}: {msg}"
    thread_inplace_ops(graph)
    name = model.__class__.__name__
    gm = fx.GraphModule(tracer.root, graph, name)
    gm.meta["untraced"] = {
        n.target: whole[type(gm.get_submodule(n.target))]
        for n in graph.nodes
        if n.op == "call_module" and type(gm.get_submodule(n.target)) in whole
    }
    outputs = dict(tracer.module_outputs)
    out_node = next(n for n in graph.nodes if n.op == "output")
    leaves, _ = tree_flatten(out_node.args[0])
    out_nodes = [n.name for n in leaves if isinstance(n, fx.Node)]
    if len(out_nodes) == 1:
        outputs[""] = out_nodes[0]
    return gm, outputs


def outputs_of(gm: fx.GraphModule, names: list[str]) -> fx.GraphModule:
    """A copy of ``gm`` returning the tensors of the named nodes."""
    gm = fx.GraphModule(gm, copy.deepcopy(gm.graph))
    nodes = {n.name: n for n in gm.graph.nodes}
    out = next(n for n in gm.graph.nodes if n.op == "output")
    out.args = (tuple(nodes[n] for n in names),)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


# --- recording with make_fx, for models torch.fx cannot trace ------------------------------------------
@torch.library.custom_op("rfkit::mark", mutates_args=())
def _mark(x: torch.Tensor, name: str) -> torch.Tensor:
    """Identity that names a module's output in a recorded (ATen) graph."""
    return x.clone()


@_mark.register_fake
def _(x: torch.Tensor, name: str) -> torch.Tensor:
    return torch.empty_like(x)


MARK = torch.ops.rfkit.mark.default


def record_model(model: nn.Module, x: torch.Tensor) -> tuple[fx.GraphModule, dict[str, str]]:
    """Record ``model(x)`` with ``make_fx`` (concrete shapes, so shape-dependent control flow is fine);
    forward hooks mark every module's output so that ``g["layer4"]`` still finds it."""
    from torch.func import functionalize
    from torch.fx.experimental.proxy_tensor import make_fx

    names = {m: n for n, m in model.named_modules() if n}

    def hook(module, args, out):
        if isinstance(out, torch.Tensor):
            return MARK(out, names[module])
        if isinstance(out, (tuple, list)):  # each tensor of a tuple output: module[k]
            marked = [
                MARK(v, element_name(names[module], i)) if isinstance(v, torch.Tensor) else v for i, v in enumerate(out)
            ]
            return type(out)(marked) if type(out) in (tuple, list) else out
        return out

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        gm = make_fx(functionalize(model, remove="mutations_and_views"), tracing_mode="real")(x)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TraceError(f"recording {type(model).__name__} with make_fx failed: {type(e).__name__}: {msg}") from e
    finally:
        for h in handles:
            h.remove()
    outputs: dict[str, str] = {}
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is MARK:
            outputs.setdefault(n.args[1], n.name)  # a module called twice: its first call, as hooks see it
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    leaves, _ = tree_flatten(out_node.args[0])
    if len([n for n in leaves if isinstance(n, fx.Node)]) == 1:
        outputs[""] = next(n for n in leaves if isinstance(n, fx.Node)).name
    return gm, outputs
