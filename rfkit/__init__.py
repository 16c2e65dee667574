"""rfkit: theoretical and effective receptive fields of vision models, side by side.

The heavy parts (torch, timm) load on first use of ``rfkit.trace`` and friends, so that ``import rfkit``
and the command line's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rfkit.errors import (InputTooSmallError, ModelBuildError, ModelNotFoundError, NodeNotFoundError, RFKitError,
                          TraceError)

__version__ = "0.1.0"

_LAZY = {"trace": "rfkit.graph.trace", "RFGraph": "rfkit.graph.rfgraph", "RFInfo": "rfkit.graph.info",
         "verify": "rfkit.verification.verify", "VerifyReport": "rfkit.verification.verify",
         "ERFResult": "rfkit.erf.result"}

__all__ = [
    "ERFResult", "InputTooSmallError", "ModelBuildError", "ModelNotFoundError", "NodeNotFoundError", "RFGraph", "RFInfo",
    "RFKitError", "TraceError", "VerifyReport", "__version__", "erf", "trace", "verify",
]

if TYPE_CHECKING:
    from rfkit.graph.info import RFInfo
    from rfkit.graph.rfgraph import RFGraph
    from rfkit.graph.trace import trace
    from rfkit.verification.verify import VerifyReport, verify


def __getattr__(name: str):
    if name == "erf":  # the package rfkit.erf is callable: rfkit.erf(model, ...) runs rfkit.erf.engine.erf
        return importlib.import_module("rfkit.erf")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rfkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
