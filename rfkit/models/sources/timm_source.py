"""timm: ``resnet50``, ``resnet50.a1_in1k`` (a pretrained tag), ``timm:convnext_tiny``; the fallback
source, so a bare name is a timm name."""

from __future__ import annotations

from functools import lru_cache

import torch.nn as nn

import rfkit.validate as validate
from rfkit.errors import ModelNotFoundError
from rfkit.models.sources.base import ModelSource, ModelSpec, close_matches


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    """Every architecture timm registers."""
    import timm

    return tuple(timm.list_models())


class TimmSource(ModelSource):
    """timm's architectures, with or without a pretrained tag (``name.tag``); timm's data config, weights
    from the Hugging Face hub or timm's URLs (:func:`rfkit.models.weights.load_model`'s offline rules)."""

    name = "timm"
    description = "timm architectures (resnet50, resnet50.a1_in1k, vit_base_patch16_224, ...)"
    fallback = True
    builds_for_size = True

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        import timm

        return list(timm.list_models(pattern or "*", pretrained=pretrained))

    def size_kwargs(self, input_size) -> dict:
        return {"img_size": validate.input_size(input_size, fill=2)}

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        import timm

        name = spec.name
        arch = name.split(".", 1)[0]
        if not timm.is_model(arch):
            raise ModelNotFoundError(
                f"unknown model {name!r}: not a timm architecture.{close_matches(arch, timm_names())}"
                " Run `rfkit list-models PATTERN` to search, or use torchvision:NAME or FILE.py:FACTORY."
            )
        if "." in name:
            tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
            tag = name.split(".", 1)[1]
            if tag not in tags:
                known = ", ".join(tags) or "none"
                raise ModelNotFoundError(
                    f"{arch} has no pretrained tag {tag!r}.{close_matches(tag, tags)} Tags: {known}."
                )
        img_size = kwargs.pop("img_size", None)
        if img_size is not None:  # transformers with a fixed grid (ViT, Swin, ...) are built for that size
            try:
                return timm.create_model(name, pretrained=pretrained, img_size=img_size, **kwargs)
            except TypeError as e:  # a model without a fixed input size: its constructor takes no img_size
                if "img_size" not in str(e):
                    raise
        return timm.create_model(name, pretrained=pretrained, **kwargs)

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        from rfkit.models.weights import pretrained_timm

        return pretrained_timm(spec, device, **kwargs)
