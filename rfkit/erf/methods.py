"""The two ERF definitions the community uses, as a score on the measured unit and a reduction of the
input gradient to a 2-D map.

``"replknet"`` (Luo et al. 2016 as implemented in RepLKNet's ``erf/visualize_erf.py``, DESIGN.md):
score = ``relu(M[:, :, u]).sum()`` over channels, map = ``relu(grad).sum(over RGB)``, averaged over images.

``"openerf"`` (OpenERF 0.6, after the BMVC 2023 reference code): score = ``M[:, :, u].mean()`` over
channels (signed), map = ``grad.mean(over RGB).clamp(min=0)`` per image, averaged over images (OpenERF then
divides by the map's sum; rfkit keeps the raw average, the normalisation is a plotting/metrics choice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rfkit.errors import ArgumentError
from rfkit.graph.units import centre_unit

METHODS = ("replknet", "openerf")


@dataclass(frozen=True)
class Method:
    """How a unit's entries become the score, and an input gradient becomes per-image maps."""

    name: str
    score: Callable[[torch.Tensor, int], torch.Tensor]  # (entries of the unit, batch size) -> scalar
    reduce: Callable[[torch.Tensor], torch.Tensor]  # (B, C, H, W) gradient -> (B, H, W) maps


def _replknet_score(entries: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.relu(entries).sum()


def _openerf_score(entries: torch.Tensor, batch: int) -> torch.Tensor:
    # the sum over the batch of each image's channel mean (every image holds entries.numel() / batch)
    return entries.sum() * (batch / entries.numel())


def _replknet_reduce(grad: torch.Tensor) -> torch.Tensor:
    return torch.relu(grad).sum(dim=1)


def _openerf_reduce(grad: torch.Tensor) -> torch.Tensor:
    return grad.mean(dim=1).clamp(min=0)


_METHODS = {
    "replknet": Method("replknet", _replknet_score, _replknet_reduce),
    "openerf": Method("openerf", _openerf_score, _openerf_reduce),
}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (``"replknet"`` or ``"openerf"``)."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ArgumentError(f"unknown ERF method {name!r}: use one of {', '.join(METHODS)}") from None


def default_unit(method: str, grid: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    """The unit a method measures by default on a grid of ``grid`` units.

    RepLKNet takes ``n // 2`` per axis. OpenERF does the same on NCHW maps, but on token grids (ViT, and
    Swin's ``forward_features``) follows the BMVC 2023 code, whose flat index ``N/2 - ((N+1) % 2)(g/2 + 1)``
    is the upper-left of the four central tokens of an even grid: ``(n - 1) // 2`` per axis.

    >>> default_unit("replknet", (14, 14), tokens=True), default_unit("openerf", (14, 14), tokens=True)
    ((7, 7), (6, 6))
    >>> default_unit("openerf", (7, 7), tokens=False)
    (3, 3)
    """
    if method == "openerf" and tokens:
        return tuple((n - 1) // 2 for n in grid)
    return centre_unit(grid)
