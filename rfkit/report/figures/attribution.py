"""The grid figure of an :class:`~rfkit.attribution.result.AttributionResult`: rows are images, columns the
input and one column per method (titled with the method's name in the literature, e.g. "Integrated
Gradients"), each map overlaid on its image.

Display conventions (the maps themselves stay raw):

- each map is divided by a **scale**, the 99th percentile of ``|map|``, so that one hot pixel does not wash the
  rest out: ``normalise="image"`` (default) takes it from each map alone, so every panel shows its own range
  and no row is blank because another image's maps are stronger; ``normalise="column"`` from all the images of
  a method's column, so the images of a column compare in magnitude. The colour bars say which;
- **signed** maps (gradient methods, combinations) share one diverging colour scale, blue negative, red
  positive, -1..1 of the scale; CAM maps (non-negative) one sequential scale 0..1;
- the opacity of the overlay follows ``|value|``, so near-zero pixels show the image;
- for a unit target the unit's analytic RF window is drawn on every panel;
- a model of random weights has a "random init" tag on each row's input image, in both styles;
- a map holding NaN or inf is labelled "non-finite" across its panel (its finite values are drawn, the others
  as 0), and the scale is taken from the finite values; an all-zero map is labelled "all zero";
- ``style="report"``: title, provenance footer and (per image) each panel's scale in its corner;
  ``style="paper"``: one column (up to three panels in a row) or two columns wide, fonts of 7 pt or more, no
  title or footer (the provenance and the scales are in the files' metadata), written as PNG, PDF and SVG
  (:class:`rfkit.report.figures.looks.FigureStyle`).

:func:`grid_record` says what a grid draws (style, normalisation, methods and their titles, rows, scales) without
drawing it, for captions and the run record; the figure carries it as :data:`GRID_RECORD`.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass

import numpy as np

from rfkit.report.figures.captions import attribution_drawn, record_drawing
from rfkit.report.figures.labels import is_random
from rfkit.report.figures.looks import NORMALISATIONS, check_normalise, style_named
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    draw_random_tag,
    figure_style,
    image_gray,
    mark_figure,
    mark_nonfinite,
    new_figure,
    outline,
    rf_rectangle,
    save_figure,
)
from rfkit.version import __version__

#: Percentile of ``|map|`` that a map (or a column) is divided by.
SCALE_PERCENTILE = 99.0
#: The image under a map is drawn light and low in contrast, ``offset + gain * grey``, so the colours stand out.
UNDERLAY = (0.55, 0.45)
SIGNED_CMAP = "RdBu_r"
CAM_CMAP = "inferno"
PANEL_IN = 1.45
#: Attribute of a grid figure holding its :class:`GridRecord`.
GRID_RECORD = "rfkit_grid"
#: Least width (inches) a paper grid keeps for the row labels left of the panels.
_PAPER_LABELS_IN = 0.8
#: Most panels in a row of a one-column paper grid; more take the page width.
_COLUMN_PANELS = 3


def column_scale(maps: np.ndarray) -> float:
    """The scale of ``(N, H, W)`` maps: the :data:`SCALE_PERCENTILE` percentile of the finite values of
    ``|map|`` (their max if that is 0, 1 for all-zero or all-non-finite maps).

    >>> column_scale(np.array([[[0.0, 2.0], [0.0, -4.0]]])) > 3.9, column_scale(np.zeros((1, 2, 2)))
    (True, 1.0)
    >>> column_scale(np.array([[[np.inf, 2.0], [np.nan, 2.0]]]))
    2.0
    """
    a = np.abs(np.asarray(maps, dtype=np.float64))
    a = a[np.isfinite(a)]
    scale = float(np.percentile(a, SCALE_PERCENTILE)) if a.size else 0.0
    return scale if scale > 0 else (float(a.max()) if a.size and a.max() > 0 else 1.0)


def panel_scales(maps: np.ndarray, normalise: str = "image") -> np.ndarray:
    """The scale of each of the ``(N, H, W)`` maps: its own :func:`column_scale` (``"image"``), or the
    column's, repeated (``"column"``).

    >>> m = np.stack([np.full((2, 2), 4.0), np.full((2, 2), 0.01)])
    >>> panel_scales(m, "image").tolist(), panel_scales(m, "column").tolist()
    ([4.0, 0.01], [4.0, 4.0])
    """
    if check_normalise(normalise) == "column":
        return np.full(len(maps), column_scale(maps))
    return np.array([column_scale(m[None]) for m in maps])


def overlay_rgba(m: np.ndarray, scale: float, signed: bool) -> np.ndarray:
    """``m / scale`` clipped to the colour range, as RGBA whose alpha grows with ``|value|`` (0 at 0, and at
    NaN or inf)."""
    from matplotlib import colormaps

    m = np.asarray(m, dtype=np.float64)
    v = np.clip(np.where(np.isfinite(m), m, 0.0) / scale, -1 if signed else 0, 1)
    rgba = colormaps[SIGNED_CMAP if signed else CAM_CMAP]((v + 1) / 2 if signed else v)
    rgba[..., 3] = 0.9 * np.sqrt(np.abs(v))
    return rgba


def display_image(image: np.ndarray, data_config: dict) -> np.ndarray:
    """A model-ready ``(C, H, W)`` image as the picture it came from: ``x * std + mean``, clipped to [0, 1],
    ``(H, W, 3)`` (a one-channel image repeated)."""
    c = image.shape[0]
    mean = np.asarray(data_config.get("mean", (0.0,) * c), dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(data_config.get("std", (1.0,) * c), dtype=np.float64).reshape(-1, 1, 1)
    pic = np.clip(np.nan_to_num(image * std + mean), 0, 1)
    pic = np.repeat(pic, 3, axis=0) if c == 1 else pic[:3]
    return np.moveaxis(pic, 0, -1)


@dataclass(frozen=True)
class GridRecord:
    """What an attribution grid draws, for a caption or the run record.

    Attributes
    ----------
    style : str
        ``"report"`` or ``"paper"``.
    normalise : str
        ``"image"`` (each map divided by its own scale) or ``"column"`` (one scale per method).
    percentile : float
        The percentile of ``|map|`` a scale is.
    methods : tuple of str
        The method ids, in column order (as in the CSV and the map files).
    titles : tuple of str
        The column titles: the methods' names in the literature (:func:`rfkit.attribution.methods.display_name`).
    signed : tuple of bool
        Per method: drawn on the diverging scale -1..1 (True) or, a CAM map, on the sequential one 0..1.
    rows : tuple of str
        The image of each row (its label).
    scales : tuple of tuple of float
        ``scales[i][j]``: what row ``i``'s map of method ``j`` was divided by (the same down a column with
        ``normalise="column"``).
    rf_window : tuple or None
        The unit's analytic RF window drawn on every panel (a unit target), else None.
    cam_layer : str or None
        The CAM methods' layer, when a column shows one.
    """

    style: str
    normalise: str
    percentile: float
    methods: tuple[str, ...]
    titles: tuple[str, ...]
    signed: tuple[bool, ...]
    rows: tuple[str, ...]
    scales: tuple[tuple[float, ...], ...]
    rf_window: tuple | None = None
    cam_layer: str | None = None

    def scaling_text(self) -> str:
        """How the maps were scaled, in one line.

        >>> GridRecord("paper", "image", 99.0, ("ig",), ("Integrated Gradients",), (True,), ("a",),
        ...            ((2.0,),)).scaling_text()
        'each map divided by its own 99th percentile of |map| (normalised per image)'
        """
        if self.normalise == "image":
            return f"each map divided by its own {self.percentile:g}th percentile of |map| (normalised per image)"
        return (
            f"each method's column divided by the {self.percentile:g}th percentile of |map| over its images "
            "(normalised per column)"
        )

    def as_dict(self) -> dict:
        """Plain JSON values."""
        d = asdict(self)
        d["rf_window"] = None if self.rf_window is None else [list(map(int, a)) for a in self.rf_window]
        d["scales"] = [[float(v) for v in row] for row in self.scales]
        return d


def grid_record(result, *, normalise: str = "image", style: str = "report", max_images: int | None = None):
    """The :class:`GridRecord` of the grid :func:`attribution_grid` draws with these arguments (nothing is drawn).

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    >>> res = rfkit.attribute(net, images=rfkit.Images("noise", 2, input_size=8), methods="saliency,gradcam++",
    ...                       target=0, runtime="cpu")
    >>> rec = grid_record(res, normalise="column")
    >>> rec.titles, rec.signed, rec.scales[0] == rec.scales[1]
    (('Saliency', 'Grad-CAM++'), (True, False), True)
    """
    from rfkit.attribution.methods import display_name, signed, uses_layer

    style_named(style)
    n = result.num_images if max_images is None else min(max_images, result.num_images)
    methods = tuple(result.methods)
    per_method = [panel_scales(result.maps[m][:n], normalise) for m in methods]
    return GridRecord(
        style=style,
        normalise=normalise,
        percentile=SCALE_PERCENTILE,
        methods=methods,
        titles=tuple(display_name(m) for m in methods),
        signed=tuple(signed(m) and getattr(result.settings, "channels", "sum") == "sum" for m in methods),
        rows=tuple(result.labels[:n]),
        scales=tuple(tuple(float(s[i]) for s in per_method) for i in range(n)),
        rf_window=result.window,
        cam_layer=result.cam_layer if any(uses_layer(m) for m in methods) else None,
    )


def _footer(result, record: GridRecord) -> list[tuple[str, str]]:
    """The provenance lines: under a report grid, in the metadata of every grid."""
    w = result.weights
    H, W = result.input_size
    target = result.targets[0]
    what = (
        f"target: unit {target.label} (channel sum, signed)"
        if target.kind == "unit"
        else f"target: the class {result.settings.class_score} shown per row"
    )
    lines = [
        (
            f"weights: {getattr(w, 'description', w)} · {result.num_images} image(s) · input {H}×{W} (h×w) · "
            f"{what} · rfkit {__version__}",
            COLORS["note"],
        )
    ]
    scaling = record.scaling_text()
    if record.normalise == "column":
        scaling += ": " + ", ".join(f"{t} {s:.3g}" for t, s in zip(record.titles, record.scales[0]))
    else:
        scaling += "; the value at the end of the colour bar is in each panel's corner"
    lines.append((scaling, COLORS["note"]))
    if record.cam_layer:
        lines.append((f"CAM layer {result.cam_note}", COLORS["note"]))
    if result.window is not None:
        lines.append(
            ("blue box: the unit's analytic RF window (gradient maps must be zero outside it)", COLORS["note"])
        )
    if is_random(w):
        lines.append(
            (f"RANDOM WEIGHTS ({w.kind}): not a trained model; maps of trained weights differ", COLORS["warning"])
        )
    lines += [(f"warning: {x}", COLORS["warning"]) for x in result.warnings]
    return lines


def _metadata_scales(record: GridRecord) -> list[str]:
    """The scales of every panel, one line per row, for the files' metadata."""
    return [
        f"scales of {label}: " + ", ".join(f"{t} {s:.4g}" for t, s in zip(record.titles, row))
        for label, row in zip(record.rows, record.scales)
    ]


def _row_label(result, i: int, compact: bool) -> str:
    t = result.targets[i]
    label = result.labels[i]
    if t.kind == "unit":
        return label if compact else f"{label}\nunit {t.label}: {result.scores[i]:.3g}"
    name = f" {t.name.split(',')[0]}" if t.name else ""
    score = "p" if getattr(result.settings, "score", "logit") == "probability" else "logit"
    return f"{label}\nclass {t.index}{name}" + ("" if compact else f"\n{score} {result.scores[i]:.3g}")


def _colorbars(body, axes, record: GridRecord, shrink: float) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    per = "own scale (per image)" if record.normalise == "image" else "column scale (per column)"
    bars = []  # the bar added last sits next to the panels
    if not all(record.signed):
        bars.append((CAM_CMAP, Normalize(0, 1), f"CAM maps / {per}"))
    if any(record.signed):
        bars.append((SIGNED_CMAP, Normalize(-1, 1), f"signed maps / {per}"))
    for cmap, norm, label in bars:
        bar = body.colorbar(
            ScalarMappable(norm=norm, cmap=cmap), ax=axes, location="bottom", shrink=shrink, aspect=30, pad=0.02
        )
        bar.set_label(label)


def _title(text: str, panel_in: float) -> str:
    """A column title broken into lines that fit a panel ``panel_in`` inches wide."""
    import matplotlib

    size = float(matplotlib.rcParams["axes.titlesize"])
    return "\n".join(textwrap.wrap(text, max(8, int(panel_in * 72 / (size * 0.55))), break_on_hyphens=False))


def _draw_panel(ax, result, record: GridRecord, i: int, j: int, grey: np.ndarray, corner: bool) -> None:
    """Row ``i``'s map of method ``j`` over the image's grey underlay; its scale in the corner if ``corner`` (not
    on a map labelled non-finite or all zero)."""
    m, scale, signed = result.maps[record.methods[j]][i], record.scales[i][j], record.signed[j]
    ax.imshow(UNDERLAY[0] + UNDERLAY[1] * grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.imshow(overlay_rgba(m, scale, signed), interpolation="nearest")
    if not np.isfinite(m).all():
        mark_nonfinite(ax)
    elif not np.any(m):
        mark_nonfinite(ax, "all zero").set_gid("all-zero")
    elif corner:  # a range only where the map has one
        ax.text(
            0.97,
            0.03,
            f"{'±' if signed else ''}{scale:.2g}",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6.5,
            color="black",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1.0},
            gid="panel-scale",
        )


def _label_width(labels: list[str]) -> float:
    """About how wide (inches) the row labels are at the current font size, with the gap to the panels."""
    import matplotlib

    chars = max((len(line) for label in labels for line in label.split("\n")), default=0)
    return max(_PAPER_LABELS_IN, chars * float(matplotlib.rcParams["font.size"]) * 0.55 / 72 + 0.15)


def _layout(style, cols: int, n: int, aspect: float, labels: list[str]) -> tuple[tuple[float, float], float]:
    """The figure body's size and the panel width (inches): as the content needs (report), or one column
    (up to :data:`_COLUMN_PANELS` panels) or the page wide (paper), the height fitted to the panels left
    beside the row labels."""
    if style.page is None:  # the panels keep their width beside the row labels, so a title fits above its panel
        return (PANEL_IN * cols + _label_width(labels) + 0.3, PANEL_IN * n * aspect + 1.2), PANEL_IN
    width = style.column if cols <= _COLUMN_PANELS else style.page
    panel = (width - _label_width(labels)) / cols
    return (width, n * (panel * aspect + 0.06) + 0.45 + 0.55), panel


def attribution_grid(
    result, *, max_images: int | None = None, normalise: str = "image", style: str = "report", record=None
):
    """The grid figure of ``result`` (a :class:`matplotlib.figure.Figure`; save it with
    :func:`rfkit.report.figures.style.save_figure`, which writes its provenance into the file's metadata). The figure
    carries its :class:`GridRecord` as the attribute :data:`GRID_RECORD`.

    Parameters
    ----------
    result : AttributionResult
    max_images : int, optional
        Show only the first images (rows).
    normalise : {"image", "column"}
        Divide each map by its own scale, or each method's column by one (see the module docstring).
    style : {"report", "paper"}
        Title, footer and panel scales (report), or a one- or two-column figure with no text beyond the labels
        (paper).
    record : GridRecord, optional
        The record to draw (default: :func:`grid_record` of the arguments above).

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    >>> res = rfkit.attribute(net, images=rfkit.Images("noise", 1, input_size=8), methods="ig", target=0,
    ...                       runtime="cpu")
    >>> fig = attribution_grid(res, style="paper")
    >>> [ax.get_title() for ax in fig.axes[:2]], float(fig.get_figwidth())
    (['input', 'Integrated Gradients'], 3.3)
    """
    record = record or grid_record(result, normalise=normalise, style=style, max_images=max_images)
    fs = style_named(record.style)
    with figure_style(**fs.rc):
        return _grid(result, record, fs)


def _grid(result, record: GridRecord, fs):
    """Lay out and draw the grid of :func:`attribution_grid` (inside its style's rcParams)."""
    n, cols = len(record.rows), 1 + len(record.methods)
    H, W = result.input_size
    provenance = _footer(result, record)
    labels = [_row_label(result, i, not fs.footer) for i in range(n)]
    size, panel = _layout(fs, cols, n, H / W, labels)
    fig, body = new_figure(size, provenance if fs.footer else ())
    axes = np.atleast_2d(body.subplots(n, cols, squeeze=False))
    for i in range(n):
        grey = image_gray(result.images[i], (H, W))
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.imshow(display_image(result.images[i], result.data_config), interpolation="nearest")
                ax.set_ylabel(labels[i], rotation=0, ha="right", va="center", labelpad=4)
                if is_random(result.weights):  # on the photo, not on a map: said in every style, footer or none
                    draw_random_tag(ax, "upper left")
            else:
                _draw_panel(ax, result, record, i, j - 1, grey, fs.footer and record.normalise == "image")
            if result.window is not None:
                ax.add_patch(
                    rf_rectangle(
                        result.window,
                        fill=False,
                        edgecolor=COLORS["rf"],
                        linewidth=1.2,
                        path_effects=outline(2.2),
                        gid="rf-box",
                    )
                )
                ax.set_xlim(-0.5, W - 0.5)
                ax.set_ylim(H - 0.5, -0.5)
            if i == 0:
                ax.set_title("input" if j == 0 else _title(record.titles[j - 1], panel))
    _colorbars(body, axes, record, 0.45 if fs.footer else 0.8)
    if fs.footer:
        body.suptitle(f"Per-image contribution maps of {result.model}")
    lines = [text for text, _ in provenance] + _metadata_scales(record)
    fig = mark_figure(fig, lines, dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    setattr(fig, GRID_RECORD, record)
    return record_drawing(fig, attribution_drawn(result, n, record))


def grid_paths(path, style: str = "report") -> list:
    """The files of a grid saved at ``path`` (a PNG path) in ``style``: the PNG and the style's other formats
    beside it (paper: PDF and SVG).

    >>> [p.name for p in grid_paths("figures/grid.png", "paper")]
    ['grid.png', 'grid.pdf', 'grid.svg']
    """
    from pathlib import Path

    png = Path(path)
    return [png.with_suffix(ext) for ext in style_named(style).formats]


def save_grid(result, path, **kwargs):
    """Draw :func:`attribution_grid` and save it atomically to ``path`` (format by extension; a list of paths
    writes each)."""
    return save_figure(attribution_grid(result, **kwargs), path)


__all__ = [
    "GRID_RECORD",
    "GridRecord",
    "NORMALISATIONS",
    "attribution_grid",
    "check_normalise",
    "column_scale",
    "display_image",
    "grid_paths",
    "grid_record",
    "overlay_rgba",
    "panel_scales",
    "save_grid",
]
