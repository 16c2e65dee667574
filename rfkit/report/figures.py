"""Publication figures of an ERF run: the overlay of one layer, the grid of all layers, RF growth with depth.

Three figures, each returned as a :class:`matplotlib.figure.Figure`, each with a ``save_*`` variant that
writes it atomically (:func:`rfkit.io.atomic_path`) as PNG (150 dpi), SVG or PDF, chosen by extension:

- :func:`overlay_figure`: one layer's ERF heat map at input resolution, the analytic RF box of the
  measured unit, its analytic centre, the 1σ / 2σ ellipses of the Gaussian fit and the input frame;
- :func:`stage_grid_figure`: every measured layer side by side on one colour scale, each with its RF box;
- :func:`rf_growth_figure`: analytic RF (max and min over paths) and measured ERF size against depth.

Heat-map transform (stated on every colour bar and title). The raw map ``m`` of an
:class:`~rfkit.erf.result.ERFResult` (the accumulated gradient, never transformed in the result) is
cleaned (NaN/inf -> 0, negative -> 0), divided by a maximum and, on the log scale (the default),
drawn as ``log10(max(m / max, floor))`` with ``floor = 1e-3``: three decades below the peak, values
under the floor drawn at the floor (:func:`erf_display`). Which maximum: the map's own in
:func:`overlay_figure`; in :func:`stage_grid_figure` the largest over all panels (``shared=True``: the
panels compare raw gradient magnitudes) or each panel's own (``shared=False``: shapes only, as
RepLKNet's Fig. 1 does after its ``log10(m + 1)``). The log of the normalised map is scale invariant
(multiplying the gradient by a constant changes nothing), unlike RepLKNet's ``log10(m + 1)``.
``log=False`` draws ``m / max`` on a linear scale. Titles state the transform ("log₁₀(ERF / max), floor
10⁻³"); colour bars are labelled "ERF / max, log scale" with ticks at the log10 positions labelled with
the values (≤10⁻³, 10⁻², 10⁻¹, 1), as a ``LogNorm`` bar would be.

Geometry. Pixel centres sit at integer coordinates (DESIGN.md), so pixel ``i`` covers ``i - 0.5 ..
i + 0.5``: a map is drawn with ``extent=(-0.5, W - 0.5, H - 0.5, -0.5)`` (y down, row 0 on top, no
transposition), the RF box of the unit covers ``first - 0.5 .. last + 0.5`` per axis with
``(first, last)`` from :meth:`~rfkit.RFInfo.window_of`, and the Gaussian ellipses use the fit's
rotation directly as the matplotlib angle: both measure from +x towards +y in data coordinates, and with
the y axis pointing down that is clockwise on screen (:func:`gaussian_ellipses`).

Style. Figures are built as bare :class:`~matplotlib.figure.Figure` objects with an Agg canvas inside
``matplotlib.rc_context(STYLE)``: no pyplot, no GUI, no global rcParams change, nothing registered with
pyplot (so nothing to leak). Colours are the colour-blind-safe Okabe-Ito set; the heat map uses
"magma". Elements drawn over the heat map (RF box, centre, ellipses) have a dark outline so they read on
both its dark and its bright end. Random weights (``"random"``, ``"random-safe"``) put "RANDOM WEIGHTS"
in the title and a bold footer line in the warning colour; a map flagged by
:func:`rfkit.erf.metrics.diagnose` (collapsed, mass outside the RF, off centre, ...) and the run's
own warnings get footer lines in the warning colour too. The footer (weights, images, method, input
size, rfkit version) lives in its own sub-figure below the plot, so legends never cover it. Image
panels keep their aspect (``set_aspect("equal")``); the figure is laid out once, measured and rebuilt at
the size its parts need, so no white band is left around them.

Every artist that a test or a script may want to find carries a ``gid`` (which SVG output keeps as the
element id): ``"erf-map"``, ``"input-image"``, ``"rf-box"``, ``"local-rf-box"``, ``"rf-center"``,
``"gauss-1sigma"``, ``"gauss-2sigma"``, ``"input-frame"``, ``"outside-input"``, ``"footer"``; in the
growth figure ``"rf-max"``, ``"rf-min"``, ``"rf-local"``, ``"erf-size"``, ``"input-size"``,
``"global-band"``.

Examples
--------
>>> import torch.nn as nn, rfkit
>>> net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
>>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=2, input_size=(32, 48), device="cpu")
>>> fig = overlay_figure(res, "2")
>>> [p.get_gid() for p in fig.axes[0].patches if p.get_gid() == "rf-box"]
['rf-box']
>>> len(stage_grid_figure(res).axes)  # two panels and the colour bar
3
>>> import tempfile
>>> path = save_rf_growth(res.graph, tempfile.mkdtemp() + "/growth.png", result=res)
>>> path.name, path.stat().st_size > 0
('growth.png', True)
"""

from __future__ import annotations

import math
import sys
import textwrap
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__all__ = [
    "COLORS", "DPI", "FLOOR", "STYLE", "erf_display", "figure_style", "gaussian_ellipses", "growth_series",
    "overlay_figure", "rf_growth_figure", "rf_rectangle", "save_figure", "save_overlay", "save_rf_growth",
    "save_stage_grid", "stage_grid_figure",
]

#: Resolution of saved raster files.
DPI = 150
#: Lowest value of ``map / max`` shown on the log scale: three decades.
FLOOR = 1e-3
#: File formats :func:`save_figure` writes, by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: Okabe & Ito's colour-blind-safe palette, by role.
COLORS = {
    "rf": "#56B4E9",        # sky blue: analytic RF box and centre (over the heat map)
    "gauss": "#FFFFFF",     # Gaussian ellipses over the heat map (dark outline)
    "frame": "#8C8C8C",     # the input frame
    "outside": "#E6E6E6",   # outside the input
    "rf_max": "#0072B2",    # blue: analytic RF, max over paths
    "rf_min": "#009E73",    # bluish green: analytic RF, min over paths
    "erf": "#E69F00",       # orange: measured ERF
    "marker": "#CC79A7",    # reddish purple: measured layers
    "input": "#555555",     # input size line
    "note": "#333333",      # footer text
    "warning": "#D55E00",   # vermillion: random weights, degenerate maps
    "outline": "#000000",   # stroke around artists drawn over the heat map
}

#: rcParams of every figure (applied with :func:`matplotlib.rc_context`, never globally).
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "axes.linewidth": 0.8,
    "axes.titlepad": 5.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "legend.borderpad": 0.1,
    "legend.borderaxespad": 0.1,
    "legend.handlelength": 2.2,
    "figure.titlesize": 10.5,
    "figure.titleweight": "bold",
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "lines.linewidth": 1.6,
    "image.cmap": "magma",
    "image.origin": "upper",
    "hatch.linewidth": 0.6,
    "mathtext.default": "regular",
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.04,
    "svg.fonttype": "none",   # text stays text in SVG (editable, searchable)
    "pdf.fonttype": 42,       # TrueType in PDF (journals reject Type 3)
    "ps.fonttype": 42,
}

_RANDOM_KINDS = ("random", "random-safe")
_INFO_WARNINGS = ("center_outside_image",)  # metrics warnings that do not make a map suspect
_SPATIAL = frozenset({"conv", "pool", "global_pool", "attention", "resample"})
_FOOTER_PT = 7.5


# --------------------------------------------------------------------------------------------- style

@contextmanager
def figure_style(**overrides) -> Iterator[None]:
    """``matplotlib.rc_context`` with :data:`STYLE` (and ``overrides``): nothing leaks out.

    >>> import matplotlib
    >>> before = matplotlib.rcParams["font.size"]
    >>> with figure_style(**{"font.size": 20}):
    ...     matplotlib.rcParams["font.size"]
    20.0
    >>> matplotlib.rcParams["font.size"] == before
    True
    """
    import matplotlib

    with matplotlib.rc_context({**STYLE, **overrides}):
        yield


def _styled(fn):
    @wraps(fn)
    def inner(*args, **kwargs):
        with figure_style():
            return fn(*args, **kwargs)
    return inner


def _new_figure(body_size, footer: Sequence[tuple[str, str]] = ()):
    """A figure of the body's size plus a footer strip holding ``footer`` lines (text, colour).

    Returns ``(fig, body)``: draw into the :class:`~matplotlib.figure.SubFigure` ``body`` (it has its
    own constrained layout, so legends placed "outside" it never reach the footer).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = body_size
    wrapped = _wrap_footer(footer, width)
    line_in = _FOOTER_PT * 1.32 / 72
    foot_h = len(wrapped) * line_in + 0.12 if wrapped else 0.0
    fig = Figure(figsize=(width, height + foot_h), layout="constrained")
    FigureCanvasAgg(fig)
    if not wrapped:
        return fig, fig.subfigures(1, 1)
    body, foot = fig.subfigures(2, 1, height_ratios=[height, foot_h], hspace=0.0)
    for i, (text, color) in enumerate(wrapped):
        foot.text(0.008, 1 - (0.06 + i * line_in) / foot_h, text, ha="left", va="top", fontsize=_FOOTER_PT,
                  color=color, gid="footer", fontweight="bold" if color == COLORS["warning"] else "normal")
    return fig, body


def _tighten(draw, size):
    """``draw(size)`` -> (fig, body, axes grid, colour-bar axes or None), built again without the white
    space that equal-aspect image panels leave.

    Constrained layout gives each panel a cell; an image keeps its aspect, so it fills its cell in one
    direction only and the rest becomes white space between the panels, the titles and the legend. The
    figure is drawn once, the space its parts need is measured (tight boxes of the panels, the colour bar,
    the title and the legend, plus layout padding) and, when the body is more than 0.05 in larger, built
    again at the measured size.
    """
    fig, body, axes, cax = draw(size)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inch = fig.dpi
    pad = 0.1  # constrained layout's padding around each element, with some margin

    def tight(artist):
        return artist.get_tightbbox(renderer) if artist is not None else None

    rows = [[a for a in row if a.figure is not None] for row in axes]
    rows = [r for r in rows if r]
    need_w = max(sum(tight(a).width for a in row) / inch + pad * (len(row) + 1) for row in rows)
    if cax is not None:
        need_w += tight(cax).width / inch + pad
    need_h = sum(max(tight(a).height for a in row) / inch + pad for row in rows) + pad
    for extra in (getattr(body, "_suptitle", None), *body.legends):
        if extra is not None:
            box = extra.get_window_extent(renderer)
            need_h += box.height / inch + pad
            need_w = max(need_w, box.width / inch + 2 * pad)  # never narrower than the title or the legend
    width = need_w if abs(size[0] - need_w) > 0.05 else size[0]
    height = min(size[1], need_h) if size[1] - need_h > 0.05 else size[1]
    if (width, height) == tuple(size):
        return fig
    _close(fig)
    return draw((width, height))[0]


def _stroke(width: float):
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=COLORS["outline"])]


# ---------------------------------------------------------------------------------------- formatting

def _num(v) -> str:
    if v is None:
        return "?"
    v = float(v)
    if math.isnan(v):
        return "?"
    if math.isinf(v):
        return "∞"
    return f"{v:.0f}" if v == round(v) else f"{round(v, 2):g}"


def _pair(vals, unit: str = "") -> str:
    """``43×43 px`` (h×w)."""
    return "×".join(_num(v) for v in vals) + (f" {unit}" if unit else "")


def _ratio(vals) -> str:
    """``0.77`` when both axes agree to 2 digits, else ``0.77×0.75 (h×w)``."""
    txt = [f"{v:.2f}" if v is not None and math.isfinite(v) else "?" for v in vals]
    return txt[0] if len(set(txt)) == 1 else "×".join(txt) + " (h×w)"


def _layer_name(layer: str) -> str:
    return layer or "<output>"


def _is_random(result) -> bool:
    return getattr(result.weights, "kind", None) in _RANDOM_KINDS


def _suspect(warnings) -> list[str]:
    return [w for w in warnings if w.split(":", 1)[0] not in _INFO_WARNINGS]


def _footer_lines(result, layers: Sequence[str], notes: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Provenance, notes and warnings as (text, colour) lines."""
    import rfkit

    w = result.weights
    desc = getattr(w, "description", str(w))
    src = getattr(result.images, "source", None)
    H, W = result.input_size
    lines = [(f"weights: {desc} · {result.num_images} image(s)" + (f" ({src})" if src else "")
              + f" · ERF method: {result.method} · input {H}×{W} (h×w) · rfkit {rfkit.__version__}",
              COLORS["note"])]
    lines += [(n, COLORS["note"]) for n in notes]
    if _is_random(result):
        lines.append((f"RANDOM WEIGHTS ({getattr(w, 'kind', '?')}): not a trained model; the ERF of trained "
                      "weights differs", COLORS["warning"]))
    per_layer = {f"{k}: {x}" for k, m in result.metrics.items() for x in (getattr(m, "warnings", ()) or ())}
    lines += [(f"warning: {x}", COLORS["warning"]) for x in result.warnings if x not in per_layer]
    for layer in layers:
        m = result.metrics.get(layer)
        for x in _suspect(getattr(m, "warnings", ()) or ()):
            lines.append((f"{_layer_name(layer)}: map flagged {x}", COLORS["warning"]))
    return lines


def _wrap_footer(lines: Sequence[tuple[str, str]], width_in: float) -> list[tuple[str, str]]:
    """``lines`` wrapped to the figure width, warnings first (they must survive any cropping)."""
    chars = max(40, int(width_in * 72 / (_FOOTER_PT * 0.55)))
    wrapped: list[tuple[str, str]] = []
    for text, color in sorted(lines, key=lambda tc: tc[1] != COLORS["warning"]):
        wrapped += [(part, color) for part in textwrap.wrap(text, chars, subsequent_indent="  ")]
    return wrapped


# -------------------------------------------------------------------------------------------- data

def erf_display(m, *, log: bool = True, floor: float = FLOOR, scale: float | None = None) -> np.ndarray:
    """The array a figure draws for a raw ERF map.

    NaN/inf count as 0 and negative values are clipped to 0; the map is divided by ``scale`` (default:
    its own maximum) and, with ``log``, drawn as ``log10(max(m / scale, floor))`` (so values in
    ``[log10(floor), 0]``); without, as ``m / scale`` (in ``[0, 1]``). An all-zero map gives the bottom
    of the scale everywhere.

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw ERF map (:attr:`ERFResult.maps <rfkit.erf.result.ERFResult>`).
    log : bool
        Log scale (default) or linear.
    floor : float
        Smallest ``m / scale`` shown on the log scale, in (0, 1).
    scale : float, optional
        The maximum to normalise by (the largest over several maps for a shared scale).

    Returns
    -------
    numpy.ndarray
        Same shape as ``m``, float64, row 0 at the top.

    Examples
    --------
    >>> erf_display(np.array([[0.0, 1.0, 10.0, 100.0]]))
    array([[-3., -2., -1.,  0.]])
    >>> erf_display(np.array([[0.0, 5.0, 10.0]]), log=False)
    array([[0. , 0.5, 1. ]])
    >>> erf_display(np.array([[1.0, 10.0]]), scale=100.0)
    array([[-2., -1.]])
    """
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1); got {floor!r}")
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"an ERF map is 2-D (H, W); got shape {arr.shape}")
    arr = np.clip(np.where(np.isfinite(arr), arr, 0.0), 0.0, None)
    top = float(arr.max()) if scale is None else float(scale)
    rel = arr / top if top > 0 else np.zeros_like(arr)
    return np.log10(np.maximum(rel, floor)) if log else rel


def _clean_max(m) -> float:
    arr = np.asarray(m, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.max()) if arr.size and arr.max() > 0 else 0.0


def _norm_and_bar(log: bool, floor: float):
    """The colour normalisation and the colour-bar ticks and labels of a heat map."""
    from matplotlib.colors import Normalize

    if not log:
        ticks = [0, 0.25, 0.5, 0.75, 1.0]
        return Normalize(0.0, 1.0), ticks, [f"{t:g}" for t in ticks]
    lo = math.log10(floor)
    ticks = list(range(math.ceil(lo), 1))
    labels = ["1" if t == 0 else f"$10^{{{t}}}$" for t in ticks]
    if ticks and ticks[0] == lo:
        labels[0] = "≤" + labels[0]
    return Normalize(lo, 0.0), ticks, labels


def _transform_text(log: bool, floor: float, of: str = "max") -> str:
    if log:
        exp = math.log10(floor)
        low = f"$10^{{{exp:.0f}}}$" if exp == round(exp) else f"{floor:g}"
        return f"log₁₀(ERF / {of}), floor {low}"
    return f"ERF / {of}, linear"


def _bar_label(log: bool, of: str) -> str:
    """Colour-bar label: the ticks show ``ERF / max`` itself, at log10 positions on the log scale."""
    sep = "\n" if len(of) > 8 else ", "  # a long label on two lines: it must not outgrow a short panel row
    return f"ERF / {of}{sep}log scale" if log else f"ERF / {of}{sep}linear scale"


def _method(result) -> str:
    return f"ERF ({result.method})"


# ---------------------------------------------------------------------------------------- geometry

def rf_rectangle(window, **kwargs):
    """The :class:`~matplotlib.patches.Rectangle` covering pixels ``first .. last`` per axis.

    Parameters
    ----------
    window : ((y_first, y_last), (x_first, x_last))
        From :meth:`RFInfo.window_of <rfkit.RFInfo.window_of>`; may extend beyond the image.

    Examples
    --------
    >>> r = rf_rectangle(((2, 4), (10, 20)))
    >>> r.get_xy(), r.get_width(), r.get_height()
    ((9.5, 1.5), 11, 3)
    """
    from matplotlib.patches import Rectangle

    (y0, y1), (x0, x1) = window
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, **kwargs)


def gaussian_ellipses(fit, ks: Sequence[float] = (1.0, 2.0), **kwargs) -> list:
    """The ``k``-sigma ellipses of a :class:`~rfkit.erf.gaussian.GaussianFit`, in image coordinates.

    The fit's ``rotation`` is the angle of the major axis from +x towards +y in image coordinates
    (y down); matplotlib's ``Ellipse.angle`` is measured the same way in data coordinates, so it is
    passed as is (a positive angle shows clockwise on an image whose y axis points down). The
    ``k``-sigma ellipse has full axes ``2 k sigma_major`` (along the rotation) and ``2 k sigma_minor``.

    Examples
    --------
    A fit elongated along y (rotation 90°): the 1σ ellipse reaches 8 px up and down, 4 px sideways.

    >>> from rfkit.erf.gaussian import fit_gaussian
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> fit = fit_gaussian(np.exp(-0.5 * (((yy - 30) / 8.0) ** 2 + ((xx - 34) / 4.0) ** 2)))
    >>> e = gaussian_ellipses(fit, ks=(1,))[0]
    >>> pts = e.get_patch_transform().transform(e.get_path().vertices)
    >>> [round(float(v), 2) for v in (pts[:, 1].min(), pts[:, 1].max(), pts[:, 0].min(), pts[:, 0].max())]
    [22.0, 38.0, 30.0, 38.0]
    """
    from matplotlib.patches import Ellipse

    cy, cx = fit.center
    return [Ellipse((cx, cy), 2 * k * fit.sigma_major, 2 * k * fit.sigma_minor,
                    angle=math.degrees(fit.rotation), **kwargs) for k in ks]


def _fit_drawable(fit) -> bool:
    return (fit is not None and fit.gaussian_like
            and all(math.isfinite(v) for v in (*fit.center, fit.sigma_major, fit.sigma_minor, fit.rotation)))


def _image_gray(image, shape: tuple[int, int]) -> np.ndarray:
    """An input image as a [0, 1] grey array of ``shape`` (accepts HW, HWC, CHW, numpy or torch)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[1:] == tuple(shape):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3:
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114])[: arr.shape[-1]] if arr.shape[-1] >= 3 \
            else arr[..., 0]
    if arr.shape != tuple(shape):
        raise ValueError(f"image shape {np.shape(image)} does not match the map's {shape[0]}×{shape[1]} input; "
                         "pass the preprocessed (resized, cropped) image")
    arr = np.where(np.isfinite(arr), arr, 0.0)
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _extent(H: int, W: int) -> tuple[float, float, float, float]:
    return (-0.5, W - 0.5, H - 0.5, -0.5)


# ----------------------------------------------------------------------------------------- overlay

@_styled
def overlay_figure(result, layer: str, *, image=None, log: bool = True, floor: float = FLOOR,
                   full_rf: bool = True, gaussian: bool = True):
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
    if layer not in result.maps:
        raise KeyError(f"layer {layer!r} was not measured; measured: {result.layers}")
    m = result.maps[layer]
    H, W = np.shape(m)
    info = result.rf(layer)
    unit = tuple(result.unit[layer])
    cy, cx = result.center[layer]
    metrics = result.metrics.get(layer)
    window = None if info.unknown or info.windows is None else info.window_of(unit)
    glob = bool(info.is_global)
    fit = getattr(metrics, "gaussian", None)
    draw_fit = gaussian and _fit_drawable(fit)

    notes = []
    if _clean_max(m) == 0:
        notes.append(f"{_layer_name(layer)}: the map is all zero (no gradient reached the input)")
    if info.unknown:
        notes.append(f"{_layer_name(layer)}: analytic RF unknown (an unsupported op before it): no RF box")
    if gaussian and fit is not None and not draw_fit:
        notes.append(f"Gaussian fit not drawn: the map is not Gaussian-like ({fit.reason})")

    # view: the input frame, grown to the whole RF box when asked
    frame = (-0.5, W - 0.5, -0.5, H - 0.5)
    x_lo, x_hi, y_lo, y_hi = frame
    beyond = False
    if window is not None:
        (by0, by1), (bx0, bx1) = window
        beyond = by0 < 0 or bx0 < 0 or by1 > H - 1 or bx1 > W - 1
        if full_rf and beyond and not glob:
            x_lo, x_hi = min(x_lo, bx0 - 0.5), max(x_hi, bx1 + 0.5)
            y_lo, y_hi = min(y_lo, by0 - 0.5), max(y_hi, by1 + 0.5)
    grown = (x_lo, x_hi, y_lo, y_hi) != frame
    if grown:
        margin = 0.02 * max(x_hi - x_lo, y_hi - y_lo)
        x_lo, x_hi, y_lo, y_hi = x_lo - margin, x_hi + margin, y_lo - margin, y_hi + margin
    aspect = (y_hi - y_lo) / (x_hi - x_lo)
    panel_w = 4.0 if aspect <= 1 else max(2.4, 4.0 / aspect)
    panel_h = max(panel_w * aspect, 1.0)
    subtitle = _overlay_subtitle(result, info, metrics, log, floor)
    n_legend = 3 + (window is not None) + 2 * draw_fit + grown
    # room around the panel: y label and ticks left, colour bar right; titles above, x axis and legend below
    height = panel_h + 0.45 + 0.19 * (subtitle.count("\n") + 1) + 0.55 + 0.17 * n_legend
    footer = _footer_lines(result, [layer], notes)

    def draw(size):
        fig, body = _new_figure(size, footer)
        ax = body.add_subplot()

        norm, ticks, tick_labels = _norm_and_bar(log, floor)
        if image is not None:
            ax.imshow(_image_gray(image, (H, W)), cmap="gray", vmin=0, vmax=1, extent=_extent(H, W),
                      interpolation="antialiased", gid="input-image", zorder=1)
        im = ax.imshow(erf_display(m, log=log, floor=floor), norm=norm, extent=_extent(H, W), interpolation="nearest",
                       zorder=2, alpha=0.75 if image is not None else None, gid="erf-map")

        if grown:
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, facecolor=COLORS["outside"],
                                   edgecolor="#BDBDBD", hatch="////", linewidth=0, zorder=0, gid="outside-input",
                                   label="outside the input"))
        if glob:
            local = f"; local paths {_pair(info.local_size)} px" if info.local_size else ""
            ax.add_patch(rf_rectangle(((0, H - 1), (0, W - 1)), fill=False, edgecolor=COLORS["rf"], linewidth=2.0,
                                      zorder=5, path_effects=_stroke(3.2), gid="input-frame", clip_on=False,
                                      label=f"global: RF = whole input {H}×{W} px{local}"))
        else:
            ax.add_patch(rf_rectangle(((0, H - 1), (0, W - 1)), fill=False, edgecolor=COLORS["frame"], linewidth=1.2,
                                      zorder=3, gid="input-frame", clip_on=False, label=f"input {H}×{W} px (h×w)"))

        if window is not None:
            style = dict(fill=False, zorder=5, path_effects=_stroke(3.0))
            if glob:
                ax.add_patch(rf_rectangle(window, edgecolor=COLORS["rf"], linewidth=1.5, linestyle=(0, (3, 1.5)),
                                          gid="local-rf-box", **style,
                                          label=f"RF of the local paths, {_pair(info.local_size)} px"))
            else:
                label = f"analytic RF of the unit, {_pair(info.size)} px"
                if beyond and not full_rf:
                    label += " (clipped: extends beyond the input)"
                elif beyond:
                    label += " (beyond the input: hatched)"
                ax.add_patch(rf_rectangle(window, edgecolor=COLORS["rf"], linewidth=1.8, gid="rf-box",
                                          label=label, **style))

        ax.plot([cx], [cy], linestyle="none", marker="+", markersize=11, markeredgewidth=2.0, color=COLORS["rf"],
                path_effects=_stroke(4.0), zorder=7, gid="rf-center",
                label=f"RF centre of unit {unit}: (y, x) = ({_num(cy)}, {_num(cx)})")

        if draw_fit:
            e1, e2 = gaussian_ellipses(fit, (1.0, 2.0), fill=False, edgecolor=COLORS["gauss"], zorder=6,
                                       path_effects=_stroke(2.8))
            e1.set(linewidth=1.4, gid="gauss-1sigma",
                   label=f"Gaussian fit, 1σ: σ = {fit.sigma_major:.1f} × {fit.sigma_minor:.1f} px at "
                         f"{math.degrees(fit.rotation):.0f}°, R² {fit.r2:.2f}")
            e2.set(linewidth=1.2, linestyle=(0, (3, 2)), gid="gauss-2sigma", label="Gaussian fit, 2σ")
            ax.add_patch(e1)
            ax.add_patch(e2)

        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_hi, y_lo)  # y down, as in the image
        ax.set_aspect("equal")
        ax.set_xlabel("x (input px)")
        ax.set_ylabel("y (input px)")

        cax = ax.inset_axes([1.03, 0.0, 0.045, 1.0])  # follows the drawn (equal-aspect) box exactly
        cbar = body.colorbar(im, cax=cax)
        cbar.set_ticks(ticks, labels=tick_labels)
        cbar.set_label(_bar_label(log, "max"))

        title = f"{result.model} · {_layer_name(layer)} · unit {unit}"
        if _is_random(result):
            title += " · RANDOM WEIGHTS"
        body.suptitle(title, color=COLORS["warning"] if _is_random(result) else "black")
        ax.set_title(subtitle, linespacing=1.35)
        order = ("rf-box", "local-rf-box", "rf-center", "gauss-1sigma", "gauss-2sigma", "input-frame", "outside-input")
        handles = sorted(ax.get_legend_handles_labels()[0], key=lambda h: order.index(h.get_gid()))
        body.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=1,
                    handlelength=2.4)
        return fig, body, [[ax]], None

    return _tighten(draw, (panel_w + 1.75, height))


def _rf_text(info) -> str:
    if info.unknown:
        return "RF unknown"
    stride = f"stride {_pair(info.stride)}" if len(set(info.stride)) > 1 else f"stride {_num(info.stride[0])}"
    if info.is_global:
        local = f" (local path {_pair(info.local_size)} px)" if info.local_size else ""
        return f"RF global{local}, {stride}"
    return f"RF {_pair(info.size, 'px')}, {stride}"


def _erf_text(info, metrics, short: bool = False) -> str:
    e = getattr(metrics, "erf_rf", None)
    if e is None:
        return "ERF metrics not computed"
    if e.side[0] is None:
        return "ERF: the map is all zero"
    if info.is_global or not all(math.isfinite(v) for v in info.size):
        ratio = f"ERF/input {_ratio(e.input_ratio)}"
    else:
        ratio = f"ERF/RF {_ratio(e.ratio)}"
    if short:
        return ratio
    return f"ERF {_pair(e.side, 'px')} ({e.mass:.0%} mass) · {ratio}"


def _overlay_subtitle(result, info, metrics, log, floor) -> str:
    rf, erf = _rf_text(info), _erf_text(info, metrics)
    sep = "\n" if len(rf) + len(erf) > 62 else " · "
    return f"{rf}{sep}{erf}\ncolour: {_method(result)}, {_transform_text(log, floor)}"


@_styled
def save_overlay(result, layer: str, path, **kwargs) -> list[Path] | Path:
    """:func:`overlay_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(overlay_figure(result, layer, **kwargs), path)


# -------------------------------------------------------------------------------------- stage grid

@_styled
def stage_grid_figure(result, layers: Sequence[str] | None = None, *, log: bool = True, shared: bool = True,
                      floor: float = FLOOR, max_cols: int = 4):
    """All measured layers side by side on one colour scale, each with its analytic RF box.

    Every panel is drawn with the same :class:`~matplotlib.colors.Normalize` and one colour bar.
    ``shared=True`` (default) divides every map by the largest value over all panels, so the panels
    also compare gradient magnitudes (a layer whose gradient is 100 times weaker is two decades darker);
    ``shared=False`` divides each map by its own maximum (every panel peaks at 1, shapes only, as in
    RepLKNet's Fig. 1). On the log scale the drawn value is ``log10(max(map / max, floor))``
    (:func:`erf_display`). The axes show the input only: an RF box larger than the input is clipped at its
    edge (the title says "> input"); global layers show their local-path RF dashed.

    Parameters
    ----------
    result : ERFResult
    layers : sequence of str, optional
        Default: all measured layers, in order.
    log : bool
        Log colour scale (default) or linear.
    shared : bool
        Normalise by the maximum over all panels (default) or per panel.
    floor : float
        Bottom of the log scale.
    max_cols : int
        Panels per row before wrapping.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
    >>> res = rfkit.erf(net, layers=["0", "1"], images="noise", num_images=2, input_size=16, device="cpu")
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
            raise ValueError(f"maps of different shapes: {layer!r} is {np.shape(result.maps[layer])}, "
                             f"{layers[0]!r} is {(H, W)}")
    n = len(layers)
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    aspect = H / W
    panel_w = 2.5 if aspect <= 1 else max(1.6, 2.5 / aspect)
    panel_h = panel_w * aspect
    notes = [f"{_layer_name(layer)}: the map is all zero" for layer in layers if _clean_max(result.maps[layer]) == 0]
    footer = _footer_lines(result, layers, notes)

    def draw(size):
        fig, body = _new_figure(size, footer)
        axes = body.subplots(nrows, ncols, squeeze=False)
        norm, ticks, tick_labels = _norm_and_bar(log, floor)
        top = max(_clean_max(result.maps[layer]) for layer in layers) if shared else None
        titles = [_panel_title(result, layer, H, W) for layer in layers]
        chars = panel_w * 72 / (STYLE["axes.titlesize"] * 0.55)  # characters that fit above a panel
        if any(len(f"{t[1]} · {t[2]}") > chars for t in titles):  # too wide: RF and ERF on two lines
            titles = ["\n".join(t) for t in titles]
        else:
            titles = [f"{t[0]}\n{t[1]} · {t[2]}" for t in titles]
        im = None
        for i, ax in enumerate(axes.ravel()):
            if i >= n:
                ax.remove()
                continue
            layer = layers[i]
            m = result.maps[layer]
            info = result.rf(layer)
            im = ax.imshow(erf_display(m, log=log, floor=floor, scale=top), norm=norm, extent=_extent(H, W),
                           interpolation="nearest", gid="erf-map")
            window = None if info.unknown or info.windows is None else info.window_of(tuple(result.unit[layer]))
            if window is not None:
                kw = dict(fill=False, edgecolor=COLORS["rf"], zorder=5, path_effects=_stroke(2.6))
                if info.is_global:
                    ax.add_patch(rf_rectangle(window, linewidth=1.3, linestyle=(0, (3, 1.5)), gid="local-rf-box",
                                              label="RF of the local paths (global layers)", **kw))
                else:
                    ax.add_patch(rf_rectangle(window, linewidth=1.5, gid="rf-box",
                                              label="analytic RF of the measured unit", **kw))
            cy, cx = result.center[layer]
            ax.plot([cx], [cy], linestyle="none", marker="+", markersize=8, markeredgewidth=1.6, color=COLORS["rf"],
                    path_effects=_stroke(3.4), zorder=7, gid="rf-center", label="analytic RF centre of the unit")
            ax.set_xlim(-0.5, W - 0.5)
            ax.set_ylim(H - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if info.is_global:
                for spine in ax.spines.values():
                    spine.set(edgecolor=COLORS["rf"], linewidth=2.0)
            ax.set_title(titles[i], linespacing=1.3)

        cbar = body.colorbar(im, ax=[a for a in axes.ravel()[:n]], shrink=0.9 if nrows > 1 else 1.0, aspect=20 * nrows,
                            pad=0.02)
        cbar.set_ticks(ticks, labels=tick_labels)
        of = "max over all panels" if shared else "own max"
        cbar.set_label(_bar_label(log, of))
        title = f"{result.model}: {_method(result)} of {n} layer{'s' * (n > 1)}, {H}×{W} input"
        if _is_random(result):
            title += " · RANDOM WEIGHTS"
        body.suptitle(title + f"\none colour scale: {_transform_text(log, floor, of)}", linespacing=1.4,
                     color=COLORS["warning"] if _is_random(result) else "black")
        handles, labels = [], []
        if any(result.rf(layer).is_global for layer in layers):
            from matplotlib.patches import Patch

            handles.append(Patch(fill=False, edgecolor=COLORS["rf"], linewidth=2.0))
            labels.append("global layer: RF = whole input (frame)")
        for ax in axes.ravel()[:n]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        width = size[0]
        per_col = 0.055 * max(len(lab) for lab in labels) + 0.6
        body.legend(handles, labels, loc="outside lower center", ncols=max(1, min(len(labels), int(width // per_col))))
        return fig, body, axes, cbar.ax

    return _tighten(draw, (ncols * (panel_w + 0.08) + 1.0, nrows * (panel_h + 0.45) + 0.95))


def _panel_title(result, layer, H, W) -> tuple[str, str, str]:
    info = result.rf(layer)
    rf = _rf_text(info).split(", stride")[0]
    if not info.is_global and not info.unknown and any(s > n for s, n in zip(info.size, (H, W))):
        rf += " > input"
    return _layer_name(layer), rf, _erf_text(info, result.metrics.get(layer), short=True)


@_styled
def save_stage_grid(result, path, **kwargs) -> list[Path] | Path:
    """:func:`stage_grid_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(stage_grid_figure(result, **kwargs), path)


# ------------------------------------------------------------------------------------------ growth

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
        step = 1 if op_category(rec.op) in _SPATIAL else 0
        if not step:  # an op of another kind that still changes the RF counts as a layer too
            info = rec.info
            merged = tuple(max((records[i].info.size[a] for i in ins), default=math.nan)
                           for a in range(len(info.size)))
            same_size = (nan_safe(info.size) == nan_safe(merged)
                         or any(key(records[i].info) == key(info) for i in ins))
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

    return {"depth": depth, "path": last_per_depth(chain),
            "cuts": last_per_depth([n for n in chain if n in dominators])}


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


@_styled
def rf_growth_figure(graph, result=None, *, axis=None):
    """Analytic RF (max and min over paths) and, given a result, the measured ERF size against depth.

    x: depth in spatial layers (conv, pooling, attention, resampling) on the longest path from the input
    (:func:`growth_series`). The max-over-paths RF follows the deepest input-to-output path; the
    min-over-paths RF is shown at the nodes every path passes through (block outputs), where it is
    the shortest path so far. y: pixels, log scale, with the input size as a dashed horizontal line.
    Global nodes sit in a "global" band at the top; the RF of their local paths continues dotted. Dotted
    vertical lines mark stride changes ("/8": output stride 8, stage boundaries); solid ones the measured
    layers of ``result``, with their ERF size: the smallest interval around the unit's RF centre holding
    95% of the map's mass per axis (:func:`rfkit.erf.metrics.erf_rf_ratio`, nominal length like the RF).

    Parameters
    ----------
    graph : RFGraph
    result : ERFResult, optional
        Adds the measured ERF sizes and marks the measured layers; same input size as ``graph``.
    axis : {None, "both", "h", "w"} or int
        None: one panel when the analytic RFs and the input agree on height and width (the ERF is then
        drawn per axis when its sides differ), else one panel per axis; "both": always one panel per
        axis; an axis name or index: that axis only.

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
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    series = growth_series(graph)
    depth, path, cuts = series["depth"], series["path"], series["cuts"]
    infos = [graph.records[n].info for n in path]
    cut_infos = [graph.records[n].info for n in cuts]
    xs, cut_xs = [depth[n] for n in path], [depth[n] for n in cuts]
    input_size = tuple(graph.input_size)
    measured = []
    if result is not None:
        if tuple(result.input_size) != input_size:
            raise ValueError(f"the result was measured at {result.input_size}, the graph traced at {input_size}")
        for layer in result.layers:
            node = result.nodes[layer]
            if node not in depth:
                raise ValueError(f"layer {layer!r} (node {node!r}) is not in the graph")
            measured.append((layer, depth[node], result.metrics.get(layer)))

    def analytic(a: int) -> list:
        vals = [input_size[a]] + [v for i in infos + cut_infos
                                  for v in (i.size[a], i.size_min[a], _local(i, a), i.stride[a])]
        return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in vals]

    axes_idx = _axis_index(graph, axis)
    if axis is None and len(axes_idx) > 1 and all(analytic(a) == analytic(axes_idx[0]) for a in axes_idx[1:]):
        axes_idx = [axes_idx[0]]
    merged = axis is None and len(axes_idx) == 1 and len(graph.axis_names) > 1  # one panel for all axes
    # ERF series drawn in each panel: (label suffix, gid, axis index or "mean")
    erf_series = None
    if merged:
        sides = [[_erf_side(mt, a) for a in range(len(graph.axis_names))] for *_, mt in measured]
        close = all(max(v) <= 1.05 * min(v) for v in sides if all(math.isfinite(x) for x in v))
        if all(len(set(v)) == 1 for v in sides if all(math.isfinite(x) for x in v)):
            erf_series = [("", "erf-size", 0)]
        elif close:
            erf_series = [(", mean of " + " and ".join(graph.axis_names) + " (within 5%)", "erf-size", "mean")]
        else:
            erf_series = [(f", {n}", "erf-size" if a == 0 else f"erf-size-{n}", a)
                          for a, n in enumerate(graph.axis_names)]

    finite = [float(input_size[a]) for a in axes_idx]
    finite += [float(v) for i in infos + cut_infos for a in axes_idx
               for v in (i.size[a], i.size_min[a], _local(i, a)) if math.isfinite(v)]
    finite += [v for *_, mt in measured for a in range(len(graph.axis_names)) if math.isfinite(v := _erf_side(mt, a))]
    top = max(finite)
    any_global = any(i.is_global or math.isinf(i.size_min[a]) for i in infos + cut_infos for a in axes_idx)
    band = (top * 1.9, top * 7.0)  # the "global" band above everything finite
    y_global = band[0] * 1.6

    def y_of(v) -> float:
        return y_global if math.isinf(v) else float(v)

    n_ax = len(axes_idx)
    lines = [("x: spatial layers (conv, pool, attention) on the longest path from the input; linear, norm, "
              "activation and merge ops do not count. Max over paths: along the deepest input-to-output path; "
              "min over paths: at the nodes every path passes through. Dotted verticals: changes of the "
              "output stride.", COLORS["note"])]
    if result is not None:
        lines += _footer_lines(result, [m[0] for m in measured])
    fig, body = _new_figure((4.6 * n_ax + 0.9, 4.2), lines)
    axs = body.subplots(1, n_ax, squeeze=False, sharey=True)[0]
    x_max = max(xs + [d for _, d, _ in measured])
    strides = [tuple(i.stride) for i in infos]
    boundaries = [(x, st) for x, st, prev in zip(xs[1:], strides[1:], strides[:-1]) if st != prev
                  and not any(isinstance(v, float) and math.isnan(v) for v in st)]
    erf_markers = ("D", "s", "^")
    for ax, a in zip(axs, axes_idx):
        if any_global:
            ax.axhspan(*band, color=COLORS["outside"], zorder=0, gid="global-band", linewidth=0)
            ax.text(0.015, band[1] / 1.12, "global: RF = the whole input", transform=ax.get_yaxis_transform(),
                    va="top", ha="left", fontsize=7.5, color=COLORS["input"])
        ax.axhline(input_size[a], color=COLORS["input"], linewidth=1.0, linestyle=(0, (6, 3)), zorder=1,
                   gid="input-size", label="input size")
        ax.text(0.015, input_size[a] * 1.04, f"input {_num(input_size[a])} px", transform=ax.get_yaxis_transform(),
                va="bottom", ha="left", fontsize=7.5, color=COLORS["input"])  # left: the RF is still small there
        ax.plot(xs, [y_of(i.size[a]) for i in infos], color=COLORS["rf_max"], marker="o", markersize=3.2,
                zorder=4, gid="rf-max", label="analytic RF, max over paths")
        ax.plot(cut_xs, [y_of(i.size_min[a]) for i in cut_infos], color=COLORS["rf_min"], marker="s",
                markersize=3.0, linestyle=(0, (4, 1.5)), zorder=3, gid="rf-min",
                label="analytic RF, min over paths")
        glob = [k for k, i in enumerate(infos) if i.is_global]
        if glob:
            sel = [k for k in range(max(glob[0] - 1, 0), len(infos)) if math.isfinite(_local(infos[k], a))]
            if len(sel) > 1:
                ax.plot([xs[k] for k in sel], [_local(infos[k], a) for k in sel], color=COLORS["rf_max"],
                        linestyle=(0, (1, 1.5)), linewidth=1.6, zorder=4.5, gid="rf-local",
                        label="RF of the local paths of global nodes")
        for x, _ in boundaries:
            ax.axvline(x, color="#A8A8A8", linewidth=0.8, linestyle=(0, (1, 2)), zorder=0)
        if boundaries:  # output strides as tick labels on top, where nothing else is drawn
            top_axis = ax.secondary_xaxis("top")
            top_axis.set_xticks([x for x, _ in boundaries], labels=[f"/{_num(st[a])}" for _, st in boundaries])
            top_axis.tick_params(labelsize=7, length=2, pad=1, colors=COLORS["input"])
            top_axis.set_xlabel("output stride", fontsize=7.5, color=COLORS["input"], labelpad=2)
        if measured:
            for layer, d, _ in measured:
                ax.axvline(d, color=COLORS["marker"], linewidth=0.9, alpha=0.75, zorder=1)
                ax.text(d, 0.02, f"{_layer_name(layer)} ", transform=ax.get_xaxis_transform(), rotation=90,
                        va="bottom", ha="right", fontsize=7.5, color=COLORS["marker"])
            for j, (which, gid, e) in enumerate(erf_series or [("", "erf-size", a)]):
                ys = [float(np.mean([_erf_side(mt, k) for k in range(len(graph.axis_names))])) if e == "mean"
                      else _erf_side(mt, e) for *_, mt in measured]
                ax.plot([d for _, d, _ in measured], ys, color=COLORS["erf"], marker=erf_markers[j % 3],
                        markersize=5, linewidth=1.4, zorder=5, linestyle="-" if j == 0 else (0, (2, 1)),
                        markeredgecolor="black", markeredgewidth=0.6, gid=gid,
                        label=f"ERF size, 95% mass{which}")
        ax.set_yscale("log")
        ax.set_ylim(0.75, band[1] * 1.08 if any_global else top * 1.6)
        ax.set_xlim(-0.5, x_max + 0.5)
        decades = [10.0 ** k for k in range(0, 12) if 10.0 ** k < band[0]]
        ax.yaxis.set_major_locator(FixedLocator(decades + [y_global] * any_global))
        ax.yaxis.set_major_formatter(FuncFormatter(
            lambda v, _pos: "global" if math.isclose(v, y_global) else f"{v:g}"))
        ax.yaxis.set_minor_locator(FixedLocator([m * 10.0 ** k for k in range(0, 12) for m in range(2, 10)
                                                 if m * 10.0 ** k < band[0]]))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", which="major", color="#E3E3E3", linewidth=0.6, zorder=0)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel("depth (conv / pool / attention layers from the input)")
        if n_ax > 1:
            name = graph.axis_names[a]
            ax.set_title({"h": "height (h)", "w": "width (w)"}.get(name, f"axis {name}"))
    axs[0].set_ylabel("receptive field size (px)" + (", h = w" if merged else ""))
    title = f"{graph.model_name or 'model'}: receptive field growth, {'×'.join(map(str, input_size))} input"
    random = result is not None and _is_random(result)
    if random:
        title += " · RANDOM WEIGHTS"
    body.suptitle(title, color=COLORS["warning"] if random else "black")
    handles, labels = axs[0].get_legend_handles_labels()
    body.legend(handles, labels, loc="outside lower center", ncols=3 if n_ax > 1 else 2)
    return fig


@_styled
def save_rf_growth(graph, path, result=None, **kwargs) -> list[Path] | Path:
    """:func:`rf_growth_figure` written to ``path`` (or several paths) by :func:`save_figure`."""
    return save_figure(rf_growth_figure(graph, result, **kwargs), path)


# -------------------------------------------------------------------------------------------- saving

def _close(fig) -> None:
    """Release a figure: close it in pyplot if pyplot knows it, and drop its artists."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # a no-op for figures pyplot does not manage
    fig.clear()


@_styled
def save_figure(fig, path, *, dpi: int = DPI, close: bool = True) -> list[Path] | Path:
    """Write ``fig`` atomically to ``path``, format by extension (.png, .svg, .pdf), and close it.

    Each file is rendered to a temporary file in the target folder and renamed onto ``path``
    (:func:`rfkit.io.atomic_path`): a failed save leaves neither a partial file nor the temporary one.
    A path without an extension gets ``.png``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path, or a sequence of them
        Several paths write several formats of the same figure.
    dpi : int
        Raster resolution (PNG).
    close : bool
        Close the figure afterwards (also when saving fails).

    Returns
    -------
    Path, or list of Path for a sequence of paths.

    Examples
    --------
    >>> import tempfile
    >>> from matplotlib.figure import Figure
    >>> d = Path(tempfile.mkdtemp())
    >>> [p.name for p in save_figure(Figure(), [d / "a.png", d / "a.svg"])]
    ['a.png', 'a.svg']
    >>> save_figure(Figure(), d / "b").name
    'b.png'
    """
    from rfkit.io import atomic_path

    many = not isinstance(path, (str, Path))
    try:
        paths = [Path(p) for p in (path if many else [path])]
        paths = [p if p.suffix else p.with_suffix(".png") for p in paths]
        for p in paths:
            if p.suffix.lower() not in FORMATS:
                raise ValueError(f"unsupported figure format {p.suffix!r} ({p}); use one of {', '.join(FORMATS)}")
        for p in paths:
            with atomic_path(p) as tmp:
                fig.savefig(tmp, format=FORMATS[p.suffix.lower()], dpi=dpi)
    finally:
        if close:
            _close(fig)
    return paths if many else paths[0]
