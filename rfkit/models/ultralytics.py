"""Ultralytics YOLO models (the optional extra ``rfkit[yolo]``; ultralytics is imported only when used).

``ultralytics:yolo11n.yaml`` builds a model from one of the yaml files ultralytics ships (YOLOv3 to v12,
YOLO11, YOLO26, RT-DETR; a scale letter picks the size: ``yolov8s.yaml``, ``yolo11l-seg.yaml``) with random
weights, offline; ``ultralytics:PATH.yaml`` builds your own yaml. ``ultralytics:PATH.pt`` is a trained
checkpoint: ultralytics pickles whole model objects, so loading one runs the code it names, and rfkit loads
it only with ``trust=True`` (``--trust-checkpoint``).

The model's layers are ``model.0`` ... ``model.N`` (``13`` and ``9-1``, the element 1 of layer 9's tuple
output, are accepted as the YOLO world writes them: :meth:`rfkit.RFGraph.resolve`). Its preprocessing is
ultralytics' own (:data:`LETTERBOX`): a letterbox to 640×640 (a multiple of the model's largest stride),
grey padding, RGB, /255, no mean or std.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError, ModelBuildError, ModelNotFoundError

#: Input side of ultralytics' default preprocessing, in pixels.
IMAGE_SIZE = 640
#: Value of the padding the letterbox adds (ultralytics' grey).
PAD_VALUE = 114


def _ultralytics():
    os.environ.setdefault("YOLO_VERBOSE", "False")  # no banner, no per-layer table on stdout
    try:
        with torch.device("cpu"), kept_global_state():  # tensors made at import (Detect.anchors): not on meta
            import ultralytics
            import ultralytics.nn.tasks  # noqa: F401 - imported lazily otherwise, maybe under a meta device
    except ImportError:
        raise ModelBuildError(
            "ultralytics: specs need the ultralytics package: pip install 'rfkit[yolo]' (or pip install ultralytics)"
        ) from None
    return ultralytics


@contextmanager
def kept_global_state() -> Iterator[None]:
    """Undo, when the block ends, what importing ultralytics changes for the whole process: numpy's and
    torch's print options (it sets its own float format, which changes how every array prints) and Pillow's
    ``Image.open`` (:func:`restore_pillow_open`)."""
    import numpy as np

    numpy_options = np.get_printoptions()
    torch_options = copy.copy(torch._tensor_str.PRINT_OPTS)
    try:
        yield
    finally:
        np.set_printoptions(**numpy_options)
        torch.set_printoptions(
            precision=torch_options.precision,
            threshold=torch_options.threshold,
            edgeitems=torch_options.edgeitems,
            linewidth=torch_options.linewidth,
            sci_mode=torch_options.sci_mode,
        )
        restore_pillow_open()


def restore_pillow_open() -> None:
    """Put Pillow's own ``Image.open`` back. ultralytics replaces it when imported with a wrapper that, on a
    file Pillow cannot identify, tries to install the pi-heif package and fails with a ModuleNotFoundError:
    a broken image file must stay one skipped file, and rfkit installs nothing."""
    from PIL import Image

    patched = Image.open
    if getattr(patched, "__module__", "").startswith("ultralytics"):
        original = getattr(sys.modules.get(patched.__module__), "_image_open", None)
        if original is not None:
            Image.open = original


@cache
def bundled_yaml_names() -> tuple[str, ...]:
    """Every model name ultralytics builds from its bundled yaml files, with each scale letter spelt out
    (``yolo11n.yaml``, ``yolo11s.yaml``, ..., ``rtdetr-l.yaml``), sorted."""
    import yaml  # a dependency of ultralytics

    root = Path(_ultralytics().__file__).parent / "cfg" / "models"
    names = set()
    for path in root.rglob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        letters = [s for s in (spec.get("scales") or {}) if s in "nslmx"] if path.stem.startswith("yolo") else []
        for letter in letters or [""]:
            names.add(re.sub(r"(\d+)(.*)$", rf"\g<1>{letter}\g<2>", path.stem, count=1) + ".yaml")
    return tuple(sorted(names))


def build_yolo(name: str, *, trust: bool = False) -> nn.Module:
    """An ultralytics model built from a bundled yaml name (or a yaml file), random init, in eval mode; or,
    with ``trust``, the model pickled in a ``.pt`` checkpoint.

    Raises
    ------
    ModelNotFoundError
        No such bundled yaml and no such file (close matches named).
    CheckpointError
        A ``.pt`` file without ``trust`` (loading it runs the code it names), or one that holds no YOLO model.
    ModelBuildError
        ultralytics is not installed.
    """
    if name.endswith((".pt", ".pth")):
        if not trust:
            raise CheckpointError(
                f"ultralytics:{name} is a pickled model: loading it runs whatever code it names, so rfkit loads it "
                "only when told to trust it (trust=True, --trust-checkpoint); or build the architecture from its "
                "yaml (ultralytics:yolo11n.yaml)"
            )
        return _load_trusted(Path(name))
    if not name.endswith((".yaml", ".yml")):
        raise ModelNotFoundError(f"ultralytics:{name}: name a yaml file, e.g. ultralytics:yolo11n.yaml")
    ul = _ultralytics()
    if not Path(name).is_file() and name not in bundled_yaml_names():
        close = difflib.get_close_matches(name, bundled_yaml_names(), n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ModelNotFoundError(
            f"unknown ultralytics model {name!r}: not a yaml file ultralytics ships.{hint} "
            "`rfkit list-models --ultralytics` lists them."
        )
    with torch.device("cpu"):  # ultralytics makes tensors as it builds (and imports): never on the meta device
        cls = ul.RTDETR if Path(name).stem.startswith("rtdetr") else ul.YOLO
        model = cls(name).model  # a failure is named by rfkit.models.spec.build_model
    restore_pillow_open()
    attach_letterbox(model)
    return model.eval()


def _load_trusted(path: Path) -> nn.Module:
    """The model of an ultralytics checkpoint (its ``ema`` or ``model`` entry), unpickled: trusted code."""
    if not path.is_file():
        raise ModelNotFoundError(f"ultralytics checkpoint {path} does not exist")
    _ultralytics()  # the classes the pickle names
    try:
        with torch.device("cpu"):
            ckpt = torch.load(path, map_location="cpu", weights_only=False)  # trusted by the caller
    except Exception as e:  # noqa: BLE001 - an unreadable file is one line
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    model = next((ckpt.get(k) for k in ("ema", "model") if isinstance(ckpt, dict) and ckpt.get(k) is not None), None)
    if not isinstance(model, nn.Module) or not hasattr(model, "model"):
        found = ", ".join(map(str, list(ckpt)[:6])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not an ultralytics YOLO checkpoint: no 'ema' or 'model' entry holding a YOLO model "
            f"(found: {found})"
        )
    restore_pillow_open()
    return attach_letterbox(model.float().eval())


def attach_letterbox(model: nn.Module, size: int = IMAGE_SIZE) -> nn.Module:
    """Give an ultralytics model the data config of ultralytics' preprocessing (``pretrained_cfg``): letterbox
    to ``size`` rounded up to a multiple of its largest stride, grey padding, RGB, /255, no mean/std."""
    strides = getattr(model, "stride", None)
    stride = int(max(strides.tolist() if hasattr(strides, "tolist") else strides or [32]))
    side = -(-size // stride) * stride
    model.pretrained_cfg = {
        "input_size": (3, side, side),
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "letterbox",
        "input_note": (
            f"ultralytics' preprocessing: letterbox to the input size ({side}×{side} by default, a multiple of the "
            f"model's stride {stride}), grey ({PAD_VALUE}) padding, RGB, /255, no mean or std"
        ),
    }
    return model
