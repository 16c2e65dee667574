"""Which layers to look at: the final feature map, the stage outputs, the layers verification checks by
default, and user-given layer names checked against the graph.

One picker for every stage that measures layers (ERF, verification, attribution), so that "the stages of
a model" mean the same layers everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import networkx as nx
import torch.nn as nn

from rfkit.errors import LayerError, RFKitError
from rfkit.graph.layout import plain
from rfkit.graph.units import grid_shape

#: Ops of a classifier head that pool or flatten the final feature map.
HEAD_POOLS = (
    "adaptiveavgpool",
    "adaptivemaxpool",
    "selectadaptivepool",
    "flatten",
    ".mean",
    "amax",
    "onnx.globalaveragepool",
    "onnx.globalmaxpool",
    "onnx.reducemean",
    "onnx.reducemax",
)


def has_grid(record) -> bool:
    """Whether a node's output holds positions of a spatial axis (its layout says where)."""
    layout = record.layout
    return layout is not None and any(f.axis is not None for dl in layout for f in dl.factors)


def holds_every_axis(record) -> bool:
    """Whether a node's output holds positions of every spatial axis of the input (an attention's
    ``(B, heads, C, H*W)`` view of a 1×1 map may keep only one axis: no grid to take a unit from)."""
    held = {f.axis for dl in record.layout or () for f in dl.factors if f.axis is not None}
    return held >= set(range(len(record.info.size)))


def is_feature_map(record) -> bool:
    """A node whose output is a feature map (:func:`is_grid_map`) that is not an identity or dropout module:
    found by scanning a graph, ``norm_pre = Identity`` would repeat the stage output."""
    return is_grid_map(record) and not record.op.endswith(("Identity", "Dropout"))


def is_grid_map(record) -> bool:
    """A node whose output is a feature map: on a grid of every spatial axis, no spatial dim mixed with
    channels (a flattened map is not). A stage named by the model (timm's ``feature_info``) may end in an
    identity module (a byobnet stage whose last block has no attention): it is still the stage output."""
    if not has_grid(record) or record.info.unknown or record.kind == "placeholder" or not holds_every_axis(record):
        return False
    return not any(
        f.axis is None for dl in record.layout[1:] for f in dl.factors if any(h.axis is not None for h in dl.factors)
    )


def outermost_modules(g, depth: int | None = None) -> dict[str, str]:
    """node -> the outermost module whose output it is (``layer4`` rather than ``layer4.2``), among the
    modules at most ``depth`` dots deep when given."""
    out: dict[str, str] = {}
    for module, node in g.module_outputs.items():
        if not module or module.endswith("]") or (depth is not None and module.count(".") > depth):
            continue  # the model output, an element of a module's tuple output, or too deep
        if node not in out or (module.count("."), len(module)) < (out[node].count("."), len(out[node])):
            out[node] = module
    return out


def module_of(g, node: str) -> str | None:
    """The outermost module whose output is ``node`` (None for a node that is no module's output)."""
    return outermost_modules(g).get(node)


def layer_before(g, node: str) -> str | None:
    """The module of the latest feature map before ``node`` at the same module depth or shallower (the
    previous block), None if there is none."""
    module = module_of(g, node) or node
    modules = outermost_modules(g, module.count("."))
    order = list(g.records)
    for earlier in reversed(order[: order.index(node)]):
        if earlier in modules and is_feature_map(g.records[earlier]):
            return modules[earlier]
    return None


def feature_stages(model: nn.Module) -> list[str]:
    """The modules timm's ``feature_info`` lists as stage outputs (empty when the model has none)."""
    info = getattr(model, "feature_info", None)
    try:
        return [f["module"] for f in info] if info else []
    except (TypeError, KeyError, IndexError):
        return []


def is_head_pool(op: str) -> bool:
    """Whether an op pools or flattens a feature map for a classifier head (:data:`HEAD_POOLS`)."""
    return any(p in op.lower() for p in HEAD_POOLS)


def missing_rf(g, node: str) -> str | None:
    """Why the analytic RF of ``node`` is unknown (None when it is known): the model could not be traced,
    or the first op before it without an RF rule (or that could not be recorded)."""
    if not g[node].unknown:
        return None
    if g.method == "hooks":
        return "the model could not be traced, so no layer has an analytic RF: " + g.untraced.get("", "")
    before = nx.ancestors(g.nx, node) | {node}
    before |= {n[: n.index("[")] for n in before if n.endswith("]") and "[" in n}  # the module of an element
    for op in g.unsupported:
        for where in op.nodes:
            if where.split("/")[0] in before:
                return f"its RF is unknown after {op.op} at node {where}: {'; '.join(op.reasons)}"
    return "its RF is unknown (an op before it has no RF rule)"


def default_layer(g, model: nn.Module) -> str:
    """The final feature map: from timm's last ``feature_info`` stage (ResNet: ``layer4``), the last module
    output after it, before the head's pooling, that is on the same grid and just as local or global (ViT:
    the final ``norm``); without ``feature_info``, the last feature map with more than one
    unit. Module outputs are preferred to bare graph nodes.

    Raises
    ------
    LayerError
        No node of the graph has a spatial grid.
    """
    records = [r for r in g.records.values() if is_feature_map(r)]
    if not records:
        raise LayerError("the model has no layer with a spatial grid to measure")
    naxes = len(g.input_size)
    stages = feature_stages(model)
    last = stages[-1] if stages else None
    if last is not None and last in g.module_outputs and is_feature_map(g.record(last)):
        return _after_last_stage(g, records, last, naxes)
    multi = [r for r in records if math.prod(grid_shape(r.layout, naxes)) > 1] or records
    named = [r for r in multi if module_of(g, r.name)]
    chosen = (named or multi)[-1].name
    return module_of(g, chosen) or chosen


def _after_last_stage(g, records: list, last: str, naxes: int) -> str:
    """The last module output from the last stage ``last`` up to the head's pooling (the pooling itself is
    not a stage: it is the identity on a 1x1 map), on the stage's grid and as global as it."""
    ref = g.record(last)
    position = {name: i for i, name in enumerate(g.records)}
    start = position[ref.name]
    stop = min(
        (position[r.name] for r in g.records.values() if position[r.name] > start and is_head_pool(r.op)),
        default=len(position),
    )
    after = [r for r in records if start <= position[r.name] < stop]
    same = [
        r
        for r in after
        if grid_shape(r.layout, naxes) == grid_shape(ref.layout, naxes) and r.info.is_global == ref.info.is_global
    ]
    named = [r for r in same if module_of(g, r.name)]
    return last if not named or named[-1].name == ref.name else module_of(g, named[-1].name)


def evenly_spaced(names: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` of ``names``, evenly spaced: the first always kept, the last too from ``limit=2`` on
    (the callers add the final layer after them).

    >>> evenly_spaced([f"b{i}" for i in range(10)], 4)
    ['b0', 'b3', 'b6', 'b9']
    """
    names = list(names)
    if len(names) <= limit:
        return names
    if limit == 1:
        return names[:1]
    step = (len(names) - 1) / (limit - 1)
    return [names[round(i * step)] for i in range(limit)]


def stride_stages(g) -> list[str]:
    """The last module output at each stride of the input, before the head's pooling: the stage outputs of a
    model whose modules are not grouped into stages (an ONNX model's nodes are all top-level)."""
    last: dict[tuple, str] = {}
    for name, record in g.records.items():
        if is_head_pool(record.op):
            break
        module = module_of(g, name)
        if module and is_feature_map(record) and not record.info.unknown:
            last[tuple(record.info.stride)] = module
    return list(last.values())


def stage_candidates(g, model: nn.Module) -> list[str]:
    """The stage outputs: timm's ``feature_info`` modules, else the top-level children (an ONNX model: the last
    layer at each stride, :func:`stride_stages`), that are feature grids of the graph with a known RF."""
    names = feature_stages(model) or (
        stride_stages(g) if g.method == "onnx" else [n for n, _ in model.named_children()]
    )
    # a stage module returning a tuple (transformers' Swin stages): its first element
    names = [f"{n}[0]" if n not in g.module_outputs and f"{n}[0]" in g.module_outputs else n for n in names]
    return [n for n in names if n in g.module_outputs and has_grid(g.record(n)) and not g[n].unknown]


def stage_layers(g, model: nn.Module, limit: int = 6) -> list[str]:
    """The stage outputs (:func:`stage_candidates`), at most ``limit`` of them evenly spaced with the last
    kept, then the final feature map (:func:`default_layer`) if it differs."""
    names = evenly_spaced(stage_candidates(g, model), limit)
    final = default_layer(g, model)
    if not names or g.resolve(final) != g.resolve(names[-1]):
        names.append(final)
    return list(dict.fromkeys(names))


def final_layer(g, model: nn.Module) -> str | None:
    """The model output (``""``) where it is one tensor; for a model returning a tuple or dict, the final
    feature map (:func:`default_layer`); None if neither has a tensor to measure."""
    if "" in g.module_outputs:
        return "" if g.output.shape is not None else None
    try:
        return default_layer(g, model)
    except RFKitError:  # no layer with a spatial grid
        return None


def default_layers(g, model: nn.Module, limit: int = 8) -> list[str]:
    """The layers :func:`rfkit.verify` and :func:`rfkit.estimate_rf` measure by default: up to ``limit``
    stage outputs (:func:`stage_candidates`, evenly spaced), then the model output or, where that is a
    tuple or dict, the final feature map (:func:`final_layer`)."""
    layers = evenly_spaced(stage_candidates(g, model), limit)
    final = final_layer(g, model)
    if final is not None and g.resolve(final) not in [g.resolve(n) for n in layers]:
        layers.append(final)
    return layers


def unit_layout(record, naxes: int):
    """The layout a unit of ``record``'s output is picked from: the graph's; for an output whose RF is unknown
    and whose layout the graph could not follow, its last ``naxes`` dims taken as the grid (None when it has
    fewer than ``naxes + 1`` dims, or its RF is known: pooled or flattened)."""
    if has_grid(record):
        return record.layout
    shape = record.info.shape
    if record.info.unknown and shape is not None and len(shape) > naxes:
        return plain(shape, tuple(range(len(shape) - naxes, len(shape))))
    return None


def resolve_layers(
    g, model: nn.Module, layers: str | Sequence[str] | None, *, unknown: bool = False
) -> tuple[dict[str, str], str | None]:
    """Layer name -> graph node for each requested layer (module or node names; ``None``: the final feature
    map; ``"stages"``: :func:`stage_layers`), and the name of the default layer among them (None when the
    layers were named). With ``unknown``, a layer whose RF and layout the graph could not follow is taken
    too, where :func:`unit_layout` finds a grid in its shape.

    Raises
    ------
    LayerError
        A layer has no spatial grid (pooled, flattened) or an unknown RF, or no layer was asked for.
    NodeNotFoundError
        A name is not in the graph.
    """
    default_key = None
    if layers is None:
        default_key = default_layer(g, model)
        layers = [default_key]
    elif layers == "stages":
        layers = stage_layers(g, model)
        default_key = layers[-1]
    elif isinstance(layers, str):
        layers = [layers]
    out = {}
    for name in layers:
        node = g.resolve(name)
        record = g.records[node]
        if not has_grid(record) and not (unknown and unit_layout(record, len(g.input_size)) is not None):
            why = (
                "its RF is unknown (an unsupported op before it)"
                if record.info.unknown
                else "its output has no spatial grid (pooled or flattened)"
            )
            raise LayerError(
                f"layer {name!r} cannot be measured: {why}; pick a layer before the head "
                f"(`rfkit graph MODEL` lists them)"
            )
        out[name] = node
    if not out:
        raise LayerError("no layers to measure: pass at least one layer name")
    return out, default_key
