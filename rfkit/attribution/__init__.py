"""Per-image contribution maps: which pixels drove a class logit or one unit of a layer, image by image.

The ERF averages one unit's positive input gradient over many images; :func:`attribute` shows the
(signed) attribution of a class or of a unit on each image, with the gradient family (captum), Blur IG and
the CAM family (pytorch-grad-cam), on any layout rfkit's graph knows (NCHW, channels-last, tokens, windows).
"""

from __future__ import annotations

from rfkit.attribution.engine import attribute
from rfkit.attribution.errors import AttributionError, BaselineError, CamLayerError, MethodError, TargetError
from rfkit.attribution.methods import CAM_METHODS, GRADIENT_METHODS, METHODS, Settings
from rfkit.attribution.result import AttributionResult
from rfkit.attribution.targets import Target

__all__ = [
    "AttributionError",
    "AttributionResult",
    "BaselineError",
    "CAM_METHODS",
    "CamLayerError",
    "GRADIENT_METHODS",
    "METHODS",
    "MethodError",
    "Settings",
    "Target",
    "TargetError",
    "attribute",
]
