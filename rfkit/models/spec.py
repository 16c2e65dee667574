"""Model specs.

A spec is one of

- a timm name, with or without a pretrained tag: ``resnet50``, ``resnet50.a1_in1k``;
- ``torchvision:NAME``: a torchvision model (``torchvision:resnet50``); for a detector
  (``torchvision:fasterrcnn_resnet50_fpn``) its backbone and FPN, on the transformed tensor
  (:mod:`rfkit.models.detection`);
- ``ultralytics:yolo11n.yaml``: an ultralytics YOLO built from a yaml file (:mod:`rfkit.models.ultralytics`);
- ``keras:NAME`` (``keras.applications``), ``FILE.keras`` / ``FILE.h5``: a Keras 3 model on Keras' torch
  backend (:mod:`rfkit.models.keras_source`);
- ``path/to/file.py:factory``: a function in a Python file that returns an ``nn.Module``; the file is
  imported (its code runs), so it is built only with ``trust=True`` (``--trust``).

Built for analysis, a model lives on the meta device: no weights, no memory.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError, ModelBuildError, ModelNotFoundError, UntrustedFileError
from rfkit.io import shown_path
from rfkit.models.keras_source import is_keras_file


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes
    ----------
    source : str
        ``"timm"``, ``"torchvision"``, ``"ultralytics"``, ``"keras"`` or ``"file"``.
    name : str
        Model name (timm name with tag, torchvision name, keras.applications name, file, or factory name).
    path : str or None
        The Python file, for ``"file"`` specs; the saved model, for a ``"keras"`` file.
    """

    source: str
    name: str
    path: str | None = None

    @property
    def display_name(self) -> str:
        return self.name if self.source != "file" else f"{Path(self.path).stem}:{self.name}"


def shown_spec(spec: str) -> str:
    """A model spec as people read it (figures, reports, sites): a ``FILE.py:FACTORY`` spec's file relative
    to where rfkit runs when inside it, else its file name (:func:`rfkit.io.shown_path`); other specs as given.

    >>> import os
    >>> shown_spec("resnet50.a1_in1k"), shown_spec(os.path.join(os.getcwd(), "nets", "my.py") + ":build")
    ('resnet50.a1_in1k', 'nets/my.py:build')
    >>> shown_spec("/elsewhere/ann/my.py:build")
    'my.py:build'
    """
    parsed = parse_spec(spec)
    if parsed.source == "file":
        return f"{shown_path(parsed.path)}:{parsed.name}"
    if parsed.source == "ultralytics" and os.path.isabs(parsed.name):
        return f"ultralytics:{shown_path(parsed.name)}"
    if parsed.source == "keras" and parsed.path is not None:
        return shown_path(parsed.path)
    return spec


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string.

    >>> parse_spec("resnet50.a1_in1k")
    ModelSpec(source='timm', name='resnet50.a1_in1k', path=None)
    >>> parse_spec("torchvision:vgg16").source
    'torchvision'
    >>> parse_spec("nets/mine.py:build")
    ModelSpec(source='file', name='build', path='nets/mine.py')
    >>> parse_spec("keras:ResNet50"), parse_spec("nets/cnn.keras").path
    (ModelSpec(source='keras', name='ResNet50', path=None), 'nets/cnn.keras')
    """
    spec = spec.strip()
    if spec.startswith("torchvision:"):
        return ModelSpec("torchvision", spec.split(":", 1)[1])
    if spec.startswith("ultralytics:"):
        return ModelSpec("ultralytics", spec.split(":", 1)[1])
    if spec.startswith("timm:"):
        return ModelSpec("timm", spec.split(":", 1)[1])
    if spec.startswith("keras:") or is_keras_file(spec):
        name = spec.split(":", 1)[1] if spec.startswith("keras:") else spec
        return ModelSpec("keras", name, name if is_keras_file(name) else None)
    if ".py:" in spec:
        path, factory = spec.rsplit(":", 1)
        return ModelSpec("file", factory, path)
    return ModelSpec("timm", spec)


@lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def _close(name: str, names) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f" Close matches: {', '.join(close)}." if close else ""


def _build_timm(name: str, pretrained: bool, **kwargs) -> nn.Module:
    import timm

    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        raise ModelNotFoundError(
            f"unknown model {name!r}: not a timm architecture.{_close(arch, _timm_names())}"
            " Run `rfkit list-models PATTERN` to search, or use torchvision:NAME or FILE.py:FACTORY."
        )
    if "." in name:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        tag = name.split(".", 1)[1]
        if tag not in tags:
            raise ModelNotFoundError(
                f"{arch} has no pretrained tag {tag!r}.{_close(tag, tags)} Tags: {', '.join(tags) or 'none'}."
            )
    img_size = kwargs.pop("img_size", None)
    if img_size is not None:  # transformers with a fixed grid (ViT, Swin, ...) are built for that size
        try:
            return timm.create_model(name, pretrained=pretrained, img_size=img_size, **kwargs)
        except TypeError as e:  # a model without a fixed input size: its constructor takes no img_size
            if "img_size" not in str(e):
                raise
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def _build_torchvision(name: str, pretrained: bool, **kwargs) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models()
    if name not in names:
        raise ModelNotFoundError(f"unknown torchvision model {name!r}.{_close(name, names)}")
    weights = "DEFAULT" if pretrained else None
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters and "weights_backbone" not in kwargs:
        kwargs["weights_backbone"] = None if not pretrained else "DEFAULT"  # else it downloads the backbone
    model = torchvision.models.get_model(name, weights=weights, **kwargs)
    from rfkit.models.detection import DetectorBackbone, is_detector

    return DetectorBackbone(model) if is_detector(name) else model


def _build_ultralytics(name: str, trust: bool) -> nn.Module:
    from rfkit.models.ultralytics import build_yolo

    return build_yolo(name, trust=trust)


def _build_file(path: str, factory: str, trust: bool, **kwargs) -> nn.Module:
    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"model file {path!r} does not exist (spec FILE.py:FACTORY).")
    if not trust:
        raise UntrustedFileError(
            f"{path} is Python code: to build {factory}() rfkit would import and run it, which it does only when "
            "told to trust the file (trust=True, --trust)"
        )
    mod_name = f"rfkit_user_model_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ModelBuildError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ModelNotFoundError(f"{path} has no function {factory!r}.{_close(factory, names)}")
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelBuildError(f"{path}:{factory} returned {type(model).__name__}, not a torch.nn.Module.")
    return model


def build_model(
    spec: str | ModelSpec,
    *,
    device: str | torch.device = "meta",
    pretrained: bool = False,
    trust: bool = False,
    **kwargs,
) -> nn.Module:
    """Build the model named by ``spec`` on ``device`` (default: meta, i.e. no weights), in eval mode.

    ``trust`` lets a spec run code from a file: a ``FILE.py:FACTORY`` spec (the file is imported and its
    factory called), an ``ultralytics:`` ``.pt`` checkpoint (unpickled) or a yaml rfkit did not ship whose
    fields ultralytics evaluates (:mod:`rfkit.models.ultralytics`). Without it such a spec is refused.

    Raises
    ------
    ModelNotFoundError
        The spec names nothing that exists (the message lists close matches).
    UntrustedFileError
        A file that can run code, without ``trust``.
    ModelBuildError
        Building failed.

    Examples
    --------
    >>> m = build_model("resnet18")
    >>> next(m.parameters()).device.type
    'meta'
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.source == "keras":  # Keras builds its variables itself, on the CPU: never on the meta device
        from rfkit.models.keras_source import build_spec

        return build_spec(spec, pretrained=pretrained, trust=trust, device=device, **kwargs)
    builders = {
        "timm": lambda: _build_timm(spec.name, pretrained, **kwargs),
        "torchvision": lambda: _build_torchvision(spec.name, pretrained, **kwargs),
        "file": lambda: _build_file(spec.path, spec.name, trust, **kwargs),
        "ultralytics": lambda: _build_ultralytics(spec.name, trust=trust),
    }
    build = builders[spec.source]
    with warnings.catch_warnings():  # constructors' deprecation chatter (torchvision's inception init...)
        warnings.simplefilter("ignore", FutureWarning)
        return _build_on(build, device, pretrained, spec)


def _build_on(build, device, pretrained: bool, spec: ModelSpec) -> nn.Module:
    try:
        if str(device) == "meta" and not pretrained:
            try:
                with torch.device("meta"):
                    model = build()
            except (ModelNotFoundError, ModelBuildError, CheckpointError):
                raise
            except Exception:  # some constructors compute on tensors (e.g. .item()): build on CPU, then copy
                model = build()
            if any(not t.is_meta for t in (*model.parameters(), *model.buffers())):
                model = meta_copy(model)  # a builder that makes its tensors where it likes (ultralytics)
        else:
            model = build().to(device)
    except (ModelNotFoundError, ModelBuildError, CheckpointError):
        raise
    except Exception as e:
        raise ModelBuildError(f"building {spec.display_name} failed: {type(e).__name__}: {e}") from e
    return model.eval()


_MODULE_STATE = frozenset({"_parameters", "_buffers", "_modules"})
_PLAIN = (type(None), bool, int, float, complex, str, bytes, type, torch.Tensor, torch.dtype, torch.device)


def copy_module(model: nn.Module, memo: dict | None = None) -> nn.Module:
    """A deep copy of ``model``, except that attributes which cannot be deep-copied (a ``threading.Lock``,
    an open file, a client object) are shared with the original instead of breaking the copy.

    Parameters
    ----------
    model : nn.Module
        Left untouched.
    memo : dict, optional
        ``copy.deepcopy``'s memo: ``id(object) -> its copy`` for objects to replace (e.g. meta tensors).

    Examples
    --------
    >>> import threading
    >>> net = nn.Conv2d(1, 1, 1)
    >>> net.lock = threading.Lock()
    >>> twin = copy_module(net)
    >>> twin.lock is net.lock, twin.weight is net.weight, bool((twin.weight == net.weight).all())
    (True, False, True)
    """
    memo = {} if memo is None else memo
    for m in model.modules():
        for key, value in vars(m).items():
            if key in _MODULE_STATE or isinstance(value, _PLAIN) or id(value) in memo:
                continue
            try:
                copy.deepcopy(value, dict(memo))
            except Exception:  # noqa: BLE001 - whatever refuses to be copied is shared, not copied
                memo[id(value)] = value
    return copy.deepcopy(model, memo)


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers live on the meta device.

    The original is left untouched, and no weight memory is copied (attributes that cannot be copied are
    shared: :func:`copy_module`).
    """
    memo = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy_module(model, memo)


def input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype the model computes in (its first floating parameter's or buffer's; float32 for a
    model without one): inputs rfkit makes are cast to it, so a float64 model gets float64 inputs.

    >>> input_dtype(nn.Conv2d(1, 1, 3).double()), input_dtype(nn.ReLU())
    (torch.float64, torch.float32)
    """
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def default_input(model: nn.Module, spec: ModelSpec | None = None) -> tuple[tuple[int, ...] | None, int | None]:
    """(input size, input channels) the model was made for, where it says: timm's pretrained config,
    torchvision's weights transforms; else (None, channels of the first conv)."""
    size, chans = None, None
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict) and cfg.get("input_size"):
        chans, *size = cfg["input_size"]
        size = tuple(size)
    elif isinstance(getattr(model, "image_size", None), int):  # torchvision ViTs are built for one size
        size = (model.image_size, model.image_size)
    elif spec is not None and spec.source == "torchvision":
        size = _torchvision_size(spec.name)
    if chans is None:
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                chans = m.in_channels
                break
    return size, chans


def _torchvision_size(name: str) -> tuple[int, int] | None:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    for w in weights:
        kw = getattr(w.transforms, "keywords", {})
        crop = kw.get("crop_size") or kw.get("resize_size")  # segmentation weights resize only
        if crop:
            crop = crop if isinstance(crop, (list, tuple)) else (crop, crop)
            return tuple(crop) if len(crop) == 2 else (crop[0], crop[0])
    return None
