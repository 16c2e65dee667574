"""rfkit: theoretical and effective receptive fields of vision models, side by side."""

from rfkit.errors import (InputTooSmallError, ModelBuildError, ModelNotFoundError, NodeNotFoundError, RFKitError,
                          TraceError)
from rfkit.graph import RFGraph, RFInfo, trace

__version__ = "0.1.0"

__all__ = [
    "InputTooSmallError", "ModelBuildError", "ModelNotFoundError", "NodeNotFoundError", "RFGraph", "RFInfo",
    "RFKitError", "TraceError", "__version__", "trace",
]
