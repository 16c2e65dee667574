"""Blur Integrated Gradients (Xu, Venugopalan, Sundararajan, Yang 2020, "Attribution in Scale and Space").

The path runs from the image blurred with the largest sigma to the image itself, through Gaussian blurs of
decreasing sigma: ``gamma(s) = blur(x, s)``, ``s`` from ``max_sigma`` down to 0. The attribution is the path
integral of the gradient, ``int_{max}^{0} grad F(gamma(s)) * d gamma / d s  ds``. rfkit splits ``[0, max]``
into ``steps`` equal pieces and sums, per piece, the gradient at the blur of the piece's middle sigma times
the change of the blurred image across the piece, ``blur(x, s_k) - blur(x, s_k+1)`` (the midpoint rule on
the path increments); the attributions add up to about ``F(x) - F(blur(x, max_sigma))``, exactly for a
linear model. The authors' code (PAIR's ``saliency.core.BlurIG``, run by rfkit as ``blur_ig_pair``)
instead multiplies the gradient at the piece's left end by a forward difference of the blur in sigma
(``grad_step`` 0.01); since ``d blur / d sigma = sigma * laplacian(blur)`` vanishes at sigma 0, that misses most
of the first piece, where the image changes fastest, and the forward difference leaves a bias of order
``grad_step`` that more steps do not remove. Its blur also differs (zero padding, kernel to 4 sigma; here
reflect padding, kernel to 3 sigma), and on photographs at a 50 px blur that changes the path itself. The two
do not give the same maps (docs/attribution.md, "Blur IG: rfkit's rule and the authors'", measures it), so
both are offered and this one is ``blur_ig``.

The steps of one batch are fed to the model together, ``batch_size`` inputs per forward pass.
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


def blur_ig(
    model, x: torch.Tensor, targets: list[int], *, steps: int, max_sigma: float, batch_size: int | None = None
) -> torch.Tensor:
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
        Pieces of the path from ``max_sigma`` to 0.
    max_sigma : float
        The blur the path starts from, in pixels.
    batch_size : int, optional
        Inputs per forward pass (default: one step of the whole batch at a time).

    Examples
    --------
    For a linear score the sum over the path is exact:

    >>> import torch.nn as nn
    >>> torch.manual_seed(0) is not None
    True
    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    >>> x = torch.randn(1, 1, 8, 8)
    >>> a = blur_ig(lin, x, [0], steps=20, max_sigma=3.0)
    >>> with torch.no_grad():
    ...     delta = lin(x) - lin(gaussian_blur(x, 3.0))
    >>> abs(float(a.sum() - delta)) < 1e-5 * abs(float(delta))
    True
    """
    b = x.shape[0]
    chunk = max(1, (batch_size or b) // b)
    sigmas = [max_sigma * k / steps for k in range(steps + 1)]
    total = torch.zeros_like(x)
    tgt = torch.as_tensor(targets, device=x.device)
    x = x.detach()
    ends = gaussian_blur(x, sigmas[0])
    for start in range(0, steps, chunk):
        ks = range(start, min(start + chunk, steps))
        blurred = [ends] + [gaussian_blur(x, sigmas[k + 1]) for k in ks]
        middles = torch.cat([gaussian_blur(x, (sigmas[k] + sigmas[k + 1]) / 2) for k in ks])
        grads = _path_gradients(model, middles, tgt.repeat(len(ks))).view(len(ks), *x.shape)
        for i in range(len(ks)):
            total += grads[i] * (blurred[i] - blurred[i + 1])
        ends = blurred[-1]
    return total


def blur_ig_call(call) -> torch.Tensor:
    """:func:`blur_ig` for a :class:`~rfkit.attribution.registry.Call` (the registry's ``compute``)."""
    s = call.settings
    return blur_ig(call.model, call.x, call.targets, steps=s.steps, max_sigma=call.sigma, batch_size=s.batch_size)


def blur_start(call) -> torch.Tensor:
    """Where the path starts: the images blurred with the largest sigma."""
    return gaussian_blur(call.x, call.sigma)
