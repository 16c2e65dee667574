"""How a figure looks: the **look** of a heat map (which transform of the raw ERF map, which colour map: rfkit's
own, or RepLKNet's or OpenERF's to match their figures) and the **style** of a figure (``report``: provenance
footer, PNG; ``paper``: no text beyond the data's labels, one- or two-column widths, fonts of 7 pt or more,
PDF and SVG beside the PNG). :class:`FigureOptions` carries both (and the overlay's view) from the command line
to the figures, and says what was used in ``report.md`` and in the files' metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfkit.errors import ArgumentError
from rfkit.report.figures.style import (
    FLOOR,
    bar_label,
    colour_scale,
    erf_display,
    font_rc,
    style_file_rc,
    transform_text,
    user_style,
)

LINEAR_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _clean(m) -> np.ndarray:
    arr = np.asarray(m, dtype=np.float64)
    return np.clip(np.where(np.isfinite(arr), arr, 0.0), 0.0, None)


@dataclass(frozen=True)
class Look:
    """A heat-map transform and colour map, named after the tool whose figures it reproduces.

    Attributes
    ----------
    name : str
    cmap : str
        A matplotlib colour map name (``"rdylgn-upper"``: the upper half of RdYlGn, see :meth:`colormap`).
    source : str
        Where the transform and colours come from.
    colour_blind_safe : bool
        Whether the colour map reads for colour-blind readers (perceptually ordered in lightness).
    """

    name: str
    cmap: str
    source: str
    colour_blind_safe: bool

    def colormap(self):
        """The :class:`~matplotlib.colors.Colormap` of this look."""
        from matplotlib import colormaps
        from matplotlib.colors import ListedColormap

        if self.cmap == "rdylgn-upper":  # seaborn's heatmap(center=0) of data in [0, 1]: RdYlGn from its middle
            return ListedColormap(colormaps["RdYlGn"](np.linspace(0.5, 1.0, 256)), name="RdYlGn (upper half)")
        return colormaps[self.cmap]

    def display(self, m, *, top: float | None = None, log: bool = True, floor: float = FLOOR) -> np.ndarray:
        """The array drawn for the raw map ``m``; ``top``: the raw maximum to divide by (several maps on one
        scale), default the map's own. ``log`` and ``floor`` apply to rfkit's look only.

        Examples
        --------
        >>> m = np.array([[0.0, 9.0, 99.0]])
        >>> LOOKS["rfkit"].display(m)  # log10(m / max), floor 1e-3
        array([[-3.        , -1.04139269,  0.        ]])
        >>> LOOKS["replknet"].display(m)  # log10(m + 1) / max
        array([[0. , 0.5, 1. ]])
        >>> LOOKS["openerf"].display(m)  # min-max
        array([[0.        , 0.09090909, 1.        ]])
        """
        if self.name == "rfkit":
            return erf_display(m, log=log, floor=floor, scale=top)
        arr = _clean(m)
        if self.name == "replknet":
            v = np.log10(arr + 1.0)
            peak = math.log10(top + 1.0) if top is not None else float(v.max())
            return v / peak if peak > 0 else np.zeros_like(v)
        lo, hi = float(arr.min()), float(arr.max())  # openerf: its own min-max, always
        return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)

    def scale(self, log: bool = True, floor: float = FLOOR):
        """``(norm, ticks, tick_labels)`` of the colour bar."""
        if self.name == "rfkit":
            return colour_scale(log, floor)
        from matplotlib.colors import Normalize

        return Normalize(0.0, 1.0), list(LINEAR_TICKS), [f"{t:g}" for t in LINEAR_TICKS]

    def describe(self) -> str:
        """The transform and colour map in plain words (no TeX), for ``report.md`` and the metadata.

        >>> LOOKS["rfkit"].describe()
        'log10(ERF / max), floor 1e-3, magma (rfkit)'
        """
        return {
            "rfkit": "log10(ERF / max), floor 1e-3, magma (rfkit)",
            "replknet": "log10(ERF + 1) / max, RdYlGn from its middle (RepLKNet)",
            "openerf": "(ERF - min) / (max - min) of each map, plasma (OpenERF)",
        }[self.name]

    def bar_label(self, of: str = "max", log: bool = True) -> str:
        """The colour bar's label."""
        if self.name == "rfkit":
            return bar_label(log, of)
        if self.name == "replknet":
            return f"log₁₀(ERF + 1)\n/ {of}" if len(of) > 8 else f"log₁₀(ERF + 1) / {of}"
        return "(ERF − min) / (max − min)"

    def text(self, log: bool = True, floor: float = FLOOR, of: str = "max") -> str:
        """The transform and colour map in words, for titles and for the record.

        >>> LOOKS["replknet"].text()
        'log₁₀(ERF + 1) / max, RdYlGn from its middle (RepLKNet)'
        """
        if self.name == "rfkit":
            return transform_text(log, floor, of)
        if self.name == "replknet":
            return f"log₁₀(ERF + 1) / {of}, RdYlGn from its middle (RepLKNet)"
        return "(ERF − min) / (max − min) of each map, plasma (OpenERF)"


@dataclass(frozen=True)
class HeatScale:
    """A look with its settings, as one figure uses it on all its heat maps."""

    look: Look
    log: bool = True
    floor: float = FLOOR
    top: float | None = None  # the raw maximum shared by the figure's maps (None: each its own)

    @classmethod
    def named(cls, look: str = "rfkit", log: bool = True, floor: float = FLOOR, top: float | None = None):
        return cls(look_named(look), log, floor, top)

    def display(self, m) -> np.ndarray:
        return self.look.display(m, top=self.top, log=self.log, floor=self.floor)

    def scale(self):
        return self.look.scale(self.log, self.floor)

    def bar_label(self, of: str = "max") -> str:
        return self.look.bar_label(of, self.log)

    def text(self, of: str = "max") -> str:
        return self.look.text(self.log, self.floor, of)

    def imshow(self, ax, m, norm, **kwargs):
        """Draw the map ``m`` in this look on ``ax`` with ``norm`` (shared by a figure's panels)."""
        return ax.imshow(self.display(m), norm=norm, cmap=self.look.colormap(), **kwargs)


SHARED_WITHIN = 10.0
"""Panels of a grid share one colour scale by default when their peaks are within this factor of each other:
each then keeps at least two of the three decades of the default scale. Peaks farther apart would leave the
weaker panels dark or, beyond the floor, entirely black (YOLO's stages differ 60-6000x)."""


@dataclass(frozen=True)
class GridScale:
    """How the panels of a grid are put on colour scales (:func:`grid_scale`).

    Attributes
    ----------
    shared : bool
        One scale for all panels (each map over the largest peak) or one per panel (each over its own).
    floor : float
        Bottom of the log scale; a shared log scale reaches low enough for the weakest panel's peak to keep
        the requested decades.
    spread : float
        Largest over smallest positive peak (1 for fewer than two).
    chosen : bool
        Whether the data decided (the caller asked for neither).
    """

    shared: bool
    floor: float
    spread: float
    chosen: bool

    @property
    def of(self) -> str:
        """What every map is divided by, in a colour-bar label."""
        return "max over all panels" if self.shared else "each panel's own max"

    def describe(self, heat: HeatScale) -> str:
        """The colour scale of the grid in words, for a title or a caption.

        >>> from rfkit.report.figures.looks import HeatScale
        >>> print(GridScale(False, 1e-3, 6000.0, True).describe(HeatScale.named()))
        each panel on its own colour scale: log₁₀(ERF / each panel's own max), floor $10^{-3}$ (peaks differ 6000×)
        """
        if self.shared:
            text = f"one colour scale for all panels: {heat.text(self.of)}"
        else:
            text = f"each panel on its own colour scale: {heat.text(self.of)}"
        if self.spread < 1.05:
            return text
        spread = f"{self.spread:.0f}" if self.spread >= 10 else f"{self.spread:.1f}"
        return f"{text} (peaks differ {spread}×)"


def grid_scale(peaks, shared: bool | None = None, *, log: bool = True, floor: float = FLOOR) -> GridScale:
    """The colour scales of a grid of maps whose peaks (raw maxima) are ``peaks``.

    ``shared=None`` decides from the data: one scale when the positive peaks are within :data:`SHARED_WITHIN`
    of each other, else one per panel. ``shared=True`` keeps one scale whatever the spread; when the peaks are
    farther apart than :data:`SHARED_WITHIN`, a log scale's floor moves down by whole decades until the
    weakest panel keeps the decades ``floor`` gives one map (no panel entirely under the floor);
    ``shared=False``: one per panel.

    Examples
    --------
    >>> grid_scale([1.0, 0.5, 0.2])
    GridScale(shared=True, floor=0.001, spread=5.0, chosen=True)
    >>> grid_scale([6000.0, 100.0, 1.0]).shared
    False
    >>> grid_scale([6000.0, 100.0, 1.0], shared=True).floor  # 1e-3 below a peak 6000x under the largest
    1e-07
    """
    positive = [float(p) for p in peaks if p > 0]
    spread = max(positive) / min(positive) if len(positive) > 1 else 1.0
    chosen = shared is None
    if chosen:
        shared = spread <= SHARED_WITHIN
    if shared and log and spread > SHARED_WITHIN:
        floor = min(floor, 10.0 ** math.floor(math.log10(floor / spread) + 1e-9))
    return GridScale(bool(shared), floor, spread, chosen)


def look_named(name: str) -> Look:
    """The :data:`LOOKS` entry ``name``; :class:`~rfkit.errors.ArgumentError` (one line) for another.

    >>> look_named("openerf").cmap
    'plasma'
    """
    if name not in LOOKS:
        raise ArgumentError(f"look {name!r}: use {', '.join(list(LOOKS)[:-1])} or {list(LOOKS)[-1]}")
    return LOOKS[name]


LOOKS = {
    "rfkit": Look("rfkit", "magma", "rfkit: log₁₀ of ERF / max, three decades, magma", True),
    "replknet": Look(
        "replknet",
        "rdylgn-upper",
        "RepLKNet's visualize_erf.py: log10(ERF + 1), divided by its max, seaborn heatmap(cmap='RdYlGn', center=0)",
        False,
    ),
    "openerf": Look("openerf", "plasma", "OpenERF 0.6: ERF / sum, then min-max, colormap 'plasma'", True),
}


@dataclass(frozen=True)
class FigureStyle:
    """How a figure is laid out and written.

    Attributes
    ----------
    name : str
    footer : bool
        Provenance lines under the figure (always also in the files' metadata).
    formats : tuple of str
        The files written for each figure.
    rc : dict
        rcParams on top of :data:`~rfkit.report.figures.style.STYLE`.
    column, page : float or None
        Width (inches) of a one-panel and of a multi-panel figure; None: as wide as its content needs.
    min_pt : float
        The smallest font size used.
    """

    name: str
    footer: bool
    formats: tuple[str, ...]
    rc: dict = field(default_factory=dict)
    column: float | None = None
    page: float | None = None
    min_pt: float = 6.5

    def width(self, panels: int = 1) -> float | None:
        """The figure width for ``panels`` panels side by side: one column for one, the page for more."""
        return self.column if panels <= 1 else self.page


_PAPER_RC = {
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "figure.titlesize": 8.0,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "savefig.dpi": 300,
}

STYLES = {
    "report": FigureStyle("report", footer=True, formats=(".png",)),
    "paper": FigureStyle(
        "paper", footer=False, formats=(".png", ".pdf", ".svg"), rc=_PAPER_RC, column=3.3, page=6.9, min_pt=7.0
    ),
}


def style_named(name: str) -> FigureStyle:
    """The :data:`STYLES` entry ``name``; :class:`~rfkit.errors.ArgumentError` (one line) for another.

    >>> style_named("paper").column
    3.3
    """
    if name not in STYLES:
        raise ArgumentError(f"style {name!r}: use {' or '.join(STYLES)}")
    return STYLES[name]


#: How the maps of an attribution grid are scaled: each map by its own scale, or each method's column by one.
NORMALISATIONS = ("image", "column")


def check_normalise(normalise) -> str:
    """``normalise`` itself when it is one of :data:`NORMALISATIONS`; else :class:`~rfkit.errors.ArgumentError`.

    >>> check_normalise("column")
    'column'
    >>> check_normalise("row")
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: normalise 'row': use image (each map by its own scale) or column (one scale per method)
    """
    if normalise not in NORMALISATIONS:
        raise ArgumentError(
            f"normalise {normalise!r}: use image (each map by its own scale) or column (one scale per method)"
        )
    return normalise


@dataclass(frozen=True)
class FigureOptions:
    """What the figures of a report look like (``rfkit analyze --style --look --full-rf --normalise``).

    ``attribution_normalise`` scales the maps of the attribution grid (``analyze(attribution=...)``): ``"image"``
    (each map by its own scale) or ``"column"`` (one scale per method), as
    :func:`rfkit.report.figures.attribution.attribution_grid`'s ``normalise``.

    Raises :class:`~rfkit.errors.ArgumentError` (one line) for an unknown style, look or normalisation.

    >>> FigureOptions(style="paper", look="replknet").record()
    'paper style (PNG, PDF, SVG); look: log10(ERF + 1) / max, RdYlGn from its middle (RepLKNet), not colour-blind-safe'
    >>> FigureOptions(look="jet")
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: look 'jet': use rfkit, replknet or openerf
    """

    style: str = "report"
    look: str = "rfkit"
    full_rf: bool = False
    shared_scale: bool | None = None  # grids: one colour scale (True), one per panel (False), from the data (None)
    font: str | None = None
    style_file: str | None = None
    attribution_normalise: str = "image"  # the attribution grid: each map by its own scale, or one per column

    def __post_init__(self):
        look_named(self.look)
        style_named(self.style)
        check_normalise(self.attribution_normalise)
        self.rc()  # a missing font or a bad style file: one line now, not after the measurement

    def rc(self) -> dict:
        """The rcParams of ``--style-file`` and then ``--font`` (the font wins), for
        :func:`~rfkit.report.figures.style.user_style`."""

        rc = style_file_rc(self.style_file) if self.style_file else {}
        return rc | (font_rc(self.font) if self.font else {})

    def applied(self):
        """A context in which every figure rfkit draws and saves uses this font and style file.

        >>> import matplotlib
        >>> from rfkit.report.figures.style import figure_style
        >>> with FigureOptions(font="serif").applied(), figure_style():
        ...     print(*matplotlib.rcParams["font.family"])
        serif
        """

        return user_style(self.rc())

    @property
    def figure_style(self) -> FigureStyle:
        return STYLES[self.style]

    @property
    def heat_look(self) -> Look:
        return LOOKS[self.look]

    def record(self) -> str:
        """What the figures used, in one line (``report.md``, the files' metadata)."""
        formats = ", ".join(f.lstrip(".").upper() for f in self.figure_style.formats)
        look = self.heat_look
        text = f"{self.style} style ({formats}); look: {look.describe()}"
        if not look.colour_blind_safe:
            text += ", not colour-blind-safe"
        scale = {True: "; grids on one colour scale", False: "; grid panels each on its own colour scale"}
        text += ("; whole RF boxes" if self.full_rf else "") + scale.get(self.shared_scale, "")
        text += f"; font {self.font}" if self.font else ""
        text += "; attribution maps on one scale per method" if self.attribution_normalise == "column" else ""
        return text + (f"; style file {Path(self.style_file).name}" if self.style_file else "")
