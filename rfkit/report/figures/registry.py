"""Figure types by name: one :class:`FigureType` record per figure rfkit draws, in the registry
:data:`FIGURE_TYPES`, and :func:`figure`, which draws one (``rfkit.figure``).

A record says what the figure draws from (an ERF result, a graph, an attribution result, a unit grid,
finished report folders), how (``draw(data, ...)`` returns a :class:`matplotlib.figure.Figure`) and whether
every report (``rfkit analyze``) holds it: :func:`rfkit.report.figures.write_figures` draws the registered
types whose ``in_report`` says yes, in the order registered, one figure per measured layer for a
``per_layer`` type.

- ``overlay``: an ERFResult and one of its layers; in every report, one per layer;
- ``stages``: an ERFResult; in every report;
- ``rf_growth``: an ERFResult, or an RFGraph; in every report;
- ``convergence``: an ERFResult measured with intervals; in every report that has the curves;
- ``rf_grid``: a UnitGrid (:func:`rfkit.effective.unit_grid.unit_grid`; ``rfkit rf-grid``);
- ``comparison``: finished report folders, or their :class:`~rfkit.report.site.Analysis` records
  (``rfkit figure``);
- ``attribution``: an AttributionResult (``rfkit attribute -o``).

>>> figure_type_names()
['overlay', 'stages', 'rf_growth', 'convergence', 'rf_grid', 'comparison', 'attribution']
>>> figure("overlays", None)
Traceback (most recent call last):
...
rfkit.errors.FigureTypeError: unknown figure type 'overlays' (close matches: overlay); use one of overlay, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rfkit.attribution.result import AttributionResult
from rfkit.effective.result import ERFResult
from rfkit.effective.unit_grid import UnitGrid
from rfkit.errors import FigureTypeError
from rfkit.graph.rfgraph import RFGraph
from rfkit.registry import NamedRegistry
from rfkit.report.figures.attribution import attribution_grid
from rfkit.report.figures.compare import comparison_figure
from rfkit.report.figures.convergence import convergence_figure
from rfkit.report.figures.growth import rf_growth_figure
from rfkit.report.figures.looks import FigureOptions
from rfkit.report.figures.overlay import overlay_figure
from rfkit.report.figures.rf_grid import rf_grid_figure
from rfkit.report.figures.stage_grid import stage_grid_figure
from rfkit.report.figures.style import save_figure


def _no_options(options: FigureOptions) -> dict:
    return {}


@dataclass(frozen=True)
class FigureType:
    """One kind of figure.

    Attributes
    ----------
    name : str
        What :func:`figure` takes; in a report, the figure's file stem (``<name>_<layer>`` for a per-layer
        type) and its key in the files written (``<name>:<layer>``).
    draw : callable
        ``draw(data, *args, **options)`` -> :class:`matplotlib.figure.Figure` (``draw(result, layer,
        **options)`` for a per-layer type).
    draws : tuple of type
        The types of data it draws from (checked by :func:`figure`).
    summary : str
        One line: what it shows.
    per_layer : bool
        One figure per measured layer.
    in_report : callable or None
        ``in_report(result)``: whether a report of this ERF result holds the figure (None: no report does).
    report_options : callable
        ``report_options(options)``: the keyword arguments of ``draw`` from a report's
        :class:`~rfkit.report.figures.looks.FigureOptions` (style, look, ...).
    """

    name: str
    draw: Callable
    draws: tuple[type, ...]
    summary: str = ""
    per_layer: bool = False
    in_report: Callable[[object], bool] | None = None
    report_options: Callable[[FigureOptions], dict] = _no_options

    def check(self, data) -> None:
        """Raise :class:`~rfkit.errors.FigureTypeError` unless ``data`` is what the figure draws from."""
        if not isinstance(data, self.draws):
            wanted = " or ".join(t.__name__ for t in self.draws)
            raise FigureTypeError(f"figure type {self.name!r} draws from {wanted}, not {type(data).__name__}")


FIGURE_TYPES: NamedRegistry[FigureType] = NamedRegistry("figure type", FigureTypeError)
"""Every figure type by name (:func:`register_figure_type` adds one)."""


def register_figure_type(figure_type: FigureType, *, replace: bool = False) -> FigureType:
    """Make ``figure_type`` available to :func:`figure` (and, with ``in_report``, to every report).

    Raises
    ------
    FigureTypeError
        Not a :class:`FigureType`, ``draw`` not callable, ``draws`` not a tuple of types, or a name taken
        (without ``replace``).
    """
    if not isinstance(figure_type, FigureType):
        raise FigureTypeError(f"register a FigureType record, not {type(figure_type).__name__}")
    if not callable(figure_type.draw):
        raise FigureTypeError(f"figure type {figure_type.name!r}: draw must be callable")
    if not isinstance(figure_type.draws, tuple) or not all(isinstance(t, type) for t in figure_type.draws):
        raise FigureTypeError(f"figure type {figure_type.name!r}: draws must be a tuple of types")
    return FIGURE_TYPES.register(figure_type.name, figure_type, replace=replace)


def figure_type_names() -> list[str]:
    """Every figure type's name, in the order registered."""
    return FIGURE_TYPES.names()


def report_figure_types(result) -> list[FigureType]:
    """The figure types a report of ``result`` holds, in the order registered."""
    return [t for t in FIGURE_TYPES.values() if t.in_report is not None and t.in_report(result)]


def figure(kind: str, data, *args, path=None, **options):
    """Draw the figure type ``kind`` of ``data`` (and save it, with ``path``).

    Parameters
    ----------
    kind : str
        A name of :data:`FIGURE_TYPES` (module docstring).
    data
        What the type draws from: an :class:`~rfkit.effective.result.ERFResult`, an
        :class:`~rfkit.graph.rfgraph.RFGraph`, an :class:`~rfkit.attribution.result.AttributionResult`, ...
    *args, **options
        The type's own arguments: the layer of an ``overlay``, ``style="paper"``, ``look="replknet"``, ...
    path : str or Path or sequence of them, optional
        Write the figure there (format by extension; several paths, several formats) with
        :func:`rfkit.report.figures.style.save_figure` and return the path(s) instead of the figure.

    Returns
    -------
    matplotlib.figure.Figure, or the path(s) written

    Raises
    ------
    FigureTypeError
        An unknown type (the message names the close matches) or data it does not draw from.

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    >>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=2, input_size=32, device="cpu")
    >>> fig = rfkit.figure("overlay", res, "2")
    >>> [p.get_gid() for p in fig.axes[0].patches if p.get_gid() == "rf-box"]
    ['rf-box']
    >>> rfkit.figure("attribution", res)
    Traceback (most recent call last):
    ...
    rfkit.errors.FigureTypeError: figure type 'attribution' draws from AttributionResult, not ERFResult
    """
    figure_type = FIGURE_TYPES.get(kind)
    figure_type.check(data)
    fig = figure_type.draw(data, *args, **options)
    return fig if path is None else save_figure(fig, path)


def _growth(data, **options):
    if isinstance(data, RFGraph):
        return rf_growth_figure(data, **options)
    return rf_growth_figure(data.graph, result=data, **options)


def _comparison(data, *args, **options):
    from rfkit.report.site import find_analyses

    analyses = find_analyses([data] if isinstance(data, (str, Path)) else list(data))
    return comparison_figure(analyses, *args, **options)


def _always(result) -> bool:
    return True


register_figure_type(
    FigureType(
        "overlay",
        overlay_figure,
        (ERFResult,),
        "one layer's ERF at input resolution with its unit's analytic RF box, centre and Gaussian fit",
        per_layer=True,
        in_report=_always,
        report_options=lambda o: {"full_rf": o.full_rf, "look": o.look, "style": o.style},
    )
)
register_figure_type(
    FigureType(
        "stages",
        stage_grid_figure,
        (ERFResult,),
        "every measured layer's ERF side by side, each with its RF box",
        in_report=_always,
        report_options=lambda o: {"look": o.look, "style": o.style, "shared": o.shared_scale},
    )
)
register_figure_type(
    FigureType(
        "rf_growth",
        _growth,
        (ERFResult, RFGraph),
        "analytic RF (max and min over paths) and measured ERF size against depth",
        in_report=_always,
        report_options=lambda o: {"style": o.style},
    )
)
register_figure_type(
    FigureType(
        "convergence",
        convergence_figure,
        (ERFResult,),
        "each layer's ERF size and its 95% interval against the number of images seen",
        in_report=lambda result: bool(getattr(result, "convergence", None)),
        report_options=lambda o: {"style": o.style},
    )
)
register_figure_type(
    FigureType(
        "rf_grid",
        rf_grid_figure,
        (UnitGrid,),
        "the analytic RF boxes and centres of a grid of units of one layer over an image, with their ERFs",
    )
)
register_figure_type(
    FigureType(
        "comparison",
        _comparison,
        (str, Path, Sequence),
        "rows of analysed models, columns of layers at the same depth, one spatial scale",
    )
)
register_figure_type(
    FigureType(
        "attribution",
        attribution_grid,
        (AttributionResult,),
        "rows of images, columns of the input and each attribution method's map",
    )
)
