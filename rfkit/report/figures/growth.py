"""RF growth with depth: analytic RF (max and min over paths) and measured ERF size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfkit.formatting import num, pair
from rfkit.report.figures.captions import growth_drawn, record_drawing
from rfkit.report.figures.labels import footer_lines, is_random, layer_name
from rfkit.report.figures.layout import fit_figure, fitted_legend
from rfkit.report.figures.looks import style_named
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    draw_random_tag,
    figure_style,
    mark_figure,
    new_figure,
    save_figure,
    styled,
    wrap_title,
)

SPATIAL = frozenset({"conv", "pool", "global_pool", "attention", "resample"})
"""Op categories (:func:`rfkit.graph.productivity.op_category`) that count as a layer of depth."""
ERF_MARKERS = ("D", "s", "^")
MIN_PANEL = 0.62
"""Least height of a growth panel, as a fraction of the figure's width per panel: rotated layer
names and a long legend below grow the figure, never squash the panel."""
LABEL_PT = 7.0
"""Font size of the labels around and inside the growth panels (strides, layers, reference lines)."""


def growth_series(graph) -> dict:
    """The depth of every node, and the nodes the growth figure shows.

    Depth of a node: the number of **spatial layers** on the longest path from the input to it, where a
    spatial layer is a convolution, pooling, attention or resampling op
    (:func:`rfkit.graph.productivity.op_category`) or any other op that changes the RF size, stride or
    globality (an op rfkit knows only by its effect). Linear layers, activations, norms and merges do not
    count: they do not mix positions.

    ``path`` follows the deepest path from the input to the output (at a merge, the input reached through
    more layers; a tie goes to the larger RF) and keeps, at each depth, its last node (after a merge,
    the merged RF). Along it the max-over-paths RF never shrinks. ``cuts`` keeps, at each depth, the last
    node that **every** input-to-output path passes through (a dominator of the output: the input, stem
    layers, block outputs); only there is the min-over-paths RF the shortest path "so far" (inside a
    residual block it is the shortest path to that branch, which zigzags).

    Returns
    -------
    dict
        ``depth``: node -> depth, for every node; ``path`` and ``cuts``: node names in depth order.

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU(), nn.Conv2d(3, 3, 3)), input_size=16)
    >>> s = growth_series(g)
    >>> s["path"], [g[n].size for n in s["path"]], s["cuts"] == s["path"]
    (['input_1', '_1', '_2'], [(1, 1), (3, 3), (5, 5)], True)
    """
    import networkx as nx

    from rfkit.graph.productivity import op_category

    records = graph.records
    depth: dict[str, int] = {}
    best_in: dict[str, str | None] = {}

    def nan_safe(values) -> tuple:
        return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in values)

    def key(info) -> tuple:
        return (nan_safe(info.size), nan_safe(info.stride), bool(info.is_global))

    def size_key(name: str) -> float:
        vals = [v for v in records[name].info.size if not math.isnan(v)]
        return max(vals) if vals else -1.0

    for name, rec in records.items():
        ins = [i for i in rec.inputs if i in records]
        if rec.kind == "placeholder" or not ins:
            depth[name], best_in[name] = 0, None
            continue
        step = 1 if op_category(rec.op) in SPATIAL else 0
        if not step:  # an op of another kind that still changes the RF counts as a layer too
            info = rec.info
            merged = tuple(max((records[i].info.size[a] for i in ins), default=math.nan) for a in range(len(info.size)))
            same_size = nan_safe(info.size) == nan_safe(merged) or any(key(records[i].info) == key(info) for i in ins)
            new_stride = nan_safe(info.stride) not in {nan_safe(records[i].info.stride) for i in ins}
            new_global = info.is_global and not any(records[i].info.is_global for i in ins)
            step = int(not same_size or new_stride or new_global)
        prev = max(ins, key=lambda i: (depth[i], size_key(i)))
        depth[name], best_in[name] = depth[prev] + step, prev

    end = list(records)[-1]
    chain = [end]
    while best_in[chain[-1]] is not None:
        chain.append(best_in[chain[-1]])
    chain.reverse()
    start = chain[0]
    try:
        idom = nx.immediate_dominators(graph.nx, start)
        dominators = {end}
        v = end
        while v != start:
            v = idom[v]
            dominators.add(v)
    except (KeyError, nx.NetworkXError):
        dominators = {start, end}

    def last_per_depth(nodes) -> list[str]:
        shown: dict[int, str] = {}
        for name in nodes:
            shown[depth[name]] = name
        return [shown[d] for d in sorted(shown)]

    return {
        "depth": depth,
        "path": last_per_depth(chain),
        "cuts": last_per_depth([n for n in chain if n in dominators]),
    }


def _axis_index(graph, axis) -> list[int]:
    names = list(graph.axis_names)
    if axis is None or axis == "both":
        return list(range(len(names)))
    if isinstance(axis, str):
        if axis not in names:
            raise ValueError(f"axis must be one of {names}, 'both' or None; got {axis!r}")
        return [names.index(axis)]
    if not 0 <= int(axis) < len(names):
        raise ValueError(f"axis index {axis!r} out of range for {len(names)} axes")
    return [int(axis)]


def _erf_side(metrics, a: int) -> float:
    e = getattr(metrics, "erf_rf", None)
    v = None if e is None else e.side[a]
    return math.nan if v is None else float(v)


def _local(info, a: int) -> float:
    return float(info.local_size[a]) if info.local_size else math.nan


@dataclass(frozen=True)
class _Growth:
    """What the growth figure draws, computed once for all its panels."""

    graph: Any
    xs: list  # depth of each node of the deepest path
    infos: list  # its RFInfo
    cut_xs: list  # depth of each node every path passes through
    cut_infos: list
    measured: list  # (layer, depth, metrics) of the result's layers
    axes: list  # axis index of each panel
    merged: bool  # one panel for all axes
    erf_series: list  # (label suffix, gid, axis index or "mean") of the ERF lines of a panel
    top: float  # the largest finite size drawn
    any_global: bool
    band: tuple  # the "global" band, above everything finite
    boundaries: list  # (depth, stride) where the output stride changes
    x_max: int

    @property
    def y_global(self) -> float:
        return self.band[0] * 1.6

    def y_of(self, v) -> float:
        return self.y_global if math.isinf(v) else float(v)


def _measured(graph, result, depth: dict) -> list:
    """(layer, depth, metrics) of each measured layer of ``result`` (checked against ``graph``)."""
    if result is None:
        return []
    input_size = tuple(graph.input_size)
    if tuple(result.input_size) != input_size:
        raise ValueError(f"the result was measured at {result.input_size}, the graph traced at {input_size}")
    measured = []
    for layer in result.layers:
        node = result.nodes[layer]
        if node not in depth:
            raise ValueError(f"layer {layer!r} (node {node!r}) is not in the graph")
        measured.append((layer, depth[node], result.metrics.get(layer)))
    return measured


def _panels(graph, axis, infos: list) -> tuple[list[int], bool]:
    """The axis of each panel, and whether one panel stands for all axes (they agree everywhere)."""
    input_size = tuple(graph.input_size)

    def analytic(a: int) -> list:
        vals = [input_size[a]] + [v for i in infos for v in (i.size[a], i.size_min[a], _local(i, a), i.stride[a])]
        return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in vals]

    axes_idx = _axis_index(graph, axis)
    if axis is None and len(axes_idx) > 1 and all(analytic(a) == analytic(axes_idx[0]) for a in axes_idx[1:]):
        axes_idx = [axes_idx[0]]
    return axes_idx, axis is None and len(axes_idx) == 1 and len(graph.axis_names) > 1


def _erf_series(graph, measured: list, merged: bool) -> list:
    """The ERF lines of a merged panel: one when the sides agree, their mean within 5%, else one per axis."""
    if not merged:
        return []
    names = graph.axis_names
    sides = [[_erf_side(mt, a) for a in range(len(names))] for *_, mt in measured]
    finite = [v for v in sides if all(math.isfinite(x) for x in v)]
    if all(len(set(v)) == 1 for v in finite):
        return [("", "erf-size", 0)]
    if all(max(v) <= 1.05 * min(v) for v in finite):
        return [(", mean of " + " and ".join(names) + " (within 5%)", "erf-size", "mean")]
    return [(f", {n}", "erf-size" if a == 0 else f"erf-size-{n}", a) for a, n in enumerate(names)]


def _growth_data(graph, result, axis) -> _Growth:
    series = growth_series(graph)
    depth, path, cuts = series["depth"], series["path"], series["cuts"]
    infos = [graph.records[n].info for n in path]
    cut_infos = [graph.records[n].info for n in cuts]
    xs = [depth[n] for n in path]
    measured = _measured(graph, result, depth)
    axes_idx, merged = _panels(graph, axis, infos + cut_infos)
    finite = [float(graph.input_size[a]) for a in axes_idx]
    finite += [
        float(v)
        for i in infos + cut_infos
        for a in axes_idx
        for v in (i.size[a], i.size_min[a], _local(i, a))
        if math.isfinite(v)
    ]
    finite += [v for *_, mt in measured for a in range(len(graph.axis_names)) if math.isfinite(v := _erf_side(mt, a))]
    top = max(finite)
    strides = [tuple(i.stride) for i in infos]
    boundaries = [
        (x, st)
        for x, st, prev in zip(xs[1:], strides[1:], strides[:-1])
        if st != prev and not any(isinstance(v, float) and math.isnan(v) for v in st)
    ]
    return _Growth(
        graph=graph,
        xs=xs,
        infos=infos,
        cut_xs=[depth[n] for n in cuts],
        cut_infos=cut_infos,
        measured=measured,
        axes=axes_idx,
        merged=merged,
        erf_series=_erf_series(graph, measured, merged),
        top=top,
        any_global=any(i.is_global or math.isinf(i.size_min[a]) for i in infos + cut_infos for a in axes_idx),
        band=(top * 1.9, top * 7.0),
        boundaries=boundaries,
        x_max=max(xs + [d for _, d, _ in measured]),
    )


@styled
def rf_growth_figure(graph, result=None, *, axis=None, style: str = "report"):
    """Analytic RF (max and min over paths) and, given a result, the measured ERF size against depth.

    x: depth in spatial layers (conv, pooling, attention, resampling) on the longest path from the input
    (:func:`growth_series`). The max-over-paths RF follows the deepest input-to-output path; the
    min-over-paths RF is shown at the nodes every path passes through (block outputs), where it is
    the shortest path so far. y: pixels, log scale, with the input size as a dashed horizontal line.
    Global nodes sit in a "global" band at the top; the RF of their local paths continues dotted. Dotted
    vertical lines mark stride changes ("/8": output stride 8, stage boundaries); solid ones the measured
    layers of ``result``, with their ERF size: the smallest interval around the unit's RF centre holding
    95% of the map's mass per axis (:func:`rfkit.effective.erf_rf.erf_rf_ratio`, nominal length like the RF).

    Parameters
    ----------
    graph : RFGraph
    result : ERFResult, optional
        Adds the measured ERF sizes and marks the measured layers; same input size as ``graph``.
    axis : {None, "both", "h", "w"} or int
        None: one panel when the analytic RFs and the input agree on height and width (the ERF is then
        drawn per axis when its sides differ), else one panel per axis; "both": always one panel per
        axis; an axis name or index: that axis only.
    style : {"report", "paper"}
        ``paper``: one column wide (3.3 in; two columns for two panels), fonts of 7 pt or more, no title
        or footer (the provenance is in the file's metadata).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, (3, 5)), nn.Conv2d(3, 3, 3, stride=2)), input_size=32)
    >>> fig = rf_growth_figure(g)
    >>> [a.get_title() for a in fig.axes]
    ['height (h)', 'width (w)']
    >>> line = next(l for l in fig.axes[1].lines if l.get_gid() == "rf-max")
    >>> line.get_xdata().tolist(), line.get_ydata().tolist()
    ([0, 1, 2], [1.0, 5.0, 7.0])
    """
    d = _growth_data(graph, result, axis)
    fs = style_named(style)
    with figure_style(**fs.rc):
        return _growth(graph, result, d, fs)


def _growth(graph, result, d: _Growth, fs):
    """Lay out and draw the figure of :func:`rf_growth_figure` (inside its style's rcParams)."""
    n_ax = len(d.axes)
    lines = [
        (
            "x: spatial layers (conv, pool, attention) on the longest path from the input; linear, norm, "
            "activation and merge ops do not count. Max over paths: along the deepest input-to-output path; "
            "min over paths: at the nodes every path passes through.",
            COLORS["note"],
        )
    ]
    if result is not None:
        lines += footer_lines(result, [m[0] for m in d.measured])
    width = fs.width(n_ax) or 4.6 * n_ax + 0.9
    random = result is not None and is_random(result)

    def draw(size):
        fig, body = new_figure(size, lines if fs.footer else ())
        axs = body.subplots(1, n_ax, squeeze=False, sharey=True)[0]
        stride_labels = []
        for ax, a in zip(axs, d.axes):
            _draw_references(ax, a, d)
            _draw_analytic(ax, a, d)
            stride_labels += _draw_strides(ax, a, d)
            _draw_measured(ax, a, d)
            _format_growth_axes(ax, a, d, short=not fs.footer)
            if random:
                draw_random_tag(ax, "lower right")
        ylabel = "receptive field size (px)" + ((",\n" if not fs.footer else ", ") + "h = w" if d.merged else "")
        axs[0].set_ylabel(ylabel)
        if fs.footer:
            title = f"{graph.model_name or 'model'}: receptive field growth, {pair(graph.input_size)} input"
            if random:
                title += " · RANDOM WEIGHTS"
            body.suptitle(wrap_title(title, size[0]), color=COLORS["warning"] if random else "black")
        handles, labels = axs[0].get_legend_handles_labels()
        fitted_legend(body, handles, labels, size[0], ncols=(3 if n_ax > 1 else 2) if fs.footer else n_ax)
        for ax in axs:
            _name_measured(fig, ax, d)
        fig.canvas.draw()
        _stack_labels(fig, stride_labels)
        return fig, list(axs)

    size = (width, 4.2 if fs.footer else width * 0.9)
    fig = fit_figure(draw, size, width=width, min_panel=MIN_PANEL * width / n_ax)
    mark_figure(fig, [text for text, _ in lines], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, growth_drawn(graph, result))


def _draw_references(ax, a: int, d: _Growth) -> None:
    """The "global" band and the input size line."""
    input_size = d.graph.input_size[a]
    if d.any_global:
        ax.axhspan(*d.band, color=COLORS["outside"], zorder=0, gid="global-band", linewidth=0)
        ax.text(
            0.015,
            d.band[1] / 1.12,
            "global: RF = the whole input",
            transform=ax.get_yaxis_transform(),
            va="top",
            ha="left",
            fontsize=LABEL_PT,
            color=COLORS["input"],
            bbox=dict(facecolor=COLORS["outside"], edgecolor="none", pad=0.6),
            zorder=6,
        )
    ax.axhline(
        input_size,
        color=COLORS["input"],
        linewidth=1.0,
        linestyle=(0, (6, 3)),
        zorder=1,
        gid="input-size",
        label="input size",
    )
    ax.text(
        0.015,
        input_size * 1.04,
        f"input {num(input_size)} px",
        transform=ax.get_yaxis_transform(),
        va="bottom",
        ha="left",
        fontsize=LABEL_PT,
        color=COLORS["input"],
        bbox=dict(facecolor="white", edgecolor="none", pad=0.6, alpha=0.85),
        zorder=6,
    )  # left: the RF is still small there


def _draw_analytic(ax, a: int, d: _Growth) -> None:
    """The max-over-paths RF along the deepest path, the min-over-paths RF at the cuts, and the RF of the
    local paths of global nodes (dotted)."""
    ax.plot(
        d.xs,
        [d.y_of(i.size[a]) for i in d.infos],
        color=COLORS["rf_max"],
        marker="o",
        markersize=3.2,
        zorder=4,
        gid="rf-max",
        label="analytic RF, max over paths",
    )
    one_path = all(i.size_min[a] == i.size[a] for i in d.cut_infos)  # then the max line hides it: say why
    ax.plot(
        d.cut_xs,
        [d.y_of(i.size_min[a]) for i in d.cut_infos],
        color=COLORS["rf_min"],
        marker="s",
        markersize=3.0,
        linestyle=(0, (4, 1.5)),
        zorder=3,
        gid="rf-min",
        label="analytic RF, min over paths" + (" (= max: one path)" if one_path else ""),
    )
    glob = [k for k, i in enumerate(d.infos) if i.is_global]
    if not glob:
        return
    sel = [k for k in range(max(glob[0] - 1, 0), len(d.infos)) if math.isfinite(_local(d.infos[k], a))]
    if len(sel) > 1:
        ax.plot(
            [d.xs[k] for k in sel],
            [_local(d.infos[k], a) for k in sel],
            color=COLORS["rf_max"],
            alpha=0.3,
            linewidth=5.0,
            solid_capstyle="round",
            zorder=2,  # a pale band under the lines it may coincide with (the min over paths of a ViT)
            gid="rf-local",
            label="RF of the local paths of global nodes",
        )


def _draw_strides(ax, a: int, d: _Growth) -> list:
    """Dotted verticals where the output stride changes, labelled above the panel ("/8"); returns the
    labels (stacked by :func:`_stack_labels` once the figure is laid out)."""
    for i, (x, _) in enumerate(d.boundaries):
        label = "output stride changes (/N above)" if i == 0 else None
        ax.axvline(x, color="#A8A8A8", linewidth=0.8, linestyle=(0, (1, 2)), zorder=0, gid="stride-change", label=label)
    if not d.boundaries:
        return []
    return [
        ax.annotate(
            f"/{num(st[a])}",
            xy=(x, 1),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=LABEL_PT,
            color=COLORS["input"],
            gid="stride-label",
        )
        for x, st in d.boundaries
    ]


def _stack_labels(fig, labels: list, gap: float = 2.0) -> None:
    """Move labels above the panel up a row where they would overlap the one before them (left to right)."""
    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    rights: list[float] = []  # right edge of the last label of each row, display units
    for label in sorted(labels, key=lambda t: t.xy[0]):
        box = label.get_window_extent(renderer)
        row = next((r for r, right in enumerate(rights) if box.x0 > right + gap), len(rights))
        if row == len(rights):
            rights.append(box.x1)
        else:
            rights[row] = box.x1
        label.xyann = (0, 2 + row * (LABEL_PT + 1.5))


def _draw_measured(ax, a: int, d: _Growth) -> None:
    """A vertical line per measured layer and the measured ERF sizes (the layers are named under the panel,
    :func:`_name_measured`)."""
    if not d.measured:
        return
    for x in sorted({x for _, x, _ in d.measured}):
        ax.axvline(x, color=COLORS["marker"], linewidth=0.9, alpha=0.75, zorder=1, gid="measured-layer")
    n_axes = len(d.graph.axis_names)
    for j, (which, gid, e) in enumerate(d.erf_series or [("", "erf-size", a)]):
        ys = [
            float(np.mean([_erf_side(mt, k) for k in range(n_axes)])) if e == "mean" else _erf_side(mt, e)
            for *_, mt in d.measured
        ]
        ax.plot(
            [x for _, x, _ in d.measured],
            ys,
            color=COLORS["erf"],
            marker=ERF_MARKERS[j % len(ERF_MARKERS)],
            markersize=5,
            linewidth=1.4,
            zorder=5,
            linestyle="-" if j == 0 else (0, (2, 1)),
            markeredgecolor="black",
            markeredgewidth=0.6,
            gid=gid,
            label=f"ERF size, 95% mass{which}",
        )


def _name_measured(fig, ax, d: _Growth) -> None:
    """Name the measured layers on an axis under the depth axis, one label per line: layers at the same
    depth, or too close to be told apart (less than a label's height), share one ("blocks.11, norm")."""
    if not d.measured:
        return
    fig.canvas.draw()
    by_depth: dict[int, list[str]] = {}
    for layer, x, _ in d.measured:
        by_depth.setdefault(x, []).append(layer_name(layer))
    groups: list[list] = []  # [first depth, its position in points, names]
    for x in sorted(by_depth):
        pt = ax.transData.transform((x, 1))[0] * 72 / fig.dpi
        if groups and pt - groups[-1][1] < LABEL_PT * 1.4:
            groups[-1][1], groups[-1][2] = pt, groups[-1][2] + by_depth[x]
        else:
            groups.append([x, pt, list(by_depth[x])])
    ticks, names = [g[0] for g in groups], [", ".join(g[2]) for g in groups]
    axis = ax.secondary_xaxis("bottom")
    axis.set_xticks(ticks, labels=names)
    axis.spines["bottom"].set_position(("outward", 16))
    axis.spines["bottom"].set_visible(False)
    axis.tick_params(labelsize=LABEL_PT, colors=COLORS["marker"], length=0, pad=1, labelrotation=90)
    for label in axis.get_xticklabels():
        label.set(ha="right", va="center", rotation_mode="anchor", gid="measured-label")
    axis.set_xlabel(ax.get_xlabel())
    ax.set_xlabel("")


def _format_growth_axes(ax, a: int, d: _Growth, short: bool = False) -> None:
    """Log y axis with decades and the "global" tick, integer depths, grid, labels, panel title."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    ax.set_yscale("log")
    ax.set_ylim(0.75, d.band[1] * 1.08 if d.any_global else d.top * 1.6)
    ax.set_xlim(-0.5, d.x_max + 0.5)
    decades = [10.0**k for k in range(0, 12) if 10.0**k < d.band[0]]
    ax.yaxis.set_major_locator(FixedLocator(decades + [d.y_global] * d.any_global))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: "global" if math.isclose(v, d.y_global) else f"{v:g}"))
    ax.yaxis.set_minor_locator(
        FixedLocator([m * 10.0**k for k in range(0, 12) for m in range(2, 10) if m * 10.0**k < d.band[0]])
    )
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", which="major", color="#E3E3E3", linewidth=0.6, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel("depth (spatial layers)" if short else "depth (conv / pool / attention layers from the input)")
    if len(d.axes) > 1:
        name = d.graph.axis_names[a]
        ax.set_title({"h": "height (h)", "w": "width (w)"}.get(name, f"axis {name}"))


@styled
def save_rf_growth(graph, path, result=None, **kwargs) -> list[Path] | Path:
    """:func:`rf_growth_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(rf_growth_figure(graph, result, **kwargs), path)
