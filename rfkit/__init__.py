"""rfkit: theoretical and effective receptive fields of vision models, side by side.

The namespace is small: one function per stage and the results they return.

- :func:`trace` (model -> :class:`RFGraph`), :func:`erf` (-> :class:`ERFResult`), :func:`attribute`
  (-> :class:`AttributionResult`), :func:`verify` (-> :class:`VerifyResult`), :func:`analyze` (a report folder
  -> :class:`AnalyzeResult`), :func:`prepare` (a model built, read and traced once -> :class:`Prepared`),
  :func:`collect` (report folders -> one DataFrame), :func:`figure` (any figure type by name);
- every result has ``to_frame()``: a :class:`pandas.DataFrame` of its per-layer (per-node, per-image) record;
- :mod:`rfkit.errors` holds every exception and warning class.

Everything else lives in its stage (``rfkit.graph.productivity``, ``rfkit.verification.estimate``,
``rfkit.report.dot``, ...). The names ``import rfkit`` offered before (``rfkit.productivity``,
``rfkit.ModelNotFoundError``, ``rfkit.VerifyReport``, ...) still work, but are not listed in ``dir(rfkit)``.

The heavy parts (torch, timm) load on first use of ``rfkit.trace`` and friends, so that ``import rfkit``
and the command line's ``--help`` stay fast.

>>> import rfkit
>>> [n for n in rfkit.__all__ if n[0].islower()]
['analyze', 'attribute', 'collect', 'erf', 'errors', 'figure', 'prepare', 'trace', 'verify']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rfkit import errors
from rfkit.version import __version__

#: The public namespace: name -> the module that defines it (loaded on first use).
_PUBLIC = {
    "trace": "rfkit.graph.tracing",
    "erf": "rfkit.effective.engine",
    "attribute": "rfkit.attribution.engine",
    "analyze": "rfkit.analysis.analyze",
    "prepare": "rfkit.pipeline.prepare",
    "collect": "rfkit.report.collect",
    "figure": "rfkit.report.figures.registry",
    "verify": "rfkit.verification.verify",
    "RFGraph": "rfkit.graph.rfgraph",
    "RFInfo": "rfkit.graph.info",
    "ERFResult": "rfkit.effective.result",
    "AttributionResult": "rfkit.attribution.result",
    "VerifyResult": "rfkit.verification.verify",
    "AnalyzeResult": "rfkit.analysis.analyze",
    "Prepared": "rfkit.pipeline.prepare",
}

#: Names ``import rfkit`` offered before this namespace was made small: still importable, not listed.
_FORMER = {
    "VerifyReport": "rfkit.verification.verify",
    "Report": "rfkit.analysis.analyze",
    "estimate_rf": "rfkit.verification.estimate",
    "RFEstimate": "rfkit.verification.estimate",
    "RFEstimates": "rfkit.verification.estimate",
    "productivity": "rfkit.graph.productivity",
    "input_resolution_range": "rfkit.graph.productivity",
    "ProductivityReport": "rfkit.graph.productivity",
    "InputRange": "rfkit.graph.productivity",
    "Status": "rfkit.graph.productivity",
    "to_dot": "rfkit.report.dot",
    "render": "rfkit.report.dot",
    "GraphBuilder": "rfkit.graph.handbuilt",
    "graph_from_layers": "rfkit.graph.handbuilt",
    "analyze_many": "rfkit.analysis.batch",
    "build_site": "rfkit.report.site",
}

__all__ = [
    "AnalyzeResult",
    "AttributionResult",
    "ERFResult",
    "Prepared",
    "RFGraph",
    "RFInfo",
    "VerifyResult",
    "__version__",
    "analyze",
    "attribute",
    "collect",
    "erf",
    "errors",
    "figure",
    "prepare",
    "trace",
    "verify",
]

if TYPE_CHECKING:
    from rfkit.analysis.analyze import AnalyzeResult, analyze
    from rfkit.attribution.engine import attribute
    from rfkit.attribution.result import AttributionResult
    from rfkit.effective.engine import erf
    from rfkit.effective.result import ERFResult
    from rfkit.graph.info import RFInfo
    from rfkit.graph.rfgraph import RFGraph
    from rfkit.graph.tracing import trace
    from rfkit.pipeline.prepare import Prepared, prepare
    from rfkit.report.collect import collect
    from rfkit.report.figures.registry import figure
    from rfkit.verification.verify import VerifyResult, verify


def __getattr__(name: str):
    if name == "atlas":  # the package: rfkit.atlas.load(), rfkit.atlas.query(), rfkit.atlas.build_atlas()
        return importlib.import_module("rfkit.atlas")
    where = _PUBLIC.get(name) or _FORMER.get(name)
    if where is not None:
        value = getattr(importlib.import_module(where), name)
        globals()[name] = value
        return value
    value = getattr(errors, name, None)
    if isinstance(value, type) and issubclass(value, BaseException):  # the exceptions ``import rfkit`` offered
        return value
    raise AttributeError(f"module 'rfkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
