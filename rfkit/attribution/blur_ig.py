"""Blur Integrated Gradients (Xu, Venugopalan, Sundararajan, Yang 2020, "Attribution in Scale and Space").

The path runs from the image blurred with the largest sigma to the image itself, through Gaussian blurs of
decreasing sigma: ``gamma(s) = blur(x, s)``, ``s`` from ``max_sigma`` down to 0. The attribution is the path
integral of the gradient, ``int_{max}^{0} grad F(gamma(s)) * d gamma / d s  ds``, approximated with
``steps`` left Riemann steps in ``s`` and a forward difference (``grad_step``) for ``d gamma / d s``, as in
the authors' reference code. The attributions add up to about ``F(x) - F(blur(x, max_sigma))``.

Neither captum nor pytorch-grad-cam has Blur IG, so rfkit writes it here; the steps of one batch are fed
to the model together, ``batch_size`` inputs per forward pass.
"""

from __future__ import annotations

import torch

from rfkit.attribution.baselines import gaussian_blur


def _path_gradients(model, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gradient of each point's target score with respect to the point (points of several steps stacked)."""
    points = points.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = model(points)
        chosen = scores.gather(1, targets.view(-1, 1)).sum()
        return torch.autograd.grad(chosen, points)[0]


def blur_ig(model, x: torch.Tensor, targets: list[int], *, steps: int, max_sigma: float, grad_step: float = 0.01,
            batch_size: int | None = None) -> torch.Tensor:
    """Blur IG attribution of the batch ``x`` for the score columns ``targets``, ``(B, C, H, W)``.

    Parameters
    ----------
    model : callable
        Input -> ``(B, K)`` scores.
    x : Tensor
        ``(B, C, H, W)``, model-ready.
    targets : list of int
        The score column of each image.
    steps : int
        Riemann steps from ``max_sigma`` to 0.
    max_sigma : float
        The blur the path starts from, in pixels.
    grad_step : float
        Step in sigma of the forward difference of the blur.
    batch_size : int, optional
        Inputs per forward pass (default: one step of the whole batch at a time).

    Examples
    --------
    For a linear score the path integral is exact up to the blur derivative's forward difference:

    >>> import torch.nn as nn
    >>> torch.manual_seed(0) is not None
    True
    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    >>> x = torch.randn(1, 1, 8, 8)
    >>> a = blur_ig(lin, x, [0], steps=20, max_sigma=3.0)
    >>> with torch.no_grad():
    ...     delta = lin(x) - lin(gaussian_blur(x, 3.0))
    >>> abs(float(a.sum() - delta)) < 0.02 * abs(float(delta))
    True
    """
    b = x.shape[0]
    chunk = max(1, (batch_size or b) // b)
    sigmas = [max_sigma * k / steps for k in range(steps + 1)]
    total = torch.zeros_like(x)
    tgt = torch.as_tensor(targets, device=x.device)
    x = x.detach()
    for start in range(0, steps, chunk):
        ks = range(start, min(start + chunk, steps))
        points = torch.cat([gaussian_blur(x, sigmas[k]) for k in ks])
        shifted = torch.cat([gaussian_blur(x, sigmas[k] + grad_step) for k in ks])
        grads = _path_gradients(model, points, tgt.repeat(len(ks)))
        weights = torch.tensor([sigmas[k + 1] - sigmas[k] for k in ks], dtype=x.dtype, device=x.device)
        terms = (shifted - points) / grad_step * grads
        total += (terms.view(len(ks), *x.shape) * weights.view(-1, 1, 1, 1, 1)).sum(dim=0)
    return -total
