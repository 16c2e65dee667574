"""Shortcuts for running a model on meta tensors: the modules whose output has their input's shape, dtype
and layout whatever their parameters (batch norm, activations, dropout) need not run there. On meta tensors
their forward only costs time: batch norm runs through Python decompositions, a sixth of a zoo trace.

>>> import torch.nn as nn
>>> x = torch.empty(1, 8, 5, 5, device="meta")
>>> tuple(shape_only_output(nn.BatchNorm2d(8, device="meta"), (x,), {}).shape)
(1, 8, 5, 5)
>>> shape_only_output(nn.Conv2d(8, 8, 3, device="meta"), (x,), {}) is None
True
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch


@functools.cache
def _types() -> tuple[type, ...]:
    """Module types whose output has the input's shape, dtype and layout whatever their parameters: on meta
    tensors their forward only costs time (batch norm runs through Python decompositions there, a sixth of
    a zoo trace), so the propagation makes their output with ``empty_like``. Exact types only: a subclass
    may change what ``forward`` returns."""
    nn = torch.nn
    types_ = [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.Identity, nn.Dropout]
    types_ += [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid]
    types_ += [nn.Sigmoid, nn.Tanh]
    try:
        from timm.layers.norm_act import BatchNormAct2d  # BN, dropout and an activation: elementwise after BN
    except ImportError:
        pass
    else:
        types_.append(BatchNormAct2d)
    return tuple(types_)


def shape_only_output(module: torch.nn.Module, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of ``module`` on one meta tensor when its type keeps the input's shape (see
    :func:`_types`); None when the module must run."""
    if kwargs or len(args) != 1 or type(module) not in _types():
        return None
    x = args[0]
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and (x.dim() < 2 or x.shape[1] != module.num_features):
        return None  # let the module raise its own error
    return torch.empty_like(x)


@contextlib.contextmanager
def shape_only_forwards(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, each module of ``model`` that :func:`shape_only_output` covers returns a clone of
    its meta input (autograd still sees the input reach the output) instead of running its forward."""
    patched = []
    for module in model.modules():
        if type(module) not in _types():
            continue

        def forward(*args, _module=module, _forward=module.forward, **kwargs):
            if shape_only_output(_module, args, kwargs) is None:
                return _forward(*args, **kwargs)
            return args[0].clone()

        had = "forward" in module.__dict__
        patched.append((module, had, module.__dict__.get("forward")))
        module.forward = forward
    try:
        yield
    finally:
        for module, had, own in patched:
            if had:
                module.forward = own
            else:
                del module.forward
