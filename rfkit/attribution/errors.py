"""Exceptions of per-image attribution: each names the problem and what to do, in one line."""

from __future__ import annotations

from rfkit.errors import RFKitError


class AttributionError(RFKitError, ValueError):
    """Base class of the attribution errors."""


class MethodError(AttributionError):
    """An unknown attribution method, or a combination ``A*B`` that is not a gradient method times a CAM method."""


class TargetError(AttributionError):
    """A target that does not fit the model: a class index outside the head, a unit outside its layer's grid,
    class targets on a model whose output is not one score per class, a malformed target string."""


class CamLayerError(AttributionError):
    """A CAM method cannot use the layer: no spatial grid, not a module's output, or the score does not depend
    on it."""


class BaselineError(AttributionError):
    """An Integrated Gradients baseline that is unknown or of the wrong shape."""
