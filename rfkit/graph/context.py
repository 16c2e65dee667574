"""What an RF handler sees of the op it models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from rfkit.errors import UnsupportedOpError
from rfkit.graph.state import AxisRF, RFState

UnsupportedOp = UnsupportedOpError
"""What a handler raises when this particular use of an op cannot be modelled (e.g. cat along H):
:class:`rfkit.errors.UnsupportedOpError` under its short name."""


@dataclass
class OpContext:
    """One op of the traced graph, evaluated on meta tensors.

    Attributes
    ----------
    node : torch.fx.Node
    module : nn.Module or None
        The called module for ``call_module`` nodes.
    args, kwargs
        The evaluated arguments (meta tensors, ints, ...).
    arg_states, kwarg_states
        The same structures with each tensor replaced by its :class:`RFState` (None for constants).
    out : Any
        The evaluated output.
    """

    node: fx.Node
    module: nn.Module | None
    args: tuple
    kwargs: dict
    arg_states: tuple
    kwarg_states: dict
    out: Any
    notes: list[str] = field(default_factory=list)

    # --- inputs -------------------------------------------------------------------------------------
    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Argument given by position ``index`` or keyword ``name``."""
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(name, default)

    def state(self, index: int = 0, name: str = "input") -> RFState | None:
        """State of the tensor argument at position ``index`` (or keyword ``name``)."""
        if len(self.arg_states) > index:
            return self.arg_states[index]
        return self.kwarg_states.get(name)

    def tensor_inputs(self) -> list[tuple[torch.Tensor, RFState | None]]:
        """Every tensor argument (lists flattened) with its state, in order."""
        vals, _ = tree_flatten((self.args, self.kwargs))
        states, _ = tree_flatten((self.arg_states, self.kwarg_states), is_leaf=lambda x: isinstance(x, RFState))
        pairs = []
        for v, s in zip(vals, states):
            if isinstance(v, torch.Tensor):
                pairs.append((v, s if isinstance(s, RFState) else None))
        return pairs

    def input_states(self) -> list[RFState]:
        return [s for _, s in self.tensor_inputs() if s is not None]

    def main(self) -> tuple[torch.Tensor, RFState]:
        """The first tensor input that carries an RF state, with that state."""
        for v, s in self.tensor_inputs():
            if s is not None:
                return v, s
        raise UnsupportedOp("no input carries a receptive field")

    @property
    def out_ndim(self) -> int | None:
        return self.out.dim() if isinstance(self.out, torch.Tensor) else None

    # --- common transforms --------------------------------------------------------------------------
    def local_op(
        self,
        kernel: int | Sequence[int],
        stride: int | Fraction | Sequence[int | Fraction] = 1,
        pad: int | Fraction | Sequence[int | Fraction] = 0,
        dilation: int | Sequence[int] = 1,
        state: RFState | None = None,
    ) -> RFState:
        """Apply a sliding window over the last ``len(kernel)`` dims of the main input.

        Each of ``kernel``, ``stride``, ``pad`` and ``dilation`` is one value per windowed dim, or one value
        for all of them (an int ``kernel`` windows as many trailing dims as the input has spatial axes).
        The recurrence is DESIGN.md's: ``r' = r + (d(k - 1)) S``, ``S' = S s``,
        ``center0' = center0 + (d(k - 1) / 2 - p) S``.

        Examples
        --------
        A 3×3 window of stride 2 and padding 1 on the input: RF 3, stride 2, the first unit centred on pixel 0.

        >>> import torch
        >>> from rfkit.graph.state import RFState
        >>> x = torch.empty(1, 3, 8, 8, device="meta")
        >>> ctx = OpContext(None, None, (x,), {}, (RFState.input(2, (1, 3, 8, 8)),), {}, None)
        >>> a = ctx.local_op(kernel=3, stride=2, pad=1).axes[0]
        >>> int(a.size), int(a.stride), int(a.center)
        (3, 2, 0)
        """
        x, s = self.main() if state is None else (None, state)
        if s.axes is None:  # already sees the whole input (e.g. a conv1d over pooled channels in ECA)
            return s
        n = len(kernel) if isinstance(kernel, (list, tuple)) else len(s.axes)
        kernel, stride, pad, dilation = (as_tuple(v, n) for v in (kernel, stride, pad, dilation))
        if all(k == 1 and st == 1 and p == 0 for k, st, p in zip(kernel, stride, pad)):
            return s  # pointwise: whatever the dims hold (MobileViT runs 1x1 convs over unfolded patches)
        if s.layout is None:
            raise UnsupportedOp("sliding window over a tensor whose spatial layout was lost")
        tensor_ndim = x.dim() if x is not None else self.out_ndim
        window_dims = list(range(tensor_ndim - n, tensor_ndim))
        axes = list(s.axes)
        layout = list(s.layout)
        for j, d in enumerate(window_dims):
            if kernel[j] == 1 and stride[j] == 1 and pad[j] == 0:
                continue  # pointwise along this dim (LambdaNet's (r, r, 1) conv3d over channels-last maps)
            dl = s.layout[d]
            if (
                len(dl.factors) > 1
                and not dl.prefix
                and kernel[j] == stride[j]
                and pad[j] == 0
                and dl.factors[-1].axis is not None
                and dl.factors[-1].step == 1
                and dl.factors[-1].size % kernel[j] == 0
            ):
                # non-overlapping pooling along flattened tokens (NextViT): blocks of k along the minor axis
                f, k = dl.factors[-1], kernel[j]
                axes[f.axis] = _mix_block(axes[f.axis], k)
                layout[d] = type(dl)(dl.factors[:-1] + (type(f)(f.axis, f.size // k, k),))
                continue
            f = dl.factors[0] if len(dl.factors) == 1 and not dl.prefix else None
            if f is None or f.axis is None or f.step != 1:
                raise UnsupportedOp(f"sliding window over dim {d}, which does not hold one piece of a spatial axis")
            whole = all(g.axis != f.axis or g is f for other in s.layout for g in other.factors)
            if whole:
                axes[f.axis] = axes[f.axis].local(kernel[j], stride[j], pad[j], dilation[j])
            elif stride[j] == 1:  # inside windows (EfficientViT's local attention): zero padding at window edges
                axes[f.axis] = axes[f.axis].local_in_windows(f.size, kernel[j], pad[j], dilation[j])
            else:
                raise UnsupportedOp(f"strided sliding window inside windows of {f.size}")
        return s.with_axes(axes).with_layout(tuple(layout))

    def map_axes(self, state: RFState, fn: Callable[[int, AxisRF], AxisRF]) -> RFState:
        """Apply ``fn(tensor_dim, axis)`` to every local axis of ``state``."""
        if state.axes is None or state.dims is None:
            return state
        return state.with_axes(fn(d, a) for d, a in zip(state.dims, state.axes))


def _mix_block(axis: AxisRF, k: int) -> AxisRF:
    """Each unit sees the aligned block of ``k`` units it belongs to."""
    return axis.resample(lambda v: (v - v % k, v - v % k + k - 1), 1, k, k)


def as_tuple(value: Any, n: int) -> tuple:
    """Expand an int (or 1-tuple) parameter to ``n`` values, as torch does for kernel/stride/padding."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1 and n > 1:
            return tuple(value) * n
        return tuple(value)
    return (value,) * n
