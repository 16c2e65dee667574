"""Model sources: one object per kind of model rfkit builds, in one ordered registry.

Each source (:class:`ModelSource`) parses its specs, lists its models, builds them (weights, offline and
trust rules), and gives their data config, input layout, default input size and layer addressing. Adding a
source is one file holding a :class:`ModelSource` subclass and one line below (or one
:func:`register_source` call in your own code); ``docs/architecture.md`` has the recipe.
"""

from rfkit.models.sources.base import (
    ModelSource,
    ModelSpec,
    NoPretrained,
    PretrainedUnavailable,
    close_matches,
    matches,
)
from rfkit.models.sources.file_source import FileSource
from rfkit.models.sources.keras_source import KerasSource
from rfkit.models.sources.onnx_source import OnnxSource
from rfkit.models.sources.registry import (
    get_source,
    owner_of,
    register_source,
    source_for,
    source_names,
    unregister_source,
)
from rfkit.models.sources.timm_source import TimmSource
from rfkit.models.sources.torchvision_source import TorchvisionSource
from rfkit.models.sources.transformers_source import TransformersSource
from rfkit.models.sources.ultralytics_source import UltralyticsSource

register_source(TimmSource())
register_source(TorchvisionSource())
register_source(UltralyticsSource())
register_source(FileSource())
register_source(OnnxSource())
register_source(TransformersSource())
register_source(KerasSource())

__all__ = [
    "ModelSource",
    "ModelSpec",
    "NoPretrained",
    "PretrainedUnavailable",
    "close_matches",
    "get_source",
    "matches",
    "owner_of",
    "register_source",
    "source_for",
    "source_names",
    "unregister_source",
]
