"""The RF grid figure: the analytic RF boxes and centres of a grid of units of one layer over an image, with
each unit's measured ERF (what :func:`rfkit.effective.unit_grid.unit_grid` returns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rfkit.formatting import pair
from rfkit.report.figures.attribution import display_image
from rfkit.report.figures.captions import record_drawing, rf_grid_drawn
from rfkit.report.figures.compare import figure_paths
from rfkit.report.figures.labels import is_random, layer_name
from rfkit.report.figures.looks import HeatScale, style_named
from rfkit.report.figures.overlay import draw_outside
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    figure_style,
    image_extent,
    image_gray,
    mark_figure,
    new_figure,
    outline,
    rf_beyond,
    rf_rectangle,
    save_figure,
    styled,
    tighten,
    wrap_title,
)
from rfkit.version import __version__

#: Box colours, one per unit in turn (Okabe & Ito, white last).
UNIT_COLORS = ("#56B4E9", "#E69F00", "#009E73", "#F0E442", "#CC79A7", "#0072B2", "#D55E00", "#FFFFFF")
#: Up to this many units, the legend names each one; beyond, one entry stands for all boxes.
LEGEND_UNITS = 9


def grid_view(windows, shape) -> tuple[float, float, float, float]:
    """The axes' box ``(x_lo, x_hi, y_lo, y_hi)``: the input frame, grown (with a 2% margin) to hold every
    window that extends beyond it.

    >>> grid_view([((-3, 3), (-3, 3)), ((9, 15), (9, 15))], (16, 16))
    (-3.88, 15.5, -3.88, 15.5)
    """
    H, W = shape
    x_lo, x_hi, y_lo, y_hi = -0.5, W - 0.5, -0.5, H - 0.5
    beyond = [w for w in windows if rf_beyond(w, shape)]
    if not beyond:
        return x_lo, x_hi, y_lo, y_hi
    x_lo = min(x_lo, *(w[1][0] - 0.5 for w in beyond))
    x_hi = max(x_hi, *(w[1][1] + 0.5 for w in beyond))
    y_lo = min(y_lo, *(w[0][0] - 0.5 for w in beyond))
    y_hi = max(y_hi, *(w[0][1] + 0.5 for w in beyond))
    margin = 0.02 * max(x_hi - x_lo, y_hi - y_lo)
    grow = [
        -margin if v < f else margin if v > f else 0.0
        for v, f in zip((x_lo, x_hi, y_lo, y_hi), (-0.5, W - 0.5, -0.5, H - 0.5))
    ]
    return tuple(round(v + g, 6) for v, g in zip((x_lo, x_hi, y_lo, y_hi), grow))


def clipped(window, shape):
    """The part of ``window`` inside the input of ``shape`` (None when it is all outside).

    >>> clipped(((-3, 3), (9, 15)), (16, 12))
    ((0, 3), (9, 11))
    """
    out = tuple((max(0, lo), min(n - 1, hi)) for (lo, hi), n in zip(window, shape))
    return None if any(lo > hi for lo, hi in out) else out


def composite_erf(maps, heat: HeatScale) -> np.ndarray:
    """The units' ERFs in one map: each unit's map in the heat scale's transform, normalised to its own
    maximum, then the largest over the units at each pixel; masked (transparent) where no unit has a
    gradient, so that the image shows there."""
    shown = np.max(np.stack([heat.display(m) for m in maps]), axis=0)
    return np.ma.masked_where(np.all(np.stack(maps) == 0, axis=0), shown)


@styled
def rf_grid_figure(grid, *, look: str = "rfkit", style: str = "report"):
    """The analytic RF boxes and centres of a grid of units over the input image, with their ERFs.

    Drawn, in input pixel coordinates (pixel centres at integers, y down):

    - the image (grey) the ERFs were measured on;
    - when measured, the ERF of each unit (one backward pass per unit), each normalised to its own
      maximum and shown together as their largest value per pixel, in the look's colours;
    - each unit's analytic RF box, ``window_of(unit)`` widened by half a pixel per side (gid
      ``rf-box-<i>``, one colour per unit). A box that extends beyond the input is drawn whole, dashed;
      the axes grow to hold it, the area outside the input is hatched, and its part inside the input is
      drawn solid (gid ``rf-box-in-<i>``);
    - the analytic RF centres, as markers in their units' colours (gid ``rf-centres``);
    - the input frame, a legend, a colour bar and (report style) a provenance footer.

    Parameters
    ----------
    grid : UnitGrid
        From :func:`rfkit.effective.unit_grid.unit_grid`.
    look : {"rfkit", "replknet", "openerf"}
        Transform and colour map of the ERFs (:data:`~rfkit.report.figures.looks.LOOKS`).
    style : {"report", "paper"}
        ``paper``: one column wide, no title or footer (the provenance is in the file's metadata).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn
    >>> from rfkit.effective.unit_grid import unit_grid
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1))
    >>> fig = rf_grid_figure(unit_grid(net, "1", image="noise", input_size=16, measure=False))
    >>> box = next(p for p in fig.axes[0].patches if p.get_gid() == "rf-box-0")
    >>> box.get_xy(), box.get_width(), box.get_linestyle()
    ((-3.5, -3.5), 7, '--')
    """
    heat = HeatScale.named(look)
    fs = style_named(style)
    with figure_style(**fs.rc):
        return _draw_figure(grid, heat, fs)


def _draw_figure(grid, heat: HeatScale, fs):
    """Lay out and draw :func:`rf_grid_figure` (inside its style's rcParams)."""
    paper = fs.name == "paper"
    view = grid_view(grid.windows, grid.input_size)
    x_lo, x_hi, y_lo, y_hi = view
    aspect = (y_hi - y_lo) / (x_hi - x_lo)
    panel_w = 4.0 if aspect <= 1 else max(2.4, 4.0 / aspect)
    panel_h = max(panel_w * aspect, 1.0)
    entries = min(len(grid.units), LEGEND_UNITS) + 3
    height = panel_h + 1.3 + 0.17 * entries
    footer = _footer(grid)

    def draw(size):
        fig, body = new_figure(size, footer if fs.footer else ())
        ax = body.add_subplot()
        im = _draw_image(ax, grid, heat)
        if view != (-0.5, grid.input_size[1] - 0.5, -0.5, grid.input_size[0] - 0.5):
            draw_outside(ax, view)
        _draw_frame(ax, grid.input_size)
        _draw_boxes(ax, grid)
        _draw_centres(ax, grid)
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_hi, y_lo)
        ax.set_aspect("equal")
        ax.set_xlabel("x (input px)")
        ax.set_ylabel("y (input px)")
        if im is not None:
            _draw_colourbar(body, ax, im, heat)
        if not paper:
            body.suptitle(
                wrap_title(_title(grid), size[0]), color=COLORS["warning"] if is_random(grid.weights_kind) else "black"
            )
        ax.set_title(_subtitle(grid, heat, paper), linespacing=1.35)
        handles, labels = ax.get_legend_handles_labels()
        body.legend(handles, labels, loc="outside lower center", ncols=1, handlelength=2.4)
        return fig, body, [[ax]], None

    fig = tighten(draw, (panel_w + 1.75, height), width=fs.width(1))
    mark_figure(fig, [text for text, _ in footer], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, rf_grid_drawn(grid, heat))


def _draw_image(ax, grid, heat: HeatScale):
    """The image in grey and, when measured, the units' ERFs over it; returns the ERF image (or None)."""
    H, W = grid.input_size
    extent = image_extent(H, W)
    if grid.image is not None:
        picture = display_image(grid.image, grid.data_config)
        ax.imshow(image_gray(picture, (H, W)), cmap="gray", vmin=0, vmax=1, extent=extent, gid="input-image", zorder=1)
    if grid.maps is None:
        return None
    return ax.imshow(
        composite_erf(grid.maps, heat),
        norm=heat.scale()[0],
        cmap=heat.look.colormap(),
        extent=extent,
        interpolation="nearest",
        alpha=0.75 if grid.image is not None else None,
        zorder=2,
        gid="erf-map",
    )


def _draw_frame(ax, shape) -> None:
    H, W = shape
    ax.add_patch(
        rf_rectangle(
            ((0, H - 1), (0, W - 1)),
            fill=False,
            edgecolor=COLORS["frame"],
            linewidth=1.2,
            zorder=3,
            clip_on=False,
            gid="input-frame",
            label=f"input {pair((H, W))} px (h×w)",
        )
    )


def _box_label(i: int, grid) -> str | None:
    """The legend entry of unit ``i``'s box: each unit's own up to :data:`LEGEND_UNITS` units, else one."""
    if len(grid.units) > LEGEND_UNITS:
        return f"analytic RF of each unit, {pair(grid.size)} px" if i == 0 else None
    (y0, y1), (x0, x1) = grid.windows[i]
    return f"unit {grid.units[i]}: RF rows {y0}…{y1}, cols {x0}…{x1}"


def _draw_boxes(ax, grid) -> None:
    """Each unit's analytic RF box; dashed, with its part inside the input solid, where it extends beyond."""
    style = dict(fill=False, zorder=5, path_effects=outline(2.6))
    for i, window in enumerate(grid.windows):
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        beyond = bool(rf_beyond(window, grid.input_size))
        ax.add_patch(
            rf_rectangle(
                window,
                edgecolor=color,
                linewidth=1.2 if beyond else 1.6,
                linestyle="--" if beyond else "-",
                gid=f"rf-box-{i}",
                label=_box_label(i, grid),
                **style,
            )
        )
        inside = clipped(window, grid.input_size)
        if beyond and inside is not None:
            ax.add_patch(rf_rectangle(inside, edgecolor=color, linewidth=1.6, gid=f"rf-box-in-{i}", **style))


def _draw_centres(ax, grid) -> None:
    ys, xs = zip(*grid.centers)
    colors = [UNIT_COLORS[i % len(UNIT_COLORS)] for i in range(len(grid.centers))]
    ax.scatter(
        xs,
        ys,
        s=30,
        marker="o",
        c=colors,
        edgecolors=COLORS["outline"],
        linewidths=0.8,
        zorder=7,
        clip_on=False,
        gid="rf-centres",
        label="analytic RF centres",
    )


def _draw_colourbar(body, ax, im, heat: HeatScale) -> None:
    _, ticks, tick_labels = heat.scale()
    cax = ax.inset_axes([1.03, 0.0, 0.045, 1.0])
    cbar = body.colorbar(im, cax=cax)
    cbar.set_ticks(ticks, labels=tick_labels)
    cbar.set_label(heat.bar_label("max of each unit's ERF"))


def _title(grid) -> str:
    title = f"{grid.model} · {layer_name(grid.layer)} · {len(grid.units)} units of its {pair(grid.grid)} grid"
    return title + (" · RANDOM WEIGHTS" if is_random(grid.weights_kind) else "")


def _subtitle(grid, heat: HeatScale, paper: bool) -> str:
    """RF size and stride, then (measured) what the colours show."""
    rf = f"RF {pair(grid.size)} px, stride {pair(grid.stride)}" + (
        " (local paths; global layer)" if grid.is_global else ""
    )
    if grid.maps is None:
        return rf + ("" if paper else "\nERF not measured")
    return rf + ("" if paper else f"\ncolour: ERF of each unit, {heat.text('max')}, largest over the units")


def _footer(grid) -> list[tuple[str, str]]:
    """The provenance lines ``(text, colour)``: weights, image, input size and rfkit version, then warnings."""
    what = "ERF: one image, one backward pass per unit" if grid.maps is not None else "analytic RF only"
    lines = [
        (
            f"weights: {grid.weights} · {what} · input {pair(grid.input_size)} (h×w) · rfkit {__version__}",
            COLORS["note"],
        )
    ]
    if is_random(grid.weights_kind):
        lines.append(("RANDOM WEIGHTS: the ERFs are those of an untrained model", COLORS["warning"]))
    lines += [(w, COLORS["warning"]) for w in grid.warnings]
    return lines


@styled
def save_rf_grid(grid, path, *, look: str = "rfkit", style: str = "report") -> list[Path]:
    """:func:`rf_grid_figure` written to ``path`` (its extension picks PNG, PDF or SVG; a paper style adds the
    other two beside it) with its caption pair (``.caption.md``, ``.caption.tex``), all renamed into place
    together. Refuses (:class:`~rfkit.io.OutputError`) to replace
    a file rfkit did not write.

    Returns
    -------
    list of Path
    """

    paths = figure_paths(path, style)
    return save_figure(rf_grid_figure(grid, look=look, style=style), paths)
