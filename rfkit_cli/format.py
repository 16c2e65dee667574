"""Formatting of RF values for terminal tables."""

from __future__ import annotations

import math


def fmt_num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "?"
    if isinstance(v, float) and math.isinf(v):
        return "global"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fmt_pair(values, sep: str = "×") -> str:
    """``(427, 427)`` → ``427×427``; all-infinite → ``global``; None → ``-``."""
    if values is None:
        return "-"
    if all(isinstance(v, float) and math.isinf(v) for v in values):
        return "global"
    return sep.join(fmt_num(v) for v in values)


def short_op(op: str) -> str:
    """``torch.nn.modules.conv.Conv2d`` → ``Conv2d``; ``operator.add`` → ``add``."""
    return op.rsplit(".", 1)[-1]
