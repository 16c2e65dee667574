"""The gradient family through captum: saliency, input x gradient, SmoothGrad, Integrated Gradients, guided
backprop and Guided Grad-CAM, each on a whole batch (one target column per image), signed.

Every function takes a :class:`~rfkit.attribution.registry.Call` and returns the attribution of the input,
``(B, C, H, W)``; the engine combines the channels. captum's ``Saliency`` takes the absolute value by
default: rfkit asks for the signed gradient (``abs=False``), absolute views are a display choice.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from rfkit.attribution.registry import Call
from rfkit.attribution.settings import Settings


@contextlib.contextmanager
def _quiet_relu_hooks():
    """captum warns on every call with guided backprop that it sets backward hooks on ReLU modules."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)
        yield


def _input(call: Call) -> torch.Tensor:
    return call.x.detach().requires_grad_(True)


def noise_sigma(settings: Settings, data_config: dict) -> float:
    """SmoothGrad's noise sigma in model-input space: ``noise`` times the input range ``mean(1 / std)``.

    >>> noise_sigma(Settings(noise=0.25), {"std": (0.5, 0.5, 0.5)})
    0.5
    """
    std = data_config["std"]
    return settings.noise * sum(1.0 / s for s in std) / len(std)


def noise_seed(seed: int, index: int) -> int:
    """The seed of SmoothGrad's noise for image ``index`` of the stream: one per image, so that the maps do not
    depend on the batch size or on how the images are shared among processes.

    >>> noise_seed(0, 0) != noise_seed(0, 1) != noise_seed(1, 0)
    True
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def saliency(call: Call) -> torch.Tensor:
    """captum's ``Saliency(abs=False)``: the signed gradient.

    Examples
    --------
    Saliency of a linear model is its weights:

    >>> import torch.nn as nn
    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> call = Call(lin, torch.ones(1, 1, 2, 2), [1], Settings(), {}, {"std": (1.0,)}, 1.0, [0])
    >>> torch.equal(saliency(call).flatten(), lin[1].weight[1].detach())
    True
    """
    from captum.attr import Saliency

    return Saliency(call.model).attribute(_input(call), target=call.targets, abs=False)


def input_x_gradient(call: Call) -> torch.Tensor:
    """captum's ``InputXGradient``."""
    from captum.attr import InputXGradient

    return InputXGradient(call.model).attribute(_input(call), target=call.targets)


def smoothgrad(call: Call) -> torch.Tensor:
    """captum's ``NoiseTunnel(Saliency)``, one image at a time, its noise seeded by its place in the stream."""
    from captum.attr import NoiseTunnel, Saliency

    x, settings = _input(call), call.settings
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    out = []
    with torch.random.fork_rng(devices=devices):
        for i, k in enumerate(call.index):  # one image at a time: its noise is its own; the samples fill the batch
            torch.manual_seed(noise_seed(settings.seed, int(k)))
            out.append(
                NoiseTunnel(Saliency(call.model)).attribute(
                    x[i : i + 1],
                    nt_type="smoothgrad",
                    nt_samples=settings.samples,
                    nt_samples_batch_size=max(1, settings.batch_size),
                    stdevs=noise_sigma(settings, call.data_config),
                    target=call.targets[i : i + 1],
                    abs=False,
                )
            )
    return torch.cat(out)


def integrated_gradients(call: Call) -> torch.Tensor:
    """captum's ``IntegratedGradients`` from ``call.start`` at ``settings.steps`` with ``settings.ig_method``."""
    from captum.attr import IntegratedGradients

    x = _input(call)
    return IntegratedGradients(call.model).attribute(
        x,
        baselines=call.start,
        target=call.targets,
        n_steps=call.settings.steps,
        method=call.settings.ig_method,
        internal_batch_size=max(call.settings.batch_size, x.shape[0]),
    )


def guided_backprop(call: Call) -> torch.Tensor:
    """captum's ``GuidedBackprop`` (negative gradients stopped at every ``nn.ReLU`` module)."""
    from captum.attr import GuidedBackprop

    with _quiet_relu_hooks():
        return GuidedBackprop(call.model).attribute(_input(call), target=call.targets)


def guided_gradcam(call: Call) -> torch.Tensor:
    """captum's ``GuidedGradCam`` on the CAM layer: guided backprop times Grad-CAM (ReLU'd), upsampled
    bilinearly as in Selvaraju et al. (captum's default is nearest)."""
    from captum.attr import GuidedGradCam

    with _quiet_relu_hooks():
        return GuidedGradCam(call.model, call.layer.module).attribute(
            _input(call), target=call.targets, interpolate_mode="bilinear"
        )
