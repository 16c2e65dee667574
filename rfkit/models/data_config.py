"""The preprocessing a model expects, as a timm data config: input size, resize/crop, mean and std.

timm models carry it in their ``pretrained_cfg``; torchvision models in the transforms of their DEFAULT
weights (:func:`torchvision_data_config`); any other module gets :data:`DEFAULT_DATA_CONFIG`, with the input
size it says it was made for and the channels of its first convolution.
"""

from __future__ import annotations

from functools import cache

import torch.nn as nn

from rfkit.errors import ImageSourceError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Preprocessing for a module that says nothing about its input (torchvision's classic recipe:
#: resize to 256, centre crop 224, bilinear).
DEFAULT_DATA_CONFIG = {
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "crop_pct": 0.875,
    "crop_mode": "center",
}


def data_config_for(model: nn.Module, input_size=None, *, spec=None) -> dict:
    """The preprocessing a model expects, as a timm data config.

    Parameters
    ----------
    model : nn.Module
        A timm model (its ``pretrained_cfg`` is read through :func:`timm.data.resolve_data_config`), a
        torchvision model (pass ``spec``, or build it with :func:`rfkit.models.weights.load_model`, which
        attaches the config of its DEFAULT weights), or any module (:data:`DEFAULT_DATA_CONFIG`). May live on
        the meta device.
    input_size : int or (h, w) or (c, h, w), optional
        Override the input size; crop_pct, mean, std and interpolation are kept.
    spec : str or rfkit.models.spec.ModelSpec, optional
        The spec the model was built from; a model without its own config gets its source's (for
        ``torchvision:NAME`` the resize/crop/interpolation of the DEFAULT weights' transforms).

    Returns
    -------
    dict
        Keys ``input_size`` (C, H, W), ``interpolation``, ``mean``, ``std``, ``crop_pct``, ``crop_mode``.
        C is the first convolution's ``in_channels`` where there is one.

    Examples
    --------
    >>> import timm
    >>> m = timm.create_model("test_resnet", pretrained=False)
    >>> cfg = data_config_for(m, input_size=(64, 96))
    >>> cfg["input_size"], cfg["crop_pct"], cfg["mean"]
    ((3, 64, 96), 0.95, (0.5, 0.5, 0.5))
    >>> data_config_for(nn.Conv2d(1, 4, 3))["input_size"]
    (1, 224, 224)
    """
    from rfkit.models.sources import get_source
    from rfkit.models.spec import ModelSpec, default_input, parse_spec

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    own = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(own, dict) and own.get("input_size"):
        from timm.data import resolve_data_config

        cfg = dict(resolve_data_config({}, model=model))
        if own.get("input_note"):  # what the input is, where it is not a photo (a detector's transformed tensor)
            cfg["input_note"] = own["input_note"]
    elif isinstance(spec, ModelSpec) and (given := get_source(spec.source).data_config(spec)):
        cfg = given
    else:
        cfg = dict(DEFAULT_DATA_CONFIG)
        size, _ = default_input(model, spec)
        if size and len(size) == 2:
            cfg["input_size"] = (3, *size)
    c, h, w = cfg["input_size"]
    c = _first_conv_channels(model) or c
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if len(size) == 3:
            c, size = size[0], size[1:]
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ImageSourceError(f"input_size must be an int or (h, w) of positive ints, got {input_size!r}")
        h, w = size
    cfg["input_size"] = (int(c), int(h), int(w))
    for key in ("mean", "std"):
        cfg[key] = per_channel(cfg[key], int(c))
    return cfg


@cache
def _torchvision_cfg(name: str) -> tuple | None:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None
    kw = dict(getattr(weights.transforms, "keywords", {}) or {})
    crop = kw.get("crop_size") or kw.get("resize_size")  # segmentation weights resize only (crop_pct 1)
    if not crop:
        return None
    crop = crop[0] if isinstance(crop, (list, tuple)) else crop
    resize = kw.get("resize_size", 256) if kw.get("crop_size") else crop
    resize = resize[0] if isinstance(resize, (list, tuple)) else resize
    interp = kw.get("interpolation")
    interp = getattr(interp, "value", interp) or "bilinear"
    return (
        ("input_size", (3, crop, crop)),
        ("interpolation", str(interp)),
        ("mean", tuple(kw.get("mean", IMAGENET_MEAN))),
        ("std", tuple(kw.get("std", IMAGENET_STD))),
        ("crop_pct", crop / resize),
        ("crop_mode", "center"),
    )


def torchvision_data_config(name: str) -> dict | None:
    """The data config of torchvision model ``name``'s DEFAULT weights (None if it has none).

    ``crop_pct`` is ``crop_size / resize_size`` of the weights' transforms, so timm's eval transform
    reproduces torchvision's resize + centre crop.

    >>> torchvision_data_config("resnet50")["crop_pct"] == 224 / 232
    True
    """
    cfg = _torchvision_cfg(name)
    return dict(cfg) if cfg else None


def checked_config(data_config: dict) -> dict:
    if not isinstance(data_config, dict) or "input_size" not in data_config:
        raise ImageSourceError(
            "data_config must be a dict with 'input_size' (C, H, W): use "
            "rfkit.models.data_config.data_config_for(model)"
        )
    cfg = {**DEFAULT_DATA_CONFIG, **{k: v for k, v in data_config.items() if v is not None}}
    size = tuple(cfg["input_size"])
    if len(size) != 3 or not all(int(s) == s and s > 0 for s in size):
        raise ImageSourceError(f"data_config input_size must be (C, H, W) of positive ints, got {size!r}")
    c = int(size[0])
    mean, std = per_channel(cfg["mean"], c), per_channel(cfg["std"], c)
    if not mean or not std or min(std) <= 0:
        raise ImageSourceError(f"data_config needs a mean and a positive std per channel, got mean={mean}, std={std}")
    cfg.update(input_size=tuple(int(s) for s in size), mean=mean, std=std)
    return cfg


def per_channel(values, c: int) -> tuple[float, ...]:
    """One value per channel: as given if there are ``c``, else their average repeated (RGB -> greyscale)."""
    values = tuple(float(v) for v in values)
    if len(values) == c or not values:
        return values
    return (sum(values) / len(values),) * c


def _first_conv_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    return None
