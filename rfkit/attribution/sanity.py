"""Built-in checks that a map means what it claims.

- **RF window** (unit targets): an input gradient attribution of a unit is zero outside the unit's analytic RF
  window (the input pixels it can see at all). :func:`outside_fraction` reports the share of ``|map|``
  outside it; anything but 0 means the graph's RF or the method is wrong.
- **Model randomisation** (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): the top ``k`` layers
  with parameters that the target depends on are re-initialised in a copy of the model and every method is
  run again on the same images and targets. :func:`rank_correlation` compares the maps (Spearman rank
  correlation of the absolute maps, per image); a method whose mean correlation is at least
  :data:`SANITY_THRESHOLD` barely changed and is flagged as **not model-sensitive**.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
import torch.nn as nn

#: Mean rank correlation from which a method counts as not model-sensitive.
SANITY_THRESHOLD = 0.8


@dataclass(frozen=True)
class SanityResult:
    """Model-randomisation check of one method.

    Attributes
    ----------
    method : str
    layers : tuple of str
        The modules re-initialised (the top ``k`` the target depends on, in graph order).
    rank_correlation : numpy.ndarray
        Per image, Spearman's rank correlation of ``|original map|`` and ``|map after randomisation|`` (NaN
        where either map is constant).
    """

    method: str
    layers: tuple[str, ...]
    rank_correlation: np.ndarray

    @property
    def mean(self) -> float:
        """Mean correlation over images (NaN images left out; NaN if all are)."""
        finite = self.rank_correlation[np.isfinite(self.rank_correlation)]
        return float(finite.mean()) if finite.size else float("nan")

    @property
    def model_sensitive(self) -> bool:
        """False when the maps barely changed (mean correlation >= :data:`SANITY_THRESHOLD`)."""
        return not self.mean >= SANITY_THRESHOLD


def window_mask(window, size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels inside ``((y0, y1), (x0, x1))`` (clipped to the image).

    >>> window_mask(((-1, 1), (2, 9)), (3, 5)).astype(int).tolist()
    [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    """
    mask = np.zeros(size, dtype=bool)
    (y0, y1), (x0, x1) = window
    mask[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
    return mask


def outside_fraction(maps: np.ndarray, window) -> np.ndarray:
    """Per image, ``sum |map| outside the window / sum |map|`` (0 for an all-zero map).

    >>> m = np.zeros((1, 4, 4)); m[0, 1, 1] = 3; m[0, 3, 3] = -1
    >>> outside_fraction(m, ((0, 2), (0, 2))).tolist()
    [0.25]
    """
    inside = window_mask(window, maps.shape[1:])
    mass = np.abs(maps).reshape(len(maps), -1).sum(axis=1)
    out = np.abs(maps[:, ~inside]).sum(axis=1)
    return np.where(mass > 0, out / np.where(mass > 0, mass, 1), 0.0)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image, Spearman's rank correlation of ``|a|`` and ``|b|`` (``(N, H, W)`` each).

    >>> a = np.arange(8.0).reshape(2, 2, 2)
    >>> rank_correlation(a, a ** 2).tolist(), bool(np.isnan(rank_correlation(a, 0 * a)).all())
    ([1.0, 1.0], True)
    """
    from scipy.stats import spearmanr

    out = []
    for x, y in zip(np.abs(a).reshape(len(a), -1), np.abs(b).reshape(len(b), -1)):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            out.append(np.nan)
        else:
            out.append(float(spearmanr(x, y).statistic))
    return np.asarray(out, dtype=np.float64)


def parameter_layers(g, model: nn.Module, target_node: str) -> list[str]:
    """Modules with parameters whose output the target depends on, in graph order."""
    needed = nx.ancestors(g.nx, target_node) | {target_node}
    named = dict(model.named_modules())
    names = [
        r.module
        for r in g.records.values()
        if r.kind == "call_module"
        and r.name in needed
        and r.module in named
        and any(True for _ in named[r.module].parameters())
    ]
    return list(dict.fromkeys(names))


def randomise(model: nn.Module, names: list[str], seed: int) -> None:
    """Re-initialise the modules ``names`` of ``model`` in place: ``reset_parameters()`` where a module has it
    (convolutions, linear layers, norms), else a normal draw with std 0.02."""
    named = dict(model.named_modules())
    gpus = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})  # their RNGs draw there
    with torch.random.fork_rng(devices=gpus), torch.no_grad():
        torch.manual_seed(seed)
        for name in names:
            for sub in named[name].modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
                    continue
                for p in sub.parameters(recurse=False):
                    nn.init.normal_(p, std=0.02)
