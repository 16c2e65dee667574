"""torchvision's detectors as rfkit measures them: the backbone (with its FPN), on the tensor the detector's
own transform makes of an image.

A detector's ``forward`` takes a list of images, resizes and normalises them (``GeneralizedRCNNTransform``:
shorter side to ``min_size`` = 800 for Faster/Mask/Keypoint R-CNN, RetinaNet and FCOS; a fixed 300×300 or
320×320 for SSD and SSDlite), runs the backbone, then heads whose proposals and boxes depend on the data
(nothing can trace those, and they have no receptive field of their own to speak of). What has one is the
backbone: every stage and every pyramid level. :class:`DetectorBackbone` is that part of the detector; its
input is the transformed tensor, so RFs, strides and ERFs are in the pixels of that tensor (an 800×800
image for the R-CNN family), not of the photo before the transform.

Its pyramid levels are named by the keys of the backbone's output: ``backbone[0]`` ... ``backbone[3]`` and
``backbone[pool]`` for an FPN with a max-pool level (P2-P5, P6), ``backbone[p6]``, ``backbone[p7]`` for
RetinaNet and FCOS; they are its stages (``feature_info``), so ``layers="stages"`` measures every level.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def is_detector(name: str) -> bool:
    """Whether torchvision's model ``name`` is a detector (``fasterrcnn_resnet50_fpn``, ``ssd300_vgg16``, ...).

    >>> is_detector("retinanet_resnet50_fpn"), is_detector("resnet50"), is_detector("deeplabv3_resnet50")
    (True, False, False)
    """
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        return False
    return builder.__module__.startswith("torchvision.models.detection")


def _level_keys(backbone: nn.Module, size: tuple[int, int]) -> list[str]:
    """The keys of the backbone's output (its pyramid levels), from a run on meta tensors."""
    from rfkit.models.spec import meta_copy

    with torch.no_grad():
        out = meta_copy(backbone).eval()(torch.empty((1, 3, *size), device="meta"))
    return [str(k) for k in out] if isinstance(out, dict) else [str(i) for i in range(len(out))]


class DetectorBackbone(nn.Module):
    """The backbone of a torchvision detector, fed the tensor the detector's transform makes of a square
    image (see the module docstring).

    Parameters
    ----------
    detector : nn.Module
        A torchvision detection model (anything with ``backbone`` and a ``GeneralizedRCNNTransform`` as
        ``transform``). Its backbone is shared, not copied.

    Attributes
    ----------
    feature_info : list of dict
        The pyramid levels, ``{"module": "backbone[KEY]", "level": KEY}``, as timm lists stages.
    pretrained_cfg : dict
        The input as the transform makes it: size, mean, std, and ``input_note``, which says so.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        transform = detector.transform
        fixed = getattr(transform, "fixed_size", None)
        size = tuple(fixed) if fixed else (int(transform.min_size[-1]),) * 2
        self.detector_name = type(detector).__name__
        self.pretrained_cfg = {
            "input_size": (3, *size),
            "mean": tuple(transform.image_mean),
            "std": tuple(transform.image_std),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "input_note": (
                f"the backbone of {self.detector_name}, fed what its {type(transform).__name__} makes of a "
                f"square image ({'a fixed' if fixed else 'resized to min_size'} {size[0]}×{size[1]}, normalised "
                "with image_mean/std): RFs and ERFs are in the pixels of that tensor"
            ),
        }
        self.feature_info = [{"module": f"backbone[{k}]", "level": k} for k in _level_keys(self.backbone, size)]

    def forward(self, x: torch.Tensor):
        return self.backbone(x)
