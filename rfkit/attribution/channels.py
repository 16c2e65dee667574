"""How a method's output becomes one map per image: the channel rule (:data:`~rfkit.attribution.registry.
CHANNEL_RULES`) for per-channel attributions, ReLU and bilinear upsampling for CAMs."""

from __future__ import annotations

import torch

from rfkit.attribution.cam import upsample


def minmax(m: torch.Tensor) -> torch.Tensor:
    """Each image's map rescaled to [0, 1] by its own minimum and maximum (a constant map becomes zeros).

    >>> minmax(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])).tolist()
    [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    flat = m.flatten(1)
    low = flat.min(dim=1).values.view(-1, *([1] * (m.dim() - 1)))
    span = (flat.max(dim=1).values - flat.min(dim=1).values).view_as(low)
    return torch.where(span > 0, (m - low) / span.clamp(min=torch.finfo(m.dtype).tiny), torch.zeros_like(m))


def to_map(out: torch.Tensor, output: str, rule: str, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` from a method's ``output`` (``"input"``, ``"pixel"`` or ``"grid"``) under ``rule``.

    ``"sum"``: an input attribution summed over channels (signed); pixel maps as they are; CAM grids ReLU'd
    and upsampled. ``"max_relu_minmax"`` (seed 002's ``normalize_saliency``): the largest signed channel
    value, ReLU, min-max per image; pixel and CAM maps (one channel) ReLU'd and min-maxed.

    >>> a = torch.tensor([[[[1.0, -2.0]], [[3.0, -1.0]]]])  # (1, 2 channels, 1, 2)
    >>> to_map(a, "input", "sum", (1, 2)).tolist(), to_map(a, "input", "max_relu_minmax", (1, 2)).tolist()
    ([[[4.0, -3.0]]], [[[1.0, 0.0]]])
    """
    if output == "grid":
        m = upsample(out, size)
    elif output == "input":
        m = out.sum(dim=1) if rule == "sum" else out.amax(dim=1)
    else:
        m = out
    return m if rule == "sum" else minmax(m.clamp(min=0))
