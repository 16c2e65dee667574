"""Reference inputs: the Integrated Gradients baselines and the Gaussian blur Blur IG and the insertion
metric start from.

Baselines live in **model-input space** (after the model's normalisation): ``"zeros"`` is the all-zero
tensor (the dataset-mean colour for a mean/std-normalised model), ``"black"`` a black picture
(``(0 - mean) / std`` per channel), ``"blur"`` the image blurred with :func:`default_sigma`, or a tensor
broadcastable to the input ``(C, H, W)`` / ``(N, C, H, W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rfkit.attribution.errors import BaselineError

BASELINES = ("zeros", "black", "blur")
#: Blur IG's largest sigma at 224 px (Xu et al. 2020); scaled with the input size by :func:`default_sigma`.
SIGMA_AT_224 = 50.0


def default_sigma(size) -> float:
    """The largest blur: 50 px at 224 px, in proportion to the larger input side.

    >>> default_sigma((224, 224)), default_sigma((32, 64))
    (50.0, 14.285714285714286)
    """
    return SIGMA_AT_224 * max(size) / 224


def _kernel(sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` (N, C, H, W) blurred per channel with a Gaussian of ``sigma`` pixels (separable, reflect padding;
    the kernel reaches ``3 sigma`` but never beyond the image, renormalised). ``sigma <= 0`` returns ``x``.

    >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1
    >>> y = gaussian_blur(x, 1.0)
    >>> round(float(y.sum()), 6), bool(y[0, 0, 4, 4] < 1), tuple(y.shape)
    (1.0, True, (1, 1, 9, 9))
    """
    if sigma <= 0:
        return x
    n, c, h, w = x.shape
    out = x.reshape(n * c, 1, h, w)
    for dim, size in ((2, h), (3, w)):
        radius = min(int(math.ceil(3 * sigma)), size - 1)
        if radius < 1:
            continue
        k = _kernel(sigma, radius, x)
        shape = (1, 1, -1, 1) if dim == 2 else (1, 1, 1, -1)
        pad = (0, 0, radius, radius) if dim == 2 else (radius, radius, 0, 0)
        out = F.conv2d(F.pad(out, pad, mode="reflect"), k.view(shape))
    return out.reshape(n, c, h, w)


def black(data_config: dict, like: torch.Tensor) -> torch.Tensor:
    """A black picture in model-input space, ``(0 - mean) / std`` per channel, shaped like ``like``."""
    mean = torch.tensor(data_config["mean"], dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return ((0 - mean) / std).expand_as(like).clone()


def check_baseline(baseline, input_shape: tuple[int, ...]) -> None:
    """:class:`BaselineError` for an unknown name or a tensor that does not broadcast to ``(N,) + input_shape``."""
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise BaselineError(
                f"unknown baseline {baseline!r}: use {', '.join(BASELINES)}, or a tensor of the "
                f"input's shape {tuple(input_shape)} in model-input space"
            )
        return
    if not isinstance(baseline, torch.Tensor):
        raise BaselineError(f"baseline must be {', '.join(BASELINES)} or a tensor, got {type(baseline).__name__}")
    shape = tuple(baseline.shape)
    fits = shape == tuple(input_shape) or (
        len(shape) == len(input_shape) + 1 and shape[1:] == tuple(input_shape) and shape[0] == 1
    )
    if not fits:
        raise BaselineError(
            f"baseline tensor of shape {shape} does not fit the input (C, H, W) = "
            f"{tuple(input_shape)}: pass (C, H, W) or (1, C, H, W) in model-input space"
        )


def make_baseline(baseline, x: torch.Tensor, data_config: dict, sigma: float) -> torch.Tensor:
    """The baseline for the batch ``x``, checked (:func:`check_baseline`)."""
    check_baseline(baseline, tuple(x.shape[1:]))
    if isinstance(baseline, torch.Tensor):
        return baseline.to(x.device, x.dtype).expand_as(x).clone()
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "black":
        return black(data_config, x)
    return gaussian_blur(x, sigma)
