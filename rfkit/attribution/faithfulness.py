"""Deletion and insertion curves (Petsiuk, Das, Saenko 2018, "RISE"): how fast the target score falls when
the pixels a map ranks highest are removed first, and how fast it rises when they are put in first.

For each image and map, pixels are ranked by the map's value (highest first; a signed map's most positive
pixels lead). At ``steps + 1`` fractions ``k / steps`` of the pixels:

- **deletion** replaces the top fraction with zeros in model-input space (the dataset-mean colour);
- **insertion** starts from the image blurred with Blur IG's largest sigma and puts the top fraction back.

The score is the target class's softmax probability (as RISE) for class targets and the unit's value for
unit targets. The AUC is the trapezoid area under the score over the fraction in [0, 1]: a faithful map has
a **low deletion** and a **high insertion** AUC. All ``steps + 1`` inputs of an image go through the model
together, ``batch_size`` per forward pass.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_STEPS = 16


def _masks(ranking: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps + 1, P) masks: row k marks the ``round(k / steps * P)`` highest-ranked of P pixels."""
    p = ranking.numel()
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) / steps * p).long()
    rank_of = torch.empty(p, dtype=torch.long)
    rank_of[ranking] = torch.arange(p)
    return rank_of.view(1, -1) < counts.view(-1, 1)


def _curve(score_fn, inputs: torch.Tensor, target: int, batch_size: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            out.append(score_fn(inputs[i : i + batch_size])[:, target].double().cpu())
    return torch.cat(out).numpy()


def curves(
    score_fn,
    x: torch.Tensor,
    maps: np.ndarray,
    targets: list[int],
    insert_from: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves, ``(N, steps + 1)`` each.

    Parameters
    ----------
    score_fn : callable
        ``(B, C, H, W)`` -> ``(B, K)`` scores (already probabilities for class targets).
    x : Tensor
        ``(N, C, H, W)`` model-ready images, on the model's device.
    maps : numpy.ndarray
        ``(N, H, W)`` maps ranking the pixels.
    targets : list of int
        The score column of each image.
    insert_from : Tensor
        ``(N, C, H, W)``: what insertion starts from.
    steps : int
    batch_size : int

    Examples
    --------
    A score that is the sum of the input: deleting the largest pixels first makes it fall fastest.

    >>> x = torch.tensor([[[[4.0, 1.0], [2.0, 3.0]]]])
    >>> fn = lambda t: t.sum(dim=(1, 2, 3)).view(-1, 1)
    >>> d, i = curves(fn, x, x[:, 0].numpy(), [0], torch.zeros_like(x), steps=4)
    >>> d.tolist(), i.tolist()
    ([[10.0, 6.0, 3.0, 1.0, 0.0]], [[0.0, 4.0, 7.0, 9.0, 10.0]])
    """
    n, c = x.shape[:2]
    deletion, insertion = [], []
    for i in range(n):
        ranking = torch.argsort(torch.from_numpy(np.ascontiguousarray(maps[i])).flatten(), descending=True, stable=True)
        mask = _masks(ranking, steps).to(x.device).view(steps + 1, 1, *x.shape[2:])
        image = x[i : i + 1]
        deleted = torch.where(mask, torch.zeros_like(image), image)
        inserted = torch.where(mask, image, insert_from[i : i + 1])
        deletion.append(_curve(score_fn, deleted, targets[i], batch_size))
        insertion.append(_curve(score_fn, inserted, targets[i], batch_size))
    return np.stack(deletion), np.stack(insertion)


def auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area under each row of ``curve`` over the fraction 0..1.

    >>> auc(np.array([[1.0, 0.5, 0.0]])).tolist()
    [0.5]
    """
    steps = curve.shape[-1] - 1
    return ((curve[..., :-1] + curve[..., 1:]) / 2).sum(axis=-1) / steps
