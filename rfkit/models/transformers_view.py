"""A transformers model as rfkit measures it: :func:`tensor_view`, the same module (same parameters, submodules
and module names) with a forward that takes the image tensor and returns one tensor, the first of
:data:`OUTPUT_FIELDS` its ``ModelOutput`` holds (``logits`` of a classifier or a segmentation head, else
``last_hidden_state``, ...); its ``pretrained_cfg`` is its image processor as a timm data config
(:mod:`rfkit.models.transformers_processor`) and its ``feature_info`` names its stages.
"""

from __future__ import annotations

import inspect
import sys
from functools import cache

import torch
import torch.nn as nn

from rfkit.models.transformers_processor import pretrained_cfg

#: Fields of a transformers ``ModelOutput`` that rfkit takes as the model's output: the first one present.
OUTPUT_FIELDS = ("logits", "predicted_depth", "reconstruction", "last_hidden_state", "feature_maps")


def model_output(out) -> torch.Tensor | tuple:
    """The tensor(s) rfkit reads from a transformers output: the first of :data:`OUTPUT_FIELDS` that is set,
    else the first tensor; a plain tensor or tuple passes through.

    >>> from transformers.modeling_outputs import BaseModelOutputWithPooling
    >>> out = BaseModelOutputWithPooling(last_hidden_state=torch.ones(1, 5, 2), pooler_output=torch.ones(1, 2))
    >>> tuple(model_output(out).shape)
    (1, 5, 2)
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        for name in OUTPUT_FIELDS:
            if out.get(name) is not None:
                return out[name]
        out = tuple(out.values())
    if isinstance(out, (tuple, list)):
        for value in out:
            if isinstance(value, torch.Tensor):
                return value
        return tuple(out)
    raise TypeError(f"a transformers model returned {type(out).__name__}, not a ModelOutput")


@cache
def _view_class(base: type) -> type:
    interpolate = "interpolate_pos_encoding" in inspect.signature(base.forward).parameters

    def forward(self, pixel_values: torch.Tensor):
        extra = {"interpolate_pos_encoding": True} if interpolate and square_grid(self.config) else {}
        return model_output(base.forward(self, pixel_values=pixel_values, **extra))

    forward.__doc__ = f"{base.__name__}.forward on ``pixel_values`` alone, returning :func:`model_output`."
    return type(
        base.__name__,
        (base,),
        {
            "forward": forward,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "pretrained_cfg": property(pretrained_cfg),
            "feature_info": property(_feature_info),
            "rfkit_view_of": base,
        },
    )


def square_grid(config) -> bool:
    """Whether the position embeddings of a model with this config can be interpolated to another input size:
    transformers resamples a square grid of them only. At the size they were made for, interpolating them
    returns them unchanged, so a square model is always run with ``interpolate_pos_encoding=True``; a model
    with a non-square ``image_size`` (rfkit builds one for a non-square input) runs at that size only.

    >>> from types import SimpleNamespace as C
    >>> square_grid(C(image_size=224)), square_grid(C(image_size=[224, 224])), square_grid(C(image_size=[224, 320]))
    (True, True, False)
    """
    size = getattr(config, "image_size", None)
    return isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1])


def _feature_info(view: nn.Module) -> list[dict]:
    """``view.feature_info``, the stages as timm names them (``layers="stages"``): the blocks of the module list that
    holds most parameters (SegFormer's ``segformer.stages``, ConvNeXt's ``encoder.stages``, a ViT's ``layers``),
    then a segmentation model's ``decode_head``."""
    best, most = None, -1
    for name, module in view.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 1:
            size = sum(p.numel() for p in module.parameters())
            if size > most:
                best, most = (name, len(module)), size
    stages = [{"module": f"{best[0]}.{i}"} for i in range(best[1])] if best else []
    head = [{"module": "decode_head"}] if isinstance(getattr(view, "decode_head", None), nn.Module) else []
    return stages + head


def tensor_view(model: nn.Module) -> nn.Module:
    """``model`` (a transformers ``PreTrainedModel``) as rfkit measures it: the same module, with the same state
    (parameters, submodules, module names, hooks, mode: shared, not copied), whose forward takes the image tensor
    and returns :func:`model_output`, whose ``pretrained_cfg`` is its preprocessing as a timm data config and whose
    ``feature_info`` names its stages.

    >>> import transformers
    >>> cfg = transformers.ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8)
    >>> hf = transformers.ResNetModel(cfg)
    >>> view = tensor_view(hf)
    >>> view.encoder is hf.encoder, tuple(view(torch.zeros(1, 3, 64, 64)).shape)
    (True, (1, 16, 8, 8))
    """
    if getattr(type(model), "rfkit_view_of", None) is not None:
        return model
    cls = _view_class(type(model))
    view = cls.__new__(cls)
    object.__setattr__(view, "__dict__", model.__dict__)  # one state, two classes
    return view


def as_measured(model):
    """``model``, or its :func:`tensor_view` if it is a transformers model (without importing transformers when
    it is not loaded: then no module can be one)."""
    tf = sys.modules.get("transformers")
    if tf is None or not isinstance(model, nn.Module) or getattr(type(model), "rfkit_view_of", None) is not None:
        return model
    return tensor_view(model) if isinstance(model, tf.PreTrainedModel) else model
