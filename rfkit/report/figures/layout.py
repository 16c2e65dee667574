"""Figures that cannot clip: how far a drawn figure's texts and legends run off its canvas, legends wrapped to
the width they are given, and a canvas grown until everything is inside it and every panel keeps its height.

A paper figure keeps its column width and is saved without cropping, so anything outside the canvas is lost;
these helpers are what :func:`rfkit.report.figures.style.tighten` and the figures without image panels (RF growth,
convergence) use to size the canvas from what was actually drawn.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable, Sequence

from rfkit.report.figures.labels import wrap_name

MARGIN_IN = 0.03
"""White margin (inches) kept between any text or legend and the canvas edge (``figure_lint.py`` flags ink
on a PNG's outer 2 px: 0.007 in at 300 dpi)."""


def close_figure(fig) -> None:
    """Release a figure: close it in pyplot if pyplot knows it, and drop its artists."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # a no-op for figures pyplot does not manage
    fig.clear()


def overflow(fig, margin: float = MARGIN_IN) -> tuple[float, float, float, float]:
    """How far (inches) the drawn ``fig`` reaches beyond its canvas less ``margin``: ``(left, right, bottom,
    top)``, each at least 0. The figure must have been drawn (``fig.canvas.draw()``).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> fig = Figure(figsize=(2, 1)); _ = FigureCanvasAgg(fig)
    >>> _ = fig.text(0.5, 0.5, "a text far wider than two inches of canvas", ha="center"); fig.canvas.draw()
    >>> left, right, bottom, top = overflow(fig)
    >>> left > 0.3 and right > 0.3 and bottom == top == 0
    True
    """
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    w, h = fig.get_size_inches()
    return (
        max(0.0, margin - box.x0),
        max(0.0, box.x1 - (w - margin)),
        max(0.0, margin - box.y0),
        max(0.0, box.y1 - (h - margin)),
    )


def shortest_panel(axes: Sequence) -> float:
    """The height (inches) of the lowest of ``axes`` as drawn (0 for none)."""
    heights = [ax.get_window_extent().height / ax.figure.dpi for ax in axes if ax.figure is not None]
    return min(heights, default=0.0)


def fit_figure(
    draw: Callable, size: tuple[float, float], *, width: float | None = None, min_panel: float = 0.0, rounds: int = 4
):
    """The figure ``draw(size)`` builds, rebuilt on a canvas grown until nothing runs off it and every panel
    is at least ``min_panel`` inches high.

    ``draw(size)`` returns ``(fig, panels)``. After each build the figure is drawn, and the canvas grows by
    what runs off it (:func:`overflow`) and by what the shortest panel lacks; a given ``width`` stays (a paper
    column), only the height follows. Constrained layout then gives the panels the room they need.

    Returns
    -------
    Figure
    """

    size = (width, size[1]) if width is not None else size
    fig, panels = draw(size)
    for _ in range(rounds):
        fig.canvas.draw()
        left, right, bottom, top = overflow(fig)
        short = max(0.0, min_panel - shortest_panel(panels)) if panels else 0.0
        grow_w = 0.0 if width is not None else left + right
        grow_h = bottom + top + short
        if grow_w <= 0.01 and grow_h <= 0.01:
            break
        close_figure(fig)
        size = (size[0] + grow_w + 0.02 * (grow_w > 0), size[1] + grow_h + 0.02)
        fig, panels = draw(size)
    fig.canvas.draw()
    return fig


def wrap_labels(labels: Sequence[str], chars: int) -> list[str]:
    """Each label broken at spaces into lines of at most ``chars`` characters (a word longer stays whole).

    >>> wrap_labels(["analytic RF of the unit, 435×435 px", "input"], 20)
    ['analytic RF of the\\nunit, 435×435 px', 'input']
    """
    return [textwrap.fill(lab, max(chars, 8), break_long_words=False, break_on_hyphens=False) for lab in labels]


def wrap_lines(text: str, chars: int) -> str:
    """Every line of ``text`` broken into lines of at most ``chars`` characters: at spaces, and a name without
    spaces after ``_``, ``.``, ``-`` or ``:`` (:func:`rfkit.report.figures.labels.wrap_name`), so a panel's title never
    runs into its neighbour's. A pair of numbers ("1.00, 1.14": h and w) stays on one line.

    >>> print(wrap_lines("stages.0.blocks.0.conv_pwl\\nRF 3×3 · ERF/RF 1.00, 1.00", 16))
    stages.0.blocks.
    0.conv_pwl
    RF 3×3 · ERF/RF
    1.00, 1.00
    >>> print(wrap_lines("ERF/RF 1.00, 1.14", 13))
    ERF/RF
    1.00, 1.14
    """

    out = []
    for line in _PAIR.sub("\\1,\u00a0\\2", text).split("\n"):  # textwrap does not break at a no-break space
        for part in textwrap.wrap(line, max(chars, 6), break_long_words=False, break_on_hyphens=False) or [""]:
            out.append(wrap_name(part, max(chars, 6)) if len(part) > chars else part)
    return "\n".join(out).replace("\u00a0", " ")


_PAIR = re.compile(r"(\d), (\d)")


def fitted_legend(body, handles: Sequence, labels: Sequence[str], width_in: float, *, ncols: int = 1, **kwargs):
    """A legend of ``body`` (default: outside, below its panels) no wider than ``width_in`` inches.

    It keeps up to ``ncols`` columns while its labels fit on one line each; with fewer columns, and then by
    breaking the longest labels onto more lines, it is measured until it fits. Returns the legend.
    """
    kwargs.setdefault("loc", "outside lower center")
    kwargs.setdefault("borderaxespad", 0.8)  # a white margin between the legend and the canvas edge
    fig = body.figure if hasattr(body, "figure") and body.figure is not None else body
    renderer = fig.canvas.get_renderer()
    # display units; text set at another resolution runs up to 5% wider (hinting: a 7 pt legend measured at 100 dpi
    # is 3.13 in wide, at 150 dpi 3.28 in), so the legend keeps that much of its room free
    room = (width_in - 2 * MARGIN_IN - 0.08) * 0.94 * fig.dpi
    labels = list(labels)
    chars = max(len(line) for lab in labels for line in lab.split("\n")) if labels else 0
    cols = max(1, min(ncols, len(labels)))
    legend = None
    for _ in range(40):
        if legend is not None:
            legend.remove()
        legend = body.legend(handles, wrap_labels(labels, chars), ncols=cols, **kwargs)
        if legend.get_window_extent(renderer).width <= room:
            break
        if cols > 1:
            cols -= 1
        elif chars > 12:
            chars = int(chars * 0.88)
        else:
            break
    return legend
