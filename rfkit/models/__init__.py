"""Resolve model specs (timm names, ``torchvision:NAME``, ``ultralytics:...``, ``file.py:factory``, any registered
source: :mod:`rfkit.models.sources`) into modules."""

from rfkit.models.sources import ModelSource, get_source, register_source, source_names, unregister_source
from rfkit.models.spec import ModelSpec, build_model, meta_copy, parse_spec

__all__ = [
    "ModelSource",
    "ModelSpec",
    "build_model",
    "get_source",
    "meta_copy",
    "parse_spec",
    "register_source",
    "source_names",
    "unregister_source",
]
