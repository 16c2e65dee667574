"""The receptive-field atlas: the analytic RF of every stage of every model of a zoo, as one table.

:func:`build_atlas` builds it (``rfkit atlas build``; the ERF at init and with trained weights per stage with
:class:`ErfAtInit` and :class:`ErfTrained`), :func:`load` reads it as a DataFrame (:func:`load_failures`, what
is missing from it and why), :func:`query`
filters it with a restricted expression (``rfkit atlas query``), :func:`build_atlas_site` makes its static
site (``rfkit atlas site``).

>>> import rfkit
>>> callable(rfkit.atlas.load)
True
"""

from __future__ import annotations

from rfkit.atlas.build import build_atlas
from rfkit.atlas.measured import ErfAtInit, ErfTrained, weights_table
from rfkit.atlas.table import load, load_failures, query

__all__ = ["ErfAtInit", "ErfTrained", "build_atlas", "load", "load_failures", "query", "weights_table"]
