"""One real forward pass of a model with a hook on every module: what the graph pass falls back on where
neither torch.fx nor make_fx can follow the code.

- :class:`RealRun` gives the outputs (as meta tensors: their shapes) of modules whose forward cannot run on
  meta tensors (data-dependent code), for the RF pass of a traced model.
- :func:`hooked_graph` is the last resort of :func:`rfkit.trace`: when the model's own ``forward`` can be
  neither traced nor recorded, each module's output becomes a node whose RF is unknown, with its shape and,
  for an ``(N, C, *spatial)`` output, its grid. The ERF can then still be measured on any module (through
  forward hooks); only the analytic RF overlay is missing, and the graph says why (:attr:`RFGraph.opaque`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten, tree_map_only

from rfkit.errors import TraceError
from rfkit.graph import layout as lay
from rfkit.graph.info import RFInfo
from rfkit.graph.propagate import UnsupportedNode
from rfkit.graph.rfgraph import NodeRecord, RFGraph
from rfkit.graph.state import RFState
from rfkit.graph.tracer import element_name
from rfkit.models.spec import build_model, input_dtype


@dataclass
class _Call:
    """One module call: the module, the ids of its input tensors, its output (meta tensors)."""

    name: str
    module: nn.Module
    inputs: list[int]
    output: object
    output_ids: list[int] = field(default_factory=list)
    #: the tensors one level inside a tuple, list or dict output: (index or key, meta tensor, id)
    elements: list[tuple[object, torch.Tensor, int]] = field(default_factory=list)


class RealRun:
    """The model run once for real on a seeded random input of ``shape`` (no gradients, eval mode, every
    module's mode put back afterwards), recording every module call. A spec is built on the CPU for it
    (random weights) when first needed.

    Parameters
    ----------
    model : str or nn.Module or None
        The model spec, or the real module (None: there is nothing to run).
    shape : tuple
        The input's shape.
    trust : bool
        Build a spec whose file can run code (:func:`rfkit.models.spec.build_model`).
    """

    def __init__(self, model: str | nn.Module | None, shape: tuple[int, ...], *, trust: bool = False) -> None:
        self.model, self.shape, self.trust = model, tuple(shape), trust
        self._calls: list[_Call] | None = None
        self.input_id: int | None = None
        self.output_ids: list[int] = []

    @property
    def calls(self) -> list[_Call]:
        """Every module call, in the order the calls finished (children before their parents)."""
        if self._calls is None:
            self._calls = self._run()
        return self._calls

    def __call__(self, name: str):
        """The output of module ``name`` (its first call), as meta tensors."""
        for call in self.calls:
            if call.name == name:
                return call.output
        raise TraceError(f"module {name} did not run in a forward pass of the model")

    def _run(self) -> list[_Call]:
        if self.model is None:
            raise TraceError("there is no real model to run")
        model = build_model(self.model, device="cpu", trust=self.trust) if isinstance(self.model, str) else self.model
        names = {m: n for n, m in model.named_modules() if n}
        calls: list[_Call] = []
        alive: list = []  # every tensor seen stays alive for the pass: no id is reused for another

        def hook(module, args, out):
            alive.append((args, out))
            ins = [id(t) for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)]
            outs = [id(t) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            meta = tree_map_only(torch.Tensor, lambda t: torch.empty_like(t, device="meta"), out)
            items = out.items() if isinstance(out, dict) else enumerate(out) if isinstance(out, (tuple, list)) else ()
            elements = [(k, torch.empty_like(v, device="meta"), id(v)) for k, v in items if isinstance(v, torch.Tensor)]
            calls.append(_Call(names[module], module, ins, meta, outs, elements))

        modes = [(m, m.training) for m in model.modules()]
        handles = [m.register_forward_hook(hook) for m in names]
        device = next((t.device for t in model.parameters()), torch.device("cpu"))
        x = torch.rand(self.shape, generator=torch.Generator().manual_seed(0)).to(device, input_dtype(model))
        self.input_id = id(x)
        try:
            model.eval()
            with torch.no_grad():
                out = model(x)
            self.output_ids = [id(t) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            alive.append(out)
        finally:
            for h in handles:
                h.remove()
            for m, training in modes:
                m.training = training
            alive.clear()
        return calls


def _node_name(module: str) -> str:
    return module.replace(".", "_")


def hooked_graph(run: RealRun, input_size: tuple[int, ...], name: str, chans: int, why: str) -> RFGraph:
    """An RF graph of module outputs from one real forward pass, every RF unknown (see the module docstring).

    Parameters
    ----------
    run : RealRun
        The forward pass (run now if it has not been).
    input_size : tuple
        Spatial input size.
    name : str
        The model's name.
    chans : int
        Input channels.
    why : str
        Why the model could not be traced or recorded (``g.untraced[""]``, shown by ``g.opaque``).

    Raises
    ------
    TraceError
        The model cannot even run forward on a tensor of that size.
    """
    naxes = len(input_size)
    try:
        calls = run.calls
    except TraceError:
        raise
    except Exception as e:  # noqa: BLE001 - the one failure left: the model does not run at all
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TraceError(f"{name} cannot run forward on a {tuple(run.shape)} tensor: {type(e).__name__}: {msg}") from e
    source = RFState.input(naxes, run.shape)
    info = RFInfo.from_state(source, naxes, run.shape)
    records = [NodeRecord("x", "input", "placeholder", None, "", (), info, source.layout)]
    producer: dict[int, str] = {run.input_id: "x"}
    module_outputs: dict[str, str] = {}
    for call in calls:
        if isinstance(call.output, torch.Tensor):
            outputs = [(call.name, _node_name(call.name), call.output, call.output_ids[0])]
        else:  # each tensor of a tuple, list or dict output: module[k]
            outputs = [
                (element_name(call.name, k), element_name(_node_name(call.name), k), t, i) for k, t, i in call.elements
            ]
        t = type(call.module)
        inputs = tuple(dict.fromkeys(producer[i] for i in call.inputs if i in producer)) or ("x",)
        scope = call.name.rsplit(".", 1)[0] if "." in call.name else ""
        for module, node, tensor, out_id in outputs:
            if out_id in producer and producer[out_id] != "x":  # a parent returning its child's output
                module_outputs[module] = producer[out_id]
                continue
            shape = tuple(tensor.shape)
            layout = lay.plain(shape, tuple(range(2, 2 + naxes))) if len(shape) == 2 + naxes else None
            info = RFInfo.from_state(RFState(axes=None, layout=layout, unknown=True), naxes, shape)
            records.append(
                NodeRecord(node, f"{t.__module__}.{t.__qualname__}", "call_module", module, scope, inputs, info, layout)
            )
            producer[out_id] = node
            module_outputs[module] = node
    outs = [producer[i] for i in run.output_ids if i in producer]
    last = outs[0] if len(run.output_ids) == 1 and outs else records[-1].name
    module_outputs[""] = last
    unsupported = [UnsupportedNode(last, name, "neither torch.fx nor make_fx can follow the model's forward")]
    incomplete = f"every RF is unknown: {why}"
    return RFGraph(records, module_outputs, unsupported, input_size, name, chans, "hooks", {"": why}, incomplete)
