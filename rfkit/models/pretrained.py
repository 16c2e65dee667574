"""Pretrained weights of timm and torchvision models, through :mod:`rfkit.models.hub` (never hanging offline)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import torch.nn as nn

import rfkit.models.hub as hub  # hub._unreachable: looked up at each call (tests stand in for the network)
from rfkit.errors import ModelNotFoundError
from rfkit.models.hub import (
    _first_line,
    _hf_cached,
    _hub_name,
    _hub_offline,
    _hub_offline_env,
    _torch_hub_cached,
    _Unavailable,
)
from rfkit.models.spec import ModelSpec, build_model


def pretrained_timm(spec: ModelSpec, device, **build) -> tuple[nn.Module, str]:
    """timm model ``spec`` with its pretrained weights and their tag, without hanging offline (the host is
    probed first; offline, only the local Hugging Face / torch hub cache is used); raises
    :class:`PretrainedUnavailable` with the reason when they cannot be had."""
    import timm

    name = spec.name
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        build_model(spec)  # raises ModelNotFoundError with close matches
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # unknown tag
        build_model(spec)  # raises ModelNotFoundError listing the tags
        raise
    if cfg is None:
        raise _Unavailable(f"timm has no pretrained weights for {arch}")
    try:
        from timm.models._builder import _resolve_pretrained_source

        source, loc = _resolve_pretrained_source(cfg.to_dict())
    except Exception:  # noqa: BLE001 -- private helper; fall back on the obvious fields
        source, loc = ("hf-hub", cfg.hf_hub_id) if cfg.hf_hub_id else ("url", cfg.url) if cfg.url else ("", "")
    if not source:
        raise _Unavailable(f"timm has no pretrained weights for {name} (tag {cfg.tag!r} has no weight file)")
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else arch
    offline, why = False, None
    if source == "hf-hub":
        from huggingface_hub import constants

        offline = _hub_offline_env()
        why = "HF_HUB_OFFLINE is set" if offline else hub._unreachable(constants.ENDPOINT)
        offline = offline or why is not None
        if offline and not _hf_cached(loc):  # known before building: the model is built once, at random init
            raise _Unavailable(f"{why}, and {_hub_name(loc)} is not in the local Hugging Face cache")
    elif source == "url" and not _torch_hub_cached(loc):
        why = hub._unreachable(loc)
        if why:
            raise _Unavailable(f"{why}, and {os.path.basename(urlparse(loc).path)} is not in the torch hub cache")
    with _hub_offline(offline):
        try:
            model = build_model(spec, device=device, pretrained=True, **build)
        except ModelNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 -- any download/load failure means: not obtainable
            cause = e.__cause__ or e
            if offline:
                raise _Unavailable(f"{why}, and {_hub_name(loc)} is not in the local Hugging Face cache") from e
            raise _Unavailable(f"loading failed: {_first_line(cause)}") from e
    return model, tag


def pretrained_torchvision(spec: ModelSpec, device) -> tuple[nn.Module, str]:
    """torchvision model ``spec`` with its DEFAULT weights and their name (as :func:`pretrained_timm`)."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        build_model(spec)  # unknown name: ModelNotFoundError
        raise _Unavailable(f"torchvision has no pretrained weights for {spec.name}") from None
    if not _torch_hub_cached(weights.url):
        why = hub._unreachable(weights.url)
        if why:
            raise _Unavailable(f"{why}, and {os.path.basename(weights.url)} is not in the torch hub cache")
    try:
        model = build_model(spec, device=device, pretrained=True)
    except ModelNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _Unavailable(f"loading failed: {_first_line(e.__cause__ or e)}") from e
    return model, str(weights)
