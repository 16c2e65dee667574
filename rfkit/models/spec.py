"""Model specs.

A spec is one of

- a timm name, with or without a pretrained tag: ``resnet50``, ``resnet50.a1_in1k``;
- ``torchvision:NAME``: a torchvision model (``torchvision:resnet50``); for a detector
  (``torchvision:fasterrcnn_resnet50_fpn``) its backbone and FPN, on the transformed tensor
  (:mod:`rfkit.models.detection`);
- ``ultralytics:yolo11n.yaml``: an ultralytics YOLO built from a yaml file (:mod:`rfkit.models.ultralytics`);
- ``path/to/file.py:factory``: a function in a Python file that returns an ``nn.Module``; the file is
  imported (its code runs), so it is built only with ``trust=True`` (``--trust``);
- ``keras:NAME`` (``keras.applications``), ``FILE.keras`` / ``FILE.h5``: a Keras 3 model, run on Keras' torch
  backend (:mod:`rfkit.models.sources.keras_source`);
- ``SOURCE:NAME`` for any other registered source (:mod:`rfkit.models.sources`: ``rfkit list-models --sources``).

Each kind is a source object in one registry (:mod:`rfkit.models.sources`), which parses, lists and builds.
Built for analysis, a model lives on the meta device: no weights, no memory.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError, InputTooSmallError, ModelBuildError, ModelNotFoundError
from rfkit.models.meta_init import skipped_init
from rfkit.models.sources import ModelSpec, get_source, source_for


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
    return get_source(parsed.source).shown(parsed, spec)


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string.

    >>> parse_spec("resnet50.a1_in1k")
    ModelSpec(source='timm', name='resnet50.a1_in1k', path=None)
    >>> parse_spec("torchvision:vgg16").source
    'torchvision'
    >>> parse_spec("nets/mine.py:build")
    ModelSpec(source='file', name='build', path='nets/mine.py')
    """
    spec = spec.strip()
    return source_for(spec).parse(spec)


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
    source = get_source(spec.source)

    def build():
        return source.build(spec, pretrained=pretrained, trust=trust, **kwargs)

    if str(device) == "meta" and not source.meta:  # a library that makes its tensors itself (Keras): the CPU
        device = "cpu"
    with warnings.catch_warnings():  # constructors' deprecation chatter (torchvision's inception init...)
        warnings.simplefilter("ignore", FutureWarning)
        return _build_on(build, device, pretrained, spec)


def _build_on(build, device, pretrained: bool, spec: ModelSpec) -> nn.Module:
    try:
        if str(device) == "meta" and not pretrained:
            try:
                with torch.device("meta"), skipped_init():  # no values to initialise on meta
                    model = build()
            except (ModelNotFoundError, ModelBuildError, CheckpointError, InputTooSmallError):
                raise
            except Exception:  # some constructors compute on tensors (e.g. .item()): build on CPU, then copy
                model = build()
            if any(not t.is_meta for t in (*model.parameters(), *model.buffers())):
                model = meta_copy(model)  # a builder that makes its tensors where it likes (ultralytics)
        else:
            model = build().to(device)
    except (ModelNotFoundError, ModelBuildError, CheckpointError, InputTooSmallError):
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
    """(input size, input channels) the model was made for, where it says: timm's pretrained config, or its
    source's default (torchvision's weights transforms); else (None, channels of the first conv)."""
    size, chans = None, None
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict) and cfg.get("input_size"):
        chans, *size = cfg["input_size"]
        size = tuple(size)
    elif isinstance(getattr(model, "image_size", None), int):  # torchvision ViTs are built for one size
        size = (model.image_size, model.image_size)
    elif spec is not None:
        size = get_source(spec.source).default_input_size(spec)
    if chans is None:
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                chans = m.in_channels
                break
    return size, chans
