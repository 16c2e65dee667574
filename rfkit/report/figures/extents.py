"""How far an RF goes on beyond the input, marked on a panel so that the marks stay readable whatever the
panel's size: arrows at the map's edges with "+N px" each (:func:`~rfkit.report.figures.style.draw_rf_extents`); on a
panel too narrow for that, "+N" on every arrow with the left and right ones at the edges (clear of the centre
cross); on a panel too small for four labels apart, the first side's number alone; where even that is crowded, one
label
with every side's number beside the map, in the panel's free part. No mark is drawn over another. The marks
are drawn with the panel (:func:`draw_fitted_extents`) and fitted once the figure is laid out
(:func:`fit_extents`): before that, a panel's size on the canvas is not known.

Examples
--------
>>> from matplotlib.figure import Figure
>>> from matplotlib.backends.backend_agg import FigureCanvasAgg
>>> fig = Figure(figsize=(4, 4)); _ = FigureCanvasAgg(fig)
>>> ax = fig.add_subplot(); _ = ax.set(xlim=(-0.5, 223.5), ylim=(223.5, -0.5))
>>> _ = draw_fitted_extents(ax, ((-121, 313), (-121, 313)), (224, 224), {"top": 121, "bottom": 90})
>>> fit_extents(fig)
>>> [m.get_text() for m in ax.rfkit_extents["marks"]]  # room enough: every side numbered
['+121 px', '+90 px']
"""

from __future__ import annotations

from rfkit.formatting import num
from rfkit.report.figures.labels import compact_extent_labels, extent_labels
from rfkit.report.figures.style import COLORS, draw_rf_extents, outline

GLYPHS = {"top": "↑", "bottom": "↓", "left": "←", "right": "→"}


EXTENTS = "rfkit_extents"
"""Attribute of an axes holding how its extent marks were asked for (:func:`draw_fitted_extents`)."""


def draw_fitted_extents(
    ax, window, shape, beyond: dict, *, offset: float = 8.0, fontsize=7.0, unit: str = " px", beside: bool = False
) -> list:
    """Mark the sides an RF window goes beyond the input: arrows with every side's "+N px" now; once the
    figure is laid out, :func:`fit_extents` keeps the first of these forms that is not :func:`crowded`: that
    one; unless ``beside``, every side's "+N" with the left and right labels riding on their arrows at the
    edges (``draw_rf_extents(along=True)``); arrows with the first side's number only
    (:func:`~rfkit.report.figures.labels.compact_extent_labels`); with
    ``beside`` (a map smaller than its panel, as in ``rfkit figure``'s common frame), no arrows and one label
    right of or below the map and its RF box (:func:`extent_glyphs`: "↑10 ↓11 ←10 →11", gid
    ``rf-extent-text``); when none fits, the compact arrows.

    Parameters
    ----------
    ax : Axes
        Showing the map in input pixel coordinates (y down).
    window : ((y_first, y_last), (x_first, x_last))
        The unit's RF window.
    shape : (H, W)
        The map's (input's) size.
    beyond : dict
        :func:`~rfkit.report.figures.style.rf_beyond` of the window.
    offset, fontsize : float
        Arrow length (points) and label size (None: the axes' default).
    unit : str
        After each number of the full form.
    beside : bool
        Allow the label beside the map.

    Returns
    -------
    list of Annotation
    """
    marks = draw_rf_extents(ax, window, shape, extent_labels(beyond, unit), offset=offset, fontsize=fontsize)
    setattr(ax, EXTENTS, dict(window=window, shape=shape, beyond=beyond, offset=offset, fontsize=fontsize,
                              beside=beside, marks=marks))  # fmt: skip
    return marks


def fit_extents(fig) -> None:
    """Redraw, in the first form that is not crowded (:func:`draw_fitted_extents`), the extent marks of every
    panel of ``fig``, measured as the figure is laid out now (call it once the layout is final)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.findobj(lambda a: hasattr(a, EXTENTS)):
        e = getattr(ax, EXTENTS)
        centre = [line.get_window_extent(renderer) for line in ax.lines if line.get_gid() == "rf-center"]
        if not crowded(e["marks"], centre):
            continue
        for mark in e["marks"]:
            mark.remove()
        args = (ax, e["window"], e["shape"])
        marks = []
        if not e["beside"]:  # every side numbered still: the left and right labels on their arrows, at the edges
            labels = extent_labels(e["beyond"], "")
            marks = draw_rf_extents(*args, labels, offset=e["offset"], fontsize=e["fontsize"], along=True)
            if not crowded(marks, centre):
                e["marks"] = marks
                continue
        for mark in marks:
            mark.remove()
        marks = draw_rf_extents(*args, compact_extent_labels(e["beyond"]), offset=e["offset"], fontsize=e["fontsize"])
        if crowded(marks, centre) and e["beside"]:
            label = beside_map(*args, extent_glyphs(e["beyond"]), fontsize=e["fontsize"] or 7.0)
            if label is not None:
                for mark in marks:
                    mark.remove()
                marks = [label]
        e["marks"] = marks


def extent_glyphs(beyond: dict) -> str:
    """Every side's overhang in one short label: an arrow glyph per side, two sides a line.

    >>> print(extent_glyphs({"top": 10, "bottom": 11, "left": 10, "right": 11}))
    ↑10 ↓11
    ←10 →11
    >>> extent_glyphs({"right": 3.5})
    '→3.5'
    """
    parts = [f"{GLYPHS[side]}{num(v)}" for side, v in beyond.items()]
    return "\n".join(" ".join(parts[i : i + 2]) for i in range(0, len(parts), 2))


def crowded(marks, obstacles=()) -> bool:
    """Whether any label of the extent ``marks`` (annotations, as drawn now) meets another mark's label or
    arrow or one of the ``obstacles`` (display boxes: the centre cross), or two arrows meet."""
    from matplotlib.text import Text

    if not marks:
        return False
    renderer = marks[0].figure.canvas.get_renderer()
    items = []  # per mark: its label's box and its arrow's box (None: no label, or none drawn)
    for m in marks:
        m.update_positions(renderer)
        label = Text.get_window_extent(m, renderer) if m.get_text() else None  # the text alone, not its arrow
        arrow = m.arrow_patch.get_window_extent(renderer) if m.arrow_patch is not None else None
        items.append((label, arrow))
    for i, (label, _) in enumerate(items):
        others = [b for j, boxes in enumerate(items) if j != i for b in boxes if b is not None] + list(obstacles)
        if label is not None and any(label.overlaps(b) for b in others):
            return True
    arrows = [a for _, a in items if a is not None]
    return any(a.overlaps(b) for i, a in enumerate(arrows) for b in arrows[i + 1 :])


def beside_map(ax, window, shape, text: str, fontsize: float = 7.0):
    """``text`` (gid ``rf-extent-text``) in the panel's free part right of the map and its RF box, else below
    them, where it fits inside the panel clear of its zoomed insets; None where it fits nowhere."""
    h, w = shape
    (_, y1), (_, x1) = window
    renderer = ax.figure.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    insets = [c.get_window_extent(renderer) for c in ax.child_axes]
    places = (
        ((max(w, x1 + 1) - 0.5, -0.5), (3, -2)),  # right of the map and its box, level with the map's top
        ((-0.5, max(h, y1 + 1) - 0.5), (1, -3)),  # below them, from the map's left
    )
    for xy, shift in places:
        label = ax.annotate(
            text,
            xy=xy,
            xytext=shift,
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=fontsize,
            fontweight="bold",
            color=COLORS["rf"],
            path_effects=outline(2.2),
            linespacing=1.15,
            annotation_clip=False,
            zorder=8,
            gid="rf-extent-text",
        )
        label.set_in_layout(False)  # inside the panel, as the arrows
        box = label.get_window_extent(renderer)
        inside = panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
        if inside and not any(box.overlaps(b) for b in insets):
            return label
        label.remove()
    return None
