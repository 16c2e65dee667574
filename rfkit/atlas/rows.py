"""The atlas rows of one traced model at one input size: a row per stage output and the final feature map.

Every row holds the layer's analytic RF per axis (max over paths, min over paths, local paths), stride,
centre of unit 0, effective padding, where the centre unit's RF centre sits against the image centre, the
flags (global, misaligned, approximate, unknown, periodic), whether the RF outgrows the input, and the
layer's productivity status at this size; then columns of the model as a whole at this size (the final
layer's RF and stride, the input resolution range, the unproductive layers).
"""

from __future__ import annotations

import math

import networkx as nx

from rfkit.graph.layers import default_layer, feature_stages, is_feature_map, is_grid_map, outermost_modules
from rfkit.graph.productivity import Status, input_resolution_range, productivity
from rfkit.graph.units import centre_unit, grid_shape

AXES = ("h", "w")

#: At most this many unproductive layer names are listed in a row (the count is exact).
LISTED_UNPRODUCTIVE = 20


def _axes(prefix: str, values) -> dict:
    return {f"{prefix}_{a}": v for a, v in zip(AXES, values)}


def _smallest(values) -> float:
    """The smaller of the axes' values: an RF 'at least N' on both axes is one whose smallest is N."""
    return min(values) if not any(isinstance(v, float) and math.isnan(v) for v in values) else math.nan


def _largest(values) -> float:
    return max(values) if not any(isinstance(v, float) and math.isnan(v) for v in values) else math.nan


def centre_offset(info, record, size: tuple[int, ...]) -> tuple:
    """Per axis, the RF centre of the layer's centre unit minus the image centre ``(n - 1) / 2`` (0 when
    the centre unit looks at the middle of the image; NaN where the RF is global-only or unknown).

    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3, stride=2)), input_size=8)
    >>> centre_offset(g["0"], g.record("0"), (8, 8))   # 3x3 grid: unit 1 sees pixels 2..4, centre 3 vs 3.5
    (-0.5, -0.5)
    """
    if info.windows is None or info.unknown:
        return (math.nan,) * len(size)
    unit = centre_unit(grid_shape(record.layout, len(size)))
    return tuple(c - (n - 1) / 2 for c, n in zip(info.center_of(unit), size))


def layer_row(g, name: str, stage: int, is_final: bool, statuses: dict) -> dict:
    """The columns of one layer (module or node ``name``) of ``g``."""
    info, record = g[name], g.record(name)
    size = tuple(g.input_size)
    local = info.local_size if info.local_size is not None else (math.nan,) * len(size)
    return {
        "layer": name,
        "stage": stage,
        "is_final": is_final,
        **_axes("rf", info.size),
        "rf": _smallest(info.size),
        **_axes("rf_min", info.size_min),
        **_axes("rf_local", local),
        **_axes("stride", info.stride),
        "stride": _largest(info.stride),
        **_axes("center", info.center),
        **_axes("padding", info.padding),
        **_axes("centre_offset", centre_offset(info, record, size)),
        "is_global": info.is_global,
        "misaligned": info.misaligned,
        "approximate": info.approximate,
        "unknown": info.unknown,
        "periodic": not info.shift_invariant,
        "outgrows": any(r > n for r, n in zip(local, size)),
        "status": str(statuses.get(g.resolve(name), "")),
    }


def model_columns(g, report, final: dict) -> dict:
    """Columns of the model as a whole at ``g``'s input size: the final layer's RF, the input resolution
    range (RFA's), the unproductive layers of the productivity ``report``."""
    lo, hi = input_resolution_range(g)
    unproductive = [e.module or e.node for e in report.select(Status.UNPRODUCTIVE)]
    listed = "; ".join(unproductive[:LISTED_UNPRODUCTIVE]) + (
        "; ..." if len(unproductive) > LISTED_UNPRODUCTIVE else ""
    )
    return {
        "rf_final": final["rf"],
        "stride_final": final["stride"],
        "global_final": final["is_global"],
        **_axes("input_min", lo),
        **_axes("input_max", hi),
        "unproductive": len(unproductive),
        "unproductive_layers": listed,
        "method": g.method,
        "unsupported_ops": sum(op.count for op in g.unsupported),
        "nodes": len(g),
    }


def stride_stages(g) -> list[str]:
    """The stages of a model without timm's ``feature_info``: the outermost module outputs that are feature
    maps with a known RF (global ones too: their local RF is a column), the last of each run of equal stride in
    graph order among the shallowest modules of the run (a run ends where the stride changes: a stem, each
    downsampling stage, each level of a neck going up and down; MobileNetV2's ``features.1``, not the expansion
    conv ``features.2.conv.0`` of the block that downsamples next). A module's output on a side path of a module
    around it (a strided shortcut's projection, an attention's positional branch) is not a stage: every stage
    lies on each path from the input to the output of every module that holds it (:func:`on_every_path`).

    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3, 2))
    >>> stride_stages(rfkit.trace(net, input_size=32))
    ['2', '3']
    """
    modules = outermost_modules(g)
    through = on_every_path(g)
    out: list[str] = []
    last_stride = None
    for node, record in g.records.items():
        if node not in modules or not is_feature_map(record) or not through(node, modules[node]):
            continue
        stride = record.info.stride
        if not out or stride != last_stride:
            out.append(modules[node])
        elif modules[node].count(".") <= out[-1].count("."):  # a whole block, not the first conv of the next
            out[-1] = modules[node]
        last_stride = stride
    return out


def on_every_path(g):
    """A test ``through(node, module)``: whether ``node`` (the output of ``module``) lies on every path from the
    input to the output of each module enclosing ``module`` (the model itself aside: a detector's outputs
    branch off its neck), i.e. dominates it in the graph.

    >>> import torch.nn as nn, rfkit
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.proj = nn.Conv2d(3, 3, 1, 2)
    ...         self.body = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 3, 2, 1))
    ...     def forward(self, x):
    ...         return self.proj(x) + self.body(x)
    >>> g = rfkit.trace(nn.Sequential(Block()), input_size=16)
    >>> through = on_every_path(g)
    >>> through(g.resolve("0.proj"), "0.proj"), through(g.resolve("0.body"), "0.body"), through(g.resolve("0"), "0")
    (False, False, True)
    """
    graph = g.nx
    start = next(iter(g.records))
    idom = nx.immediate_dominators(graph, start) if start in graph else {}
    chains: dict[str, set[str]] = {}

    def dominators(node: str) -> set[str]:
        if node not in chains:
            seen, n = set(), node
            while n in idom and n not in seen:
                seen.add(n)
                n = idom[n]
            chains[node] = seen
        return chains[node]

    def through(node: str, module: str) -> bool:
        parts = module.split(".")
        for k in range(len(parts) - 1, 0, -1):
            outer = g.module_outputs.get(".".join(parts[:k]))
            if outer is not None and outer != node and node not in dominators(outer):
                return False
        return True

    return through


def stage_names(g, model) -> list[str]:
    """The stage outputs of ``model`` in graph order (timm's ``feature_info``, else :func:`stride_stages`), up
    to the final feature map (:func:`~rfkit.graph.layers.default_layer`), which comes last; one name per node.

    Raises
    ------
    LayerError
        The model has no layer with a spatial grid.
    """
    final = default_layer(g, model)
    order = {name: i for i, name in enumerate(g.records)}
    end = order[g.resolve(final)]
    stages = [n for n in feature_stages(model) if n in g.module_outputs] or stride_stages(g)
    kept: dict[str, str] = {}
    for name in stages:
        node = g.resolve(name)
        if order[node] < end and node not in kept and is_grid_map(g.record(name)):
            kept[node] = name
    return [kept[n] for n in sorted(kept, key=order.get)] + [final]


def graph_rows(g, model) -> list[dict]:
    """The rows of the traced graph ``g`` of ``model`` (the module, for its ``feature_info`` stages): the
    stage outputs in order, the final feature map last (``is_final``), each with the model's columns.

    Raises
    ------
    LayerError
        The model has no layer with a spatial grid.
    """
    names = stage_names(g, model)
    report = productivity(g)
    statuses = {e.node: e.status for e in report}
    rows = [layer_row(g, n, i, i == len(names) - 1, statuses) for i, n in enumerate(names)]
    common = {"input_h": g.input_size[0], "input_w": g.input_size[1], **model_columns(g, report, rows[-1])}
    return [{**common, **row} for row in rows]
