"""rfkit: theoretical and effective receptive fields of vision models, side by side.

The heavy parts (torch, timm) load on first use of ``rfkit.trace`` and friends, so that ``import rfkit``
and the command line's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rfkit.errors import (
    ArchitectureError,
    ArgumentError,
    CheckpointError,
    DeviceError,
    DeviceMemoryError,
    GraphvizNotFoundError,
    ImageSourceError,
    InputSizeError,
    InputTooSmallError,
    LayerError,
    MissingExtraError,
    ModelBuildError,
    ModelNotFoundError,
    NodeNotFoundError,
    RenderError,
    RFKitError,
    TraceError,
    UntrustedFileError,
    WeightsError,
    WeightsUnavailableError,
)
from rfkit.io import OutputError
from rfkit.version import __version__

_LAZY = {
    "trace": "rfkit.graph.trace",
    "RFGraph": "rfkit.graph.rfgraph",
    "RFInfo": "rfkit.graph.info",
    "verify": "rfkit.verification.verify",
    "VerifyReport": "rfkit.verification.verify",
    "ERFResult": "rfkit.erf.result",
    "estimate_rf": "rfkit.verification.estimate",
    "RFEstimate": "rfkit.verification.estimate",
    "RFEstimates": "rfkit.verification.estimate",
    "prepare": "rfkit.pipeline.prepare",
    "Prepared": "rfkit.pipeline.prepare",
    "productivity": "rfkit.graph.productivity",
    "input_resolution_range": "rfkit.graph.productivity",
    "ProductivityReport": "rfkit.graph.productivity",
    "InputRange": "rfkit.graph.productivity",
    "Status": "rfkit.graph.productivity",
    "to_dot": "rfkit.report.dot",
    "render": "rfkit.report.dot",
    "GraphBuilder": "rfkit.graph.handbuilt",
    "graph_from_layers": "rfkit.graph.handbuilt",
    "analyze": "rfkit.report.analyze",
    "Report": "rfkit.report.analyze",
    "analyze_many": "rfkit.report.batch",
    "build_site": "rfkit.report.site",
    "collect": "rfkit.report.collect",
    "attribute": "rfkit.attribution.engine",
    "AttributionResult": "rfkit.attribution.result",
}

__all__ = [
    "ArchitectureError",
    "ArgumentError",
    "CheckpointError",
    "DeviceError",
    "DeviceMemoryError",
    "ImageSourceError",
    "OutputError",
    "WeightsError",
    "WeightsUnavailableError",
    "AttributionResult",
    "ERFResult",
    "GraphBuilder",
    "GraphvizNotFoundError",
    "InputRange",
    "InputSizeError",
    "InputTooSmallError",
    "LayerError",
    "MissingExtraError",
    "ModelBuildError",
    "ModelNotFoundError",
    "NodeNotFoundError",
    "Prepared",
    "ProductivityReport",
    "RFEstimate",
    "RFEstimates",
    "RFGraph",
    "RFInfo",
    "RFKitError",
    "RenderError",
    "Report",
    "Status",
    "TraceError",
    "UntrustedFileError",
    "VerifyReport",
    "analyze",
    "analyze_many",
    "atlas",
    "attribute",
    "build_site",
    "collect",
    "erf",
    "estimate_rf",
    "graph_from_layers",
    "prepare",
    "input_resolution_range",
    "productivity",
    "render",
    "to_dot",
    "trace",
    "verify",
    "__version__",
]

if TYPE_CHECKING:
    from rfkit.attribution.engine import attribute
    from rfkit.attribution.result import AttributionResult
    from rfkit.erf.result import ERFResult
    from rfkit.graph.handbuilt import GraphBuilder, graph_from_layers
    from rfkit.graph.info import RFInfo
    from rfkit.graph.productivity import InputRange, ProductivityReport, Status, input_resolution_range, productivity
    from rfkit.graph.rfgraph import RFGraph
    from rfkit.graph.trace import trace
    from rfkit.pipeline.prepare import Prepared, prepare
    from rfkit.report.analyze import Report, analyze
    from rfkit.report.batch import analyze_many
    from rfkit.report.collect import collect
    from rfkit.report.dot import render, to_dot
    from rfkit.report.site import build_site
    from rfkit.verification.estimate import RFEstimate, RFEstimates, estimate_rf
    from rfkit.verification.verify import VerifyReport, verify


def __getattr__(name: str):
    if name == "erf":  # the package rfkit.erf is callable: rfkit.erf(model, ...) runs rfkit.erf.engine.erf
        return importlib.import_module("rfkit.erf")
    if name == "atlas":  # the package: rfkit.atlas.load(), rfkit.atlas.query(), rfkit.atlas.build_atlas()
        return importlib.import_module("rfkit.atlas")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rfkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
