"""The image processor of a transformers model (``preprocessor_config.json``, or the defaults of the processor
transformers pairs with its model type) as the timm data config rfkit's image pipeline applies."""

from __future__ import annotations

import torch.nn as nn

#: PIL's resampling filters by number, as timm names them.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def default_processor(model_type: str | None) -> dict | None:
    """The defaults of the image processor transformers pairs with ``model_type`` (as a dict), or None."""
    if not model_type:
        return None
    try:
        from transformers.models.auto import image_processing_auto as ipa

        names = ipa.IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
        if isinstance(names, dict):
            name = names.get("pil") or next(iter(names.values()), None)
        else:
            name = next((n for n in names or () if n), None)
        cls = ipa.get_image_processor_class_from_name(name) if name else None
        return cls().to_dict() if cls is not None else None
    except Exception:  # noqa: BLE001 - a processor that needs an optional package: ImageNet defaults instead
        return None


def _pair(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def processor_data_config(processor: dict | None, image_size=None, channels: int = 3) -> dict:
    """An image processor config (``preprocessor_config.json``, or a processor's ``to_dict()``) as a timm data
    config, so that rfkit's timm eval transform reproduces it.

    - ``size: {height, width}``: resized to that size, aspect ratio not kept (``crop_mode="squash"``), then the
      centre ``crop_size`` if ``do_center_crop``;
    - ``size: {shortest_edge: s}`` with ``crop_pct`` (ConvNeXt): below 384 the shorter side goes to ``s / crop_pct``
      and the centre ``s × s`` is cut, from 384 on the image is resized to ``s × s``; with ``crop_size``: shorter
      side to ``s``, centre crop; without either: shorter side to ``s``, centre ``s × s`` (rfkit needs one size);
    - ``rescale_factor`` and ``image_mean/std`` are folded into timm's mean and std (timm divides by 255 first).

    ``image_size`` (the model config's) sets the input size where there is no processor config.

    Examples
    --------
    >>> cfg = processor_data_config({"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3,
    ...                              "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    >>> cfg["input_size"], cfg["crop_pct"], cfg["crop_mode"], cfg["interpolation"]
    ((3, 224, 224), 0.875, 'center', 'bicubic')
    >>> processor_data_config({"size": {"height": 512, "width": 512}})["crop_mode"]
    'squash'
    """
    from rfkit.models.data_config import IMAGENET_MEAN, IMAGENET_STD

    p = dict(processor or {})
    size, crop = p.get("size"), _dict_pair(p.get("crop_size"))
    size = {"height": size, "width": size} if isinstance(size, int) else dict(size or {})
    resize = _dict_pair(size)
    short = size.get("shortest_edge")
    crop_pct, mode = 1.0, "center"
    if resize:
        hw, mode = resize, "squash"
        if p.get("do_center_crop") and crop:
            hw, crop_pct = crop, crop[0] / resize[0]
    elif short:
        if p.get("crop_pct") and short < 384:
            hw, crop_pct = (short, short), float(p["crop_pct"])
        elif p.get("crop_pct"):
            hw, mode = (short, short), "squash"
        elif p.get("do_center_crop") and crop:
            hw, crop_pct = crop, crop[0] / short
        else:
            hw = (short, short)
    else:
        hw = _pair(image_size) or (224, 224)
    if processor is None or not (resize or short):
        hw = _pair(image_size) or hw
    mean = p.get("image_mean", IMAGENET_MEAN) if p.get("do_normalize", True) else (0.0,) * channels
    std = p.get("image_std", IMAGENET_STD) if p.get("do_normalize", True) else (1.0,) * channels
    scale = 255.0 * (float(p.get("rescale_factor", 1 / 255)) if p.get("do_rescale", True) else 1.0)
    resample = p.get("resample", 2)
    resample = getattr(resample, "value", resample)
    return {
        "input_size": (channels, int(hw[0]), int(hw[1])),
        "interpolation": _RESAMPLE.get(resample, "bilinear") if isinstance(resample, int) else "bilinear",
        "mean": tuple(_per_channel(mean, channels, 1 / scale)),
        "std": tuple(_per_channel(std, channels, 1 / scale)),
        "crop_pct": crop_pct,
        "crop_mode": mode,
    }


def _dict_pair(size) -> tuple[int, int] | None:
    if isinstance(size, dict) and size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    return None


def _per_channel(values, channels: int, factor: float) -> list[float]:
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    values = values if len(values) == channels else [sum(values) / len(values)] * channels
    return [round(v * factor, 10) for v in values]


def pretrained_cfg(view: nn.Module) -> dict:
    """``view.pretrained_cfg``: its checkpoint's image processor, else the default processor of its model type,
    with the input size of its config (``image_size``) where it has one."""
    config = view.config
    processor = view.__dict__.get("rfkit_processor")
    image_size = getattr(config, "image_size", None)
    if processor is None:
        processor = _sized(default_processor(getattr(config, "model_type", None)), _pair(image_size))
    return processor_data_config(processor, image_size, int(getattr(config, "num_channels", 3) or 3))


def _sized(processor: dict | None, hw: tuple[int, int] | None) -> dict | None:
    """A default processor made for the input size ``hw`` of the model's config, resizing the same way."""
    if processor is None or hw is None:
        return processor
    size = processor.get("size")
    if isinstance(size, dict) and size.get("shortest_edge") and not size.get("height"):
        processor = {**processor, "size": {"shortest_edge": hw[0]}}
        if processor.get("do_center_crop") and processor.get("crop_size"):
            processor["crop_size"] = {"height": hw[0], "width": hw[1]}
        return processor
    return {**processor, "size": {"height": hw[0], "width": hw[1]}, "do_center_crop": False}
