"""Which weights a model carries (:class:`WeightsInfo`: pretrained tag, checkpoint, random and its init, the
traps removed), the ``weights`` options there are (:data:`WEIGHT_OPTIONS`), and how a model's weights warnings are
raised (:func:`with_warnings`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch.nn as nn

from rfkit.errors import WeightsWarning

#: ``weights`` options other than a checkpoint path.
WEIGHT_OPTIONS = ("auto", "pretrained", "random", "random-safe", "as-given", "demo")


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a model carries, for reports.

    Attributes
    ----------
    kind : str
        ``"pretrained"``, ``"random"``, ``"random-safe"``, ``"checkpoint"`` or ``"as-given"``.
    description : str
        One line, e.g. ``"pretrained (timm resnet50.a1_in1k)"``, ``"checkpoint /path/x.pth"``.
    tag : str or None
        The pretrained weights actually loaded (``resnet50.a1_in1k``, ``ResNet50_Weights.IMAGENET1K_V2``).
    path : str or None
        The checkpoint file.
    warnings : tuple of str
        What a reader of the ERF must know (pretrained unobtainable, init traps left in place, ...).
    traps : tuple of str
        Parameters that make a randomly initialised model's ERF degenerate (:func:`detect_traps`); for
        ``"random-safe"`` the ones that were neutralised.
    changes : tuple of str
        What :func:`make_safe` changed (``"random-safe"`` only).
    """

    kind: str
    description: str
    tag: str | None = None
    path: str | None = None
    warnings: tuple[str, ...] = ()
    traps: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """Plain-data copy (lists instead of tuples), for JSON reports.

        >>> WeightsInfo("random", "random init").as_dict()["traps"]
        []
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def with_warnings(model: nn.Module, info: WeightsInfo) -> tuple[nn.Module, WeightsInfo]:
    """``(model, info)``, after warning (:class:`~rfkit.errors.WeightsWarning`) each of ``info.warnings``."""
    for w in info.warnings:
        warnings.warn(w, WeightsWarning, stacklevel=3)
    return model, info
