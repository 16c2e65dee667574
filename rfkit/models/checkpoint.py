"""Checkpoints: reading a file safely (``weights_only``), finding its state dict, mapping its keys onto a
model's (by name, by stripped prefix, or by order where names differ), and loading it (:func:`load_checkpoint`).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError
from rfkit.models.hub import _first_line
from rfkit.models.weights_info import WEIGHT_OPTIONS

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")


#: Keys under which training scripts store the state_dict, in the order they are looked for.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema", "module")


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
