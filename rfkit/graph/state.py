"""Receptive-field state carried by each tensor during propagation, and the arithmetic on it.

Values are exact :class:`fractions.Fraction` so that fractional strides (after upsampling) and half-pixel
centres never accumulate rounding error. :mod:`rfkit.graph.info` turns them into plain numbers for users.

Conventions (``../shared/DESIGN.md``): along one axis, unit ``u`` of a tensor sees ``size`` input pixels
centred on input coordinate ``center + u * stride``; pixel centres sit at integer coordinates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence


@dataclass(frozen=True)
class AxisRF:
    """Receptive field along one spatial axis of a tensor.

    Attributes
    ----------
    size : Fraction
        Number of input pixels seen by one unit, maximum over the local paths.
    size_min : Fraction
        The same, minimum over paths.
    stride : Fraction
        Input pixels between neighbouring units (the "jump").
    center : Fraction
        Input coordinate of the RF centre of unit 0.
    """

    size: Fraction
    size_min: Fraction
    stride: Fraction
    center: Fraction

    @classmethod
    def identity(cls) -> "AxisRF":
        """The RF of an input pixel: itself."""
        one = Fraction(1)
        return cls(one, one, one, Fraction(0))

    def local(self, kernel: int, stride: int | Fraction = 1, pad: int | Fraction = 0,
              dilation: int = 1) -> "AxisRF":
        """Apply a sliding-window op (conv or pool) with the given left padding.

        >>> AxisRF.identity().local(3, dilation=2).size
        Fraction(5, 1)
        """
        span = Fraction(dilation * (kernel - 1))  # k_eff - 1
        return AxisRF(
            size=self.size + span * self.stride,
            size_min=self.size_min + span * self.stride,
            stride=self.stride * Fraction(stride),
            center=self.center + (span / 2 - Fraction(pad)) * self.stride,
        )

    def shifted(self, units: int | Fraction, step: int | Fraction = 1) -> "AxisRF":
        """Re-index the axis: new unit 0 is old unit ``units``, neighbours are ``step`` old units apart."""
        return dataclasses.replace(self, center=self.center + Fraction(units) * self.stride,
                                   stride=self.stride * Fraction(step))

    @property
    def lo(self) -> Fraction:
        """Left edge of unit 0's RF, in pixel units (first pixel centre minus half a pixel)."""
        return self.center - self.size / 2

    @property
    def hi(self) -> Fraction:
        return self.center + self.size / 2


@dataclass(frozen=True)
class RFState:
    """What rfkit knows about the RF of one tensor.

    Attributes
    ----------
    axes : tuple of AxisRF or None
        Local RF per spatial axis (input order: (h, w) for images). None when no local path reaches
        this tensor (e.g. after global pooling): every unit sees the whole input.
    dims : tuple of int or None
        Tensor dimension that holds each spatial axis. None when the spatial layout is lost (flattened).
    is_global : bool
        Some path reaching this tensor sees the whole input.
    misaligned : bool
        Some merge joined inputs whose strides or centres differ.
    approximate : bool
        Some op on the way is modelled approximately (e.g. adaptive pooling with uneven bins).
    unknown : bool
        An op with no RF rule lies on the way: the RF is not known.
    """

    axes: tuple[AxisRF, ...] | None
    dims: tuple[int, ...] | None
    is_global: bool = False
    misaligned: bool = False
    approximate: bool = False
    unknown: bool = False

    @classmethod
    def input(cls, ndim_spatial: int, tensor_ndim: int) -> "RFState":
        """State of the network input, whose last ``ndim_spatial`` dims are spatial."""
        dims = tuple(range(tensor_ndim - ndim_spatial, tensor_ndim))
        return cls(axes=tuple(AxisRF.identity() for _ in dims), dims=dims)

    def replace(self, **changes) -> "RFState":
        return dataclasses.replace(self, **changes)

    def with_axes(self, axes: Iterable[AxisRF] | None) -> "RFState":
        return dataclasses.replace(self, axes=None if axes is None else tuple(axes))

    def made_global(self, keep_local: bool = False) -> "RFState":
        """The state after an op that mixes every position (``keep_local`` keeps the local paths' RF)."""
        return dataclasses.replace(self, is_global=True, axes=self.axes if keep_local else None)

    def spatial_dim_set(self) -> set[int]:
        return set(self.dims or ())

    def remap_dims(self, mapping: dict[int, int] | None) -> "RFState":
        """Move spatial dims to new positions; ``mapping`` None (or missing a dim) loses the layout."""
        if self.dims is None:
            return self
        if mapping is None or any(d not in mapping for d in self.dims):
            return dataclasses.replace(self, dims=None)
        return dataclasses.replace(self, dims=tuple(mapping[d] for d in self.dims))


def merge(states: Sequence[RFState], dims: tuple[int, ...] | None) -> RFState:
    """Join the states of the inputs of an elementwise op or a channel concatenation.

    Size is the maximum over inputs (the union of the windows), ``size_min`` the minimum; inputs whose
    strides or centres disagree mark the result ``misaligned``. With equal strides the union of the
    windows is still exact for every unit; with unequal strides it holds for unit 0 only, so the result is
    also ``approximate``.
    """
    flags = {f: any(getattr(s, f) for s in states) for f in ("is_global", "misaligned", "approximate", "unknown")}
    local = [s.axes for s in states if s.axes is not None]
    if not local:
        return RFState(axes=None, dims=dims, **flags)
    ndim = len(local[0])
    if any(len(a) != ndim for a in local):
        return RFState(axes=None, dims=dims, **{**flags, "unknown": True})
    axes = []
    for per_input in zip(*local):
        first = per_input[0]
        same_stride = all(a.stride == first.stride for a in per_input)
        same_center = all(a.center == first.center for a in per_input)
        if not (same_stride and same_center):
            flags["misaligned"] = True
        if not same_stride:
            flags["approximate"] = True
        lo = min(a.lo for a in per_input)
        hi = max(a.hi for a in per_input)
        axes.append(AxisRF(size=hi - lo, size_min=min(a.size_min for a in per_input),
                           stride=first.stride if same_stride else max(a.stride for a in per_input),
                           center=(lo + hi) / 2))
    return RFState(axes=tuple(axes), dims=dims, **flags)
