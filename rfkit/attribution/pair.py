"""Guided IG, XRAI and the authors' Blur IG through PAIR's ``saliency`` package (``saliency.core``).

The package is framework-agnostic: each method takes one image as a NumPy array, channels last (its Blur IG
blurs the first two axes, its XRAI segments an ``H x W x C`` picture), and a function that returns the
gradient of the explained score for a batch of such arrays. rfkit gives it the model-ready image
``(C, H, W) -> (H, W, C)``, and the gradient of the score model's target column, computed in the model's
dtype on the model's device. Images are explained one at a time (the library's unit); the steps of one
image's path are fed ``batch_size`` at a time.
"""

from __future__ import annotations

import contextlib
import inspect

import numpy as np
import torch

from rfkit.attribution.baselines import make_baseline
from rfkit.attribution.registry import Call


def _gradients(call: Call):
    """The ``call_model_function`` of ``saliency.core``: input gradients of ``call_model_args["target"]``."""
    from saliency.core import INPUT_OUTPUT_GRADIENTS

    dtype, device = call.x.dtype, call.x.device

    def call_model(batch, call_model_args=None, expected_keys=None):
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).to(device, dtype).requires_grad_(True)
        with torch.enable_grad():
            score = call.model(x)[:, call_model_args["target"]].sum()
            (grad,) = torch.autograd.grad(score, x)
        return {INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).detach().cpu().double().numpy()}

    return call_model


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(1, 2, 0).cpu().double().numpy()


def _chw(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    a = np.asarray(a, dtype=np.float64)
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t.permute(2, 0, 1) if t.dim() == 3 else t
    return t.to(like.device, like.dtype)


def _per_image(call: Call, explain) -> torch.Tensor:
    fn = _gradients(call)
    maps = [explain(_hwc(image), fn, {"target": int(t)}, i) for i, (image, t) in enumerate(zip(call.x, call.targets))]
    return torch.stack([_chw(m, call.x) for m in maps])


def pair_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``saliency.core``'s blur of an ``H x W x C`` image: ``scipy.ndimage.gaussian_filter`` over the first
    two axes with zero (``"constant"``) padding, the kernel truncated at 4 sigma."""
    from saliency.core.blur_ig import gaussian_blur

    return gaussian_blur(image, sigma)


def blur_ig_start(call: Call) -> torch.Tensor:
    """Where the library's Blur IG path starts: each image blurred with the largest sigma, its way."""
    return torch.stack([_chw(pair_blur(_hwc(image), call.sigma), call.x) for image in call.x])


def blur_ig(call: Call) -> torch.Tensor:
    """``saliency.core.BlurIG().GetMask`` (Xu et al. 2020, the authors' code): ``steps`` sigmas evenly from 0
    to the largest, the gradient at each blurred image times a forward difference of the blur in sigma
    (``grad_step``)."""
    from saliency.core import BlurIG

    method, s = BlurIG(), call.settings

    def explain(image, fn, args, i):
        return method.GetMask(
            image,
            fn,
            args,
            max_sigma=call.sigma,
            steps=s.steps,
            grad_step=call.options["grad_step"],
            sqrt=False,
            batch_size=max(1, s.batch_size),
        )

    return _per_image(call, explain)


def baseline_start(call: Call) -> torch.Tensor:
    """The settings' baseline (``zeros``, ``black``, ``blur`` or a tensor) for the batch."""
    return make_baseline(call.settings.baseline, call.x, call.data_config, call.sigma)


class _NumpyWithQuantileInterpolation:
    """NumPy as ``saliency.core.guided_ig`` calls it: its ``np.quantile(..., interpolation="lower")`` is the
    keyword NumPy renamed ``method`` (deprecated in 1.22, since removed); everything else is NumPy itself."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs["method"] = interpolation
        return np.quantile(a, q, *args, **kwargs)


@contextlib.contextmanager
def _guided_ig_numpy():
    """Run the library's Guided IG with :class:`_NumpyWithQuantileInterpolation` where NumPy has no
    ``interpolation`` keyword any more."""
    import saliency.core.guided_ig as module

    if "interpolation" in inspect.signature(np.quantile).parameters:
        yield
        return
    saved = module.np
    module.np = _NumpyWithQuantileInterpolation()
    try:
        yield
    finally:
        module.np = saved


def guided_ig(call: Call) -> torch.Tensor:
    """``saliency.core.GuidedIG().GetMask`` (Kapishnikov et al. 2021) from ``call.start`` in ``steps``
    steps, moving the ``fraction`` of features with the smallest gradients, at most ``max_dist`` off the
    straight line."""
    from saliency.core import GuidedIG

    method, o = GuidedIG(), call.options

    def explain(image, fn, args, i):
        return method.GetMask(
            image,
            fn,
            args,
            x_baseline=_hwc(call.start[i]),
            x_steps=call.settings.steps,
            fraction=o["fraction"],
            max_dist=o["max_dist"],
        )

    with _guided_ig_numpy():
        return _per_image(call, explain)


def xrai(call: Call) -> torch.Tensor:
    """``saliency.core.XRAI().GetMask`` (Kapishnikov et al. 2019): Integrated Gradients from a black and a
    white image (the image's own minimum and maximum, the library's default) in ``ig_steps`` steps, their mean
    reduced over channels by the maximum, then Felzenszwalb segments of the image ranked by attribution
    density; each pixel gets its region's density. ``(B, H, W)``."""
    from saliency.core import XRAI, XRAIParameters

    method, o = XRAI(), call.options
    params = XRAIParameters(steps=o["ig_steps"], area_threshold=o["area_threshold"], algorithm=o["algorithm"])

    def explain(image, fn, args, i):
        return method.GetMask(image, fn, args, batch_size=max(1, call.settings.batch_size), extra_parameters=params)

    return _per_image(call, explain)
