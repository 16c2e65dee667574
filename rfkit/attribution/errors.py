"""Exceptions of per-image attribution, defined in :mod:`rfkit.errors` (with every other) and exported here
under their old names."""

from __future__ import annotations

from rfkit.errors import AttributionError, BaselineError, CamLayerError, MethodError, TargetError

__all__ = ["AttributionError", "BaselineError", "CamLayerError", "MethodError", "TargetError"]
