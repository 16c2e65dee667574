"""The analytic receptive-field graph: torch.fx tracing and RF propagation."""

from rfkit.graph.info import RFInfo
from rfkit.graph.registry import DEFAULT_REGISTRY, Registry
from rfkit.graph.rfgraph import OpaqueModule, RFGraph, UnsupportedOp
from rfkit.graph.tracing import trace

__all__ = ["DEFAULT_REGISTRY", "OpaqueModule", "RFGraph", "RFInfo", "Registry", "UnsupportedOp", "trace"]
