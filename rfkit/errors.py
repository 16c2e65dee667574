"""Exception classes raised by rfkit.

Every error rfkit raises on bad input derives from :class:`RFKitError`, so callers can catch one class,
and each message is a single line naming the problem and what to do about it.
"""

from __future__ import annotations


class RFKitError(Exception):
    """Base class of every error rfkit raises on purpose."""


class ModelNotFoundError(RFKitError, LookupError):
    """A model spec names no model rfkit can build (unknown timm/torchvision name, missing file or factory)."""


class ModelBuildError(RFKitError):
    """The model spec was found but building the model failed."""


class TraceError(RFKitError):
    """torch.fx could not trace the model, or running the traced graph failed at a node."""


class InputTooSmallError(RFKitError, ValueError):
    """The input size is smaller than the network can take (a feature map shrank to nothing)."""


class NodeNotFoundError(RFKitError, KeyError):
    """A node or module name is not in the graph."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
