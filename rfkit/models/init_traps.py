"""Init traps: parameters whose initial value makes a random network's ERF collapse, found and neutralised.

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
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn

#: Entries below this magnitude make a norm scale or layer scale a trap.
TINY = 1e-2


_SCALE_NAME = re.compile(r"^(gamma|gain|scale|alpha|skipinit|skip_gain|res_?scale|layer_?scale)(_\w+|\d+)?$|^ls\d*$")


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
