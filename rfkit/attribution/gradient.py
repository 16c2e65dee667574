"""The gradient family through captum: saliency, input x gradient, SmoothGrad, Integrated Gradients and guided
backprop, each on a whole batch (one target column per image), signed.

Every function returns the attribution of the input, ``(B, C, H, W)``; the engine sums it over colour
channels. captum's ``Saliency`` takes the absolute value by default: rfkit asks for the signed gradient
(``abs=False``), absolute views are a display choice.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from rfkit.attribution.methods import Settings


def noise_sigma(settings: Settings, data_config: dict) -> float:
    """SmoothGrad's noise sigma in model-input space: ``noise`` times the input range ``mean(1 / std)``.

    >>> noise_sigma(Settings(noise=0.25), {"std": (0.5, 0.5, 0.5)})
    0.5
    """
    std = data_config["std"]
    return settings.noise * sum(1.0 / s for s in std) / len(std)


def _saliency(model, x, targets, settings, data_config, baseline):
    from captum.attr import Saliency

    return Saliency(model).attribute(x, target=targets, abs=False)


def _input_x_gradient(model, x, targets, settings, data_config, baseline):
    from captum.attr import InputXGradient

    return InputXGradient(model).attribute(x, target=targets)


def noise_seed(seed: int, index: int) -> int:
    """The seed of SmoothGrad's noise for image ``index`` of the stream: one per image, so that the maps do not
    depend on the batch size or on how the images are shared among processes.

    >>> noise_seed(0, 0) != noise_seed(0, 1) != noise_seed(1, 0)
    True
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _smoothgrad(model, x, targets, settings, data_config, baseline, index=None):
    from captum.attr import NoiseTunnel, Saliency

    index = range(x.shape[0]) if index is None else index
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    out = []
    with torch.random.fork_rng(devices=devices):
        for i, k in enumerate(index):  # one image at a time: its noise is its own; the samples fill the batch
            torch.manual_seed(noise_seed(settings.seed, int(k)))
            out.append(
                NoiseTunnel(Saliency(model)).attribute(
                    x[i : i + 1],
                    nt_type="smoothgrad",
                    nt_samples=settings.samples,
                    nt_samples_batch_size=max(1, settings.batch_size),
                    stdevs=noise_sigma(settings, data_config),
                    target=targets[i : i + 1],
                    abs=False,
                )
            )
    return torch.cat(out)


def _ig(model, x, targets, settings, data_config, baseline):
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(
        x,
        baselines=baseline,
        target=targets,
        n_steps=settings.steps,
        method=settings.ig_method,
        internal_batch_size=max(settings.batch_size, x.shape[0]),
    )


def _guided_backprop(model, x, targets, settings, data_config, baseline):
    from captum.attr import GuidedBackprop

    return GuidedBackprop(model).attribute(x, target=targets)


_RUNNERS = {
    "saliency": _saliency,
    "input_x_gradient": _input_x_gradient,
    "smoothgrad": _smoothgrad,
    "ig": _ig,
    "guided_backprop": _guided_backprop,
}


def captum_attribution(
    name: str,
    model,
    x: torch.Tensor,
    targets: list[int],
    settings: Settings,
    data_config: dict,
    baseline: torch.Tensor | None = None,
    index=None,
) -> torch.Tensor:
    """The attribution of method ``name`` for the batch ``x``, ``(B, C, H, W)``.

    Parameters
    ----------
    name : str
        One of ``saliency``, ``input_x_gradient``, ``smoothgrad``, ``ig``, ``guided_backprop``.
    model : ScoreModel
        Input -> ``(B, K)`` scores.
    x : Tensor
        The batch, model-ready.
    targets : list of int
        The score column of each image.
    settings : Settings
    data_config : dict
        The model's preprocessing (SmoothGrad's noise scale).
    baseline : Tensor, optional
        ``ig``'s baseline, shaped like ``x``.
    index : sequence of int, optional
        Each image's index in the stream (default ``0 .. B - 1``): seeds SmoothGrad's noise image by image
        (:func:`noise_seed`).

    Examples
    --------
    Saliency of a linear model is its weights:

    >>> import torch.nn as nn
    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> x = torch.ones(1, 1, 2, 2)
    >>> a = captum_attribution("saliency", lin, x, [1], Settings(), {"std": (1.0,)})
    >>> torch.equal(a.flatten(), lin[1].weight[1].detach())
    True
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)
        x = x.detach().requires_grad_(True)
        if name == "smoothgrad":
            return _smoothgrad(model, x, targets, settings, data_config, baseline, index)
        return _RUNNERS[name](model, x, targets, settings, data_config, baseline)
