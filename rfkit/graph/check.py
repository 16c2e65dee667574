"""Is the recorded graph the model? A check of a traced (or recorded) graph against one forward pass of the
model on the meta device, with autograd on: no memory, no weights, about the cost of the RF pass.

A graph can be wrong without any op lacking a rule: a model that leaves torch on the way (numpy, a new tensor
made from a meta one, Keras' own tensors) leaves the output disconnected from the input; a ``.detach()`` or a
hand-written ``torch.autograd.Function`` lets the forward through but not the gradient that the ERF measures.
Each such place becomes a :class:`Finding`: its node and everything after it get an unknown RF, the node is
listed as unsupported with the reason, and :attr:`rfkit.RFGraph.incomplete` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from rfkit.graph.meta_shortcuts import shape_only_forwards
from rfkit.graph.state import RFState


@dataclass(frozen=True)
class Finding:
    """A node of the recorded graph where it stops describing the model (its RF and every later one unknown).

    Attributes
    ----------
    node : str
        The fx node.
    op : str
        What is listed as unsupported there.
    reason : str
        One sentence: what is wrong and why.
    """

    node: str
    op: str
    reason: str


@dataclass
class _ModuleRun:
    """What one module did in the reference forward: whether its output carries the input's gradient, and
    whether that gradient passed through a hand-written ``autograd.Function`` on the way."""

    name: str
    kind: str
    has_params: bool
    grad: bool = False
    grad_fns: list = field(default_factory=list)


@dataclass
class Reference:
    """One forward pass of the model on meta tensors, autograd on (the input alone requires grad)."""

    modules: list[_ModuleRun]  # in the order the calls finished: children before their parents
    output_grad: bool
    output_grad_fns: list
    output_shapes: list[tuple[int, ...]]


def reference_forward(model: nn.Module, x: torch.Tensor) -> Reference | None:
    """Run ``model`` (on the meta device) once on ``x`` with a hook on every module; None if it cannot run on
    meta tensors (data-dependent code). The parameters' ``requires_grad`` are put back afterwards."""
    names = {m: n for n, m in model.named_modules() if n}
    runs: dict[str, _ModuleRun] = {}

    def hook(module, args, out):
        name = names[module]
        run = runs.pop(name, None) or _ModuleRun(
            name, type(module).__name__, any(True for _ in module.parameters(recurse=False))
        )
        tensors = _float_tensors(out)
        run.grad = run.grad or any(t.requires_grad for t in tensors)
        run.grad_fns += [t.grad_fn for t in tensors if t.grad_fn is not None]
        runs[name] = run  # re-inserted: the order is that of the last call's end

    params = [(p, p.requires_grad) for p in model.parameters()]
    handles = [m.register_forward_hook(hook) for m in names]
    try:
        for p, _ in params:
            p.requires_grad_(False)
        with torch.enable_grad(), shape_only_forwards(model):
            out = model(x.detach().requires_grad_(True))
    except Exception:  # noqa: BLE001 - it cannot run on meta tensors: no reference, the graph stands alone
        return None
    finally:
        for h in handles:
            h.remove()
        for p, flag in params:
            p.requires_grad_(flag)
    tensors = _float_tensors(out)
    return Reference(
        list(runs.values()),
        any(t.requires_grad for t in tensors),
        [t.grad_fn for t in tensors if t.grad_fn is not None],
        [tuple(t.shape) for t in tensors],
    )


def _float_tensors(value) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(value)
    return [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]


def custom_functions(grad_fns: list) -> dict:
    """For every autograd node reachable from ``grad_fns``: the name of a hand-written
    ``torch.autograd.Function`` its value passed through (None if none did)."""
    found: dict = {}
    stack = [(fn, False) for fn in grad_fns]
    while stack:
        fn, children_done = stack.pop()
        if fn in found:
            continue
        nexts = [f for f, _ in getattr(fn, "next_functions", ()) if f is not None]
        if not children_done:
            stack.append((fn, True))
            stack.extend((f, False) for f in nexts if f not in found)
            continue
        own = (
            type(fn).__name__.removesuffix("Backward")
            if isinstance(fn, torch.autograd.function.BackwardCFunction)
            else None
        )
        found[fn] = own or next((found[f] for f in nexts if found.get(f)), None)
    return found


def check_graph(
    gm: fx.GraphModule, states: dict, module_outputs: dict[str, str], reference: Reference | None
) -> list[Finding]:
    """Where the recorded graph ``gm`` (its RF states by node) departs from the model.

    Parameters
    ----------
    gm : torch.fx.GraphModule
        The traced or recorded graph.
    states : dict
        Node name -> the RF pass's state (an :class:`RFState` where the input reaches the node).
    module_outputs : dict
        Qualified module name -> the node holding its output, as the tracer recorded it.
    reference : Reference or None
        One forward pass of the model (None: only the graph's own output is checked).

    Returns
    -------
    list of Finding
        Empty when the graph is the model as far as the check can tell.
    """
    reached = {n for n, s in states.items() if _carries(s)}
    unknown = {n for n, s in states.items() if _carries(s, unknown=True)}  # already reported where it began
    findings = _unreached_output(gm, reached)
    if reference is None:
        return findings
    covered = downstream(gm, [f.node for f in findings])
    leaves = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    tainted = custom_functions([fn for r in reference.modules for fn in r.grad_fns] + reference.output_grad_fns)
    out_node = _output_nodes(gm)
    runs = [*reference.modules, _ModuleRun("", "the model", False, reference.output_grad, reference.output_grad_fns)]
    for run in runs:
        node = module_outputs.get(run.name) if run.name else (out_node[0] if len(out_node) == 1 else None)
        if node is None and run.name:
            node = next((v for k, v in module_outputs.items() if k.startswith(run.name + "[")), None)
        if node is None or node in covered or node in unknown:
            continue
        finding = _compare(run, node, node in reached, leaves, tainted)
        if finding is not None:
            findings.append(finding)
            covered |= downstream(gm, [node])
    return findings


def _carries(state, unknown: bool = False) -> bool:
    """Whether the input reaches a node (with ``unknown``: and its RF is already unknown there)."""
    leaves, _ = tree_flatten(state, is_leaf=lambda s: isinstance(s, RFState))
    return any(isinstance(s, RFState) and (s.unknown or not unknown) for s in leaves)


def _output_nodes(gm: fx.GraphModule) -> list[str]:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    leaves, _ = tree_flatten(out.args[0])
    return [n.name for n in leaves if isinstance(n, fx.Node)]


def downstream(gm: fx.GraphModule, start) -> set[str]:
    """The nodes named in ``start`` and every node that uses their values, directly or not."""
    seen: set[str] = set()
    stack = [n for n in gm.graph.nodes if n.name in set(start)]
    while stack:
        n = stack.pop()
        if n.name not in seen:
            seen.add(n.name)
            stack.extend(n.users)
    return seen


def _unreached_output(gm: fx.GraphModule, reached: set[str]) -> list[Finding]:
    """The graph's outputs that the input does not reach: the recording lost the path somewhere."""
    findings = []
    for name in _output_nodes(gm):
        if name in reached:
            continue
        node = next(n for n in gm.graph.nodes if n.name == name)
        if not node.all_input_nodes and node.op != "call_module":
            continue  # a constant returned alongside the features
        cut = _cut_after(gm, reached, name)
        where = f": the input's path ends at node {cut[0]}, whose value feeds {cut[1]}, a new tensor" if cut else ""
        findings.append(
            Finding(
                name,
                "disconnected output",
                f"the model's output (node {name}) does not depend on the input in the recorded graph{where}; "
                "the model leaves torch there (numpy, a tensor made anew, another framework's tensors), which "
                "rfkit cannot follow",
            )
        )
    return findings


def _cut_after(gm: fx.GraphModule, reached: set[str], target: str) -> tuple[str, str] | None:
    """(last node the input reaches, the op after it that does not carry it) on the way to ``target``."""
    ancestors: set[str] = set()
    stack = [n for n in gm.graph.nodes if n.name == target]
    while stack:
        n = stack.pop()
        if n.name not in ancestors:
            ancestors.add(n.name)
            stack.extend(n.all_input_nodes)
    for n in gm.graph.nodes:
        if n.name in ancestors and n.name not in reached and any(a.name in reached for a in n.all_input_nodes):
            src = next(a.name for a in n.all_input_nodes if a.name in reached)
            op = getattr(n.target, "__name__", str(n.target))
            return src, f"{n.name} ({op})"
    return None


def _compare(run: _ModuleRun, node: str, in_graph: bool, leaves: set, tainted: dict) -> Finding | None:
    """The graph's node for one module against what the module did in the reference forward."""
    what = f"module {run.name} ({run.kind})" if run.name else "the model's output"
    function = next((tainted[fn] for fn in run.grad_fns if tainted.get(fn)), None)
    if in_graph and function:
        return Finding(
            node,
            f"torch.autograd.Function {function}",
            f"{what} runs after torch.autograd.Function {function}: rfkit records its forward, but its backward "
            "is hand-written, so the gradient (ERF, verify) need not follow that RF",
        )
    if in_graph and not run.grad:
        return Finding(
            node,
            "gradient cut",
            f"{what} depends on the input in the graph, but in a real forward no gradient reaches it from the "
            "input (a .detach(), torch.no_grad() or numpy on the way): the ERF cannot see through it",
        )
    if not in_graph and run.grad and (run.has_params or not run.name) and not _under_leaf(run.name, leaves):
        return Finding(
            node,
            "missing module",
            f"{what} depends on the input in a real forward, but the recorded graph does not connect it to the input",
        )
    return None


def _under_leaf(name: str, leaves: set) -> bool:
    """Whether a module sits inside a module the tracer kept whole (so it has no node of its own)."""
    parts = name.split(".")
    return any(".".join(parts[:i]) in leaves for i in range(1, len(parts)))
