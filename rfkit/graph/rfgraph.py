"""``RFGraph``: the traced network with an :class:`RFInfo` per node, as a networkx graph and a table."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx

from rfkit.errors import NodeNotFoundError
from rfkit.graph.info import RFInfo

AXIS_NAMES = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}


@dataclass(frozen=True)
class UnsupportedOp:
    """An op with no RF rule: how often it occurs and at which nodes (fvcore's ``unsupported_ops``)."""

    op: str
    count: int
    nodes: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class OpaqueModule:
    """A module torch.fx could not trace into and ``make_fx`` could not record: its output's RF is unknown
    (everything that does not pass through it keeps exact values)."""

    module: str
    node: str
    reason: str


@dataclass(frozen=True)
class NodeRecord:
    """A node of the RF graph: what it runs, where it sits in the model, and its RF."""

    name: str
    op: str
    kind: str  # fx opcode: placeholder, call_module, call_function, call_method
    module: str | None  # qualified name of the called module (call_module nodes)
    scope: str  # innermost module whose forward created the node ("" at the top level)
    inputs: tuple[str, ...]
    info: RFInfo
    layout: tuple | None = None  # rfkit.graph.layout.Layout of the output: which dims hold which axis pieces


class RFGraph:
    """Receptive fields of every node of a traced model.

    ``g[key]`` takes an FX node name or a module's qualified name (its output node) and returns an
    :class:`RFInfo`; iterating yields node names in topological order; ``g.nx`` is the
    :class:`networkx.DiGraph`.

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, dilation=2)), input_size=32)
    >>> g["1"].size
    (7, 7)
    >>> list(g)[1:]  # node names, after the input placeholder
    ['_0', '_1']
    """

    def __init__(
        self,
        records: list[NodeRecord],
        module_outputs: dict[str, str],
        unsupported_nodes: list,
        input_size: tuple[int, ...],
        model_name: str = "",
        in_chans: int = 3,
        method: str = "torch.fx",
        untraced: dict[str, str] | None = None,
        incomplete: str | None = None,
    ) -> None:
        self.records = {r.name: r for r in records}
        self.module_outputs = {m: n for m, n in module_outputs.items() if n in self.records}
        self.input_size = tuple(input_size)
        self.model_name = model_name
        self.in_chans = in_chans
        self.method = method  # "torch.fx", or "make_fx" for models recorded as ATen ops at this input size
        #: module -> why torch.fx could not trace into it (kept whole, recorded with make_fx where it can be)
        self.untraced = dict(untraced or {})
        #: why the graph is not the whole model (None: it is, as far as a forward pass can tell): the RF of
        #: the nodes named there, and of every node after them, is unknown (see :mod:`rfkit.graph.check`)
        self.incomplete = incomplete
        self.axis_names = AXIS_NAMES.get(len(self.input_size), tuple(f"a{i}" for i in range(len(self.input_size))))
        self._unsupported_nodes = list(unsupported_nodes)
        self._nx: nx.DiGraph | None = None
        #: other names of modules or nodes -> the name in the graph (an ONNX model's node and output names)
        self.aliases: dict[str, str] = {}

    # --- lookup -------------------------------------------------------------------------------------
    def resolve(self, key: str) -> str:
        """Node name for ``key``: a node name, a module's qualified name, ``module[k]`` (element ``k`` of a
        module's tuple, list or dict output), or, in a model whose layers are ``model.0`` ... ``model.N``
        (ultralytics), a layer index as the YOLO world writes it: ``13`` is ``model.13``, ``9-1`` is
        ``model.9[1]``."""
        if key in self.module_outputs:
            return self.module_outputs[key]
        if key in self.records:
            return key
        if key in self.aliases:
            return self.resolve(self.aliases[key])
        indexed = self._indexed_layer(key)
        if indexed is not None:
            return self.module_outputs[indexed]
        self._check_element(key)
        self._check_container(key)
        candidates = list(self.module_outputs) + list(self.records) + list(self.aliases)
        close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else " List the names with `rfkit graph MODEL`."
        raise NodeNotFoundError(
            f"no node or module named {key!r} in the graph of {self.model_name or 'the model'}." + hint
        )

    def _check_element(self, key: str) -> None:
        """Raise a :class:`NodeNotFoundError` naming the elements there are, for ``module[k]`` where ``module``
        has tensor elements and ``k`` is not one."""
        if not (key.endswith("]") and "[" in key):
            return
        module = key[: key.rindex("[")]
        found = [m for m in self.module_outputs if m.startswith(module + "[") and m.endswith("]")]
        if found:
            raise NodeNotFoundError(
                f"{module} has {len(found)} tensor output{'s' * (len(found) != 1)}: {', '.join(found)}; "
                f"{key} is not one"
            )

    def _check_container(self, key: str) -> None:
        """Raise a :class:`NodeNotFoundError` naming its elements when ``key`` is a module that returns a tuple,
        list or dict of tensors rather than one tensor."""
        found = [m for m in self.module_outputs if m.startswith(key + "[") and m.endswith("]")]
        if not found:
            return
        found.sort(key=lambda m: (len(m), m))  # [2] before [10]
        kind = "a tuple" if all(m[len(key) + 1 : -1].isdigit() for m in found) else "a dict"
        raise NodeNotFoundError(
            f"{key} returns {kind} of {len(found)} tensors, not one tensor: name an element instead, "
            f"{' or '.join(found)}"
        )

    def _indexed_layer(self, key: str) -> str | None:
        """``model.N`` or ``model.N[k]`` for a YOLO-style ``N`` or ``N-k`` (None for any other key)."""
        found = re.fullmatch(r"(\d+)(?:-(\d+))?", key)
        layers: dict[int, list[str]] = {}
        for name in [*self.module_outputs, *self.untraced]:
            m = re.fullmatch(r"model\.(\d+)(?:\[(\w+)\])?", name)
            if m:
                layers.setdefault(int(m[1]), []).append(m[2] or "")
        if not found or not layers:
            return None
        index, element = int(found[1]), found[2]
        if index not in layers:
            raise NodeNotFoundError(
                f"layer {index} is out of range: the layers of {self.model_name or 'the model'} are numbered "
                f"{min(layers)}..{max(layers)}"
            )
        elements = sorted(int(e) for e in layers[index] if e.isdigit())
        name = f"model.{index}" if element is None else f"model.{index}[{element}]"
        if name in self.module_outputs:
            return name
        if element is None and elements:
            raise NodeNotFoundError(
                f"layer {index} returns a tuple with {_count(elements)}: pick one, {_span(index, elements)}"
            )
        if element is None or f"model.{index}" not in self.module_outputs and not elements:
            raise NodeNotFoundError(
                f"layer {index} has no tensor output the graph can follow (a tuple or dict from a module kept "
                "whole): measure a layer before it"
            )
        if elements:
            raise NodeNotFoundError(
                f"layer {index} has {_count(elements)}: {index}-{element} is not one of {_span(index, elements)}"
                + _seed_counting(index, int(element), elements)
            )
        raise NodeNotFoundError(f"layer {index} has one output: write {index}, not {index}-{element}")

    def __getitem__(self, key: str) -> RFInfo:
        return self.records[self.resolve(key)].info

    def __contains__(self, key: str) -> bool:
        return key in self.module_outputs or key in self.records or key in self.aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def items(self) -> Iterator[tuple[str, RFInfo]]:
        """(node name, RFInfo) pairs in topological order."""
        return ((n, r.info) for n, r in self.records.items())

    def record(self, key: str) -> NodeRecord:
        return self.records[self.resolve(key)]

    @property
    def output(self) -> RFInfo:
        """RF of the model's output."""
        return self[""] if "" in self.module_outputs else list(self.records.values())[-1].info

    # --- unsupported ops ----------------------------------------------------------------------------
    @property
    def unsupported(self) -> list[UnsupportedOp]:
        """Ops without an RF rule, most frequent first; the RF of everything after them is unknown."""
        by_op: dict[str, list] = {}
        for u in self._unsupported_nodes:
            by_op.setdefault(u.op, []).append(u)
        ops = [
            UnsupportedOp(op, len(us), tuple(u.node for u in us), tuple(dict.fromkeys(u.reason for u in us)))
            for op, us in by_op.items()
        ]
        return sorted(ops, key=lambda o: (-o.count, o.op))

    @property
    def opaque(self) -> list[OpaqueModule]:
        """Modules torch.fx could not trace into (:attr:`untraced`) that ``make_fx`` could not record either:
        their output's RF is unknown, with both reasons. Everything before them, and every path that does
        not pass through them, keeps exact values."""
        recorded = {u.node: u.reason for u in self._unsupported_nodes}
        out = []
        for module, why in self.untraced.items():
            node = self.module_outputs.get(module)
            if node is not None and node in recorded:
                out.append(OpaqueModule(module, node, f"torch.fx: {why}; {recorded[node]}"))
        return out

    # --- export -------------------------------------------------------------------------------------
    @property
    def nx(self) -> nx.DiGraph:
        """A networkx DiGraph: one node per graph node with attributes ``op``, ``kind``, ``module``,
        ``scope``, ``shape`` and every :class:`RFInfo` field; graph attributes ``input_size`` and
        ``model``."""
        if self._nx is None:
            g = nx.DiGraph(input_size=self.input_size, model=self.model_name)
            for r in self.records.values():
                g.add_node(r.name, op=r.op, kind=r.kind, module=r.module, scope=r.scope, **r.info.as_dict())
                for src in r.inputs:
                    g.add_edge(src, r.name)
            self._nx = g
        return self._nx

    def to_frame(self):
        """One row per node, one column per axis and quantity (``rf_h``, ``rf_w``, ``stride_h``, ...)."""
        import pandas as pd

        rows = []
        for r in self.records.values():
            info = r.info
            row = {"node": r.name, "op": r.op, "module": r.module or r.scope, "shape": info.shape}
            for field, values in (
                ("rf", info.size),
                ("rf_min", info.size_min),
                ("rf_local", info.local_size),
                ("stride", info.stride),
                ("center", info.center),
                ("padding", info.padding),
                ("period", info.period),
            ):
                for ax, v in zip(self.axis_names, values or (math.nan,) * len(self.axis_names)):
                    row[f"{field}_{ax}"] = v
            row.update({f: getattr(info, f) for f in ("is_global", "misaligned", "approximate", "unknown")})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path) -> None:
        """Write :meth:`to_frame` as CSV, atomically (a reader never sees a half-written file)."""
        from rfkit.io import atomic_write_text

        atomic_write_text(path, self.to_frame().to_csv(index=False))

    def __repr__(self) -> str:
        out = self.output
        return (
            f"RFGraph({self.model_name or 'model'}, input={'x'.join(map(str, self.input_size))}, "
            f"{len(self)} nodes, output RF={out.size}, unsupported={sum(u.count for u in self.unsupported)}"
            + (", incomplete" if self.incomplete else "")
            + ")"
        )


#: get_model_erf.py pads a layer's list of outputs to this many at the front before indexing it with ``L-k``.
SEED_PADDED = 5


def _seed_counting(index: int, element: int, elements: list[int]) -> str:
    """How get_model_erf.py's ``index-element`` maps onto rfkit's counting, for a layer of fewer than 5
    outputs (it pads the list with None at the front to 5 before indexing, rfkit counts from 0); ``""`` where
    the two agree.

    >>> _seed_counting(9, 4, [0, 1, 2, 3]).split("; ")[1]
    "get_model_erf.py pads these 4 to 5 at the front, so its 9-4 is rfkit's 9-3)"
    """
    n = len(elements)
    if n >= SEED_PADDED or elements != list(range(n)):
        return ""
    own = element - (SEED_PADDED - n)
    theirs = f"rfkit's {index}-{own}" if 0 <= own < n else "None there (the script fails)"
    return (
        f" (rfkit counts a layer's outputs from 0; get_model_erf.py pads these {n} to {SEED_PADDED} at the front, "
        f"so its {index}-{element} is {theirs})"
    )


def _count(elements: list[int]) -> str:
    """``1 tensor output``, ``3 tensor outputs``."""
    return f"{len(elements)} tensor output{'s' * (len(elements) != 1)}"


def _span(index: int, elements: list[int]) -> str:
    """The element names of a layer: ``9-0 .. 9-2``, or ``23-0`` alone."""
    names = [f"{index}-{e}" for e in elements]
    return (
        names[0]
        if len(names) == 1
        else f"{names[0]} .. {names[-1]}"
        if elements == list(range(len(elements)))
        else ", ".join(names)
    )
