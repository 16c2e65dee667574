"""ERF methods: one :class:`ERFMethod` record per definition of the ERF, in the registry :data:`ERF_METHODS`.

A method says how the measured unit's entries (its channels, for the images of a batch) become the scalar
whose input gradient is taken, how that gradient ``(B, C, H, W)`` becomes one map per image ``(B, H, W)``
(averaged over the images by :func:`rfkit.erf`), and which unit of a layer's grid it measures by default.

The two the community uses:

``"replknet"`` (Luo et al. 2016 as implemented in RepLKNet's ``erf/visualize_erf.py``, DESIGN.md):
score = ``relu(M[:, :, u]).sum()`` over channels, map = ``relu(grad).sum(over RGB)``, averaged over images.

``"openerf"`` (OpenERF 0.6, after the BMVC 2023 reference code): score = ``M[:, :, u].mean()`` over
channels (signed), map = ``grad.mean(over RGB).clamp(min=0)`` per image, averaged over images (OpenERF then
divides by the map's sum; rfkit keeps the raw average, the normalisation is a plotting/metrics choice).

Adding one is :func:`register_method` with a record; ``rfkit.erf(model, method=NAME)`` and
``rfkit erf --method NAME`` then use it.

>>> method_names()
['replknet', 'openerf']
>>> get_method("openrf")
Traceback (most recent call last):
...
rfkit.errors.ERFMethodError: unknown ERF method 'openrf' (close matches: openerf); use one of replknet, openerf
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rfkit.errors import ERFMethodError
from rfkit.graph.units import centre_unit
from rfkit.registry import NamedRegistry, unknown_name


def centre_of_grid(grid: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    """The default unit of a method: ``n // 2`` per axis of the layer's grid (RepLKNet's, DESIGN.md).

    >>> centre_of_grid((7, 8), tokens=False)
    (3, 4)
    """
    return centre_unit(grid)


@dataclass(frozen=True)
class ERFMethod:
    """One definition of the ERF.

    Attributes
    ----------
    name : str
        What ``method=`` and ``--method`` take.
    score : callable
        ``score(entries, batch)``: the scalar whose input gradient is taken, from the measured unit's entries
        (a tensor holding its ``batch`` images' channels; float32) — the sum over the batch of each image's
        own score, so that each image's gradient is its own.
    reduce : callable
        ``reduce(grad)``: the input gradient ``(B, C, H, W)`` (float32) to one non-negative map per image
        ``(B, H, W)``.
    summary : str
        One line: what it computes, after whom.
    unit : callable
        ``unit(grid, tokens)``: the unit measured by default on a layer whose grid has ``grid`` units per
        axis (``tokens``: the layer holds tokens, not an NCHW map); default the centre ``n // 2``.
    """

    name: str
    score: Callable[[torch.Tensor, int], torch.Tensor]
    reduce: Callable[[torch.Tensor], torch.Tensor]
    summary: str = ""
    unit: Callable[[tuple[int, ...], bool], tuple[int, ...]] = centre_of_grid


Method = ERFMethod  # its earlier name

__all__ = [
    "ERF_METHODS",
    "ERFMethod",
    "Method",
    "centre_of_grid",
    "default_unit",
    "get_method",
    "method_names",
    "register_method",
    "unknown_name",
]

ERF_METHODS: NamedRegistry[ERFMethod] = NamedRegistry("ERF method", ERFMethodError)
"""Every ERF method by name (:func:`register_method` adds one)."""


def register_method(method: ERFMethod, *, replace: bool = False) -> ERFMethod:
    """Make ``method`` available as ``rfkit.erf(..., method=method.name)`` and ``--method``.

    Raises
    ------
    ERFMethodError
        Not an :class:`ERFMethod`, a part that is not callable, or a name taken (without ``replace``).

    Examples
    --------
    >>> m = ERFMethod("abs", lambda entries, batch: entries.abs().sum(), lambda g: g.abs().sum(dim=1))
    >>> with ERF_METHODS.scoped():
    ...     _ = register_method(m)
    ...     method_names()
    ['replknet', 'openerf', 'abs']
    """
    if not isinstance(method, ERFMethod):
        raise ERFMethodError(f"register an ERFMethod record, not {type(method).__name__}")
    for part in ("score", "reduce", "unit"):
        if not callable(getattr(method, part)):
            raise ERFMethodError(f"ERF method {method.name!r}: {part} must be callable")
    return ERF_METHODS.register(method.name, method, replace=replace)


def get_method(name: str) -> ERFMethod:
    """The :class:`ERFMethod` called ``name``; an unknown name raises :class:`~rfkit.errors.ERFMethodError`
    (an :class:`~rfkit.errors.ArgumentError`) naming the close matches."""
    return ERF_METHODS.get(name)


def method_names() -> list[str]:
    """Every ERF method's name, in the order registered."""
    return ERF_METHODS.names()


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
    return tuple(get_method(method).unit(grid, tokens))


def _replknet_score(entries: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.relu(entries).sum()


def _openerf_score(entries: torch.Tensor, batch: int) -> torch.Tensor:
    # the sum over the batch of each image's channel mean (every image holds entries.numel() / batch)
    return entries.sum() * (batch / entries.numel())


def _replknet_reduce(grad: torch.Tensor) -> torch.Tensor:
    return torch.relu(grad).sum(dim=1)


def _openerf_reduce(grad: torch.Tensor) -> torch.Tensor:
    return grad.mean(dim=1).clamp(min=0)


def _openerf_unit(grid: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    return tuple((n - 1) // 2 for n in grid) if tokens else centre_unit(grid)


register_method(
    ERFMethod(
        "replknet",
        _replknet_score,
        _replknet_reduce,
        "relu(unit).sum() over channels; relu(grad) summed over RGB (Luo et al. 2016, RepLKNet)",
    )
)
register_method(
    ERFMethod(
        "openerf",
        _openerf_score,
        _openerf_reduce,
        "unit's channel mean (signed); grad mean over RGB, clamped at 0 (OpenERF 0.6, BMVC 2023)",
        _openerf_unit,
    )
)
