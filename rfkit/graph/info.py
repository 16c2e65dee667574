"""The public per-node result: :class:`RFInfo`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

from rfkit.graph.state import RFState

Number = int | float


def _num(x: Fraction) -> Number:
    return int(x) if x.denominator == 1 else float(x)


@dataclass(frozen=True)
class RFInfo:
    """Receptive field of the output of one node, per spatial axis (``(h, w)`` for images).

    Attributes
    ----------
    size : tuple
        Input pixels seen by one unit, maximum over paths; ``math.inf`` on every axis when the node is
        global; ``math.nan`` when unknown.
    size_min : tuple
        Minimum over paths (a global path counts as infinite).
    local_size : tuple or None
        Maximum over the *local* paths only: the finite RF that a global node still has through its
        convolutions (an SE block's conv path). None when no local path reaches the node.
    stride : tuple
        Input pixels between neighbouring units (may be fractional).
    padding : tuple
        Effective padding ``(size - 1) / 2 - center`` (Distill's definition), from the local RF.
    center : tuple
        Input coordinate of the RF centre of unit (0, 0) (may be a half pixel).
    is_global, misaligned, approximate, unknown : bool
        See :class:`rfkit.graph.state.RFState`.
    shape : tuple or None
        Output shape of the node (batch dim included) for the traced input size.
    dims : tuple or None
        The tensor dims of ``shape`` that hold the spatial axes, in axis order: ``(2, 3)`` for NCHW,
        ``(1, 2)`` for channels-last (B, H, W, C); None where the layout was flattened away.
    windows : tuple or None
        Per axis, the exact ``(first, last)`` pixel seen by units ``0 .. period - 1``; the pattern repeats
        every ``period`` units, shifted by ``period * stride`` pixels. ``period`` is 1 for shift-invariant
        paths; it is larger after upsampling, transposed convolutions, uneven adaptive pooling or aligned
        windows (Swin), whose units do not all see the same window (``size`` is then the largest).
    reads : tuple or None
        Per axis, the first and last input pixel that this node reads at all (its units' windows,
        clipped to the input and to what the layers before could read): a stride-7 stem without padding
        at 96 px reads pixels 0..90 only.
    """

    size: tuple[Number, ...]
    size_min: tuple[Number, ...]
    local_size: tuple[Number, ...] | None
    stride: tuple[Number, ...]
    padding: tuple[Number, ...]
    center: tuple[Number, ...]
    is_global: bool = False
    misaligned: bool = False
    approximate: bool = False
    unknown: bool = False
    shape: tuple[int, ...] | None = None
    dims: tuple[int, ...] | None = None
    windows: tuple[tuple[tuple[int, int], ...], ...] | None = None
    reads: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def from_state(cls, state: RFState, ndim: int, shape: tuple[int, ...] | None = None) -> RFInfo:
        nan = (math.nan,) * ndim
        flags = dict(
            is_global=state.is_global,
            misaligned=state.misaligned,
            approximate=state.approximate,
            unknown=state.unknown,
            dims=state.dims,
            reads=state.reads,
        )
        if state.unknown:
            return cls(nan, nan, None, nan, nan, nan, shape=shape, **flags)
        if state.axes is None:
            inf = (math.inf,) * ndim
            return cls(inf, inf, None, nan, nan, nan, shape=shape, **flags)
        local = tuple(_num(a.size) for a in state.axes)
        return cls(
            size=(math.inf,) * ndim if state.is_global else local,
            size_min=tuple(_num(a.size_min) for a in state.axes),
            local_size=local,
            stride=tuple(_num(a.stride) for a in state.axes),
            padding=tuple(_num((a.size - 1) / 2 - a.center) for a in state.axes),
            center=tuple(_num(a.center) for a in state.axes),
            shape=shape,
            windows=tuple(tuple(zip(a.lo, a.hi)) for a in state.axes),
            **flags,
        )

    @property
    def period(self) -> tuple[int, ...] | None:
        """Per axis, after how many units the RF pattern repeats (1: shift-invariant)."""
        return None if self.windows is None else tuple(len(w) for w in self.windows)

    @property
    def shift_invariant(self) -> bool:
        return self.windows is None or all(len(w) == 1 for w in self.windows)

    def window_of(self, index: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """Exact ``(first, last)`` input pixel seen by the unit at ``index``, per axis.

        >>> import rfkit, torch.nn as nn
        >>> g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3, 2), nn.Upsample(scale_factor=2)), input_size=16)
        >>> g["1"].window_of((0, 1)), g["1"].window_of((2, 3))
        (((0, 2), (0, 2)), ((2, 4), (2, 4)))
        """
        if self.windows is None:
            raise ValueError("this node has no local RF (global or unknown)")
        out = []
        for u, w, s in zip(index, self.windows, self.stride):
            q, r = divmod(u, len(w))
            shift = int(q * len(w) * s)
            out.append((w[r][0] + shift, w[r][1] + shift))
        return tuple(out)

    def center_of(self, index: tuple[int, ...]) -> tuple[Number, ...]:
        """Input coordinate of the RF centre of the unit at ``index`` (one index per spatial axis).

        >>> info = RFInfo((3, 3), (3, 3), (3, 3), (2, 2), (1, 1), (0, 0))
        >>> info.center_of((1, 2))
        (2, 4)
        """
        if self.windows is not None and not self.shift_invariant:
            return tuple(_num(Fraction(lo + hi, 2)) for lo, hi in self.window_of(index))
        return tuple(c + u * s for c, u, s in zip(self.center, index, self.stride))

    def flags(self) -> list[str]:
        """Names of the flags that are set, for display."""
        flags = [n for n in ("is_global", "misaligned", "approximate", "unknown") if getattr(self, n)]
        return flags + ([] if self.shift_invariant else ["periodic"])

    def as_dict(self) -> dict:
        return asdict(self)
