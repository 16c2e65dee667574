"""Scale bars of zoomed views, placed where they cover no part of the map they measure.

A scale bar and its label ("20 px") are opaque: over the faint tail of an ERF they hide the structure a zoomed
view exists to show. :func:`draw_scale_bar` therefore decides where the bar goes when the figure is drawn (the
final size of a panel is only known then, after the layout): in the first corner of the view whose pixels under
the bar and its label are all at or below the colour floor, else just outside the view (under, over or beside an
inset on its panel; under a zoom panel on the figure, in dark ink), clear of the panel's boxes, lines and texts;
where every place covers some map, the first that covers nothing brighter than :data:`FAINT`, else the one that
covers least.
"""

from __future__ import annotations

import functools

import numpy as np

from rfkit.report.figures.colors import COLORS
from rfkit.report.figures.style import outline

INSIDE = ("lower right", "lower left", "upper right", "upper left")
"""The corners of a view a scale bar is tried in, in this order (then, for an inset, places around it)."""
FAINT = 0.1
"""A map value in the lowest tenth of its colour range, over the floor, is drawn all but black (magma, gray): a
scale bar may cover it where no place is free of any value over the floor (a ViT's faint global background)."""


def nice_length(limit: float) -> float:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above ``limit`` (at least 1): a scale bar's length.

    >>> nice_length(3.5), nice_length(27), nice_length(0.4)
    (2, 20, 1)
    """
    best = 1
    for k in range(0, 7):
        for m in (1, 2, 5):
            if m * 10**k <= limit:
                best = m * 10**k
    return best


def covered(ax, bbox) -> float:
    """How much of the maps drawn in ``ax`` the display-space ``bbox`` covers: the largest value above its
    image's colour floor (``norm.vmin``) under it, in units of the image's colour range (0: nothing visible
    is covered). Images with gid ``erf-map`` count alone where the axes have one (an overlay's photograph is
    not the structure); a ``bbox`` outside ``ax`` covers nothing of it.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from matplotlib.transforms import Bbox
    >>> fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    >>> m = np.full((10, 10), -3.0); m[0, 9] = -1.0  # floor -3; one bright pixel top right
    >>> _ = ax.imshow(m, vmin=-3.0, vmax=0.0, extent=(-0.5, 9.5, 9.5, -0.5))
    >>> fig.canvas.draw()
    >>> corner = lambda x0, y0, x1, y1: Bbox(ax.transData.transform([(x0, y0), (x1, y1)]))
    >>> covered(ax, corner(7.6, 1.4, 9.4, -0.4)), covered(ax, corner(-0.4, 9.4, 2.4, 7.6))
    (0.6666666666666666, 0.0)
    """
    images = [im for im in ax.get_images() if im.get_gid() == "erf-map"] or ax.get_images()
    worst = 0.0
    for im in images:
        arr = np.ma.masked_invalid(np.ma.asarray(im.get_array(), dtype=float))
        if arr.ndim != 2 or im.norm.vmin is None or im.norm.vmax is None:
            continue
        (x0, y0), (x1, y1) = ax.transData.inverted().transform([(bbox.x0, bbox.y0), (bbox.x1, bbox.y1)])
        left, right, bottom, top = im.get_extent()
        rows, cols = arr.shape
        col = sorted(np.floor((np.array([x0, x1]) - left) / (right - left) * cols).astype(int))
        row = sorted(np.floor((np.array([y0, y1]) - top) / (bottom - top) * rows).astype(int))
        part = arr[
            max(row[0], 0) : max(min(row[1], rows - 1) + 1, 0), max(col[0], 0) : max(min(col[1], cols - 1) + 1, 0)
        ]
        if part.size == 0 or part.count() == 0:
            continue
        span = float(im.norm.vmax - im.norm.vmin) or 1.0
        worst = max(worst, float((part.max() - im.norm.vmin) / span))
    return worst


def _inside(bbox, outer) -> bool:
    return (
        bbox.x0 >= outer.x0 - 0.5
        and bbox.x1 <= outer.x1 + 0.5
        and bbox.y0 >= outer.y0 - 0.5
        and bbox.y1 <= outer.y1 + 0.5
    )


@functools.cache
def _scale_bar_class():
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    class PlacedScaleBar(AnchoredSizeBar):
        """An AnchoredSizeBar that chooses its place each time it is drawn: the :data:`INSIDE` corners of its
        axes, then around an inset on its panel, or under a zoom panel on the figure (:meth:`candidates`)."""

        def candidates(self):
            ax = self.axes
            for loc in INSIDE:
                yield loc, (0, 0, 1, 1), ax
            parent = _parent(ax)
            if parent is None:  # a panel of its own: under it, on the figure
                for side in ("right", "center", "left"):
                    yield f"upper {side}", (0, -1, 1, 1), None
                return
            (x0, y0), (x1, y1) = parent.transAxes.inverted().transform(ax.get_window_extent().get_points())
            # under an inset in the panel's upper half (else over it), then beside it on the panel's inner side
            vertical = ("upper", (0, -1, 1, 1)) if (y0 + y1) / 2 > 0.5 else ("lower", (0, 1, 1, 1))
            for side in ("right", "center", "left"):
                yield f"{vertical[0]} {side}", vertical[1], parent
            side, anchor = ("left", (1, 0, 1, 1)) if (x0 + x1) / 2 < 0.5 else ("right", (-1, 0, 1, 1))
            for level in ("lower", "upper"):
                yield f"{level} {side}", anchor, parent

        def place(self, renderer) -> None:
            best = None
            root = self.get_figure(root=True)
            for loc, anchor, under in self.candidates():
                self.loc = self.codes[loc]
                self.set_bbox_to_anchor(anchor, self.axes.transAxes)
                box = self.get_window_extent(renderer)
                if not _inside(box, root.bbox) or (under is not None and not _inside(box, under.bbox)):
                    continue
                cover = 0.0 if under is None else covered(under, box)
                rank = (cover > FAINT, _collides(box, self.axes, under, renderer), cover)
                if best is None or rank < best[0]:
                    best = (rank, loc, anchor, under)
                if rank == (False, False, 0.0):
                    break
            if best is not None:
                self.loc = self.codes[best[1]]
                self.set_bbox_to_anchor(best[2], self.axes.transAxes)
                self.on_figure(best[3] is None)

        def on_figure(self, outside: bool) -> None:
            """Dark ink on the figure's background, else the bar's own colour with its outline on the map."""
            color = COLORS["note"] if outside else self.ink
            self.size_bar.get_children()[0].set(facecolor=color, edgecolor=color)
            self.txt_label._text.set_color(color)
            self.txt_label._text.set_path_effects([] if outside else outline(2.0))

        def draw(self, renderer):
            self.place(renderer)
            super().draw(renderer)

    return PlacedScaleBar


def _collides(box, axes, under, renderer) -> bool:
    """Whether a scale bar of ``axes`` whose display box is ``box``, drawn on the axes ``under`` (``axes`` itself,
    or the panel around an inset), crosses a marker there: the edge of a box or a line, a text, or the inset;
    drawn on the figure (``under`` None), whether it overlaps another axes, a legend or a text of the figure."""
    if under is None:
        from matplotlib.axes import Axes
        from matplotlib.legend import Legend
        from matplotlib.text import Text

        root = axes.get_figure(root=True)
        others = root.findobj(lambda a: isinstance(a, Axes | Legend) and a is not axes and a.get_visible())
        texts = [t for t in root.findobj(Text) if t.axes is None and t.get_visible() and t.get_text()]
        return any(box.overlaps(a.get_window_extent(renderer)) for a in texts) or any(
            box.overlaps(a.get_tightbbox(renderer) if isinstance(a, Axes) else a.get_window_extent(renderer))
            for a in others
        )
    if under is not axes and box.overlaps(axes.bbox):
        return True
    texts = [t for t in under.texts if t.get_visible() and t.get_text()]
    if any(box.overlaps(t.get_window_extent(renderer)) for t in texts):
        return True
    marks = [a for a in (*under.patches, *under.lines) if a.get_visible()]
    return any(a.get_transform().transform_path(a.get_path()).intersects_bbox(box, filled=False) for a in marks)


def _parent(ax):
    """The axes an inset ``ax`` was made in (:meth:`matplotlib.axes.Axes.inset_axes`), or None."""
    for other in ax.figure.axes:
        if ax in getattr(other, "child_axes", ()):
            return other
    return None


def draw_scale_bar(ax, width: float, *, color: str = "white", fontsize: float | None = None):
    """A scale bar in ``ax`` (gid ``scale-bar``): :func:`nice_length` of a quarter of ``width`` (the view's
    width, in input pixels), labelled in pixels. Where it goes is decided when the figure is drawn (the module
    docstring gives the order): the first place that covers no pixel of the maps above their colour floor
    (:func:`covered`) and no marker.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    >>> m = np.full((100, 100), -3.0); m[60:, 60:] = 0.0  # structure in the lower right corner
    >>> _ = ax.imshow(m, vmin=-3.0, vmax=0.0, extent=(-0.5, 99.5, 99.5, -0.5))
    >>> bar = draw_scale_bar(ax, 100)
    >>> fig.canvas.draw()
    >>> bar.txt_label.get_text(), bar.loc == bar.codes["lower left"]
    ('20 px', True)
    """
    length = nice_length(width / 4)
    bar = _scale_bar_class()(
        ax.transData,
        length,
        f"{length} px",
        loc="lower right",
        pad=0.3,
        borderpad=0.4,
        sep=2,
        color=color,
        frameon=False,
        size_vertical=max(width / 120, 0.15),
        fontproperties={"size": fontsize} if fontsize else None,
    )
    bar.ink = color
    bar.on_figure(False)
    bar.set_gid("scale-bar")
    ax.add_artist(bar)
    return bar
