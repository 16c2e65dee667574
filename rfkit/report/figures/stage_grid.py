"""The stage grid: every measured layer's ERF side by side on one colour scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rfkit.formatting import pair
from rfkit.report.figures.captions import record_drawing, stage_grid_drawn
from rfkit.report.figures.extents import draw_fitted_extents, fit_extents
from rfkit.report.figures.inset import draw_inset, metrics_erf_box, zoom_window
from rfkit.report.figures.labels import (
    erf_text,
    footer_lines,
    is_random,
    layer_name,
    method_label,
    rf_text,
)
from rfkit.report.figures.layout import fitted_legend, wrap_lines
from rfkit.report.figures.looks import GridScale, HeatScale, grid_scale, style_named
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    FLOOR,
    STYLE,
    draw_random_tag,
    draw_rf_centre,
    figure_style,
    image_extent,
    map_max,
    mark_figure,
    mark_nonfinite,
    new_figure,
    outline,
    rf_beyond,
    rf_rectangle,
    save_figure,
    styled,
    surrounds,
    tighten,
    wrap_title,
)


@styled
def stage_grid_figure(
    result,
    layers: Sequence[str] | None = None,
    *,
    log: bool = True,
    shared: bool | None = None,
    floor: float = FLOOR,
    max_cols: int = 4,
    look: str = "rfkit",
    style: str = "report",
):
    """All measured layers side by side, each with its analytic RF box, on one colour bar.

    Every panel is drawn with the same :class:`~matplotlib.colors.Normalize` and one colour bar; what each map
    is divided by is chosen from the data (:func:`~rfkit.report.figures.looks.grid_scale`): by the largest value over
    all panels when the panels' peaks are within 10× of each other, so the panels also compare gradient
    magnitudes (a layer whose gradient is 10 times weaker is a decade darker), else each by its own maximum
    (every panel peaks at 1, shapes only, as in RepLKNet's Fig. 1), so no panel is left black. ``shared=True``
    keeps one scale whatever the spread (its log floor reaches down far enough for the weakest panel),
    ``shared=False`` one per panel. The title (report style) and the colour bar say which. On the log scale
    the drawn value is ``log10(max(map / max, floor))`` (:func:`erf_display`). The axes show the input only:
    an RF box larger than the input is clipped at its edge (the title says "> input"); global layers show
    their local-path RF dashed. A panel whose RF or ERF is small against the input gets a zoomed inset with
    a scale bar; panels of random weights carry a "random init" tag.

    Parameters
    ----------
    result : ERFResult
    layers : sequence of str, optional
        Default: all measured layers, in order.
    log : bool
        Log colour scale (default) or linear.
    shared : bool, optional
        Normalise by the maximum over all panels (True) or per panel (False); default: chosen from the data.
    floor : float
        Bottom of the log scale.
    max_cols : int
        Panels per row before wrapping (rows are balanced: 5 panels on 4 columns are 3 + 2).
    look : {"rfkit", "replknet", "openerf"}
        Transform and colour map (:data:`~rfkit.report.figures.looks.LOOKS`).
    style : {"report", "paper"}
        ``paper``: two columns wide (6.9 in), up to six panels in a row, fonts of 7 pt or more, no title or
        footer (the provenance is in the file's metadata).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
    >>> res = rfkit.erf(net, layers=["0", "1"], images=rfkit.Images("noise", 2, input_size=16), runtime="cpu")
    >>> fig = stage_grid_figure(res)
    >>> ims = [a.get_images()[0] for a in fig.axes[:2]]
    >>> ims[0].norm is ims[1].norm
    True
    """
    layers = list(result.layers if layers is None else layers)
    if not layers:
        raise ValueError("no layers to plot")
    for layer in layers:
        if layer not in result.maps:
            raise KeyError(f"layer {layer!r} was not measured; measured: {result.layers}")
    if max_cols < 1:
        raise ValueError("max_cols must be >= 1")
    H, W = np.shape(result.maps[layers[0]])
    for layer in layers:
        if np.shape(result.maps[layer]) != (H, W):
            raise ValueError(
                f"maps of different shapes: {layer!r} is {np.shape(result.maps[layer])}, {layers[0]!r} is {(H, W)}"
            )
    peaks = [map_max(result.maps[x]) for x in layers]
    scale = grid_scale(peaks, shared, log=log, floor=floor)
    heat = HeatScale.named(look, log, scale.floor, max(peaks) if scale.shared else None)
    fs = style_named(style)
    with figure_style(**fs.rc):
        return _stage_grid(result, layers, heat, scale, fs, max(max_cols, 6) if fs.page else max_cols)


def _stage_grid(result, layers: list[str], heat: HeatScale, scale: GridScale, fs, max_cols: int):
    """Lay out and draw the grid of :func:`stage_grid_figure` (inside its style's rcParams)."""
    H, W = np.shape(result.maps[layers[0]])
    n = len(layers)
    nrows = math.ceil(n / max_cols)
    ncols = math.ceil(n / nrows)  # balanced rows: 5 panels are 3 + 2, not 4 + 1
    aspect = H / W
    panel_w = 2.5 if aspect <= 1 else max(1.6, 2.5 / aspect)
    if fs.page:
        panel_w = (fs.page - 1.0) / ncols
    panel_h = panel_w * aspect
    notes = [f"{layer_name(layer)}: the map is all zero" for layer in layers if map_max(result.maps[layer]) == 0]
    provenance = footer_lines(result, layers, notes)
    cmap = heat.look.colormap()
    random = is_random(result)

    def draw(size):
        fig, body = new_figure(size, provenance if fs.footer else ())
        axes = body.subplots(nrows, ncols, squeeze=False)
        titles = _titles([_panel_title(result, layer, H, W, compact=not fs.footer) for layer in layers], panel_w)
        norm, ticks, tick_labels = heat.scale()  # one for every panel
        for i, ax in enumerate(axes.ravel()):
            if i >= n:
                ax.remove()
                continue
            data = heat.display(result.maps[layers[i]])
            im = _draw_panel(ax, result, layers[i], data, norm, cmap)
            ax.set_title(titles[i], linespacing=1.3)
            if random:
                draw_random_tag(ax, "below")
            if map_max(result.maps[layers[i]]) > 0 and _faint(data, norm):
                _faint_note(ax, data)
        cbar = body.colorbar(
            im, ax=[a for a in axes.ravel()[:n]], shrink=0.9 if nrows > 1 else 1.0, aspect=20 * nrows, pad=0.02
        )
        cbar.set_ticks(ticks, labels=tick_labels)
        cbar.set_label(heat.bar_label(scale.of))
        if fs.footer:
            title = f"{result.model}: {method_label(result)} of {n} layer{'s' * (n > 1)}, {pair((H, W))} input"
            if random:
                title += " · RANDOM WEIGHTS"
            body.suptitle(
                wrap_title(title, size[0]) + "\n" + wrap_title(scale.describe(heat), size[0]),
                linespacing=1.4,
                color=COLORS["warning"] if random else "black",
            )
        _grid_legend(body, result, layers, axes.ravel()[:n], size[0])
        return fig, body, axes, cbar.ax

    size = (ncols * (panel_w + 0.08) + 1.0, nrows * (panel_h + 0.45) + 0.95)
    fig = tighten(draw, size, width=fs.page)
    fit_extents(fig)
    mark_figure(fig, [text for text, _ in provenance], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, stage_grid_drawn(result, layers, heat))


def _titles(parts: list[tuple[str, str, str]], panel_w: float) -> list[str]:
    """Panel titles: the layer, then RF and ERF on one line, or on two when any is too wide for a panel."""
    chars = panel_w * 72 / (STYLE["axes.titlesize"] * 0.6)  # characters that fit above a panel
    if any(len(f"{t[1]} · {t[2]}") > chars for t in parts):
        return [wrap_lines("\n".join(t), int(chars)) for t in parts]
    return [wrap_lines(f"{t[0]}\n{t[1]} · {t[2]}", int(chars)) for t in parts]


def _draw_panel(ax, result, layer: str, data, norm, cmap):
    """One layer's panel: its map, its RF box (with arrows where it goes beyond the input), the unit's RF
    centre, and a zoomed inset where the RF or the ERF is small (:mod:`rfkit.report.figures.inset`); returns the map's
    image."""
    H, W = data.shape
    info = result.rf(layer)
    im = ax.imshow(data, norm=norm, cmap=cmap, extent=image_extent(H, W), interpolation="nearest", gid="erf-map")
    if not np.isfinite(result.maps[layer]).all():
        mark_nonfinite(ax)
    window = None if info.unknown or info.windows is None else info.window_of(tuple(result.unit[layer]))
    if window is not None and not (info.is_global and surrounds(window, (H, W))):  # else no side of it shows
        _draw_window(ax, window, info.is_global)
        beyond = rf_beyond(window, (H, W))
        if beyond and not info.is_global:  # every side numbered where the panel has room (fit_extents)
            draw_fitted_extents(ax, window, (H, W), beyond, offset=9, fontsize=7, unit="")
    centre = result.center[layer]
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if info.is_global:
        for spine in ax.spines.values():
            spine.set(edgecolor=COLORS["rf"], linewidth=2.0, gid="global-frame")
    zoom = zoom_window((H, W), window, metrics_erf_box(result.metrics.get(layer), (H, W)))

    def draw_map(inset):
        inset.imshow(data, norm=norm, cmap=cmap, extent=image_extent(H, W), interpolation="nearest")

    inset = None
    if zoom is not None:
        inset = draw_inset(ax, draw_map, zoom, (H, W), centre, rf_window=window, dashed=info.is_global)
    if inset is None:  # zoomed, the outlined area marks the unit: no marker over its few pixels
        draw_rf_centre(ax, centre, size=8, label="analytic RF centre of the unit")
    return im


def _faint(data, norm) -> bool:
    """Whether a panel's whole map lies in the bottom 5% of the colour scale (it would read as empty)."""
    return (float(np.nanmax(data)) - norm.vmin) / (norm.vmax - norm.vmin) < 0.05


def _faint_note(ax, data) -> None:
    ax.text(
        0.5,
        0.5,
        "below the shared\ncolour scale",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=7,
        color="white",
        gid="faint-note",
    )


def _draw_window(ax, window, is_global: bool) -> None:
    kw = dict(fill=False, edgecolor=COLORS["rf"], zorder=5, path_effects=outline(2.6))
    if is_global:
        kw |= dict(
            linewidth=1.3, linestyle=(0, (3, 1.5)), gid="local-rf-box", label="RF of the local paths (global layers)"
        )
    else:
        kw |= dict(linewidth=1.5, gid="rf-box", label="analytic RF of the measured unit")
    ax.add_patch(rf_rectangle(window, **kw))


def _grid_legend(body, result, layers, axes, width: float) -> None:
    handles, labels = [], []
    if any(result.rf(layer).is_global for layer in layers):
        from matplotlib.patches import Patch

        handles.append(Patch(fill=False, edgecolor=COLORS["rf"], linewidth=2.0))
        labels.append("global layer: RF = whole input (frame)")
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if any(c.get_gid() == "rf-extent" for a in axes for c in a.get_children()):
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color=COLORS["rf"], marker=r"$\rightarrow$", linestyle="none", markersize=9))
        labels.append("+N: px the RF goes on beyond the input")
    fitted_legend(body, handles, labels, width, ncols=len(labels))


def _panel_title(result, layer, H, W, compact: bool = False) -> tuple[str, str, str]:
    """Layer, RF and ERF/RF of a panel; ``compact`` (a paper's narrow panels): no units, no "> input" (the
    arrows at the edges say it)."""
    info = result.rf(layer)
    rf = rf_text(info).split(", stride")[0]
    if compact:
        rf = rf.replace(" px", "")
    elif not info.is_global and not info.unknown and any(s > n for s, n in zip(info.size, (H, W))):
        rf += " > input"
    return layer_name(layer), rf, erf_text(info, result.metrics.get(layer), short=True)


@styled
def save_stage_grid(result, path, **kwargs) -> list[Path] | Path:
    """:func:`stage_grid_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(stage_grid_figure(result, **kwargs), path)
