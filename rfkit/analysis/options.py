"""What :func:`rfkit.analyze` writes beyond its measurement: where and how (:class:`Output`), and the per-image
contribution maps it adds (:class:`ReportAttribution`). ``rfkit analyze`` builds the same objects."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfkit.errors import ArgumentError
from rfkit.pipeline.options import OptionObject
from rfkit.report.figures.looks import FigureOptions

GRAPH_DEPTH = 2
"""Module depth of the GraphViz view (``Output.depth``)."""


@dataclass(frozen=True)
class Output(OptionObject):
    """Where the report goes and how its figures look.

    Attributes
    ----------
    folder : str or Path
        Parent folder; the report goes to ``folder/<model>/`` (:func:`rfkit.report.report_folder.folder_name`).
    figures : FigureOptions, optional
        Look, style (report or paper: formats, widths, fonts), font, style file and view of the figures
        (:class:`rfkit.report.figures.looks.FigureOptions`); default rfkit's look in the report style.
    depth : int
        Module depth of the GraphViz view.

    Examples
    --------
    >>> Output.of("reports").folder, Output("r", FigureOptions(style="paper")).figures.style
    ('reports', 'paper')
    """

    folder: str | Path = "rfkit-reports"
    figures: FigureOptions | None = None
    depth: int = GRAPH_DEPTH

    @classmethod
    def of(cls, value: Any) -> Output:
        """``value`` as :class:`Output`: an :class:`Output` as it is, a folder (str or path) as that folder."""
        if isinstance(value, cls):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(folder=value)
        raise ArgumentError(f"out={value!r}: give a folder or rfkit.Output(folder, figures, depth)")


@dataclass(frozen=True)
class ReportAttribution(OptionObject):
    """The per-image contribution maps a report adds: of the predicted class, with the report's model, images,
    device and seed.

    Attributes
    ----------
    methods : str or list of str
        Methods as :func:`rfkit.attribute` reads them (``"saliency,ig,gradcam"``).
    num_images : int
        How many of the report's images the maps are computed for (the first ones).

    Examples
    --------
    >>> ReportAttribution.of("saliency,ig")
    ReportAttribution(methods='saliency,ig', num_images=4)
    """

    methods: str | Sequence[str] = ("saliency",)
    num_images: int = 4

    @classmethod
    def of(cls, value: Any) -> ReportAttribution | None:
        """``value`` as :class:`ReportAttribution`: None (no maps) as None, methods as those methods."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, str) or (isinstance(value, Sequence) and all(isinstance(v, str) for v in value)):
            return cls(methods=value)
        raise ArgumentError(
            f"attribution={value!r}: give methods ('saliency,ig') or rfkit.ReportAttribution(methods, num_images)"
        )
