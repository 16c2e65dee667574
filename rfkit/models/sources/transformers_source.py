"""Hugging Face transformers: ``transformers:CLASS`` (its default config, random init, offline),
``transformers:ORG/NAME[@REVISION]`` (a hub checkpoint), ``transformers:FOLDER`` (a ``save_pretrained`` folder),
each with optional ``?KEY=VALUE&...`` config overrides: :mod:`rfkit.models.transformers`."""

from __future__ import annotations

import os

import torch.nn as nn

import rfkit.validate as validate
from rfkit.io import shown_path
from rfkit.models.sources.base import ModelSource, ModelSpec, NoPretrained, PretrainedUnavailable


class TransformersSource(ModelSource):
    """transformers' vision models, seen as a module that takes the image tensor and returns one tensor (the
    first of ``logits``, ``last_hidden_state``, ...); their image processor as the data config; stages from their
    largest module list; checkpoint weights from the hub, its cache or a folder (data only: safetensors, or
    ``pytorch_model.bin`` read with ``weights_only``); custom modelling code only with trust."""

    name = "transformers"
    description = "Hugging Face transformers vision models (transformers:CLASS, :ORG/NAME, :FOLDER; ?KEY=VALUE)"
    layers = "module names (model.named_modules()), as in transformers"
    builds_for_size = True

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        from rfkit.models.transformers import image_classes

        skipped: list[tuple[str, str]] = []
        names = image_classes(None if pattern in (None, "*") else pattern, skipped)
        if left_out is not None:
            left_out.extend((self.spec_text(ModelSpec(self.name, n)), why) for n, why in skipped)
        return [self.spec_text(ModelSpec(self.name, n)) for n in names]

    def shown(self, spec: ModelSpec, text: str) -> str:
        return f"{self.name}:{shown_path(spec.name)}" if os.path.isabs(spec.name) else text

    def size_kwargs(self, input_size) -> dict:
        return {"img_size": validate.input_size(input_size, fill=2)}

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        from rfkit.models.transformers import build_transformers

        return build_transformers(spec.name, pretrained=pretrained, trust=trust, img_size=kwargs.get("img_size"))

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        """A hub or folder checkpoint with its weights; a class has none (:class:`NoPretrained`)."""
        from rfkit.models import transformers as hf
        from rfkit.models.spec import build_model
        from rfkit.models.weights import _hub_offline

        target = hf.parse_target(spec.name)
        hf.require_transformers()
        label = self.label(spec)
        if target.kind == "class":
            hf.model_class(target.name)  # an unknown class: ModelNotFoundError with close matches
            raise NoPretrained(
                f"{label} names a class, built from its default config without trained weights: name a checkpoint "
                "(transformers:ORG/NAME or transformers:FOLDER), pass a checkpoint path, or use weights='random-safe'",
                f"{label} is built from its default config: random init with the init traps neutralised "
                "(weights='random-safe'): the ERF reflects the architecture, not training",
            )
        why = hf.hub_offline_reason() if target.kind == "hub" else None
        if not hf.weight_file(target):
            raise PretrainedUnavailable(
                f"{why}, and no weight file of {target.name} is in the local Hugging Face cache"
                if why
                else f"{target.name} has no weight file ({', '.join(hf.WEIGHT_FILES[::2])})"
            )
        with _hub_offline(why is not None):
            model = build_model(spec, device=device, pretrained=True)
        tag = f"{target.name}@{target.revision}" if target.revision else target.name
        return model, shown_path(tag) if target.kind == "folder" else tag
