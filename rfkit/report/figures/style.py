"""The look of rfkit's figures, for every figure module and for scripts that draw their own: style and
colours, figures with a footer, the heat-map transform and colour scale, RF boxes, Gaussian ellipses and
atomic saving (see :mod:`rfkit.report.figures` for the conventions; captions are in
:mod:`rfkit.report.figures.labels`).

A figure function of rfkit is decorated with :func:`styled`, builds its figure with :func:`new_figure`
(a body and a footer of provenance lines), draws into the body, optionally lets :func:`tighten` rebuild it
without white space, and is saved by :func:`save_figure`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from pathlib import Path

import numpy as np

from rfkit.errors import ArgumentError
from rfkit.io import atomic_paths
from rfkit.report.figures.captions import caption_paths, caption_texts
from rfkit.report.figures.colors import COLORS
from rfkit.report.figures.labels import rf_beyond
from rfkit.report.figures.layout import close_figure, overflow, wrap_lines
from rfkit.version import __version__

__all__ = [
    "COLORS",
    "ZOOM_BELOW",
    "DPI",
    "FLOOR",
    "FORMATS",
    "STYLE",
    "bar_label",
    "close_figure",
    "colour_scale",
    "draw_rf_extents",
    "draw_rf_centre",
    "draw_random_tag",
    "reticle_marker",
    "erf_display",
    "figure_style",
    "fit_drawable",
    "gaussian_ellipses",
    "image_extent",
    "image_gray",
    "map_max",
    "mark_figure",
    "new_figure",
    "outline",
    "rf_beyond",
    "rf_rectangle",
    "save_figure",
    "small_rf",
    "styled",
    "surrounds",
    "tighten",
    "transform_text",
    "wrap_title",
    "zoom_view",
]

#: Resolution of saved raster files.
DPI = 150
#: Lowest value of ``map / max`` shown on the log scale: three decades.
FLOOR = 1e-3
#: File formats :func:`save_figure` writes, by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


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
    "svg.fonttype": "none",  # text stays text in SVG (editable, searchable)
    "pdf.fonttype": 42,  # TrueType in PDF (journals reject Type 3)
    "ps.fonttype": 42,
}

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

    with matplotlib.rc_context({**STYLE, **(_USER_RC.get() or {}), **overrides}):
        yield


_USER_RC: ContextVar[dict | None] = ContextVar("rfkit_user_rc", default=None)
"""rcParams the user chose for the figures drawn now (:func:`user_style`): a font family, a style file."""


@contextmanager
def user_style(rc: dict) -> Iterator[None]:
    """Draw and save every figure inside the block with ``rc`` on top of :data:`STYLE` (below a style's own
    sizes: a paper figure keeps its 7 pt); :meth:`rfkit.report.figures.looks.FigureOptions.rc` makes ``rc`` from
    ``--font`` and ``--style-file``.

    >>> import matplotlib
    >>> with user_style(font_rc("serif")), figure_style():
    ...     print(*matplotlib.rcParams["font.family"])
    serif
    """
    token = _USER_RC.set(dict(rc))
    try:
        yield
    finally:
        _USER_RC.reset(token)


def style_file_rc(path) -> dict:
    """The rcParams of a matplotlib style file (``KEY: VALUE`` lines), without its ``savefig.*`` settings
    (rfkit decides how figures are cropped and written); :class:`~rfkit.errors.ArgumentError` (one line) for a
    missing or unreadable file, an unknown key or a bad value.
    """
    import warnings

    import matplotlib

    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"style file {path}: no such file; give a matplotlib style file (KEY: VALUE lines)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rc = matplotlib.rc_params_from_file(str(path), fail_on_error=True, use_default_template=False)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, UserWarning) as e:
        why = " ".join(str(e).split())[:200]
        raise ArgumentError(f"style file {path}: {why}; fix the line or leave --style-file out") from None
    keys = [line.split("#", 1)[0].split(":", 1)[0].strip() for line in path.read_text(errors="replace").splitlines()]
    unknown = [k for k in keys if k and k not in matplotlib.rcParams]
    if unknown:
        raise ArgumentError(f"style file {path}: unknown key {unknown[0]!r}; fix the line or leave --style-file out")
    return {k: v for k, v in rc.items() if not k.startswith("savefig.")}


def font_rc(family: str) -> dict:
    """``font.family`` set to ``family`` (a generic family such as ``serif``, or an installed font's name);
    :class:`~rfkit.errors.ArgumentError` (one line) for a font matplotlib cannot find.

    >>> print(*font_rc("serif")["font.family"])
    serif
    """
    from matplotlib import font_manager

    generic = ("serif", "sans-serif", "monospace", "cursive", "fantasy")
    if family not in generic:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            raise ArgumentError(
                f"font {family!r} is not installed: give an installed font's name or serif, sans-serif or monospace"
            ) from None
    return {"font.family": [family]}


def styled(fn):
    """Decorator: run ``fn`` inside :func:`figure_style` (every figure function of rfkit is)."""

    @wraps(fn)
    def inner(*args, **kwargs):
        with figure_style():
            return fn(*args, **kwargs)

    return inner


def new_figure(body_size, footer: Sequence[tuple[str, str]] = ()):
    """A figure of the body's size plus a footer strip holding ``footer`` lines (text, colour), wrapped to
    the figure's width, warnings first.

    Parameters
    ----------
    body_size : (float, float)
        Width and height of the body, inches.
    footer : sequence of (str, str)
        Lines and their colours (:func:`rfkit.report.figures.labels.footer_lines`).

    Returns
    -------
    (Figure, SubFigure)
        Draw into ``body`` (it has its own constrained layout, so legends placed "outside" it never
        reach the footer). The figure has an Agg canvas and is not known to pyplot.

    Examples
    --------
    >>> fig, body = new_figure((3.0, 2.0), [("weights: pretrained", COLORS["note"])])
    >>> [t.get_text() for t in fig.findobj(lambda a: getattr(a, "get_gid", lambda: None)() == "footer")]
    ['weights: pretrained']
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
        foot.text(
            0.008,
            1 - (0.06 + i * line_in) / foot_h,
            text,
            ha="left",
            va="top",
            fontsize=_FOOTER_PT,
            color=color,
            gid="footer",
            fontweight="bold" if color == COLORS["warning"] else "normal",
        )
    return fig, body


def tighten(draw, size, width: float | None = None):
    """The figure ``draw(size)`` builds, built again at the size its parts need.

    ``draw(size)`` returns ``(fig, body, axes grid, colour-bar axes or None)``; :func:`tighten` returns the
    figure.

    Constrained layout gives each panel a cell; an image keeps its aspect, so it fills its cell in one
    direction only and the rest becomes white space between the panels, the titles and the legend. The
    figure is drawn once, the space its parts need is measured (tight boxes of the panels, the colour bar,
    the title and the legend, plus layout padding) and, when that differs by more than 0.05 in, the figure
    is built again at the measured size, until it settles (three times at most). A given ``width`` stays:
    the panels are fitted to it and only the height follows what they need.
    """
    if width is not None:
        size = (width, size[1])
    fig, body, axes, cax = draw(size)
    for _ in range(3):  # the size settles in a step or two
        need = _needed_size(fig, body, axes, cax)
        if width is not None:
            need = (width, need[1])
        if abs(need[0] - size[0]) <= 0.05 and abs(need[1] - size[1]) <= 0.05:
            break
        close_figure(fig)
        size = need
        fig, body, axes, cax = draw(size)
    fig.canvas.draw()  # constrained layout of nested sub-figures settles on its second pass: save that one
    return _grow_over(fig, draw, size, width)


def _grow_over(fig, draw, size, width: float | None, rounds: int = 3):
    """``fig``, or the figure ``draw`` builds on a canvas grown by what runs off ``fig``'s
    (:func:`rfkit.report.figures.layout.overflow`): the height always, the width unless it is given (then the
    layout's side padding grows by what runs off at the sides)."""

    fig.canvas.draw()  # nested constrained layouts settle on a second pass: measure that one, as saved
    for _ in range(rounds):
        left, right, bottom, top = overflow(fig)
        if width is not None and max(left, right) > 0:  # the width is given: more padding at the sides instead
            engine = fig.get_layout_engine()
            engine.set(w_pad=engine.get()["w_pad"] + max(left, right) + 0.01)
            fig.canvas.draw()
            fig.canvas.draw()
            left, right, bottom, top = overflow(fig)
        grow_w = 0.0 if width is not None else left + right
        if grow_w + bottom + top <= 0.01:
            break
        close_figure(fig)
        size = (size[0] + grow_w, size[1] + bottom + top + 0.02)
        fig = draw(size)[0]
        fig.canvas.draw()
        fig.canvas.draw()
    return fig


def _needed_size(fig, body, axes, cax) -> tuple[float, float]:
    """The body size (inches) that the drawn panels, colour bar, title and legend of ``fig`` need."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inch = fig.dpi
    pad = 0.1  # constrained layout's padding around each element, with some margin

    def tight(artist):
        return artist.get_tightbbox(renderer)

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
    return need_w, need_h


def wrap_title(
    text: str, width_in: float, fontsize: float | None = None, sep: str = " · ", *, measured: bool = False
) -> str:
    """``text`` broken at ``sep`` (then at commas) into lines that fit ``width_in`` inches at ``fontsize``
    (default: the figure title size), so a title never runs into the figure's edges; a line still too long
    (a long model name) breaks at spaces and inside the name (:func:`rfkit.report.figures.layout.wrap_lines`). Lines
    are sized by an estimate of the title font's width with some slack (the canvas of a figure that may widen
    grows to fit them); ``measured``, for a canvas of fixed width (a paper column), they are measured in the
    title font and broken until each fits ``width_in``.

    >>> wrap_title("resnet50: receptive field growth, 224×224 input · RANDOM WEIGHTS", 5.5, 10.5)
    'resnet50: receptive field growth, 224×224 input\\nRANDOM WEIGHTS'
    >>> wrap_title("short · title", 3.0, 10.5)
    'short · title'
    >>> wrap_title("swin_tiny_patch4_window7_224: receptive field growth, 224×224 input", 4.0, 10.5)
    'swin_tiny_patch4_window7_224: receptive\\nfield growth,\\n224×224 input'
    """
    import matplotlib

    size = float(matplotlib.rcParams["figure.titlesize"] if fontsize is None else fontsize)
    chars = max(10, int(width_in * 72 / (size * 0.62)))  # bold DejaVu Sans: about 0.62 em per character
    if not measured:
        return _wrapped(text, chars, sep, slack=1.2)
    while True:  # the estimate first, then measured: fewer characters a line until every line fits
        wrapped = _wrapped(text, chars, sep)
        if chars <= 10 or max(_text_width(line, size) for line in wrapped.split("\n")) <= width_in * 72:
            return wrapped
        chars -= 1


def _wrapped(text: str, chars: int, sep: str, slack: float = 1.0) -> str:
    """``text`` broken at ``sep``, then at commas, then inside words, into lines of at most ``chars``
    characters (a line of one part is broken inside only beyond ``slack`` × ``chars``; :func:`wrap_title`)."""

    lines: list[str] = []
    for line in _joined(text.split(sep), sep, chars):
        if len(line) > chars and ", " in line and sep != ", ":  # a long part breaks at its commas
            parts = _joined(line.split(", "), ", ", chars)
            lines += [p + "," for p in parts[:-1]] + parts[-1:]
        else:
            lines.append(line)
    return "\n".join(wrap_lines(line, chars) if len(line) > slack * chars else line for line in lines)


def _text_width(line: str, size: float) -> float:
    """The width in points of ``line`` set in the title font (bold) at ``size`` points."""
    import matplotlib
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    font = FontProperties(size=size, weight=matplotlib.rcParams["figure.titleweight"])
    width, _, _ = RendererAgg(1, 1, 72).get_text_width_height_descent(line, font, ismath=False)
    return width


def _joined(parts: list[str], sep: str, chars: int) -> list[str]:
    """``parts`` joined by ``sep`` into as few lines of at most ``chars`` characters as their order allows (a
    part longer than that stays a line of its own)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(sep) + len(part) <= chars:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


def outline(width: float) -> list:
    """Path effects that draw a dark stroke of ``width`` points under a line or a patch, so that it reads
    on both ends of the heat map (pass as ``path_effects=``)."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=COLORS["outline"])]


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
        Raw ERF map (:attr:`ERFResult.maps <rfkit.effective.result.ERFResult>`).
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
    >>> erf_display(np.array([[0.0, 1.0, 10.0, 100.0]])).tolist()
    [[-3.0, -2.0, -1.0, 0.0]]
    >>> erf_display(np.array([[0.0, 5.0, 10.0]]), log=False).tolist()
    [[0.0, 0.5, 1.0]]
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


NONFINITE_LABEL = "non-finite"
"""The label on a panel whose map holds NaN or inf (drawn as if they were 0 underneath)."""


def mark_nonfinite(ax, text: str = NONFINITE_LABEL):
    """Put :data:`NONFINITE_LABEL` across the middle of ``ax``, in the warning colour on a white box, so that a
    map holding NaN or inf is never taken for a blank or a dark one. Returns the text artist (gid
    ``"nonfinite"``)."""
    return ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color=COLORS["warning"],
        fontweight="bold",
        bbox={"facecolor": "white", "edgecolor": COLORS["warning"], "alpha": 0.9, "boxstyle": "round,pad=0.3"},
        gid="nonfinite",
        zorder=10,
    )


def map_max(m) -> float:
    """The largest finite value of a map, 0 when it has no positive one (an all-zero map).

    >>> map_max(np.array([[np.nan, 2.0], [-1.0, np.inf]])), map_max(np.zeros((2, 2)))
    (2.0, 0.0)
    """
    arr = np.asarray(m, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.max()) if arr.size and arr.max() > 0 else 0.0


def colour_scale(log: bool, floor: float = FLOOR):
    """The colour scale of a heat map drawn by :func:`erf_display`: ``(norm, ticks, tick_labels)``.

    On the log scale the ticks sit at the log10 positions and are labelled with the values, as a
    ``LogNorm`` bar would be.

    >>> norm, ticks, labels = colour_scale(True, 1e-3)
    >>> (norm.vmin, norm.vmax), ticks, labels
    ((-3.0, 0.0), [-3, -2, -1, 0], ['≤$10^{-3}$', '$10^{-2}$', '$10^{-1}$', '1'])
    """
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


def transform_text(log: bool, floor: float = FLOOR, of: str = "max") -> str:
    """The transform of a heat map, stated in a title.

    >>> transform_text(True, 1e-3), transform_text(False, of="own max")
    ('log₁₀(ERF / max), floor $10^{-3}$', 'ERF / own max, linear')
    """
    if log:
        exp = math.log10(floor)
        low = f"$10^{{{exp:.0f}}}$" if exp == round(exp) else f"{floor:g}"
        return f"log₁₀(ERF / {of}), floor {low}"
    return f"ERF / {of}, linear"


def bar_label(log: bool, of: str = "max") -> str:
    """Colour-bar label: the ticks show ``ERF / max`` itself, at log10 positions on the log scale."""
    sep = "\n" if len(of) > 8 else ", "  # a long label on two lines: it must not outgrow a short panel row
    return f"ERF / {of}{sep}log scale" if log else f"ERF / {of}{sep}linear scale"


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


def view_rectangle(view, **kwargs):
    """The :class:`~matplotlib.patches.Rectangle` of an axes view ``(x_lo, x_hi, y_lo, y_hi)`` in data
    coordinates (the area outside the input, a zoomed area).

    >>> r = view_rectangle((-0.5, 9.5, 2.0, 4.0))
    >>> r.get_xy(), r.get_width(), r.get_height()
    ((-0.5, 2.0), 10.0, 2.0)
    """
    from matplotlib.patches import Rectangle

    x_lo, x_hi, y_lo, y_hi = view
    return Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, **kwargs)


def gaussian_ellipses(fit, ks: Sequence[float] = (1.0, 2.0), **kwargs) -> list:
    """The ``k``-sigma ellipses of a :class:`~rfkit.effective.gaussian.GaussianFit`, in image coordinates.

    The fit's ``rotation`` is the angle of the major axis from +x towards +y in image coordinates
    (y down); matplotlib's ``Ellipse.angle`` is measured the same way in data coordinates, so it is
    passed as is (a positive angle shows clockwise on an image whose y axis points down). The
    ``k``-sigma ellipse has full axes ``2 k sigma_major`` (along the rotation) and ``2 k sigma_minor``.

    Examples
    --------
    A fit elongated along y (rotation 90°): the 1σ ellipse reaches 8 px up and down, 4 px sideways.

    >>> from rfkit.effective.gaussian import fit_gaussian
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> fit = fit_gaussian(np.exp(-0.5 * (((yy - 30) / 8.0) ** 2 + ((xx - 34) / 4.0) ** 2)))
    >>> e = gaussian_ellipses(fit, ks=(1,))[0]
    >>> pts = e.get_patch_transform().transform(e.get_path().vertices)
    >>> [round(float(v), 2) for v in (pts[:, 1].min(), pts[:, 1].max(), pts[:, 0].min(), pts[:, 0].max())]
    [22.0, 38.0, 30.0, 38.0]
    """
    from matplotlib.patches import Ellipse

    cy, cx = fit.center
    return [
        Ellipse((cx, cy), 2 * k * fit.sigma_major, 2 * k * fit.sigma_minor, angle=math.degrees(fit.rotation), **kwargs)
        for k in ks
    ]


def reticle_marker(gap: float = 0.45):
    """A "+" whose four arms stop short of the centre (a :class:`~matplotlib.path.Path` marker): the pixel it
    marks, often the ERF's only bright structure, stays visible. ``gap``: the open centre's radius as a
    fraction of the arm's reach.

    >>> reticle_marker().vertices.tolist()[:2]
    [[0.45, 0.0], [1.0, 0.0]]
    """
    from matplotlib.path import Path as MPath

    arms = [(gap, 0.0), (1.0, 0.0), (-gap, 0.0), (-1.0, 0.0), (0.0, gap), (0.0, 1.0), (0.0, -gap), (0.0, -1.0)]
    return MPath(arms, [MPath.MOVETO, MPath.LINETO] * 4)


def draw_rf_centre(ax, center, *, size: float = 11.0, label: str | None = None):
    """Mark a unit's analytic RF centre ``(cy, cx)`` with an open "+" in the RF colour (gid ``rf-center``):
    four arms with a thin dark halo around an open centre (:func:`reticle_marker`), so the mark never
    covers the structure it marks; the marker's size in points, its stroke in proportion.

    >>> from matplotlib.figure import Figure
    >>> line = draw_rf_centre(Figure().add_subplot(), (32.0, 48.0))
    >>> line.get_xdata().tolist(), line.get_ydata().tolist(), line.get_gid()
    ([48.0], [32.0], 'rf-center')
    """
    cy, cx = center
    stroke = max(size * 0.14, 0.9)
    (line,) = ax.plot(
        [cx],
        [cy],
        linestyle="none",
        marker=reticle_marker(),
        markersize=size * 1.25,
        markeredgewidth=stroke,
        fillstyle="none",
        color=COLORS["rf"],
        path_effects=outline(stroke + 1.1),
        zorder=7,
        gid="rf-center",
        label=label,
    )
    return line


RANDOM_TAG = "random init"
"""The tag on every panel of a random-weight model (:func:`draw_random_tag`)."""


def draw_random_tag(ax, corner: str = "upper left", fontsize: float | None = None):
    """A small "random init" tag inside a panel's ``corner`` (gid ``random-tag``), in the warning colour on a
    white box, or ``"below"`` the panel at its left (grids, whose small panels have no room inside): a figure
    of random weights says so in every style, also without a title or footer.

    >>> from matplotlib.figure import Figure
    >>> t = draw_random_tag(Figure().add_subplot(), "lower left")
    >>> t.get_text(), t.get_gid(), t.get_position()
    ('random init', 'random-tag', (0.03, 0.03))
    """
    import matplotlib
    from matplotlib.font_manager import FontProperties

    size = fontsize or max(7.0, FontProperties(size=matplotlib.rcParams["xtick.labelsize"]).get_size() - 1)
    if corner == "below":
        return ax.annotate(
            RANDOM_TAG,
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(0, -1.5),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=size,
            fontweight="bold",
            color=COLORS["warning"],
            annotation_clip=False,
            gid="random-tag",
        )
    right, top = corner.endswith("right"), corner.startswith("upper")
    return ax.text(
        0.97 if right else 0.03,
        0.97 if top else 0.03,
        RANDOM_TAG,
        transform=ax.transAxes,
        ha="right" if right else "left",
        va="top" if top else "bottom",
        fontsize=size,
        fontweight="bold",
        color=COLORS["warning"],
        bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1.2),
        zorder=9,
        gid="random-tag",
    )


def surrounds(window, shape) -> bool:
    """Whether an RF window extends beyond the input on all four sides: none of its edges lies on the input, so
    its box drawn over the input shows nothing (a legend entry for it would name a marker no one sees).

    >>> surrounds(((-400, 1039), (-400, 1039)), (640, 640)), surrounds(((-10, 58), (0, 47)), (48, 48))
    (True, False)
    """
    return len(rf_beyond(window, shape)) == 4


#: Where each side's extent arrow points (offset direction of its text, in points per unit of offset).
_EXTENT_DIRECTION = {"top": (0, -1), "bottom": (0, 1), "left": (1, 0), "right": (-1, 0)}


def draw_rf_extents(
    ax, window, shape, labels: dict[str, str], *, offset: float = 16.0, fontsize=None, along: bool = False
) -> list:
    """Mark, at each input edge an RF window extends beyond, how far it goes: an arrow from inside the frame
    to the edge, in line with the window's centre (kept within the middle 60% of the edge, so two sides'
    labels never meet in a corner), and its label (gid ``rf-extent``).

    Parameters
    ----------
    ax : Axes
        Showing the input frame (y down).
    window, shape
        As :func:`rf_beyond`.
    labels : dict
        Text per side (``{"top": "+732 px", ...}``); sides without a label get no mark.
    offset : float
        Length of the arrow, points.
    along : bool
        The left and right labels sit on their arrows, at the edge (the arrow as long as the label), instead of
        inward of them: a narrow panel keeps them clear of its centre.

    Returns
    -------
    list of Annotation
    """
    (y0, y1), (x0, x1) = window
    H, W = shape
    # in line with the window's centre, but never in a corner, where two sides' labels would meet
    cy = min(max((y0 + y1) / 2, 0.2 * (H - 1)), 0.8 * (H - 1))
    cx = min(max((x0 + x1) / 2, 0.2 * (W - 1)), 0.8 * (W - 1))
    anchor = {"top": (cx, -0.5), "bottom": (cx, H - 0.5), "left": (-0.5, cy), "right": (W - 0.5, cy)}
    align = {
        "top": ("center", "top"),
        "bottom": ("center", "bottom"),
        "left": ("left", "center"),
        "right": ("right", "center"),
    }
    marks = []
    for side, text in labels.items():
        dx, dy = _EXTENT_DIRECTION[side]
        ha, va = align[side]
        xytext, relpos = (dx * offset, dy * offset), (0.5, 0.5)
        if along and text and side in ("left", "right"):  # the label on its arrow, which starts at its far end
            xytext, va, relpos = (dx * 2.0, 0.0), "bottom", ((1.0, 0.0) if side == "left" else (0.0, 0.0))
        marks.append(
            ax.annotate(
                text,
                xy=anchor[side],
                xytext=xytext,
                textcoords="offset points",
                ha=ha,
                va=va,
                color=COLORS["rf"],
                fontsize=fontsize,
                fontweight="bold",
                path_effects=outline(2.2),
                arrowprops=dict(
                    arrowstyle="-|>", color=COLORS["rf"], linewidth=1.4, shrinkA=1, shrinkB=0, relpos=relpos
                ),
                annotation_clip=False,
                zorder=8,
                gid="rf-extent",
            )
        )
        marks[-1].set_in_layout(False)  # inside the panel: the layout need not measure its arrow (slow) again
    return marks


ZOOM_BELOW = 0.25
"""An RF window whose larger side is at most this fraction of the input's smaller side is small: the figures
add a zoomed view of it."""


def small_rf(window, shape) -> bool:
    """Whether an RF window is small against the input (:data:`ZOOM_BELOW`).

    >>> small_rf(((109, 115), (109, 115)), (224, 224)), small_rf(((66, 156), (66, 156)), (224, 224))
    (True, False)
    """
    (y0, y1), (x0, x1) = window
    return max(y1 - y0 + 1, x1 - x0 + 1) <= ZOOM_BELOW * min(shape)


def zoom_view(window, shape, *, factor: float = 2.0, least: int = 9) -> tuple[float, float, float, float]:
    """The ``(x_lo, x_hi, y_lo, y_hi)`` box of a zoomed panel around an RF window: square, ``factor`` times
    the window's larger side (at least ``least`` pixels), centred on it and moved inside the input.

    >>> zoom_view(((109, 115), (109, 115)), (224, 224))  # 7 px, centred on pixel 112: 15 px around it
    (104.5, 119.5, 104.5, 119.5)
    >>> zoom_view(((0, 6), (0, 6)), (224, 224))  # moved inside the input
    (-0.5, 14.5, -0.5, 14.5)
    >>> zoom_view(((2, 5), (2, 5)), (8, 8))  # never larger than the input
    (-0.5, 7.5, -0.5, 7.5)
    """
    (y0, y1), (x0, x1) = window
    H, W = shape
    half = math.ceil(max(factor * max(y1 - y0 + 1, x1 - x0 + 1), least) / 2)

    def span(first, last, n):
        centre = (first + last) / 2  # the view's edges fall between pixels, as the window's do
        h = min(half + (0.5 if float(centre).is_integer() else 0.0), n / 2)
        lo = min(max(centre - h, -0.5), n - 0.5 - 2 * h)
        return float(lo), float(lo + 2 * h)

    return (*span(x0, x1, W), *span(y0, y1, H))


def fit_drawable(fit) -> bool:
    """Whether a :class:`~rfkit.effective.gaussian.GaussianFit` is drawn: Gaussian-like, with finite parameters."""
    return (
        fit is not None
        and fit.gaussian_like
        and all(math.isfinite(v) for v in (*fit.center, fit.sigma_major, fit.sigma_minor, fit.rotation))
    )


def image_gray(image, shape: tuple[int, int]) -> np.ndarray:
    """An input image as a [0, 1] grey array of ``shape`` (accepts HW, HWC, CHW, numpy or torch)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[1:] == tuple(shape):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3:
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114])[: arr.shape[-1]] if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.shape != tuple(shape):
        raise ValueError(
            f"image shape {np.shape(image)} does not match the map's {shape[0]}×{shape[1]} input; "
            "pass the preprocessed (resized, cropped) image"
        )
    arr = np.where(np.isfinite(arr), arr, 0.0)
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def image_extent(H: int, W: int) -> tuple[float, float, float, float]:
    """The ``imshow`` extent that puts pixel centres at integer coordinates, y down (row 0 on top).

    >>> image_extent(64, 96)
    (-0.5, 95.5, 63.5, -0.5)
    """
    return (-0.5, W - 0.5, H - 0.5, -0.5)


PROVENANCE = "rfkit_provenance"
"""Attribute of a figure holding its provenance lines (weights, images, method...): :func:`save_figure`
writes them into the file's metadata, which is where a paper-style figure keeps them."""


DPI_ATTRIBUTE = "rfkit_dpi"
"""Attribute of a figure holding the resolution its style wants its PNG written at."""


CROP_ATTRIBUTE = "rfkit_crop"
"""Attribute of a figure saying whether :func:`save_figure` crops it to its content (a paper figure keeps its
column width)."""


def mark_figure(fig, provenance: Sequence[str], dpi: int = DPI, crop: bool = True):
    """Give ``fig`` its provenance lines, PNG resolution and cropping for :func:`save_figure`; returns it."""
    setattr(fig, PROVENANCE, [str(line) for line in provenance])
    setattr(fig, DPI_ATTRIBUTE, dpi)
    setattr(fig, CROP_ATTRIBUTE, crop)
    return fig


def file_metadata(fig, fmt: str) -> dict:
    """The metadata :func:`save_figure` writes: ``Creator`` (rfkit and its version, which also marks the file
    as rfkit's), the figure's title and its provenance lines, under the keys each format has.

    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> setattr(fig, PROVENANCE, ["weights: pretrained", "input 224×224"])
    >>> file_metadata(fig, "png")["Description"]
    'weights: pretrained\\ninput 224×224'
    """

    text = "\n".join(getattr(fig, PROVENANCE, None) or [])
    creator = f"rfkit {__version__}"
    if fmt == "png":
        return {"Software": creator, "Creator": creator, "Description": text}
    if fmt == "pdf":
        return {"Creator": creator, "Subject": text}
    return {"Creator": creator, "Description": text}  # svg: Dublin Core


@styled
def save_figure(fig, path, *, dpi: int | None = None, close: bool = True) -> list[Path] | Path:
    """Write ``fig`` atomically to ``path``, format by extension (.png, .svg, .pdf), and close it.

    Each file is rendered to a temporary file in the target folder, and all are renamed into place once every
    format is rendered (:func:`rfkit.io.atomic_paths`): a failed or interrupted save leaves neither a partial
    file, nor the temporary ones, nor a new PNG beside an old PDF.
    A path without an extension gets ``.png``. The file's metadata says rfkit made it and holds the
    figure's provenance (:func:`file_metadata`). A figure carrying a record of what it drew
    (:func:`rfkit.report.figures.captions.record_drawing`) also gets its caption pair, ``<stem>.caption.md`` and
    ``<stem>.caption.tex``, renamed into place with the figure's files.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path, or a sequence of them
        Several paths write several formats of the same figure.
    dpi : int, optional
        Raster resolution (PNG); default :data:`DPI`, or the figure's style's (300 for paper figures).
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

    many = not isinstance(path, (str, Path))
    try:
        paths = [Path(p) for p in (path if many else [path])]
        paths = [p if p.suffix else p.with_suffix(".png") for p in paths]
        for p in paths:
            if p.suffix.lower() not in FORMATS:
                raise ValueError(f"unsupported figure format {p.suffix!r} ({p}); use one of {', '.join(FORMATS)}")
        crop = "tight" if getattr(fig, CROP_ATTRIBUTE, True) else "standard"
        captions = caption_texts(fig)  # the caption pair, saved with the figure's formats
        extra = caption_paths(paths[0]) if captions else []
        with atomic_paths(paths + extra) as tmps, figure_style(**{"savefig.bbox": crop}):
            for p, tmp in zip(paths, tmps):
                fmt = FORMATS[p.suffix.lower()]
                fig.savefig(
                    tmp, format=fmt, dpi=dpi or getattr(fig, DPI_ATTRIBUTE, DPI), metadata=file_metadata(fig, fmt)
                )
            for text, tmp in zip(captions or [], tmps[len(paths) :]):
                tmp.write_text(text, encoding="utf-8")
    finally:
        if close:
            close_figure(fig)
    return paths if many else paths[0]
