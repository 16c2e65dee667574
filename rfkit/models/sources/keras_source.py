"""Keras 3: ``keras:NAME`` (every model of ``keras.applications``), ``FILE.keras`` / ``FILE.h5`` (a saved model),
and Keras model objects, run on Keras' PyTorch backend (:mod:`rfkit.models.keras_build`,
:mod:`rfkit.models.keras_module`); the RF graph comes from Keras' layer graph (:mod:`rfkit.graph.keras_graph`).
Needs ``pip install 'rfkit[keras]'``."""

from __future__ import annotations

import torch.nn as nn

from rfkit.io import shown_path
from rfkit.models.keras_build import application_names, is_keras_file, is_keras_model
from rfkit.models.sources.base import ModelSource, ModelSpec, matches


class KerasSource(ModelSource):
    """Keras models: ImageNet weights (online or cached) or Keras' own seeded init; layers by Keras layer name."""

    name = "keras"
    description = "Keras 3 on its torch backend: keras:NAME (keras.applications), FILE.keras / FILE.h5 [rfkit[keras]]"
    layout = "NCHW (moved to Keras' NHWC inside)"
    layers = "Keras layer names (model.get_layer); OUTER.INNER inside a nested model"
    builds_for_size = True
    tracer = "rfkit.graph.keras_graph:trace_keras"
    meta = False

    def claims(self, text: str) -> bool:
        return is_keras_file(text)

    def parse(self, text: str) -> ModelSpec:
        name = text[len("keras:") :] if text.startswith("keras:") else text
        return ModelSpec(self.name, name, name if is_keras_file(name) else None)

    def spec_text(self, spec: ModelSpec) -> str:
        return spec.path if spec.path is not None else f"keras:{spec.name}"

    def shown(self, spec: ModelSpec, text: str) -> str:
        return shown_path(spec.path) if spec.path is not None else text

    def label(self, spec: ModelSpec) -> str:
        return shown_path(spec.path) if spec.path is not None else f"keras:{spec.name}"

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        from rfkit.models.keras_build import unavailable_reason

        names = []
        for n in application_names():
            if not matches(n, pattern):
                continue
            why = unavailable_reason(n)
            if why is None:
                names.append(f"keras:{n}")
            elif left_out is not None:
                left_out.append((f"keras:{n}", why))
        return names

    def size_kwargs(self, input_size) -> dict:
        size = (input_size,) * 2 if isinstance(input_size, int) else tuple(input_size)
        return {"img_size": size} if len(size) == 2 else {}

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        from rfkit.models.keras_build import build_spec

        return build_spec(spec, pretrained=pretrained, trust=trust, img_size=kwargs.get("img_size"))

    def library(self, spec: ModelSpec) -> str:
        return "keras"

    def load(self, spec: ModelSpec, mode: str, *, trust: bool, device, seed=None, path=None, input_size=None):
        """Every weights option Keras' way: its initialisers seeded, its init traps, its weight files."""
        from rfkit.models.keras_build import load_keras

        return load_keras(spec, mode, path, device, seed=seed, trust=trust, input_size=input_size)

    def owns(self, model) -> bool:
        from rfkit.models.keras_module import KerasModule

        return isinstance(model, KerasModule) or is_keras_model(model)

    def adopt(self, model, mode: str, path=None):
        from rfkit.models.keras_build import load_keras_object

        return load_keras_object(model, mode, path)
