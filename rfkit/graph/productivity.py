"""Unproductive-layer analysis: which layers can still add context at a given input resolution.

Receptive field analysis (RFA; Richter, Schöning, Wiedenroth & Krumnack, "Should You Go Deeper?", ICMLA
2021, and "Receptive Field Analysis for Optimizing Convolutional Neural Network Architectures Without
Training", 2023) predicts, without training, which layers of a CNN will not improve its features at an
input resolution: a layer whose input already sees the whole image cannot widen the context of its
features, and trained networks leave such layers nearly idle. The prediction uses the **minimum RF over
paths** (a residual block's identity path keeps it small), which the RFA authors found the reliable
predictor in multi-path networks.

Per node and per spatial axis ``a`` with input resolution ``R[a]``, with ``rf_in[a]`` the smallest RF
among the node's inputs (minimum over its predecessors of their ``size_min``) and ``rf_out[a]`` its own
``size_min``:

* **unproductive** — ``rf_in[a] >= R[a]`` on *every* axis: every input it receives already covers the
  input image, so it adds no new context;
* **critical** — not unproductive and ``rf_out[a] > R[a]`` on every axis: its RF grows past the image;
* **partially critical** — not unproductive and ``rf_out[a] > R[a]`` on some axes only (non-square
  inputs or kernels);
* **productive** — otherwise;
* **global** — a layer whose op mixes every position: global pooling, a dense head over a flattened map,
  attention over all tokens, or any node that no local path reaches. Its RF is the whole input by
  construction, so the analysis does not apply; it is reported as global, never as unproductive;
* **unknown** — the RF is unknown (an op without an RF rule lies upstream).

Global-context paths (squeeze-and-excitation gates, attention keys and values) never make a layer
unproductive: ``size_min`` counts a global path as infinite, so the local paths decide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import rfkit.validate as validate
from rfkit.errors import ArgumentError, NodeNotFoundError
from rfkit.graph.rfgraph import NodeRecord, RFGraph

Number = int | float


class Status(str, Enum):
    """Productivity status of a node at an input resolution (the value is the display name)."""

    PRODUCTIVE = "productive"
    PARTIALLY_CRITICAL = "partially critical"
    CRITICAL = "critical"
    UNPRODUCTIVE = "unproductive"
    GLOBAL = "global"
    UNKNOWN = "unknown"
    INPUT = "input"

    def __str__(self) -> str:
        return self.value


SEVERITY = (
    Status.UNPRODUCTIVE,
    Status.CRITICAL,
    Status.PARTIALLY_CRITICAL,
    Status.PRODUCTIVE,
    Status.GLOBAL,
    Status.UNKNOWN,
    Status.INPUT,
)
"""Statuses from the most to the least severe (how a collapsed block of layers is summarised)."""

LAYER_CATEGORIES = frozenset({"conv", "pool", "linear", "attention", "resample", "global_pool"})
"""Categories of ops counted as layers: the ones with weights or a spatial window. Activations,
normalisations, reshapes and merges get a status too but are not counted."""

# the op's short name (after the last dot) -> category; first match wins
_CATEGORIES = (
    ("attention", re.compile(r"attention|^(matmul|bmm|baddbmm|einsum|__matmul__)$", re.I)),
    ("global_pool", re.compile(r"adaptive.*pool|global_?pool|SelectAdaptivePool", re.I)),
    ("resample", re.compile(r"upsampl|interpolate|pixel_?(un)?shuffle", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("pool", re.compile(r"pool", re.I)),
    ("linear", re.compile(r"^(linear|lazylinear|addmm|NonDynamicallyQuantizableLinear)$", re.I)),
)
_MERGES = re.compile(
    r"^(add|iadd|sub|mul|imul|cat|concat|concatenate|stack|where|maximum|minimum|__add__|"
    r"__mul__|__radd__|__rmul__|add_|mul_)$",
    re.I,
)


def op_category(op: str) -> str:
    """Category of an op name as stored in :class:`~rfkit.graph.rfgraph.NodeRecord`: ``conv``, ``pool``,
    ``global_pool``, ``linear``, ``attention``, ``resample``, ``merge`` or ``other``.

    >>> op_category("torch.nn.modules.conv.Conv2d"), op_category("operator.add"), op_category("relu")
    ('conv', 'merge', 'other')
    """
    short = op.rsplit(".", 1)[-1]
    for category, pattern in _CATEGORIES:
        if pattern.search(short):
            return category
    if _MERGES.match(short):
        return "merge"
    return "other"


@dataclass(frozen=True)
class LayerProductivity:
    """Productivity of one node at the report's input resolution.

    Attributes
    ----------
    node : str
        Node name in the graph.
    module : str
        Qualified name of the module it belongs to (the called module, else the module whose forward
        created it; ``""`` at the top level).
    op : str
        The op it runs.
    category : str
        ``conv``, ``pool``, ``global_pool``, ``linear``, ``attention``, ``resample``, ``merge`` or ``other``.
    is_layer : bool
        Whether it counts as a layer (category in :data:`LAYER_CATEGORIES`).
    status : Status
    rf_in : tuple
        Per axis, the smallest RF among its inputs (``inf`` where every input is global).
    rf_out : tuple
        Per axis, its own RF along the chosen path measure.
    covered : tuple of bool
        Per axis, ``rf_in >= R``: the input already covers the image along that axis.
    exceeds : tuple of bool
        Per axis, ``rf_out > R``: its RF grows past the image along that axis.
    """

    node: str
    module: str
    op: str
    category: str
    is_layer: bool
    status: Status
    rf_in: tuple[Number, ...]
    rf_out: tuple[Number, ...]
    covered: tuple[bool, ...]
    exceeds: tuple[bool, ...]


@dataclass(frozen=True, eq=False)
class ProductivityResult:
    """Per-node productivity of an :class:`~rfkit.graph.rfgraph.RFGraph` at one input resolution.

    Iterating yields :class:`LayerProductivity` in topological order (the input node left out);
    ``report[key]`` takes a node or module name, like ``RFGraph``.
    """

    model: str
    input_size: tuple[int, ...]
    path: str
    axis_names: tuple[str, ...]
    layers: tuple[LayerProductivity, ...]
    module_outputs: dict[str, str] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[LayerProductivity]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: str) -> LayerProductivity:
        node = self.module_outputs.get(key, key)
        for entry in self.layers:
            if entry.node == node:
                return entry
        raise NodeNotFoundError(
            f"no node or module named {key!r} in the productivity report of {self.model or 'the model'}"
        )

    def status(self, key: str) -> Status:
        """Status of a node or module."""
        return self[key].status

    def select(self, status: Status | str, layers_only: bool = True) -> list[LayerProductivity]:
        """The entries with a status (layers only, unless ``layers_only=False``)."""
        status = Status(status)
        return [e for e in self.layers if e.status is status and (e.is_layer or not layers_only)]

    def counts(self, layers_only: bool = True) -> dict[Status, int]:
        """Number of entries per status, every status listed (zeros included), input left out.

        By default only layers (:data:`LAYER_CATEGORIES`) are counted.
        """
        out = {s: 0 for s in SEVERITY if s is not Status.INPUT}
        for e in self.layers:
            if e.is_layer or not layers_only:
                out[e.status] += 1
        return out

    def summary(self) -> str:
        """One line: resolution and layer counts per status."""
        counts = self.counts()
        parts = [f"{n} {s.value}" for s, n in counts.items() if n]
        size = "×".join(map(str, self.input_size))
        return f"{self.model or 'model'} at {size}: " + (", ".join(parts) or "no layers")

    def to_frame(self):
        """One row per node: ``node, module, op, category, is_layer, status`` and per axis ``rf_in_h``,
        ``rf_out_h``, ``covered_h``, ``exceeds_h``, …"""
        import pandas as pd

        rows = []
        for e in self.layers:
            row = {
                "node": e.node,
                "module": e.module,
                "op": e.op,
                "category": e.category,
                "is_layer": e.is_layer,
                "status": e.status.value,
            }
            for field_name in ("rf_in", "rf_out", "covered", "exceeds"):
                for ax, v in zip(self.axis_names, getattr(e, field_name)):
                    row[f"{field_name}_{ax}"] = v
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class InputRange:
    """Feasible input resolutions of a network, per axis (RFA's "input resolution range").

    Unpacks as ``(min, max)``.

    Attributes
    ----------
    min : tuple of int
        Per axis, the smallest resolution at which no layer is unproductive when every axis is at
        least this large: one more than the largest ``rf_in`` of any layer (by default: any layer with
        weights) on that axis.
    max : tuple
        Per axis, the largest RF of any node with a local path: above it some input patterns exceed
        every RF of the network. ``inf`` where a global-context path reaches a node and
        ``ignore_global`` is False.
    min_nodes, max_nodes : tuple of str
        Per axis, the node that sets the bound.
    ignore_global : bool
        Whether global-context paths (SE gates, attention) were left out of ``max``.
    weighted_only : bool
        Whether only layers with weights set ``min``.
    skipped : tuple of str
        Nodes left out because their RF is unknown (unsupported ops upstream).
    """

    min: tuple[int, ...]
    max: tuple[Number, ...]
    min_nodes: tuple[str, ...]
    max_nodes: tuple[str, ...]
    ignore_global: bool = False
    weighted_only: bool = True
    skipped: tuple[str, ...] = ()

    def __iter__(self):
        yield self.min
        yield self.max

    @property
    def feasible(self) -> bool:
        """Whether some resolution lies in the range on every axis (``min <= max``)."""
        return all(lo <= hi for lo, hi in zip(self.min, self.max))


# --- helpers -----------------------------------------------------------------------------------------------
def normalise_resolution(input_size, ndim: int) -> tuple[int, ...]:
    """An int or a per-axis tuple as a tuple of ``ndim`` positive ints (:func:`rfkit.validate.input_size`).

    >>> normalise_resolution(32, 2), normalise_resolution((16, 64), 2)
    ((32, 32), (16, 64))
    """
    return validate.input_size(input_size, ndim)


def _rf(info, path: str) -> tuple[float, ...] | None:
    """The node's RF per axis along the chosen path measure (inf where no local path reaches it)."""
    n = len(info.size)
    if info.unknown:
        return None
    if path == "min":
        values = info.size_min
    else:
        values = info.local_size if info.local_size is not None else (math.inf,) * n
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return None
    return tuple(values)


def _is_global_layer(rec: NodeRecord, category: str) -> bool:
    info = rec.info
    if info.is_global and info.local_size is None:
        return True  # no local path reaches it
    if category == "attention" and info.is_global:
        return True  # attends to every token
    if info.shape is not None and len(info.shape) <= 2 and rec.kind != "placeholder":
        return True  # (batch, features): the map was flattened or pooled into a vector per image
    if info.dims == ():
        return True
    if category == "global_pool" and info.shape is not None and info.dims:
        return all(info.shape[d] == 1 for d in info.dims if d < len(info.shape))
    return False


def _classify(covered: tuple[bool, ...], exceeds: tuple[bool, ...]) -> Status:
    if all(covered):
        return Status.UNPRODUCTIVE
    if all(exceeds):
        return Status.CRITICAL
    if any(exceeds):
        return Status.PARTIALLY_CRITICAL
    return Status.PRODUCTIVE


def _entries(g: RFGraph, size: tuple[int, ...], path: str) -> list[LayerProductivity]:
    ndim = len(size)
    inf = (math.inf,) * ndim
    nan = (math.nan,) * ndim
    out = []
    for name, rec in g.records.items():
        if rec.kind == "placeholder" or rec.op == "input":
            continue
        category = op_category(rec.op)
        module = rec.module or rec.scope
        rf_out = _rf(rec.info, path)
        preds = [_rf(g.records[p].info, path) for p in rec.inputs if p in g.records]
        unknown = rf_out is None or any(p is None for p in preds)
        rf_in = (
            tuple(min(p[a] for p in preds) for a in range(ndim)) if preds and not unknown else (nan if unknown else inf)
        )
        is_layer = category in LAYER_CATEGORIES
        if unknown:
            status, covered, exceeds = Status.UNKNOWN, (False,) * ndim, (False,) * ndim
            rf_out = rf_out or nan
        else:
            covered = tuple(r >= s for r, s in zip(rf_in, size))
            exceeds = tuple(r > s for r, s in zip(rf_out, size))
            status = Status.GLOBAL if _is_global_layer(rec, category) else _classify(covered, exceeds)
        out.append(
            LayerProductivity(
                name, module, rec.op, category, is_layer, status, _plain(rf_in), _plain(rf_out), covered, exceeds
            )
        )
    return out


def _plain(values) -> tuple[Number, ...]:
    return tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in values)


def _check_args(g, path: str) -> None:
    if not isinstance(g, RFGraph):
        raise ArgumentError(f"g must be an RFGraph (from rfkit.trace or a GraphBuilder), got {type(g).__name__}")
    if path not in ("min", "max"):
        raise ArgumentError(f"path must be 'min' (minimum over paths, RFA's choice) or 'max', not {path!r}")


# --- public API ---------------------------------------------------------------------------------------------
def productivity(g: RFGraph, input_size=None, *, path: str = "min") -> ProductivityResult:
    """Status of every node of ``g`` at an input resolution: productive, partially critical, critical,
    unproductive, global or unknown (see :mod:`rfkit.graph.productivity` for the rules).

    Parameters
    ----------
    g : RFGraph
        From :func:`rfkit.trace` or a hand-built graph (:class:`rfkit.graph.handbuilt.GraphBuilder`).
    input_size : int or tuple, optional
        Input resolution, per axis (an int means square). Default: the size ``g`` was traced at. RF sizes
        of convolutions and pooling do not depend on the input size, but adaptive pooling to a grid larger
        than one cell and whether global pooling sees one cell or many do: trace at the resolution you
        analyse for exact results.
    path : {"min", "max"}
        Which RF over paths decides: ``"min"`` (the minimum over paths, as RFA does) or ``"max"`` (the
        largest RF of the local paths: more layers come out unproductive).

    Returns
    -------
    ProductivityResult

    Raises
    ------
    InputSizeError
        ``input_size`` is not an int or a tuple of ints, or has the wrong number of axes.
    InputTooSmallError
        ``input_size`` is not positive.
    ArgumentError
        ``g`` is not an RFGraph, or ``path`` is neither ``"min"`` nor ``"max"``.

    Examples
    --------
    Four 3×3 convolutions at a 6×6 input: RFs 3, 5, 7 and 9 pixels. The third one's RF grows past the
    image (critical); the fourth receives features that already cover it (unproductive).

    >>> import torch.nn as nn, rfkit
    >>> from rfkit.graph.productivity import productivity
    >>> g = rfkit.trace(nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(4)]), input_size=6)
    >>> report = productivity(g, 6)
    >>> [str(e.status) for e in report]
    ['productive', 'productive', 'critical', 'unproductive']
    >>> report["3"].rf_in, report["3"].rf_out
    ((7, 7), (9, 9))
    """
    _check_args(g, path)
    size = normalise_resolution(g.input_size if input_size is None else input_size, len(g.input_size))
    return ProductivityResult(
        g.model_name, size, path, tuple(g.axis_names), tuple(_entries(g, size, path)), dict(g.module_outputs)
    )


WEIGHTED_CATEGORIES = frozenset({"conv", "linear"})
"""Categories of layers with weights: the ones whose being unproductive wastes parameters and compute."""


def input_resolution_range(
    g: RFGraph, *, ignore_global: bool = False, weighted_only: bool = True, path: str = "min"
) -> InputRange:
    """The range of input resolutions in which the network works efficiently, per axis.

    Below ``min`` some layers with weights are unproductive (their inputs already see the whole image); above ``max``
    some input patterns are larger than every RF of the network (max over paths, local nodes only: the
    classifier head is left out).

    Parameters
    ----------
    g : RFGraph
    ignore_global : bool
        Leave global-context paths out of ``max`` (an SE block's gate, attention): use the local paths'
        RF of every node. When False, a node that a global path reaches has an infinite RF and ``max`` is
        ``inf``.
    weighted_only : bool
        Let only layers with weights (convolutions, linear layers) set ``min``; False lets parameter-free
        layers that grow the RF (pooling, resampling) set it too.
    path : {"min", "max"}
        Path measure for ``min``, as in :func:`productivity`.

    Returns
    -------
    InputRange
        Unpacks as ``(min, max)``.

    Examples
    --------
    Three 3×3 convolutions: the third receives a 5-pixel RF, so at 5 pixels it would be unproductive; its
    own RF is 7 pixels.

    >>> import torch.nn as nn, rfkit
    >>> from rfkit.graph.productivity import input_resolution_range
    >>> g = rfkit.trace(nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(3)]), input_size=16)
    >>> lo, hi = input_resolution_range(g)
    >>> lo, hi
    ((6, 6), (7, 7))
    """
    _check_args(g, path)
    ndim = len(g.input_size)
    entries = _entries(g, tuple(g.input_size), path)
    skipped = tuple(e.node for e in entries if e.status is Status.UNKNOWN)
    lo, lo_nodes = [1] * ndim, [""] * ndim
    for e in entries:
        if not e.is_layer or e.status in (Status.GLOBAL, Status.UNKNOWN):
            continue
        if e.category not in WEIGHTED_CATEGORIES and (weighted_only or all(o <= i for o, i in zip(e.rf_out, e.rf_in))):
            continue  # a parameter-free layer that does not grow the RF (an identity adaptive pool) adds nothing
        for a in range(ndim):
            need = e.rf_in[a] + 1
            if math.isfinite(need) and need > lo[a]:
                lo[a], lo_nodes[a] = int(need), e.node
    hi: list[Number] = [1] * ndim
    hi_nodes = [""] * ndim
    for name, rec in g.records.items():
        info = rec.info
        if rec.kind == "placeholder" or info.unknown or info.local_size is None:
            continue
        values = info.local_size if ignore_global else info.size
        for a in range(ndim):
            v = values[a]
            if isinstance(v, float) and math.isnan(v):
                continue
            if v > hi[a]:
                hi[a], hi_nodes[a] = v, name
    return InputRange(
        tuple(lo), tuple(_plain(hi)), tuple(lo_nodes), tuple(hi_nodes), ignore_global, weighted_only, skipped
    )
