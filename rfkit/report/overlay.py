"""The overlay figure: one layer's ERF with its analytic RF box, centre and Gaussian ellipses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfkit.report.formatting import pair
from rfkit.report.labels import erf_text, footer_lines, is_random, layer_name, method_label, rf_text
from rfkit.report.style import (
    COLORS,
    FLOOR,
    bar_label,
    colour_scale,
    draw_rf_centre,
    erf_display,
    fit_drawable,
    gaussian_ellipses,
    image_extent,
    image_gray,
    map_max,
    new_figure,
    outline,
    rf_rectangle,
    save_figure,
    styled,
    tighten,
    transform_text,
)


@styled
def overlay_figure(
    result,
    layer: str,
    *,
    image=None,
    log: bool = True,
    floor: float = FLOOR,
    full_rf: bool = True,
    gaussian: bool = True,
):
    """One layer's ERF heat map with the analytic RF box, the RF centre and the Gaussian fit.

    Drawn, in input pixel coordinates (pixel centres at integers, y down):

    - the ERF map at input resolution, ``log10(max(map / max, floor))`` by default (:func:`erf_display`;
      ``log=False``: ``map / max``), transform stated on the colour bar and in the title;
    - the analytic RF box of the measured unit, ``window_of(unit)`` widened by half a pixel per side;
      with ``full_rf`` (default) the axes grow to show the whole box and the area outside the input is
      hatched, otherwise the axes show the input only and the box is clipped at its edge (the legend
      says so);
    - for a global layer, the input frame is the RF ("global: RF = whole input") and the RF of the local
      paths is drawn dashed;
    - the analytic RF centre of the unit (``result.center[layer]``), a "+";
    - the 1σ (solid) and 2σ (dashed) ellipses of the Gaussian fit (:func:`gaussian_ellipses`), only
      when the fit is Gaussian-like; otherwise a footer note says why not;
    - the input frame (H×W), a title with model, layer, unit, RF size and stride and the ERF/RF ratio
      (95% mass, :func:`rfkit.erf.metrics.erf_rf_ratio`), and a footer with the weights, the images
      and the method, in the warning colour for random weights or a flagged map.

    Parameters
    ----------
    result : ERFResult
    layer : str
        One of ``result.layers``.
    image : array_like, optional
        The preprocessed input image (H, W), (H, W, C) or (C, H, W), numpy or torch: shown in grey
        under a slightly transparent heat map.
    log : bool
        Log colour scale (default) or linear.
    floor : float
        Bottom of the log scale, as a fraction of the map's maximum.
    full_rf : bool
        Extend the axes to the whole RF box (default) or show the input only.
    gaussian : bool
        Draw the Gaussian ellipses (when the fit is Gaussian-like).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> res = rfkit.erf(nn.Sequential(nn.Conv2d(3, 8, 7, padding=3)), layers=["0"], images="noise",
    ...                 num_images=2, input_size=24, device="cpu")
    >>> fig = overlay_figure(res, "0")
    >>> box = next(p for p in fig.axes[0].patches if p.get_gid() == "rf-box")
    >>> res.rf("0").window_of(res.unit["0"]), box.get_xy(), box.get_width()
    (((9, 15), (9, 15)), (8.5, 8.5), 7)
    """
    o = _overlay_layer(result, layer, full_rf, gaussian)
    subtitle = _overlay_subtitle(result, o.info, o.metrics, log, floor)
    x_lo, x_hi, y_lo, y_hi = o.view
    aspect = (y_hi - y_lo) / (x_hi - x_lo)
    panel_w = 4.0 if aspect <= 1 else max(2.4, 4.0 / aspect)
    panel_h = max(panel_w * aspect, 1.0)
    n_legend = 3 + (o.window is not None) + 2 * o.draw_fit + o.grown
    # room around the panel: y label and ticks left, colour bar right; titles above, x axis and legend below
    height = panel_h + 0.45 + 0.19 * (subtitle.count("\n") + 1) + 0.55 + 0.17 * n_legend
    footer = footer_lines(result, [layer], o.notes)

    def draw(size):
        fig, body = new_figure(size, footer)
        ax = body.add_subplot()
        im = _draw_heatmap(ax, o, image, log, floor)
        if o.grown:
            _draw_outside(ax, o.view)
        _draw_frame(ax, o)
        _draw_rf_box(ax, o, full_rf)
        _draw_centre(ax, o)
        if o.draw_fit:
            _draw_fit(ax, o.fit)
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_hi, y_lo)  # y down, as in the image
        ax.set_aspect("equal")
        ax.set_xlabel("x (input px)")
        ax.set_ylabel("y (input px)")
        _draw_colourbar(body, ax, im, log, floor)
        title = f"{result.model} · {layer_name(layer)} · unit {o.unit}"
        if is_random(result):
            title += " · RANDOM WEIGHTS"
        body.suptitle(title, color=COLORS["warning"] if is_random(result) else "black")
        ax.set_title(subtitle, linespacing=1.35)
        _overlay_legend(body, ax)
        return fig, body, [[ax]], None

    return tighten(draw, (panel_w + 1.75, height))


@dataclass(frozen=True)
class _OverlayLayer:
    """One measured layer as the overlay draws it."""

    map: np.ndarray
    info: Any
    unit: tuple
    center: tuple  # (cy, cx), the unit's analytic RF centre
    metrics: Any
    window: Any  # ((y_first, y_last), (x_first, x_last)) of the unit's RF, or None
    fit: Any
    draw_fit: bool
    notes: list
    view: tuple  # (x_lo, x_hi, y_lo, y_hi) of the axes
    grown: bool  # the view is larger than the input
    beyond: bool  # the RF box extends beyond the input

    @property
    def shape(self) -> tuple[int, int]:
        return np.shape(self.map)


def _overlay_layer(result, layer: str, full_rf: bool, gaussian: bool) -> _OverlayLayer:
    if layer not in result.maps:
        raise KeyError(f"layer {layer!r} was not measured; measured: {result.layers}")
    m = result.maps[layer]
    info = result.rf(layer)
    unit = tuple(result.unit[layer])
    metrics = result.metrics.get(layer)
    window = None if info.unknown or info.windows is None else info.window_of(unit)
    fit = getattr(metrics, "gaussian", None)
    draw_fit = gaussian and fit_drawable(fit)
    notes = []
    if map_max(m) == 0:
        notes.append(f"{layer_name(layer)}: the map is all zero (no gradient reached the input)")
    if info.unknown:
        notes.append(f"{layer_name(layer)}: analytic RF unknown (an unsupported op before it): no RF box")
    if gaussian and fit is not None and not draw_fit:
        notes.append(f"Gaussian fit not drawn: the map is not Gaussian-like ({fit.reason})")
    view, grown, beyond = _view(np.shape(m), window, full_rf and not info.is_global)
    return _OverlayLayer(
        m, info, unit, tuple(result.center[layer]), metrics, window, fit, draw_fit, notes, view, grown, beyond
    )


def _view(shape, window, grow: bool) -> tuple[tuple, bool, bool]:
    """The axes' box ``(x_lo, x_hi, y_lo, y_hi)``: the input frame, grown (with a 2% margin) to the whole RF
    box when ``grow``; whether it was grown; whether the box extends beyond the input."""
    H, W = shape
    frame = (-0.5, W - 0.5, -0.5, H - 0.5)
    if window is None:
        return frame, False, False
    (by0, by1), (bx0, bx1) = window
    beyond = by0 < 0 or bx0 < 0 or by1 > H - 1 or bx1 > W - 1
    if not (grow and beyond):
        return frame, False, beyond
    x_lo, x_hi = min(frame[0], bx0 - 0.5), max(frame[1], bx1 + 0.5)
    y_lo, y_hi = min(frame[2], by0 - 0.5), max(frame[3], by1 + 0.5)
    margin = 0.02 * max(x_hi - x_lo, y_hi - y_lo)
    return (x_lo - margin, x_hi + margin, y_lo - margin, y_hi + margin), True, True


def _draw_heatmap(ax, o: _OverlayLayer, image, log: bool, floor: float):
    """The ERF map (over the grey input image, if given); returns the map's image."""
    H, W = o.shape
    norm, _, _ = colour_scale(log, floor)
    if image is not None:
        ax.imshow(
            image_gray(image, (H, W)),
            cmap="gray",
            vmin=0,
            vmax=1,
            extent=image_extent(H, W),
            interpolation="antialiased",
            gid="input-image",
            zorder=1,
        )
    return ax.imshow(
        erf_display(o.map, log=log, floor=floor),
        norm=norm,
        extent=image_extent(H, W),
        interpolation="nearest",
        zorder=2,
        alpha=0.75 if image is not None else None,
        gid="erf-map",
    )


def _draw_outside(ax, view) -> None:
    """The area of the view outside the input, hatched."""
    from matplotlib.patches import Rectangle

    x_lo, x_hi, y_lo, y_hi = view
    ax.add_patch(
        Rectangle(
            (x_lo, y_lo),
            x_hi - x_lo,
            y_hi - y_lo,
            facecolor=COLORS["outside"],
            edgecolor="#BDBDBD",
            hatch="////",
            linewidth=0,
            zorder=0,
            gid="outside-input",
            label="outside the input",
        )
    )


def _draw_frame(ax, o: _OverlayLayer) -> None:
    """The input frame: grey, or for a global layer (whose RF is the whole input) in the RF colour."""
    H, W = o.shape
    frame = ((0, H - 1), (0, W - 1))
    if o.info.is_global:
        local = f"; local paths {pair(o.info.local_size)} px" if o.info.local_size else ""
        style = dict(edgecolor=COLORS["rf"], linewidth=2.0, zorder=5, path_effects=outline(3.2))
        label = f"global: RF = whole input {pair((H, W))} px{local}"
    else:
        style = dict(edgecolor=COLORS["frame"], linewidth=1.2, zorder=3)
        label = f"input {pair((H, W))} px (h×w)"
    ax.add_patch(rf_rectangle(frame, fill=False, gid="input-frame", clip_on=False, label=label, **style))


def _draw_rf_box(ax, o: _OverlayLayer, full_rf: bool) -> None:
    """The unit's analytic RF box; for a global layer, the RF of its local paths (dashed)."""
    if o.window is None:
        return
    style = dict(fill=False, zorder=5, path_effects=outline(3.0))
    if o.info.is_global:
        label = f"RF of the local paths, {pair(o.info.local_size)} px"
        ax.add_patch(
            rf_rectangle(
                o.window,
                edgecolor=COLORS["rf"],
                linewidth=1.5,
                linestyle=(0, (3, 1.5)),
                gid="local-rf-box",
                label=label,
                **style,
            )
        )
        return
    label = f"analytic RF of the unit, {pair(o.info.size)} px"
    if o.beyond and not full_rf:
        label += " (clipped: extends beyond the input)"
    elif o.beyond:
        label += " (beyond the input: hatched)"
    ax.add_patch(rf_rectangle(o.window, edgecolor=COLORS["rf"], linewidth=1.8, gid="rf-box", label=label, **style))


def _draw_centre(ax, o: _OverlayLayer) -> None:
    label = f"RF centre of unit {o.unit}: (y, x) = ({pair(o.center, ', ')})"
    draw_rf_centre(ax, o.center, size=11, label=label)


def _draw_fit(ax, fit) -> None:
    """The 1σ (solid) and 2σ (dashed) ellipses of the Gaussian fit."""
    e1, e2 = gaussian_ellipses(
        fit, (1.0, 2.0), fill=False, edgecolor=COLORS["gauss"], zorder=6, path_effects=outline(2.8)
    )
    e1.set(
        linewidth=1.4,
        gid="gauss-1sigma",
        label=f"Gaussian fit, 1σ: σ = {fit.sigma_major:.1f} × {fit.sigma_minor:.1f} px at "
        f"{math.degrees(fit.rotation):.0f}°, R² {fit.r2:.2f}",
    )
    e2.set(linewidth=1.2, linestyle=(0, (3, 2)), gid="gauss-2sigma", label="Gaussian fit, 2σ")
    ax.add_patch(e1)
    ax.add_patch(e2)


def _draw_colourbar(body, ax, im, log: bool, floor: float) -> None:
    _, ticks, tick_labels = colour_scale(log, floor)
    cax = ax.inset_axes([1.03, 0.0, 0.045, 1.0])  # follows the drawn (equal-aspect) box exactly
    cbar = body.colorbar(im, cax=cax)
    cbar.set_ticks(ticks, labels=tick_labels)
    cbar.set_label(bar_label(log, "max"))


_LEGEND_ORDER = ("rf-box", "local-rf-box", "rf-center", "gauss-1sigma", "gauss-2sigma", "input-frame", "outside-input")


def _overlay_legend(body, ax) -> None:
    handles = sorted(ax.get_legend_handles_labels()[0], key=lambda h: _LEGEND_ORDER.index(h.get_gid()))
    body.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=1, handlelength=2.4)


def _overlay_subtitle(result, info, metrics, log, floor) -> str:
    rf, erf = rf_text(info), erf_text(info, metrics)
    sep = "\n" if len(rf) + len(erf) > 62 else " · "
    return f"{rf}{sep}{erf}\ncolour: {method_label(result)}, {transform_text(log, floor)}"


@styled
def save_overlay(result, layer: str, path, **kwargs) -> list[Path] | Path:
    """:func:`overlay_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(overlay_figure(result, layer, **kwargs), path)
