"""The overlay figure: one layer's ERF with its analytic RF box, centre and Gaussian ellipses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfkit.formatting import pair
from rfkit.report.figures.captions import overlay_drawn, record_drawing
from rfkit.report.figures.extents import draw_fitted_extents, fit_extents
from rfkit.report.figures.inset import metrics_erf_box, zoom_window
from rfkit.report.figures.labels import (
    beyond_text,
    erf_text,
    footer_lines,
    is_random,
    layer_name,
    method_label,
    missing_rf_text,
    rf_text,
    sigma_text,
)
from rfkit.report.figures.layout import fitted_legend, wrap_lines
from rfkit.report.figures.looks import HeatScale, style_named
from rfkit.report.figures.scale_bar import draw_scale_bar
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    FLOOR,
    draw_random_tag,
    draw_rf_centre,
    figure_style,
    fit_drawable,
    gaussian_ellipses,
    image_extent,
    image_gray,
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
    view_rectangle,
    zoom_view,
)


@styled
def overlay_figure(
    result,
    layer: str,
    *,
    image=None,
    log: bool = True,
    floor: float = FLOOR,
    full_rf: bool = False,
    gaussian: bool = True,
    zoom: bool | None = None,
    look: str = "rfkit",
    style: str = "report",
):
    """One layer's ERF heat map with the analytic RF box, the RF centre and the Gaussian fit.

    Drawn, in input pixel coordinates (pixel centres at integers, y down):

    - the ERF map at input resolution, ``log10(max(map / max, floor))`` by default (:func:`erf_display`;
      ``log=False``: ``map / max``), transform stated on the colour bar and in the title;
    - the analytic RF box of the measured unit, ``window_of(unit)`` widened by half a pixel per side. The
      axes show the input, so the data fills the panel; an RF larger than the input is clipped at the
      input's edges, where arrows say how far it goes on ("+732 px") and the legend says it in words
      ("1688×1688 px, 732 px beyond each side"). With ``full_rf`` the axes grow to the whole box and
      the area outside the input is hatched instead;
    - for a global layer, the input frame is the RF ("global: RF = whole input") and the RF of the local
      paths is drawn dashed;
    - the analytic RF centre of the unit (``result.center[layer]``), a "+";
    - the 1σ (solid) and 2σ (dashed) ellipses of the Gaussian fit (:func:`gaussian_ellipses`), only
      when the fit is Gaussian-like; otherwise a footer note says why not;
    - for an RF small against the input (:func:`~rfkit.report.figures.style.small_rf`), a second, zoomed panel
      around the unit (twice the RF's side) with the RF box, the centre,
      the ellipses and a scale bar; the first panel outlines the zoomed area;
    - a title with model, layer, unit, RF size and stride and the ERF/RF ratio (95% mass,
      :func:`rfkit.effective.erf_rf.erf_rf_ratio`), and a footer with the weights, the images and the method,
      in the warning colour for random weights or a flagged map.

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
        Show the whole RF box, however far beyond the input (default: the input, with labelled extents).
    gaussian : bool
        Draw the Gaussian ellipses (when the fit is Gaussian-like).
    zoom : bool, optional
        Add the zoomed panel; default: for a small RF (see above).
    look : {"rfkit", "replknet", "openerf"}
        Transform and colour map of the heat map (:data:`~rfkit.report.figures.looks.LOOKS`); ``log`` and ``floor``
        apply to rfkit's.
    style : {"report", "paper"}
        ``paper``: one column wide (3.3 in), fonts of 7 pt or more, no title or footer (the provenance is in
        the file's metadata, :func:`~rfkit.report.figures.style.save_figure`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> res = rfkit.erf(nn.Sequential(nn.Conv2d(3, 8, 7, padding=3)), layers=["0"],
    ...                 images=rfkit.Images("noise", 2, input_size=24), runtime="cpu")
    >>> fig = overlay_figure(res, "0")
    >>> box = next(p for p in fig.axes[0].patches if p.get_gid() == "rf-box")
    >>> res.rf("0").window_of(res.unit["0"]), box.get_xy(), box.get_width()
    (((9, 15), (9, 15)), (8.5, 8.5), 7)
    """
    o = _overlay_layer(result, layer, full_rf, gaussian, zoom)
    heat = HeatScale.named(look, log, floor)
    fs = style_named(style)
    with figure_style(**fs.rc):
        return _overlay(result, layer, o, image, heat, fs, full_rf)


def _overlay(result, layer: str, o, image, heat: HeatScale, fs, full_rf: bool):
    """Lay out and draw the overlay of :func:`overlay_figure` (inside its style's rcParams)."""
    paper = fs.name == "paper"
    subtitle = _overlay_subtitle(result, o.info, o.metrics, heat, paper)
    if paper and o.zoom:  # the input's panel takes about 0.4 of the column beside the zoomed one: keep its title there
        subtitle = wrap_lines(subtitle, int(0.4 * fs.column * 72 / (fs.rc["axes.titlesize"] * 0.6)))
    x_lo, x_hi, y_lo, y_hi = o.view
    aspect = (y_hi - y_lo) / (x_hi - x_lo)
    panel_w = (3.4 if o.zoom else 4.0) if aspect <= 1 else max(2.4, 4.0 / aspect)
    panel_h = max(panel_w * aspect, 1.0)
    n_legend = 3 + (o.window is not None) + 2 * o.draw_fit + o.grown
    # room around the panel: y label and ticks left, colour bar right; titles above, x axis and legend below
    height = panel_h + 0.45 + 0.19 * (subtitle.count("\n") + 1) + 0.55 + 0.17 * n_legend
    provenance = footer_lines(result, [layer], o.notes)
    width = panel_w + 1.75 + (panel_w * 0.8 + 0.3 if o.zoom else 0)

    def draw(size):
        fig, body = new_figure(size, provenance if fs.footer else ())
        axes = body.subplots(1, 2, width_ratios=[1, 0.8]) if o.zoom else [body.add_subplot()]
        ax = axes[0]
        norm = heat.scale()[0]
        im = _draw_heatmap(ax, o, image, heat, norm)
        if not np.isfinite(result.maps[layer]).all():
            mark_nonfinite(ax)
        if o.grown:
            draw_outside(ax, o.view)
        _draw_frame(ax, o)
        _draw_rf_box(ax, o, full_rf)
        if o.zoom:
            _draw_zoom_area(ax, o.zoom)
            _draw_zoom_panel(axes[1], o, image, heat, norm, narrow=paper)
        else:
            _draw_centre(ax, o)
            if o.draw_fit:
                _draw_fit(ax, o.fit)
        _frame_axes(ax, o.view)
        ax.set_xlabel("x (input px)")
        ax.set_ylabel("y (input px)")
        _draw_colourbar(body, axes[-1], im, heat)
        if not paper:
            title = f"{result.model} · {layer_name(layer)} · unit {o.unit}"
            if is_random(result):
                title += " · RANDOM WEIGHTS"
            body.suptitle(title, color=COLORS["warning"] if is_random(result) else "black")
        ax.set_title(subtitle, linespacing=1.35)
        if is_random(result):
            for panel in axes:
                draw_random_tag(panel)
        _overlay_legend(body, axes, size[0])
        return fig, body, [list(axes)], None

    fig = tighten(draw, (width, height), width=fs.width(1))
    fit_extents(fig)
    mark_figure(fig, [text for text, _ in provenance], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, overlay_drawn(result, layer, o.unit, heat))


def _frame_axes(ax, view) -> None:
    x_lo, x_hi, y_lo, y_hi = view
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_hi, y_lo)  # y down, as in the image
    ax.set_aspect("equal")


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
    beyond: dict  # pixels the RF box extends beyond the input, per side
    zoom: tuple | None  # (x_lo, x_hi, y_lo, y_hi) of the zoomed panel, or None

    @property
    def shape(self) -> tuple[int, int]:
        return np.shape(self.map)


def _overlay_layer(result, layer: str, full_rf: bool, gaussian: bool, zoom: bool | None) -> _OverlayLayer:
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
        why = missing_rf_text(result, layer) or "analytic RF unknown (an unsupported op before it): no RF box"
        notes.append(f"{layer_name(layer)}: {why}")
    if gaussian and fit is not None and not draw_fit:
        notes.append(f"Gaussian fit not drawn: the map is not Gaussian-like ({fit.reason})")
    view, grown = _view(np.shape(m), window, full_rf and not info.is_global)
    beyond = rf_beyond(window, np.shape(m)) if window is not None and not info.is_global else {}
    zoomed = _zoom(np.shape(m), window, metrics, zoom, result.center.get(layer))
    return _OverlayLayer(
        m, info, unit, tuple(result.center[layer]), metrics, window, fit, draw_fit, notes, view, grown, beyond, zoomed
    )


def _zoom(shape, window, metrics, zoom: bool | None, centre=None) -> tuple | None:
    """The view of the zoomed panel, or None: by default where the RF (for a global layer, its local paths' RF)
    or the ERF's 95%-mass box is small against the input (:func:`~rfkit.report.figures.inset.zoom_window`: a 16 px
    ViT patch, a 40 px ERF in a 640 px YOLO frame), widened to hold the unit's analytic ``centre`` (after nearest
    upsampling it lies beside the ERF: the view keeps both, and the centre off the panel's corners); ``zoom=True``
    around the RF window, ``False`` never."""
    if zoom is False:
        return None
    target = zoom_window(shape, window, metrics_erf_box(metrics, shape))
    if zoom and window is not None:
        target = window
    if target is None:
        return None
    if centre is not None and all(np.isfinite(centre)):
        (y0, y1), (x0, x1) = target
        cy, cx = (min(max(round(float(c)), 0), n - 1) for c, n in zip(centre, shape))
        target = ((min(y0, cy), max(y1, cy)), (min(x0, cx), max(x1, cx)))
    return zoom_view(target, shape)


def _view(shape, window, grow: bool) -> tuple[tuple, bool]:
    """The axes' box ``(x_lo, x_hi, y_lo, y_hi)``: the input frame, grown (with a 2% margin) to the whole RF
    box when ``grow`` and it extends beyond the input; and whether it was grown."""
    H, W = shape
    frame = (-0.5, W - 0.5, -0.5, H - 0.5)
    if window is None or not grow or not rf_beyond(window, shape):
        return frame, False
    (by0, by1), (bx0, bx1) = window
    x_lo, x_hi = min(frame[0], bx0 - 0.5), max(frame[1], bx1 + 0.5)
    y_lo, y_hi = min(frame[2], by0 - 0.5), max(frame[3], by1 + 0.5)
    margin = 0.02 * max(x_hi - x_lo, y_hi - y_lo)
    return (x_lo - margin, x_hi + margin, y_lo - margin, y_hi + margin), True


def _draw_heatmap(ax, o: _OverlayLayer, image, heat: HeatScale, norm):
    """The ERF map (over the grey input image, if given); returns the map's image."""
    H, W = o.shape
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
    return heat.imshow(
        ax,
        o.map,
        norm,
        extent=image_extent(H, W),
        interpolation="nearest",
        zorder=2,
        alpha=0.75 if image is not None else None,
        gid="erf-map",
    )


def draw_outside(ax, view) -> None:
    """The area of the view outside the input, hatched (the overlay's and the RF grid's)."""
    ax.add_patch(
        view_rectangle(
            view,
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
    """The unit's analytic RF box (and, when it is clipped at the input's edges, how far it goes on); for a
    global layer, the RF of its local paths (dashed)."""
    if o.window is None:
        return
    style = dict(fill=False, zorder=5, path_effects=outline(3.0))
    if o.info.is_global:
        if surrounds(o.window, o.shape):  # no edge of it on the input: the frame's legend entry gives its size
            return
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
    if o.beyond and full_rf:
        label += " (beyond the input: hatched)"
    elif o.beyond:
        label += f", {beyond_text(o.beyond)} (arrows)"
        draw_fitted_extents(ax, o.window, o.shape, o.beyond, offset=16.0, fontsize=None)
    ax.add_patch(rf_rectangle(o.window, edgecolor=COLORS["rf"], linewidth=1.8, gid="rf-box", label=label, **style))


def _draw_zoom_area(ax, zoom) -> None:
    """Outline, in the full view, the area the zoomed panel shows."""
    ax.add_patch(
        view_rectangle(
            zoom,
            fill=False,
            edgecolor="white",
            linewidth=1.0,
            linestyle=(0, (2, 1.5)),
            path_effects=outline(2.0),
            zorder=6,
            gid="zoom-area",
            label="area of the zoomed panel",
        )
    )


def _draw_zoom_panel(ax, o: _OverlayLayer, image, heat: HeatScale, norm, narrow: bool = False) -> None:
    """The zoomed panel: the map around the unit, its RF box (a global layer's local paths: dashed), centre,
    ellipses and a scale bar."""
    _draw_heatmap(ax, o, image, heat, norm)
    if o.window is not None:
        dashed = dict(linewidth=1.5, linestyle=(0, (3, 1.5))) if o.info.is_global else dict(linewidth=1.8)
        ax.add_patch(
            rf_rectangle(o.window, fill=False, edgecolor=COLORS["rf"], zorder=5, path_effects=outline(3.0), **dashed)
        )
    _draw_centre(ax, o)
    if o.draw_fit:
        _draw_fit(ax, o.fit)
    _frame_axes(ax, o.zoom)
    ax.set_xticks([])
    ax.set_yticks([])
    x_lo, x_hi, y_lo, y_hi = o.zoom
    ax.set_title(f"zoom: {pair((y_hi - y_lo, x_hi - x_lo))} px" + ("" if narrow else " around the unit"))
    draw_scale_bar(ax, x_hi - x_lo)


def _draw_centre(ax, o: _OverlayLayer) -> None:
    label = f"RF centre of unit {o.unit}: (y, x) = ({pair(o.center, ', ')})"
    draw_rf_centre(ax, o.center, size=11, label=label)


def _draw_fit(ax, fit) -> None:
    """The 1σ (solid) and 2σ (dashed) ellipses of the Gaussian fit."""
    e1, e2 = gaussian_ellipses(
        fit, (1.0, 2.0), fill=False, edgecolor=COLORS["gauss"], zorder=6, path_effects=outline(2.8)
    )
    e1.set(linewidth=1.4, gid="gauss-1sigma", label=f"Gaussian fit, 1σ ellipse: {sigma_text(fit)}, R² {fit.r2:.2f}")
    e2.set(linewidth=1.2, linestyle=(0, (3, 2)), gid="gauss-2sigma", label="Gaussian fit, 2σ")
    ax.add_patch(e1)
    ax.add_patch(e2)


def _draw_colourbar(body, ax, im, heat: HeatScale) -> None:
    _, ticks, tick_labels = heat.scale()
    cax = ax.inset_axes([1.03, 0.0, 0.045, 1.0])  # follows the drawn (equal-aspect) box exactly
    cbar = body.colorbar(im, cax=cax)
    cbar.set_ticks(ticks, labels=tick_labels)
    cbar.set_label(heat.bar_label("max"))


_LEGEND_ORDER = (
    "rf-box",
    "local-rf-box",
    "rf-center",
    "gauss-1sigma",
    "gauss-2sigma",
    "input-frame",
    "outside-input",
    "zoom-area",
)


def _overlay_legend(body, axes, width: float) -> None:
    """One legend for all panels, each element once, in :data:`_LEGEND_ORDER`, its labels wrapped to the
    figure's ``width`` (:func:`~rfkit.report.figures.layout.fitted_legend`)."""
    handles = {h.get_gid(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    ordered = [handles[gid] for gid in _LEGEND_ORDER if gid in handles]
    fitted_legend(body, ordered, [h.get_label() for h in ordered], width, handlelength=2.4)


def _overlay_subtitle(result, info, metrics, heat: HeatScale, paper: bool = False) -> str:
    """The panel's title: RF, ERF and (in a report) the colour's transform; a paper's caption says the rest,
    and its narrow panel takes the RF and its stride on two lines."""
    if paper:
        rf = rf_text(info).replace(", stride", "\nstride")
        return f"{rf}\n{erf_text(info, metrics, short=True)}"
    return f"{rf_text(info)}\n{erf_text(info, metrics)}\ncolour: {method_label(result)}, {heat.text()}"


@styled
def save_overlay(result, layer: str, path, **kwargs) -> list[Path] | Path:
    """:func:`overlay_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(overlay_figure(result, layer, **kwargs), path)
