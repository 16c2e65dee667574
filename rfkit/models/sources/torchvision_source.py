"""torchvision: ``torchvision:resnet50``; a detector (``torchvision:fasterrcnn_resnet50_fpn``) is its
backbone and FPN on the transformed tensor (:mod:`rfkit.models.detection`)."""

from __future__ import annotations

import inspect

import torch.nn as nn

from rfkit.errors import ModelNotFoundError
from rfkit.models.sources.base import ModelSource, ModelSpec, close_matches, matches


class TorchvisionSource(ModelSource):
    """torchvision's classification, segmentation, video and detection models; the preprocessing and input
    size of their DEFAULT weights' transforms."""

    name = "torchvision"
    description = "torchvision models (torchvision:resnet50; detectors: their backbone and FPN)"

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        import torchvision

        return [
            self.spec_text(ModelSpec(self.name, n)) for n in torchvision.models.list_models() if matches(n, pattern)
        ]

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        import torchvision

        name = spec.name
        names = torchvision.models.list_models()
        if name not in names:
            raise ModelNotFoundError(f"unknown torchvision model {name!r}.{close_matches(name, names)}")
        weights = "DEFAULT" if pretrained else None
        builder = torchvision.models.get_model_builder(name)
        if "weights_backbone" in inspect.signature(builder).parameters and "weights_backbone" not in kwargs:
            kwargs["weights_backbone"] = None if not pretrained else "DEFAULT"  # else it downloads the backbone
        model = torchvision.models.get_model(name, weights=weights, **kwargs)
        from rfkit.models.detection import DetectorBackbone, is_detector

        return DetectorBackbone(model) if is_detector(name) else model

    def default_input_size(self, spec: ModelSpec):
        import torchvision

        try:
            weights = torchvision.models.get_model_weights(spec.name)
        except (ValueError, KeyError):
            return None
        for w in weights:
            kw = getattr(w.transforms, "keywords", {})
            crop = kw.get("crop_size") or kw.get("resize_size")  # segmentation weights resize only
            if crop:
                crop = crop if isinstance(crop, (list, tuple)) else (crop, crop)
                return tuple(crop) if len(crop) == 2 else (crop[0], crop[0])
        return None

    def data_config(self, spec: ModelSpec):
        from rfkit.models.data_config import torchvision_data_config

        return torchvision_data_config(spec.name)

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        from rfkit.models.weights import pretrained_torchvision

        return pretrained_torchvision(spec, device)
