"""Building a model on the meta device without running its weight initialisation.

Meta tensors hold no values, so a constructor's initialisation (``trunc_normal_``, ``kaiming_normal_``, ...)
only costs time there: its in-place ops run through Python decompositions, a third of the time timm takes to
build a transformer on meta. Within :func:`skipped_init`, the in-place ops that initialisation is made of return
their meta tensor unchanged. They never change a shape, so the model built is the same.

>>> import torch, torch.nn as nn
>>> with torch.device("meta"), skipped_init():
...     layer = nn.Linear(4, 3)
>>> layer.weight.device.type, tuple(layer.weight.shape)
('meta', (3, 4))
"""

from __future__ import annotations

import functools

import torch
from torch.overrides import TorchFunctionMode

_INIT_OPS = (
    "uniform_ normal_ trunc_normal_ erfinv_ mul_ add_ sub_ div_ clamp_ clamp_min_ clamp_max_ fill_ zero_ copy_ "
    "exp_ log_ sqrt_ abs_ neg_ sign_ bernoulli_ random_ exponential_ log_normal_ cauchy_ geometric_ masked_fill_"
)


@functools.cache
def _init_ops() -> frozenset:
    """The in-place Tensor methods (and their ``torch`` functions) that initialisers are made of."""
    ops = set()
    for name in _INIT_OPS.split():
        for owner in (torch.Tensor, torch):
            op = getattr(owner, name, None)
            if op is not None:
                ops.add(op)
    return frozenset(ops)


class skipped_init(TorchFunctionMode):
    """A torch-function mode in which the in-place ops of :data:`_INIT_OPS` on a meta tensor return it as is
    (on any other tensor they run)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], torch.Tensor) and args[0].is_meta and func in _init_ops():
            return args[0]
        return func(*args, **kwargs)
