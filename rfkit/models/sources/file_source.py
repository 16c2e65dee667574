"""``FILE.py:FACTORY``: a function in a Python file that returns an ``nn.Module``. The file is imported (its
code runs), so it is built only with ``trust=True`` (``--trust``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch.nn as nn

from rfkit.errors import ArgumentError, ModelBuildError, ModelNotFoundError, UntrustedFileError
from rfkit.io import shown_path
from rfkit.models.sources.base import ModelSource, ModelSpec, NoPretrained, close_matches


class FileSource(ModelSource):
    """A factory in a Python file; its model's own weights are its default (``weights="auto"``)."""

    name = "file"
    description = "a factory function in your Python file: FILE.py:FACTORY (runs the file: needs --trust)"

    def claims(self, text: str) -> bool:
        return ".py:" in text

    def parse(self, text: str) -> ModelSpec:
        text = text[len("file:") :] if text.startswith("file:") else text
        path, colon, factory = text.rpartition(":")
        if not (colon and path and factory):
            raise ModelNotFoundError(f"model spec {text!r} names no factory: write FILE.py:FACTORY.")
        return ModelSpec(self.name, factory, path)

    def spec_text(self, spec: ModelSpec) -> str:
        return f"{spec.path}:{spec.name}"

    def shown(self, spec: ModelSpec, text: str) -> str:
        return f"{shown_path(spec.path)}:{spec.name}"

    def label(self, spec: ModelSpec) -> str:
        return spec.display_name

    def library(self, spec: ModelSpec) -> str:
        return spec.display_name

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        raise ArgumentError("the file source has no list of models: its models are your files (FILE.py:FACTORY)")

    def weights_as_built(self, spec: ModelSpec) -> bool:
        return True

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        raise NoPretrained(
            f"{self.label(spec)} is built by a factory, so rfkit cannot fetch pretrained "
            "weights for it: load them in the factory and use weights='auto', or pass "
            "a checkpoint path"
        )

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        path, factory = spec.path, spec.name
        file = Path(path)
        if not file.is_file():
            raise ModelNotFoundError(f"model file {path!r} does not exist (spec FILE.py:FACTORY).")
        if not trust:
            raise UntrustedFileError(
                f"{path} is Python code: to build {factory}() rfkit would import and run it, which it does only "
                "when told to trust the file (trust=True, --trust)"
            )
        mod_name = f"rfkit_user_model_{abs(hash(str(file.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, file)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise ModelBuildError(f"importing {path} failed: {type(e).__name__}: {e}") from e
        fn = getattr(module, factory, None)
        if fn is None or not callable(fn):
            names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
            raise ModelNotFoundError(f"{path} has no function {factory!r}.{close_matches(factory, names)}")
        model = fn(**kwargs)
        if not isinstance(model, nn.Module):
            raise ModelBuildError(f"{path}:{factory} returned {type(model).__name__}, not a torch.nn.Module.")
        return model
