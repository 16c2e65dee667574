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


class ArchitectureError(RFKitError, ValueError):
    """A hand-built architecture is inconsistent: an unknown or duplicate layer name, an invalid kernel,
    stride, padding or dilation, or inputs whose feature maps cannot be merged."""


class LayerError(RFKitError, ValueError):
    """A layer cannot be measured: it has no spatial grid, or the unit asked for is outside it."""


class InputSizeError(RFKitError, ValueError):
    """An input resolution does not fit the graph (wrong number of axes, or not positive)."""


class GraphvizNotFoundError(RFKitError):
    """The GraphViz ``dot`` program is not installed; the DOT source was written instead."""


class RenderError(RFKitError):
    """GraphViz could not render a graph, or the output format is not one it is asked for."""


class WeightsError(RFKitError, ValueError):
    """The ``weights`` option cannot be applied to this model (unknown option, or one a given module cannot take)."""


class WeightsUnavailableError(WeightsError):
    """Pretrained weights were asked for but cannot be obtained (offline, no pretrained weights, download failed)."""


class CheckpointError(WeightsError):
    """A checkpoint file is missing, unreadable, or does not fit the model (missing/unexpected keys, shapes)."""


class UntrustedFileError(CheckpointError, ModelBuildError):
    """A file would run code when loaded (the Python file of a ``FILE.py:FACTORY`` spec; a pickled checkpoint;
    an ultralytics yaml whose fields ultralytics evaluates as Python) and rfkit was not told to trust it
    (``trust=True``, ``--trust`` or its older name ``--trust-checkpoint``). A
    :class:`CheckpointError` and a :class:`ModelBuildError` too, so code catching either keeps working."""


class MissingExtraError(ModelBuildError, ImportError):
    """A model source needs a package that is not installed (the message says which extra to install:
    ``pip install 'rfkit[keras]'``)."""


class ImageSourceError(RFKitError, ValueError):
    """An image source yields no usable image (missing path, empty folder, nothing readable, tensor of wrong size)."""


class ReportFileError(RFKitError, ValueError):
    """A report folder's ``run.json`` or ``metrics.json`` is not what rfkit writes: unreadable, not JSON, or a
    value of the wrong type or out of range (the message names the file and the first such value)."""


class RFKitWarning(UserWarning):
    """Base class of the warnings rfkit emits."""


class WeightsWarning(RFKitWarning):
    """The weights in use make the ERF questionable: random init (pretrained unobtainable) or init traps."""


class NonFiniteWarning(RFKitWarning):
    """A model output, a layer's gradient or a map holds NaN or infinity: the numbers made from it are not
    numbers. The warning names the first one (which output, layer or map, for which image)."""


class ArgumentError(RFKitError, ValueError, TypeError):
    """An argument has the wrong type or value (a count that is not a positive int, a size given as a float,
    layer names that are not strings); the message names the argument. A ``ValueError`` and a ``TypeError``
    too, so code catching either keeps working."""


class DeviceError(RFKitError, ValueError):
    """The device asked for is unknown or not on this machine (no CUDA GPU, no such GPU index, no MPS)."""


class DeviceMemoryError(RFKitError, MemoryError):
    """A batch did not fit in the device's memory (GPU or CPU): a smaller batch size is needed."""


class AtlasError(RFKitError, ValueError):
    """An atlas folder or table is missing or not what ``rfkit atlas build`` writes, or a query over it is not
    an expression the atlas evaluates (only column names, literals, comparisons, arithmetic, and/or/not)."""
