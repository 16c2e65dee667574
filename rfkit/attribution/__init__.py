"""Per-image contribution maps: which pixels drove a class logit or one unit of a layer, image by image.

The ERF averages one unit's positive input gradient over many images; :func:`attribute` shows the
(signed) attribution of a class or of a unit on each image, with the methods of the field from the
libraries that own them — the gradient family, Occlusion and Guided Grad-CAM (captum), the CAM family and
FullGrad (pytorch-grad-cam), Guided IG, XRAI and the authors' Blur IG (PAIR's ``saliency``) — on any layout
rfkit's graph knows (NCHW, channels-last, tokens, windows). Each method is one record of
:mod:`rfkit.attribution.registry`; :func:`register` adds one.
"""

from __future__ import annotations

from rfkit.attribution.engine import attribute
from rfkit.attribution.errors import AttributionError, BaselineError, CamLayerError, MethodError, TargetError
from rfkit.attribution.methods import method_names
from rfkit.attribution.registry import Call, Method, Option, register, registered, unregister
from rfkit.attribution.result import AttributionResult
from rfkit.attribution.settings import Settings
from rfkit.attribution.targets import Target

__all__ = [
    "AttributionError",
    "AttributionResult",
    "BaselineError",
    "Call",
    "CamLayerError",
    "Method",
    "MethodError",
    "Option",
    "Settings",
    "Target",
    "TargetError",
    "attribute",
    "method_names",
    "register",
    "registered",
    "unregister",
]
