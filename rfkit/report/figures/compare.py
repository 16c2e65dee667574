"""The multi-model grid papers use (RepLKNet Fig. 1, SLaK, VMamba): rows are models, columns are layers, drawn
from finished ``rfkit analyze`` folders (``rfkit figure DIR... --layers final|stages --out fig.pdf``, and the
site's comparison page).

Every panel has **one spatial scale** (the same pixels per inch, the input frame of the largest input, so a
smaller input shows smaller) and, by default, **its own colour scale** (each map divided by its own maximum:
models differ in gradient magnitude, their shapes are what compares); ``shared=True`` puts every map on one
colour scale instead (:func:`~rfkit.report.figures.looks.grid_scale`). A small RF or ERF gets a zoomed inset with a
scale bar (:mod:`rfkit.report.figures.inset`). Columns compare layers at the same **depth fraction** —
the measured layer nearest ¼, ½, ¾ of the model's depth in spatial layers, then its final measured layer — so
a 12-block ViT and a 4-stage CNN line up by how deep the layer is, not by counting stages from the end; a
model with no layer near a column's depth shows its nearest measured layer there, titled "≈ depth 0.48".
A legend names the markers drawn (RF box, centre cross, "+N px" arrows, zoomed inset).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rfkit.errors import ArgumentError
from rfkit.formatting import rf_label
from rfkit.io import OutputError, remove_abandoned_files
from rfkit.report.figures.captions import caption_paths, comparison_drawn, owned_caption, record_drawing
from rfkit.report.figures.extents import draw_fitted_extents, fit_extents
from rfkit.report.figures.inset import draw_inset, erf_window, zoom_window
from rfkit.report.figures.labels import is_random, wrap_name
from rfkit.report.figures.layout import fitted_legend, wrap_lines
from rfkit.report.figures.looks import GridScale, HeatScale, grid_scale, style_named
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    FORMATS,
    draw_random_tag,
    draw_rf_centre,
    figure_style,
    image_extent,
    map_max,
    mark_figure,
    mark_nonfinite,
    new_figure,
    outline,
    reticle_marker,
    rf_beyond,
    rf_rectangle,
    save_figure,
    styled,
    surrounds,
    tighten,
)
from rfkit.report.files import layer_filename

FRACTIONS = (0.25, 0.5, 0.75)
"""The depth fractions of the ``stages`` columns (the final measured layer comes last)."""
COLUMN_NAMES = {0.25: "¼ depth", 0.5: "½ depth", 0.75: "¾ depth"}
LAYER_SETS = ("final", "stages")


@dataclass(frozen=True)
class Cell:
    """One panel: a measured layer of one model (``row``: its ``metrics.json`` row) and its raw map;
    ``approx``: no layer lay near the column's depth, this is the nearest one (:func:`nearest_layer`)."""

    model: str
    row: dict
    map: np.ndarray | None
    approx: bool = False

    @property
    def window(self):
        r = self.row
        keys = ("rf_first_y", "rf_last_y", "rf_first_x", "rf_last_x")
        if any(r.get(k) is None for k in keys):
            return None
        return ((r["rf_first_y"], r["rf_last_y"]), (r["rf_first_x"], r["rf_last_x"]))


def depth_fractions(rows: Sequence[dict]) -> list[float]:
    """How deep each measured layer is, as a fraction of the model: its ``depth_fraction`` (spatial layers
    from the input over the model's), or for a report without it, its place among the measured layers.

    >>> depth_fractions([{"depth_fraction": 0.2}, {"depth_fraction": 0.9}]), depth_fractions([{}, {}, {}, {}])
    ([0.2, 0.9], [0.25, 0.5, 0.75, 1.0])
    """
    if rows and all(isinstance(r.get("depth_fraction"), (int, float)) for r in rows):
        return [float(r["depth_fraction"]) for r in rows]
    return [(i + 1) / len(rows) for i in range(len(rows))]


TOLERANCE = 0.2
"""A layer stands for a depth fraction when it is at most this far from it."""


def pick_columns(rows: Sequence[dict], layers: str = "stages") -> list[tuple[str, int | None]]:
    """The columns of one model: ``(name, index of the measured layer or None)``. ``final``: its last measured
    layer; ``stages``: for :data:`FRACTIONS` of its depth the measured layers (in their order, each once, the
    last kept for the final column) that lie nearest them all together, a column left empty when nothing is
    within :data:`TOLERANCE`; then the last.

    >>> rows = [{"depth_fraction": f} for f in (0.02, 0.22, 0.45, 0.8, 0.98)]  # ResNet-50's stages
    >>> pick_columns(rows)
    [('¼ depth', 1), ('½ depth', 2), ('¾ depth', 3), ('final', 4)]
    >>> pick_columns([{"depth_fraction": f} for f in (0.14, 0.29, 0.43, 0.64, 0.79, 0.93, 0.93)])  # a ViT
    [('¼ depth', 1), ('½ depth', 2), ('¾ depth', 4), ('final', 6)]
    >>> pick_columns([{"depth_fraction": f} for f in (0.3, 0.66, 0.98)])  # 66% is nearer ¾ than ½
    [('¼ depth', 0), ('½ depth', None), ('¾ depth', 1), ('final', 2)]
    >>> pick_columns(rows, "final"), pick_columns([{"depth_fraction": 1.0}])
    ([('final', 4)], [('¼ depth', None), ('½ depth', None), ('¾ depth', None), ('final', 0)])
    """
    if layers not in LAYER_SETS:
        raise ArgumentError(f"layers {layers!r}: use final or stages")
    last = len(rows) - 1 if rows else None
    if layers == "final":
        return [("final", last)]
    best = _nearest_in_order(depth_fractions(rows)[:-1], FRACTIONS)  # the last layer is the final column's
    return [*((COLUMN_NAMES[t], i) for t, i in zip(FRACTIONS, best)), ("final", last)]


def _nearest_in_order(
    fractions: Sequence[float], targets: Sequence[float], tolerance: float = TOLERANCE
) -> tuple[int | None, ...]:
    """For each of ``targets`` a layer (index into ``fractions``) or None, the layers in their order and each
    used once, a layer within ``tolerance`` of its target, minimising the summed distance (None costs
    ``tolerance``, or more than any layer when it is infinite); of equal sums the first in the order None, 0, 1,
    ... target by target.

    A dynamic programme over (target, last layer used): linear in the layers for each target (after a sort),
    where trying every combination took the cube of the number of layers (minutes for 5000).

    >>> _nearest_in_order([0.125, 0.375, 0.75], (0.25, 0.5, 0.75))
    (0, 1, 2)
    >>> _nearest_in_order([0.5, 0.5], (0.25, 0.5, 0.75))  # both as near ½: the first
    (None, 0, None)
    >>> _nearest_in_order([0.5, 0.5], (0.25, 0.5, 0.75), tolerance=math.inf)  # every layer used, in order
    (None, 0, 1)
    """
    none = -1  # sorts before every layer, as None came first among the choices
    miss = tolerance if math.isfinite(tolerance) else 2.0 * len(targets)  # above any sum of depth distances
    # the best (cost, choices) for each last layer used (none: no layer yet)
    states: dict[int, tuple[float, tuple[int, ...]]] = {none: (0.0, ())}
    for t in targets:
        following = {last: (cost + miss, chosen + (none,)) for last, (cost, chosen) in states.items()}
        before = sorted(states.items())
        best_before, k = None, 0
        for i, f in enumerate(fractions):
            while k < len(before) and before[k][0] < i:
                best_before = before[k][1] if best_before is None else min(best_before, before[k][1])
                k += 1
            if best_before is not None and abs(f - t) <= tolerance:
                step = (best_before[0] + abs(f - t), best_before[1] + (i,))
                following[i] = min(following.get(i, step), step)
        states = following
    _, chosen = min(states.values())
    return tuple(None if i == none else i for i in chosen)


def filled_columns(rows: Sequence[dict], layers: str = "stages") -> list[tuple[str, int | None, bool]]:
    """:func:`pick_columns` with no empty depth column where the model has a layer for it: ``(name, index,
    approx)``. Where a column has no layer within :data:`TOLERANCE`, the depth columns take the measured layers
    nearest them at any distance, still in their order and each once (``approx`` where farther than the
    tolerance); only a model with fewer layers than columns shows a layer twice (its :func:`nearest_layer`).

    >>> filled_columns([{"depth_fraction": f} for f in (0.2, 0.28, 0.8, 1.0)])
    [('¼ depth', 0, False), ('½ depth', 1, True), ('¾ depth', 2, False), ('final', 3, False)]
    >>> filled_columns([{"depth_fraction": f} for f in (0.7, 0.8, 0.9, 1.0)])  # a YOLO's measured layers
    [('¼ depth', 0, True), ('½ depth', 1, True), ('¾ depth', 2, False), ('final', 3, False)]
    >>> filled_columns([{"depth_fraction": f} for f in (0.8, 1.0)])  # two layers for four columns
    [('¼ depth', 0, True), ('½ depth', 0, True), ('¾ depth', 0, False), ('final', 1, False)]
    """
    columns = pick_columns(rows, layers)
    if all(i is not None for _, i in columns):
        return [(name, i, False) for name, i in columns]
    fraction = {COLUMN_NAMES[t]: t for t in FRACTIONS}
    fractions = depth_fractions(rows)
    anywhere = dict(zip(FRACTIONS, _nearest_in_order(fractions[:-1], FRACTIONS, tolerance=math.inf)))
    filled = []
    for name, i in columns:
        if name in fraction:
            target = fraction[name]
            i = anywhere[target] if anywhere[target] is not None else nearest_layer(rows, target)
            filled.append((name, i, i is not None and abs(fractions[i] - target) > TOLERANCE))
        else:
            filled.append((name, i, False))
    return filled


def nearest_layer(rows: Sequence[dict], fraction: float) -> int | None:
    """The measured layer (index into ``rows``) whose depth fraction is nearest ``fraction``, the first of
    equals; None without rows. Stands in for a column :func:`pick_columns` leaves empty.

    >>> nearest_layer([{"depth_fraction": f} for f in (0.2, 0.28, 0.8, 1.0)], 0.5), nearest_layer([], 0.5)
    (1, None)
    """
    fractions = depth_fractions(rows)
    return min(range(len(rows)), key=lambda i: abs(fractions[i] - fraction), default=None)


def load_cells(analysis, layers: str = "stages") -> list[tuple[str, Cell | None]]:
    """The columns of one analysis (:class:`rfkit.report.site.Analysis`) with their maps, read from
    ``maps/<layer>.npy`` (never through a symlink; a missing map, or one that is not a finite real array of
    the input size, leaves the panel empty). A depth column with no layer near it gets the nearest measured
    layer not shown in another column (:func:`filled_columns`; its cell ``approx``)."""
    rows = list(analysis.rows)
    shape = tuple(analysis.header["input_size"])
    cells = []
    for name, i, approx in filled_columns(rows, layers):
        if i is None:
            cells.append((name, None))
            continue
        data = _read_map(analysis.folder, rows[i]["layer"], shape)
        cells.append((name, Cell(analysis.model, rows[i], data, approx)))
    return cells


def _read_map(folder: Path, layer: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The raw map of ``layer`` if it is a finite real array of ``shape`` (the input size); None otherwise.
    Its header is read first, so a map claiming another shape is never loaded."""
    maps = Path(folder) / "maps"
    path = maps / f"{layer_filename('' if layer == '<output>' else layer)}.npy"
    if maps.is_symlink() or path.is_symlink() or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            stored, _, dtype = read_header(f)
            if stored != shape or dtype.kind not in "fiu" or dtype.hasobject:
                return None
            f.seek(0)
            arr = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return arr if arr.shape == shape and np.isfinite(arr).all() else None


@styled
def comparison_figure(
    analyses, layers: str = "stages", *, look: str = "rfkit", style: str = "report", shared: bool = False
):
    """Rows of models, columns of layers (:func:`pick_columns`), one spatial scale; each panel on its own colour
    scale, or all on one with ``shared``.

    Parameters
    ----------
    analyses : sequence of Analysis
        Finished analyses (:func:`rfkit.report.site.find_analyses`), one row each, in order.
    layers : {"final", "stages"}
    look : {"rfkit", "replknet", "openerf"}
    style : {"report", "paper"}
        ``paper``: two columns wide (6.9 in), fonts of 7 pt or more, no title or footer.
    shared : bool
        Divide every map by the largest peak of the grid (one colour scale, whose log floor reaches low
        enough for the weakest panel: :func:`~rfkit.report.figures.looks.grid_scale`) instead of by its own.

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = [(a, load_cells(a, layers)) for a in analyses]
    if not grid:
        raise ArgumentError("no analyses to compare")
    kept = [j for j in range(len(grid[0][1])) if any(cells[j][1] is not None for _, cells in grid)]
    grid = [(a, [cells[j] for j in kept]) for a, cells in grid]  # a depth no model has a layer near: no column
    fs = style_named(style)
    peaks = [map_max(c.map) for _, cells in grid for _, c in cells if c is not None and c.map is not None]
    scale = grid_scale(peaks, shared)
    heat = HeatScale.named(look, floor=scale.floor, top=max(peaks, default=0.0) if scale.shared else None)
    with figure_style(**fs.rc):
        return _comparison(grid, heat, scale, fs, layers)


def _comparison(grid, heat: HeatScale, scale: GridScale, fs, layers: str):
    names = [name for name, _ in grid[0][1]]
    nrows, ncols = len(grid), len(names)
    H = max(int(a.header.get("input_size", [0, 0])[0]) for a, _ in grid)
    W = max(int(a.header.get("input_size", [0, 0])[-1]) for a, _ in grid)
    width = fs.width(ncols)  # paper: one column for one layer, two for more
    panel = min(1.7, (width - 2.1) / ncols) if width else 1.9  # room for the models' names and the colour bar
    provenance = [
        f"{a.model}: weights {a.header.get('weights', '?')}, {a.header.get('num_images', '?')} image(s) "
        f"({a.header.get('images', '?')}), input {'×'.join(map(str, a.header.get('input_size', [])))}"
        for a, _ in grid
    ]
    provenance.append(f"colour: {scale.describe(heat)}; {heat.look.describe()}")
    footer = [(line, COLORS["note"]) for line in provenance]
    if warning := random_rows_text([a.header for a, _ in grid]):
        footer.append((warning, COLORS["warning"]))

    import matplotlib
    from matplotlib.font_manager import FontProperties

    title_pt = FontProperties(size=matplotlib.rcParams["axes.titlesize"]).get_size()

    def draw(size):
        fig, body = new_figure(size, footer if fs.footer else ())
        axes = body.subplots(nrows, ncols, squeeze=False)
        norm = heat.scale()[0]
        im = None
        for r, (analysis, cells) in enumerate(grid):
            for c, (name, cell) in enumerate(cells):
                ax = axes[r, c]
                im = _draw_cell(ax, cell, heat, norm, (H, W)) or im
                title = (f"{name}\n" if r == 0 else "") + _caption(cell)
                ax.set_title(wrap_lines(title, int(panel * 72 / (title_pt * 0.6))), linespacing=1.25)
                if cell is not None and cell.map is not None and is_random(analysis.header.get("weights_kind")):
                    draw_random_tag(ax, "below")
            random = is_random(analysis.header.get("weights_kind"))
            trained = analysis.header.get("weights_kind") == "pretrained"
            axes[r, 0].set_ylabel(
                wrap_name(analysis.model) + ("\nrandom init" if random else "\ntrained" if trained else ""),
                rotation=0,
                ha="right",
                va="center",
                labelpad=6,
                color=COLORS["warning"] if random else "black",
            )
        if im is not None:
            _, ticks, labels = heat.scale()
            cbar = body.colorbar(im, ax=list(axes.ravel()), shrink=min(1.0, 0.9 + 0.1 / nrows), pad=0.02)
            cbar.set_ticks(ticks, labels=labels)
            cbar.set_label(heat.bar_label(scale.of))
        if fs.footer:
            colour = "one colour scale" if scale.shared else "each panel on its own colour scale"
            body.suptitle(f"ERF of {nrows} model{'s' * (nrows > 1)}: one spatial scale, {colour}")
        _legend(body, axes.ravel(), size[0])
        return fig, body, axes, (cbar.ax if im is not None else None)

    size = (ncols * (panel + 0.1) + 2.6, nrows * (panel * H / W + 0.6) + 0.9)
    fig = tighten(draw, size, width=width)
    fit_extents(fig)
    body = fig.subfigs[0]
    drawn = set(marker_legend(body.axes)[1])
    shown = {t.get_text().replace("\n", " ") for leg in body.legends for t in leg.get_texts()}
    if drawn != shown:  # marks fitted to other forms than the legend names
        _legend(body, body.axes, fig.get_figwidth())
        fit_extents(fig)  # laid out again around the new legend
    mark_figure(fig, provenance, dpi=fs.rc.get("savefig.dpi", DPI), crop=width is None)
    beyond = [
        (f"{a.model} {cell.row['layer']}", sides)
        for a, cells in grid
        for _, cell in cells
        if cell is not None and cell.map is not None and cell.window is not None and not cell.row.get("is_global")
        if (sides := rf_beyond(cell.window, cell.map.shape))
    ]
    return record_drawing(fig, comparison_drawn([a for a, _ in grid], heat, layers, scale.shared, beyond))


def _legend(body, axes, width: float) -> None:
    """The legend of the markers drawn in ``axes`` (:func:`marker_legend`), replacing any ``body`` has."""
    for old in list(body.legends):
        old.remove()
    handles, labels = marker_legend(axes)
    if handles:
        fitted_legend(body, handles, labels, width, ncols=len(labels))


def marker_legend(axes) -> tuple[list, list[str]]:
    """Legend handles and labels of the markers drawn in ``axes`` (read from their artists' gids, so a marker
    no panel shows is never listed): a global layer's frame, the RF box, the local paths' box, the centre cross,
    the "+N px" arrows and the zoomed inset."""
    from matplotlib.patches import Patch

    gids = set()
    for ax in axes:
        gids |= {a.get_gid() for a in ax.get_children() if a.get_gid()}
        gids |= {c.get_gid() for c in ax.child_axes if c.get_gid()}
    rf = dict(fill=False, edgecolor=COLORS["rf"], linewidth=1.2)
    entries = [
        (
            "global-frame",
            Patch(fill=False, edgecolor=COLORS["rf"], linewidth=2.6),
            "global layer: RF = whole input (frame)",
        ),
        ("rf-box", Patch(**rf), "analytic RF of the unit"),
        ("local-rf-box", Patch(linestyle=(0, (3, 1.5)), **rf), "RF of the local paths (global layer)"),
        ("rf-center", _centre_handle(), "analytic RF centre of the unit"),
        ("rf-extent", _arrow_handle(), "+N px: the RF goes on N px beyond that edge"),
        ("rf-extent-text", _glyph_handle(), "beside a small map: px the RF goes on beyond each edge"),
        (
            "zoom-inset",
            Patch(fill=False, edgecolor="white", path_effects=outline(1.6)),
            "zoomed inset (scale bar in px)",
        ),
    ]
    drawn = [(handle, label) for gid, handle, label in entries if gid in gids]
    return [h for h, _ in drawn], [lab for _, lab in drawn]


def _centre_handle():
    """The legend's copy of :func:`~rfkit.report.figures.style.draw_rf_centre`'s open cross."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        linestyle="none",
        marker=reticle_marker(),
        markersize=7,
        markeredgewidth=1.0,
        color=COLORS["rf"],
        path_effects=outline(2.1),
    )


def _glyph_handle():
    """The glyph label's legend handle: "↑N" in the RF colour."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=COLORS["rf"], marker=r"$\uparrow\!N$", linestyle="none", markersize=14)


def _arrow_handle():
    """An arrow in the RF colour, as the extent arrows are drawn."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=COLORS["rf"], marker=r"$\rightarrow$", linestyle="none", markersize=9)


def random_rows_text(headers) -> str:
    """The footer's warning about rows of random weights: how many of the rows, '' when none.

    >>> random_rows_text([{"weights_kind": "random"}, {"weights_kind": "random-safe"}])
    'RANDOM WEIGHTS in every row: their ERFs show the architecture, not a trained network'
    >>> random_rows_text([{"weights_kind": "random"}, {"weights_kind": "pretrained"}, {}])
    'RANDOM WEIGHTS in 1 of 3 rows: their ERFs show the architecture, not a trained network'
    >>> random_rows_text([{"weights_kind": "pretrained"}])
    ''
    """
    n = sum(is_random(h.get("weights_kind")) for h in headers)
    if not n:
        return ""
    rows = "every row" if n == len(headers) else f"{n} of {len(headers)} rows"
    return f"RANDOM WEIGHTS in {rows}: their ERFs show the architecture, not a trained network"


def _caption(cell: Cell | None) -> str:
    """A panel's title: the layer, how deep it is (when the report says) and its RF."""
    if cell is None:
        return "no layer near this depth"
    r = cell.row
    rf = "global" if r.get("is_global") else rf_label((r.get("rf_h"), r.get("rf_w")))  # the dashed box: local paths
    deep = r.get("depth_fraction")
    if not isinstance(deep, (int, float)):
        depth = ""
    elif cell.approx:  # no layer near the column's depth: the nearest, and how deep it really is
        depth = f" (≈ depth {deep:.2f})"
    else:
        depth = f" ({deep:.0%} deep)"
    return f"{r['layer']}{depth}\nRF {rf}"


def _draw_cell(ax, cell: Cell | None, heat: HeatScale, norm, frame: tuple[int, int]):
    """One panel in the common frame ``(H, W)``: the map, the RF box (arrows where it goes beyond the input),
    the unit's centre; returns the map's image (None for an empty panel)."""
    H, W = frame
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor(COLORS["outside"])
    ax.set_aspect("equal")
    if cell is None or cell.map is None:
        return None
    h, w = cell.map.shape
    im = heat.imshow(ax, cell.map, norm, extent=image_extent(h, w), interpolation="nearest", gid="erf-map")
    if not np.isfinite(cell.map).all():
        mark_nonfinite(ax)
    window = cell.window
    if window is not None:
        kw = dict(fill=False, edgecolor=COLORS["rf"], zorder=5, path_effects=outline(2.2))
        dashed = bool(cell.row.get("is_global"))
        style = dict(linestyle=(0, (3, 1.5)), gid="local-rf-box") if dashed else dict(linestyle="-", gid="rf-box")
        if not (dashed and surrounds(window, (h, w))):  # else no edge of it lies on the map: nothing to see
            ax.add_patch(rf_rectangle(window, linewidth=1.2, **style, **kw))
    centre = (cell.row.get("center_y"), cell.row.get("center_x"))
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in centre):
        centre = None
    inset = _draw_zoom(ax, cell, heat, norm, window, centre)
    if inset is None and centre is not None:  # zoomed, the outlined area marks the unit
        draw_rf_centre(ax, centre, size=6)
    beyond = {} if window is None or cell.row.get("is_global") else rf_beyond(window, (h, w))
    if beyond:  # after the inset, so that a label beside the map keeps clear of it
        draw_fitted_extents(ax, window, (h, w), beyond, beside=True)
    if cell.row.get("is_global"):
        for spine in ax.spines.values():
            spine.set(edgecolor=COLORS["rf"], linewidth=1.6, gid="global-frame")
    return im


def _draw_zoom(ax, cell: Cell, heat: HeatScale, norm, rf_window, centre):
    """A zoomed inset where the cell's RF or ERF is small (:mod:`rfkit.report.figures.inset`); returns the inset axes or
    None."""
    h, w = cell.map.shape
    r = cell.row
    erf_centre = (r.get("centroid_y"), r.get("centroid_x"))
    erf_box = erf_window(erf_centre, (r.get("erf_side_h"), r.get("erf_side_w")), (h, w))
    zoom = zoom_window((h, w), rf_window, erf_box)
    anchor = centre if centre is not None else erf_centre
    if zoom is None or anchor is None or not all(isinstance(v, (int, float)) for v in anchor):
        return None

    def draw_map(inset):
        heat.imshow(inset, cell.map, norm, extent=image_extent(h, w), interpolation="nearest")

    return draw_inset(ax, draw_map, zoom, (h, w), anchor, rf_window=rf_window, dashed=bool(r.get("is_global")))


def owned(path) -> bool:
    """Whether the file at ``path`` is a figure rfkit wrote (its metadata names rfkit as its creator), so
    that ``rfkit figure`` may replace it.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.pdf"
    >>> _ = p.write_bytes(b"%PDF-1.4 user's paper"); owned(p)
    False
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    marks = (b"/Creator (rfkit ", b"Software\x00rfkit ", b"<dc:title>rfkit ")
    with open(path, "rb") as f:
        head = f.read(64 << 20)
    return any(m in head for m in marks)


def save_comparison(
    analyses, path, layers: str = "stages", *, look: str = "rfkit", style: str = "report", shared: bool = False
):
    """:func:`comparison_figure` written to ``path`` (its extension picks PNG, PDF or SVG; a paper style adds
    the other two beside it) and its caption pair (``.caption.md``, ``.caption.tex``), all of them renamed into
    place together once rendered. Refuses
    (:class:`~rfkit.io.OutputError`) to replace a file rfkit did not write; removes the temporary files a killed
    run left beside them.

    Returns
    -------
    list of Path
    """
    paths = figure_paths(path, style)
    return save_figure(comparison_figure(analyses, layers, look=look, style=style, shared=shared), paths)


def figure_paths(path, style: str = "report") -> list[Path]:
    """The files a figure saved at ``path`` is written to: ``path`` (its extension picks PNG, PDF or SVG;
    ``.png`` when it has none), and for a paper style the other two formats beside it. Refuses
    (:class:`~rfkit.io.OutputError`) a file there that rfkit did not write, and removes the temporary files a
    killed run left beside them.

    Raises
    ------
    ArgumentError
        ``path`` is a folder, or ends in another extension.
    OutputError
        One of the files exists and rfkit did not write it.
    """

    path = Path(path)
    if path.is_dir():
        raise ArgumentError(f"--out {path} is a folder: give the figure's file name (.png, .pdf or .svg)")
    if path.suffix.lower() not in (*FORMATS, ""):
        raise ArgumentError(f"--out {path.name}: the figure's name must end in .png, .pdf or .svg")
    exts = [path.suffix.lower() or ".png"]
    if style == "paper":
        exts += [e for e in style_named(style).formats if e not in exts]
    paths = [path.with_suffix(e) for e in exts]
    for p in [*paths, *caption_paths(path)]:
        if os.path.lexists(p) and not (owned_caption(p) if p in caption_paths(path) else owned(p)):
            raise OutputError(f"{p} exists and rfkit did not write it; rfkit does not replace it: choose another --out")
    names = [p.name for p in [*paths, *caption_paths(path)]]
    remove_abandoned_files(path.parent, names)  # what a killed `rfkit figure` left
    return paths
