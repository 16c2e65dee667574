"""Resolve model specs (timm names, ``torchvision:NAME``, ``file.py:factory``) into modules."""

from rfkit.models.spec import ModelSpec, build_model, meta_copy, parse_spec

__all__ = ["ModelSpec", "build_model", "meta_copy", "parse_spec"]
