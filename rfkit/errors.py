"""Every exception and warning class rfkit raises or emits, in one place.

Every error rfkit raises on bad input derives from :class:`RFKitError`, so callers can catch one class,
and each message is a single line naming the problem and what to do about it; every warning derives from
:class:`RFKitWarning`. The modules that raise them also export them under their old names
(``rfkit.report.presets.PresetError`` is ``rfkit.errors.PresetError``).

Two classes are for extension authors rather than users: :class:`UnsupportedOpError`, which an RF rule
raises when it cannot model one use of its op (the op is then listed as unsupported), and
:class:`RuleFailedWarning`, which rfkit emits when a rule breaks in any other way. The few exceptions that
never leave the module raising them (layout bookkeeping of the graph pass, the SVG cleaner's) stay there.

>>> import rfkit
>>> issubclass(rfkit.errors.PresetError, rfkit.errors.RFKitError)
True
"""

from __future__ import annotations


class RFKitError(Exception):
    """Base class of every error rfkit raises on purpose."""


class ModelNotFoundError(RFKitError, LookupError):
    """A model spec names no model rfkit can build (unknown timm/torchvision name, missing file or factory)."""


class ModelBuildError(RFKitError):
    """The model spec was found but building the model failed."""


class MissingExtraError(ModelBuildError, ImportError):
    """A model source needs a package that is not installed; the message names the extra to install
    (``pip install "rfkit[onnx]"``, ``pip install 'rfkit[keras]'``)."""


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


class NoTrainedWeights(AtlasError):
    """No trained weights could be loaded for a model of an atlas build: its trained ERF is not measured (the
    rest of its rows are whole)."""


class OutputError(RFKitError, OSError):
    """The output folder cannot be created or written, or holds files rfkit did not write."""


class ERFMapError(RFKitError, ValueError):
    """An ERF map or its companion arguments are malformed (not 2-D, empty, non-numeric, bad centre)."""


class ERFMethodError(ArgumentError):
    """An unknown ERF method (the message lists close matches and every method), or a method record that
    cannot be registered (a name taken, a score or reduction that is not callable)."""


class ERFMetricError(RFKitError, ValueError):
    """An ERF metric that cannot be registered (a name or column taken, not callable), or that returned
    columns other than those it declared."""


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


class DistributedError(RFKitError, RuntimeError):
    """The torch.distributed environment is incomplete, or joining the process group failed."""


class PresetError(RFKitError, KeyError):
    """An unknown preset name (the message lists close matches and every preset), or a preset that cannot be
    registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FigureTypeError(RFKitError, ValueError):
    """An unknown figure type (the message lists close matches and every type), a figure type that cannot be
    registered, or data a figure type cannot draw."""


class SiteError(RFKitError, ValueError):
    """No analysis folders were found, or the site folder cannot be written."""


class CollectError(RFKitError, ValueError):
    """No report folder could be collected from the folders given."""


class ModelTimeout(RFKitError):
    """A model took longer than the time allowed for it."""


class UsageError(RFKitError):
    """A command-line value rfkit cannot use (one line, exit code 1)."""


class UnsupportedOpError(Exception):
    """Raised by an RF rule when this particular use of its op cannot be modelled (``cat`` along H, a sliding
    window over a dim that holds no spatial axis): the op is then listed as unsupported, with the message as
    its reason, and every RF after it is unknown. Not an :class:`RFKitError`: the graph pass catches it."""


class ImageWarning(RFKitWarning):
    """The ERF is averaged over fewer images than asked for, or image files were skipped."""


class SiteWarning(RFKitWarning):
    """A report folder was left out of the site (its ``run.json`` or ``metrics.json`` is not rfkit's)."""


class CollectWarning(RFKitWarning):
    """A folder was left out of a collection (not a report, or its files cannot be read as rfkit's)."""


class RuleFailedWarning(RFKitWarning):
    """An RF rule raised an error other than :class:`UnsupportedOpError` (a bug in the rule, or a use of the op
    it did not foresee). The message names the op, the node (and module) and the error; the op is listed as
    unsupported, every RF after it is unknown, and :attr:`rfkit.graph.rfgraph.RFGraph.incomplete` says so."""


class ConversionError(ModelBuildError):
    """A model file could not be turned into a PyTorch module for measuring (ERF, attribution), though its
    analytic RF graph may still be read (``rfkit graph``): the message says which converter failed and why."""
