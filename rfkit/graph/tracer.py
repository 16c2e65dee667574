"""torch.fx tracing with timm's no-trace modules and functions kept whole, recording which node holds
the output of every module so that ``g["layer4"]`` finds it."""

from __future__ import annotations

from typing import Any

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


class RFTracer(fx.Tracer):
    """An ``fx.Tracer`` whose leaves are torch.nn's modules, timm's no-trace modules and the registry's
    leaf types, and which records ``module_outputs``: qualified module name → output node name."""

    def __init__(self, registry: Registry = DEFAULT_REGISTRY) -> None:
        notrace_modules, notrace_functions = _timm_notrace()
        super().__init__(autowrap_functions=notrace_functions)
        self.leaf_types = notrace_modules + tuple(registry.leaf_types)
        self.module_outputs: dict[str, Any] = {}
        self.tracing_modules: list[str] = []  # modules being traced, innermost last

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, self.leaf_types) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        try:
            name = self.path_of_module(m)
        except NameError:
            return super().call_module(m, forward, args, kwargs)
        self.tracing_modules.append(f"{name} ({type(m).__name__})")
        out = super().call_module(m, forward, args, kwargs)
        self.tracing_modules.pop()  # left in place on an exception: the failing module stays on top
        leaves, _ = tree_flatten(out)
        nodes = [p.node.name for p in leaves if isinstance(p, fx.Proxy)]
        if len(nodes) == 1:
            self.module_outputs[name] = nodes[0]
        return out


def trace_module(model: nn.Module, registry: Registry = DEFAULT_REGISTRY) -> tuple[fx.GraphModule, dict[str, str]]:
    """Symbolically trace ``model``; return the GraphModule and the module → output node map."""
    tracer = RFTracer(registry)
    try:
        graph = tracer.trace(model)
    except Exception as e:
        where = f" in module {tracer.tracing_modules[-1]}" if tracer.tracing_modules else ""
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TraceError(f"torch.fx cannot trace {type(model).__name__}{where}: {type(e).__name__}: {msg}") from e
    name = model.__class__.__name__
    gm = fx.GraphModule(tracer.root, graph, name)
    outputs = dict(tracer.module_outputs)
    out_node = next(n for n in graph.nodes if n.op == "output")
    leaves, _ = tree_flatten(out_node.args[0])
    out_nodes = [n.name for n in leaves if isinstance(n, fx.Node)]
    if len(out_nodes) == 1:
        outputs[""] = out_nodes[0]
    return gm, outputs
