"""Occlusion (Zeiler & Fergus 2014) through captum: the drop of the score when a square window of the image
is replaced by the baseline, averaged over the windows that cover each pixel.

The window covers every colour channel at once, so captum gives each channel the same value; the map is
that value, one per pixel, ``(B, H, W)``. Windows slide by ``stride`` and captum adds a last, clipped window
where the stride does not divide the image, so every pixel is covered. Each window is one forward pass:
about ``(H / stride) * (W / stride)`` per image, fed ``batch_size`` at a time.
"""

from __future__ import annotations

import torch

from rfkit.attribution.baselines import make_baseline
from rfkit.attribution.errors import MethodError
from rfkit.attribution.registry import Call

#: The default window is the input's larger side divided by this (16 px at 224 px).
WINDOW_FRACTION = 14


def window_and_stride(options, size: tuple[int, int]) -> tuple[int, int]:
    """The window side and stride in pixels: the options', or ``max(H, W) / 14`` (16 at 224) and half the
    window; :class:`MethodError` for a window larger than the image.

    >>> window_and_stride({"window": None, "stride": None}, (224, 224))
    (16, 8)
    >>> window_and_stride({"window": 5, "stride": None}, (32, 32))
    (5, 2)
    """
    window = options["window"] or max(1, round(max(size) / WINDOW_FRACTION))
    stride = options["stride"] or max(1, window // 2)
    if window > min(size):
        raise MethodError(
            f"option occlusion.window: {window} px is larger than the {size[0]}x{size[1]} input; pass a smaller "
            "one (--option occlusion.window=N)"
        )
    return window, stride


def occlusion(call: Call) -> torch.Tensor:
    """captum's ``Occlusion`` with a ``(C, window, window)`` window, the settings' baseline as the fill."""
    from captum.attr import Occlusion

    x = call.x.detach()
    channels, size = x.shape[1], tuple(x.shape[-2:])
    window, stride = window_and_stride(call.options, size)
    fill = make_baseline(call.settings.baseline, x, call.data_config, call.sigma)
    attr = Occlusion(call.model).attribute(
        x,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=fill,
        target=call.targets,
        perturbations_per_eval=max(1, call.settings.batch_size // x.shape[0]),
    )
    return attr.mean(dim=1)
