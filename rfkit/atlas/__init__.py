"""The receptive-field atlas: the analytic RF of every stage of every model of a zoo, as one table.

:func:`build_atlas` builds it (``rfkit atlas build``), :func:`load` reads it as a DataFrame, :func:`query`
filters it with a restricted expression (``rfkit atlas query``), :func:`build_atlas_site` makes its static
site (``rfkit atlas site``).

>>> import rfkit
>>> callable(rfkit.atlas.load)
True
"""

from __future__ import annotations

from rfkit.atlas.build import build_atlas
from rfkit.atlas.table import load, query

__all__ = ["build_atlas", "load", "query"]
