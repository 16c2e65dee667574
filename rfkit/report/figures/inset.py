"""Zoomed insets of small RFs and small ERFs inside a grid's panels (stage grid, ``rfkit figure``), with a scale
bar: one copy of the code, built on the overlay's zoom (:func:`rfkit.report.figures.style.zoom_view`,
:func:`rfkit.report.figures.scale_bar.draw_scale_bar`)."""

from __future__ import annotations

import math

from rfkit.report.figures.scale_bar import draw_scale_bar
from rfkit.report.figures.style import (
    COLORS,
    draw_rf_centre,
    outline,
    rf_rectangle,
    small_rf,
    view_rectangle,
    zoom_view,
)

INSET_ZOOM = 1.4
"""Least magnification of a zoomed inset (an area too large for it gets none)."""
INSET_VIEW = 3.0
"""An inset shows this many times the zoomed window's side: the window a third of it, room for the scale bar."""


def erf_window(centre, side, shape) -> tuple | None:
    """The pixels ``((y_first, y_last), (x_first, x_last))`` of an ERF box of ``side`` (h, w) around its
    ``centre`` (y, x), inside the input; None when either is unknown.

    >>> erf_window((111.8, 112.4), (7, 8), (224, 224))
    ((109, 115), (109, 116))
    >>> erf_window((float("nan"), 3.0), (7, 8), (224, 224)) is None
    True
    """
    if centre is None or side is None or any(v is None for v in (*centre, *side)):
        return None
    if not all(math.isfinite(float(v)) for v in (*centre, *side)):
        return None
    out = []
    for c, s, n in zip(centre, side, shape):
        first = math.floor(float(c) - (int(s) - 1) / 2 + 0.5)  # s pixels whose middle is nearest c
        out.append((max(0, first), min(n - 1, first + int(s) - 1)))
    return tuple(out)


def metrics_erf_box(metrics, shape) -> tuple | None:
    """The 95%-mass ERF box of a measured layer around the ERF's own centre (:func:`erf_window` of its
    :class:`~rfkit.effective.metrics.ERFMetrics`), or None without metrics."""
    if metrics is None:
        return None
    return erf_window(metrics.centroid.position, metrics.erf_rf.side, shape)


def zoom_window(shape, rf_window=None, erf_box=None) -> tuple | None:
    """The window a grid panel zooms on: the union of its RF window and its ERF box where they are small
    (:func:`~rfkit.report.figures.style.small_rf`), or None when neither is (the panel shows them well). A ViT's
    global layer whose faint background spreads its 95%-mass ERF still zooms on its 16 px patch (the RF of its
    local paths).

    >>> zoom_window((224, 224), rf_window=((-121, 313), (-121, 313)), erf_box=((100, 124), (100, 124)))
    ((100, 124), (100, 124))
    >>> zoom_window((224, 224), rf_window=((104, 119), (104, 119)), erf_box=((20, 200), (20, 200)))
    ((104, 119), (104, 119))
    >>> zoom_window((224, 224), rf_window=((60, 160), (60, 160)), erf_box=((40, 180), (40, 180))) is None
    True
    """
    small = [w for w in (rf_window, erf_box) if w is not None and small_rf(w, shape)]
    if not small:
        return None
    (y0, y1), (x0, x1) = small[0]
    for (a0, a1), (b0, b1) in small[1:]:
        y0, y1, x0, x1 = min(y0, a0), max(y1, a1), min(x0, b0), max(x1, b1)
    window = ((y0, y1), (x0, x1))
    return window if small_rf(window, shape) else None


def inset_box(window, shape, centre) -> list[float] | None:
    """Where a zoomed inset goes (axes fractions ``[x, y, w, h]``, y up): in the panel's corner farthest from
    ``centre``, as large as the corner leaves room beside the zoomed area (at most 0.45); None when that would
    magnify less than :data:`INSET_ZOOM` (:func:`inset_layout`).

    >>> inset_box(((109, 115), (109, 115)), (224, 224), (112.0, 112.0))  # a 7 px RF in the middle
    [0.02, 0.57, 0.41, 0.41]
    """
    layout = inset_layout(window, shape, centre)
    return None if layout is None else layout[0]


def inset_layout(window, shape, centre) -> tuple[list[float], tuple] | None:
    """The inset's box (:func:`inset_box`) and the view it shows, ``(x_lo, x_hi, y_lo, y_hi)``: the window and
    :data:`INSET_VIEW` times its side around it, or twice its side where the corner has no room for that."""
    H, W = shape
    right, bottom = centre[1] < W / 2, centre[0] < H / 2
    for factor in (INSET_VIEW, 2.0):
        view = x_lo, x_hi, y_lo, y_hi = zoom_view(window, shape, factor=factor)
        room_x = (W - 0.5 - x_hi) / W if right else (x_lo + 0.5) / W
        room_y = (H - 0.5 - y_hi) / H if bottom else (y_lo + 0.5) / H
        size = round(min(0.45, room_x - 0.04, room_y - 0.04), 2)
        if size * W >= INSET_ZOOM * (x_hi - x_lo):
            x = round(1 - size - 0.02, 2) if right else 0.02
            return [x, 0.02 if bottom else round(1 - size - 0.02, 2), size, size], view
    return None


def draw_inset(ax, draw_map, window, shape, centre, *, rf_window=None, dashed: bool = False, marker: float = 6.0):
    """A zoomed inset of ``window`` in ``ax`` (gid ``zoom-inset``) where :func:`inset_box` finds room: the map
    (``draw_map(inset_axes)``), the RF box when it is given (``dashed``: the local paths' RF of a global
    layer; else the unit's RF centre), a scale bar; the zoomed area is outlined in the panel. Returns the inset
    axes, or None when there is no room."""
    layout = inset_layout(window, shape, centre)
    if layout is None:
        return None
    box, (x_lo, x_hi, y_lo, y_hi) = layout
    inset = ax.inset_axes(box)
    inset.set_gid("zoom-inset")
    draw_map(inset)
    if rf_window is not None:
        inset.add_patch(
            rf_rectangle(
                rf_window,
                fill=False,
                edgecolor=COLORS["rf"],
                linewidth=1.2,
                linestyle=(0, (3, 1.5)) if dashed else "-",
                zorder=5,
                path_effects=outline(2.2),
            )
        )
    if rf_window is None and centre is not None and all(math.isfinite(float(v)) for v in centre):
        draw_rf_centre(inset, centre, size=marker)  # with an RF box, the box marks the unit and covers nothing
    inset.set_xlim(x_lo, x_hi)
    inset.set_ylim(y_hi, y_lo)
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set(edgecolor="white", linewidth=1.0)
    draw_scale_bar(inset, x_hi - x_lo, fontsize=7)
    ax.add_patch(
        view_rectangle(
            (x_lo, x_hi, y_lo, y_hi),
            fill=False,
            edgecolor="white",
            linewidth=0.8,
            zorder=6,
            path_effects=outline(1.6),
            gid="zoom-area",
            label="zoomed inset (scale bar in px)",
        )
    )
    return inset
