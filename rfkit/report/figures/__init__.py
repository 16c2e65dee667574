"""Publication figures of an ERF run: the overlay of one layer, the grid of all layers, RF growth with depth.

Three figures, each returned as a :class:`matplotlib.figure.Figure`, each with a ``save_*`` variant that
writes it atomically (:func:`rfkit.io.atomic_path`) as PNG (150 dpi), SVG or PDF, chosen by extension:

- :func:`overlay_figure`: one layer's ERF heat map at input resolution, the analytic RF box of the
  measured unit (cut at the input's edges, with arrows saying how far it goes on), its analytic centre, the
  1σ / 2σ ellipses of the Gaussian fit and the input frame; a zoomed panel with a scale bar for a small RF;
- :func:`stage_grid_figure`: every measured layer side by side on one colour scale, each with its RF box
  (arrows where it goes beyond the input, a zoomed inset where it is small);
- :func:`rf_growth_figure`: analytic RF (max and min over paths) and measured ERF size against depth.

Heat-map transform (stated on every colour bar and title). The raw map ``m`` of an
:class:`~rfkit.effective.result.ERFResult` (the accumulated gradient, never transformed in the result) is
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
:func:`rfkit.effective.metrics.diagnose` (collapsed, mass outside the RF, off centre, ...) and the run's
own warnings get footer lines in the warning colour too. The footer (weights, images, method, input
size, rfkit version) lives in its own sub-figure below the plot, so legends never cover it. Image
panels keep their aspect (``set_aspect("equal")``); the figure is laid out once, measured and rebuilt at
the size its parts need, so no white band is left around them.

Every artist that a test or a script may want to find carries a ``gid`` (which SVG output keeps as the
element id): ``"erf-map"``, ``"input-image"``, ``"rf-box"``, ``"local-rf-box"``, ``"rf-center"``,
``"gauss-1sigma"``, ``"gauss-2sigma"``, ``"input-frame"``, ``"outside-input"``, ``"rf-extent"``,
``"zoom-area"``, ``"zoom-inset"``, ``"scale-bar"``, ``"footer"``; in the growth figure ``"rf-max"``,
``"rf-min"``, ``"rf-local"``, ``"erf-size"``, ``"input-size"``, ``"global-band"``, ``"stride-label"``,
``"stride-change"``, ``"measured-layer"``, ``"measured-label"``.

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

from pathlib import Path

from rfkit.report.figures.captions import written_captions
from rfkit.report.figures.growth import growth_series, rf_growth_figure, save_rf_growth
from rfkit.report.figures.looks import LOOKS, STYLES, FigureOptions
from rfkit.report.figures.overlay import overlay_figure, save_overlay
from rfkit.report.figures.stage_grid import save_stage_grid, stage_grid_figure
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    FLOOR,
    STYLE,
    erf_display,
    figure_style,
    gaussian_ellipses,
    rf_rectangle,
    save_figure,
)
from rfkit.report.files import layer_filename

__all__ = [
    "COLORS",
    "DPI",
    "FLOOR",
    "LOOKS",
    "STYLE",
    "STYLES",
    "FigureOptions",
    "erf_display",
    "figure_style",
    "gaussian_ellipses",
    "growth_series",
    "overlay_figure",
    "rf_growth_figure",
    "rf_rectangle",
    "save_figure",
    "save_overlay",
    "save_rf_growth",
    "save_stage_grid",
    "stage_grid_figure",
    "write_figures",
]


def write_figures(folder, result, options: FigureOptions | None = None, progress=None) -> dict[str, Path]:
    """The figures of an ERF run in ``folder``: those of every figure type whose ``in_report`` holds for
    ``result`` (:func:`rfkit.report.figures.registry.report_figure_types`; rfkit's own: an overlay per layer
    (``overlay_<layer>``), the stage grid (``stages``), RF growth (``rf_growth``) and, when the run has them,
    the ERF size in pixels against images seen (``convergence``, :mod:`rfkit.report.figures.convergence`)), in the
    options' look and style (:class:`FigureOptions`); ``progress(text)``, if given, hears of each figure before
    it is drawn ("drawing figure 3 of 7").

    Returns
    -------
    dict
        The PNG of each figure under its type's name (``overlay:<layer>`` for a per-layer type: ``stages``,
        ``rf_growth``, ...); the other formats of a style (``paper``: PDF and SVG) under the same key with the
        extension appended (``stages.pdf``), and each figure's caption pair (:mod:`rfkit.report.figures.captions`) under
        the key with ``.caption.md`` and ``.caption.tex`` appended.
    """
    from rfkit.report.figures.registry import report_figure_types

    options = options or FigureOptions()
    folder = Path(folder)
    exts = options.figure_style.formats
    files: dict[str, Path] = {}
    types = report_figure_types(result)
    count = {"done": 0, "of": sum(len(result.layers) if t.per_layer else 1 for t in types)}

    def add(key: str, stem: str, draw, *args, **kwargs) -> None:
        count["done"] += 1
        if progress is not None:
            progress(f"drawing figure {count['done']} of {count['of']}")
        paths = save_figure(draw(*args, **kwargs), [folder / f"{stem}{ext}" for ext in exts])
        files.update({key if ext == ".png" else f"{key}{ext}": path for ext, path in zip(exts, paths)})
        files.update({f"{key}{p.name[len(stem) :]}": p for p in written_captions(paths[0])})

    with options.applied():
        for t in types:
            kwargs = t.report_options(options)
            if not t.per_layer:
                add(t.name, t.name, t.draw, result, **kwargs)
                continue
            for layer in result.layers:
                add(f"{t.name}:{layer}", f"{t.name}_{layer_filename(layer)}", t.draw, result, layer, **kwargs)
    return files
