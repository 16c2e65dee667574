"""Non-finite numbers (NaN, infinities) in what a measurement produced: which images hold them, said in words,
and traced to the first module whose output holds them. The measuring stages (:mod:`rfkit.effective`,
:mod:`rfkit.attribution`) warn with :class:`~rfkit.errors.NonFiniteWarning` from these."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def nonfinite_images(values) -> np.ndarray:
    """Per entry of the first axis of ``values`` (one per image), whether it holds a NaN or an infinity.

    >>> nonfinite_images(np.array([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0]])).tolist()
    [False, True, True]
    """
    arr = np.asarray(values, dtype=np.float64)
    return ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1) if arr.ndim else ~np.isfinite(arr).reshape(1)


def describe(values, unit: str = "values") -> str:
    """What is not finite in ``values``, in words.

    >>> describe(np.array([np.nan, np.nan, 1.0])), describe(np.array([np.inf, -np.inf, np.nan]), "pixels")
    ('NaN (2 of 3 values)', 'NaN and inf (3 of 3 pixels)')
    """
    arr = np.asarray(values, dtype=np.float64)
    kinds = [k for k, present in (("NaN", np.isnan(arr).any()), ("inf", np.isinf(arr).any())) if present]
    bad = int((~np.isfinite(arr)).sum())
    return f"{' and '.join(kinds) or 'no NaN or inf'} ({bad} of {arr.size} {unit})"


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() or value.is_complex() else []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> str | None:
    """The name of the first module, in the order the forward pass of ``model`` on ``x`` finishes them, whose
    output holds a NaN or an infinity (its sub-modules' outputs being finite, the NaN arose in its own code;
    ``""``: ``model`` itself); None when every output is finite, or the forward pass fails. Hooks are removed
    afterwards.

    >>> class Sqrt(nn.Module):
    ...     def forward(self, x):
    ...         return x.sqrt()
    >>> net = nn.Sequential(nn.Identity(), Sqrt(), nn.ReLU())
    >>> first_nonfinite_module(net, -torch.ones(1, 3)), first_nonfinite_module(net, torch.ones(1, 3))
    ('1', None)
    >>> first_nonfinite_module(Sqrt(), -torch.ones(1, 3))
    ''
    """
    found: list[str] = []

    def watch(name: str):
        def hook(module, inputs, output) -> None:
            if not found and any(not bool(torch.isfinite(t).all()) for t in _tensors(output)):
                found.append(name)

        return hook

    handles = [m.register_forward_hook(watch(n)) for n, m in model.named_modules()]
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - a diagnosis only: the measurement has run already
        return None
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def origin(module: str | None) -> str:
    """A clause naming where :func:`first_nonfinite_module` found the first non-finite output ("" if nowhere).

    >>> origin("layer2.0.conv1"), origin(""), origin(None)
    (", first produced by module 'layer2.0.conv1'", ", first produced by the model's own forward code", '')
    """
    if module is None:
        return ""
    return f", first produced by module {module!r}" if module else ", first produced by the model's own forward code"
