"""Receptive-field state carried by each tensor during propagation, and the arithmetic on it.

Values are exact :class:`fractions.Fraction` so that fractional strides (after upsampling) and half-pixel
centres never accumulate rounding error. :mod:`rfkit.graph.info` turns them into plain numbers for users.

Conventions (``../shared/DESIGN.md``): along one axis, unit ``u`` of a tensor sees ``size`` input pixels
centred on input coordinate ``center + u * stride``; pixel centres sit at integer coordinates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from rfkit.graph import layout as lay
from rfkit.graph.layout import Layout

MAX_PERIOD = 4096
"""Longest repeating pattern rfkit tracks exactly; beyond it an axis is flagged approximate."""


@dataclass(frozen=True)
class AxisRF:
    """Receptive field along one spatial axis of a tensor, exact for every unit.

    Unit ``u`` sees the input pixels ``lo(u) .. hi(u)`` (pixel centres, inclusive). The pattern repeats
    every ``period`` units, advancing ``period * stride`` pixels (an integer):
    ``lo(u + period) = lo(u) + period * stride``. Shift-invariant ops (convolution, pooling) keep
    ``period == 1``; resampling ops (upsampling, transposed convolution, uneven adaptive pooling, aligned
    windows) make units see windows of different sizes or offsets, which ``period > 1`` describes exactly.

    Attributes
    ----------
    stride : Fraction
        Input pixels between neighbouring units, on average over a period.
    lo, hi : tuple of int
        First and last pixel seen by units ``0 .. period - 1``.
    size_min : Fraction
        Size along the path that sees the least (minimum over paths).
    """

    stride: Fraction
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    size_min: Fraction

    @classmethod
    def identity(cls) -> AxisRF:
        """The RF of an input pixel: itself."""
        return cls(Fraction(1), (0,), (0,), Fraction(1))

    # --- what users read ---------------------------------------------------------------------------
    @property
    def period(self) -> int:
        return len(self.lo)

    @property
    def size(self) -> Fraction:
        """Pixels seen by one unit: the largest over the units of a period (the worst case)."""
        return Fraction(max(h - lo for lo, h in zip(self.lo, self.hi)) + 1)

    @property
    def center(self) -> Fraction:
        """Centre of unit 0's window."""
        return Fraction(self.lo[0] + self.hi[0], 2)

    @functools.cached_property
    def _advance(self) -> int | None:
        """Pixels a whole period advances, when an integer (always, but for an approximate axis)."""
        advance = self.period * self.stride
        return int(advance) if advance.denominator == 1 else None

    def bounds(self, unit: int) -> tuple[int, int]:
        """(first, last) pixel seen by ``unit`` (any integer, negative ones included)."""
        q, r = divmod(unit, len(self.lo))
        advance = self._advance  # integer arithmetic: this runs millions of times over a zoo
        shift = q * advance if advance is not None else int(q * self.period * self.stride)
        return self.lo[r] + shift, self.hi[r] + shift

    # --- transforms ---------------------------------------------------------------------------------
    def resample(self, src, ratio, src_period: int, src_advance: int, grow_min=None) -> AxisRF:
        """The RF after an op whose output unit ``v`` reads the input units ``src(v) = (a, b)``, inclusive.

        ``src`` must repeat: ``src(v + src_period) = src(v) + src_advance``; ``ratio`` is the mean number of
        input units per output unit (``src_advance / src_period``). ``grow_min(size_min, stride)`` gives
        the new ``size_min`` (default: the same growth as the worst-case size).
        """
        p = self.period
        period = src_period * (p // math.gcd(p, src_advance) if src_advance else 1)
        if period > MAX_PERIOD:
            raise PeriodTooLong(f"the RF pattern repeats only every {period} units")
        lo, hi = [], []
        for v in range(period):
            a, b = src(v)
            if a > b:
                raise EmptyWindow(f"output unit {v} reads no input unit")
            span_lo = range(a, min(b, a + p - 1) + 1)  # lo grows by period*stride each period: one suffices
            span_hi = range(max(a, b - p + 1), b + 1)
            lo.append(min(self.bounds(j)[0] for j in span_lo))
            hi.append(max(self.bounds(j)[1] for j in span_hi))
        out = AxisRF(self.stride * Fraction(ratio), tuple(lo), tuple(hi), self.size_min)
        size_min = grow_min(self.size_min, self.stride) if grow_min else self.size_min + out.size - self.size
        return dataclasses.replace(out, size_min=size_min).reduced()

    def local(self, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> AxisRF:
        """Apply a sliding window (conv or pool) with the given left padding.

        >>> AxisRF.identity().local(3, dilation=2).size
        Fraction(5, 1)
        """
        span = dilation * (kernel - 1)
        return self.resample(
            lambda v: (v * stride - pad, v * stride - pad + span), stride, 1, stride, grow_min=lambda m, s: m + span * s
        )

    def local_in_windows(self, window: int, kernel: int, pad: int, dilation: int = 1) -> AxisRF:
        """A stride-1 sliding window applied separately inside aligned windows of ``window`` units, each
        zero-padded at its edges (a conv over window-partitioned tokens)."""
        span = dilation * (kernel - 1)

        def src(v: int) -> tuple[int, int]:
            i = v % window
            return v - i + max(i - pad, 0), v - i + min(i - pad + span, window - 1)

        return self.resample(src, 1, window, window, grow_min=lambda m, s: m + span * s)

    def shifted(self, units: int, step: int = 1) -> AxisRF:
        """Re-index the axis: new unit ``v`` is old unit ``units + v * step``."""
        return self.local(1, step, -units)

    def reduced(self) -> AxisRF:
        """The same RF with the shortest period that describes it."""
        p = self.period
        for d in range(1, p):
            if p % d or (d * self.stride).denominator != 1:
                continue
            adv = int(d * self.stride)
            if all(self.lo[i + d] == self.lo[i] + adv and self.hi[i + d] == self.hi[i] + adv for i in range(p - d)):
                return dataclasses.replace(self, lo=self.lo[:d], hi=self.hi[:d])
        return self


class PeriodTooLong(ValueError):
    """The RF pattern of an axis repeats too rarely to track exactly."""


class EmptyWindow(ValueError):
    """Some output unit reads no input unit (e.g. a transposed conv whose kernel is shorter than its stride)."""


@dataclass(frozen=True)
class RFState:
    """What rfkit knows about the RF of one tensor.

    Attributes
    ----------
    axes : tuple of AxisRF or None
        Local RF per spatial axis (input order: (h, w) for images). None when no local path reaches
        this tensor (e.g. after global pooling): every unit sees the whole input.
    layout : tuple of DimLayout or None
        Which tensor dims hold which parts of the spatial axes (:mod:`rfkit.graph.layout`). None when
        the layout could not be followed (a flatten into a classifier).
    is_global : bool
        Some path reaching this tensor sees the whole input.
    misaligned : bool
        Some merge joined inputs whose strides or centres differ.
    approximate : bool
        Some op on the way is modelled approximately (wrap-around of ``roll``, merges of unequal strides).
    unknown : bool
        An op with no RF rule lies on the way: the RF is not known.
    reads : tuple of (int, int) or None
        Per axis, the first and last input pixel that any unit of this tensor reads at all. A strided
        stem without padding leaves the last pixels of the input unread (ConvMixer at 96 px reads 0..90),
        which no window of a later layer can bring back.
    """

    axes: tuple[AxisRF, ...] | None
    layout: Layout | None
    is_global: bool = False
    misaligned: bool = False
    approximate: bool = False
    unknown: bool = False
    reads: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def input(cls, ndim_spatial: int, shape: Sequence[int]) -> RFState:
        """State of the network input, whose last ``ndim_spatial`` dims are spatial."""
        dims = tuple(range(len(shape) - ndim_spatial, len(shape)))
        return cls(
            axes=tuple(AxisRF.identity() for _ in dims),
            layout=lay.plain(shape, dims),
            reads=tuple((0, shape[d] - 1) for d in dims),
        )

    def narrowed(self, shape: Sequence[int]) -> RFState:
        """``reads`` cut down to what the units of a tensor of ``shape`` can reach: from the first pixel of
        unit 0's window to the last pixel of the last unit's (axes held in plain dims only)."""
        dims = self.dims
        if self.reads is None or self.axes is None or dims is None:
            return self
        reads = []
        for (lo, hi), axis, d in zip(self.reads, self.axes, dims):
            reads.append((max(lo, axis.bounds(0)[0]), min(hi, axis.bounds(shape[d] - 1)[1])))
        return dataclasses.replace(self, reads=tuple(reads))

    @property
    def naxes(self) -> int:
        return len(self.axes) if self.axes is not None else lay.axis_count(self.layout or ())

    @property
    def dims(self) -> tuple[int, ...] | None:
        """The dim of each axis when each axis is one whole dim (NCHW, channels-last), else None."""
        return lay.spatial_dims(self.layout, self.naxes)

    def spatial_dim_set(self) -> set[int]:
        """Tensor dims that hold any part of a spatial axis (or prefix tokens)."""
        if self.layout is None:
            return set()
        return {d for d, dl in enumerate(self.layout) if dl.spatial or dl.prefix}

    def replace(self, **changes) -> RFState:
        return dataclasses.replace(self, **changes)

    def with_axes(self, axes: Iterable[AxisRF] | None) -> RFState:
        return dataclasses.replace(self, axes=None if axes is None else tuple(axes))

    def with_layout(self, layout: Layout | None) -> RFState:
        return dataclasses.replace(self, layout=layout)

    def made_global(self, keep_local: bool = False) -> RFState:
        """The state after an op that mixes every position (``keep_local`` keeps the local paths' RF)."""
        return dataclasses.replace(self, is_global=True, axes=self.axes if keep_local else None)


def mix(state: RFState, dims: Iterable[int]) -> RFState:
    """State of a value that depends on every position held in the tensor dims ``dims`` (attention
    keys, the dim a linear layer or a reduction runs over).

    Mixing every piece of an axis makes the state global. Mixing part of an axis — a Swin window (the
    minor factor), a MaxViT grid (the major one) — widens each unit's window to the positions that share
    its other factors: exact, with a period.
    """
    dims = set(dims)
    if state.layout is None:
        return state.made_global() if dims else state
    mixed = [f for d in sorted(dims) for f in state.layout[d].factors if f.axis is not None]
    if not mixed or state.axes is None:
        return state
    for a in {f.axis for f in mixed}:
        every = [f for dl in state.layout for f in dl.factors if f.axis == a and f.size > 1]
        if all(f in mixed for f in every):
            return state.made_global()
    axes = list(state.axes)
    for f in mixed:
        if f.size > 1:
            axes[f.axis] = _mix_factor(axes[f.axis], f)
    return state.with_axes(axes)


def compact(state: RFState) -> RFState:
    """Re-index an axis whose minor pieces were consumed: when every remaining factor of an axis steps
    ``t > 1`` grid units (a patch merge flattened the 2×2 neighbours into channels and a linear layer
    mixed them), the remaining units are the old units ``0, t, 2t, ...``: a grid of stride ``t``.
    The mixing that consumed the minor pieces made those units' windows equal, so this is exact."""
    if state.layout is None or state.axes is None:
        return state
    axes, layout = list(state.axes), state.layout
    for a in range(len(axes)):
        # size-1 factors count: a reduction with keepdim leaves one behind, to broadcast back onto the grid
        steps = [f.step for dl in layout for f in dl.factors if f.axis == a]
        t = math.gcd(*steps) if steps else 1
        if t <= 1:
            continue
        axes[a] = axes[a].shifted(0, t)
        layout = tuple(
            lay.DimLayout(
                tuple(lay.Factor(f.axis, f.size, f.step // t) if f.axis == a else f for f in dl.factors), dl.prefix
            )
            for dl in layout
        )
    return state.with_axes(axes).with_layout(layout)


def _mix_factor(axis: AxisRF, f) -> AxisRF:
    """Unit v also sees the units that differ from it only in factor ``f`` (size m, step t)."""
    m, t = f.size, f.step

    def src(v: int) -> tuple[int, int]:
        k = (v // t) % m
        return v - k * t, v + (m - 1 - k) * t

    return axis.resample(src, 1, m * t, m * t)


def merge(states: Sequence[RFState], layout: Layout | None) -> RFState:
    """Join the states of the inputs of an elementwise op or a channel concatenation.

    Each unit sees the union of what it sees through each input: per unit, the first pixel is the
    minimum and the last the maximum over the inputs (exact, for every unit, when the strides agree);
    ``size_min`` is the minimum over inputs. Inputs whose strides disagree, or shift-invariant inputs
    whose centres disagree, mark the result ``misaligned`` (periodic inputs have centres that vary by unit
    by design, which ``periodic`` says); with unequal strides the union is kept for unit 0 only and the
    result is also ``approximate``.
    """
    flags = {f: any(getattr(s, f) for s in states) for f in ("is_global", "misaligned", "approximate", "unknown")}
    reads = [s.reads for s in states if s.reads is not None]
    flags["reads"] = tuple((min(r[0] for r in rs), max(r[1] for r in rs)) for rs in zip(*reads)) if reads else None
    local = [s.axes for s in states if s.axes is not None]
    if not local:
        return RFState(axes=None, layout=layout, **flags)
    ndim = len(local[0])
    if any(len(a) != ndim for a in local):
        return RFState(axes=None, layout=layout, **{**flags, "unknown": True})
    axes = []
    for per_input in zip(*local):
        first = per_input[0]
        same_stride = all(a.stride == first.stride for a in per_input)
        shift_invariant = all(a.period == 1 for a in per_input)  # else centres vary by unit anyway
        if not same_stride or (shift_invariant and any(a.center != first.center for a in per_input)):
            flags["misaligned"] = True
        if same_stride:
            period = math.lcm(*(a.period for a in per_input))
            if period > MAX_PERIOD:
                flags["approximate"] = True
                period = 1
            bounds = [[a.bounds(v) for a in per_input] for v in range(period)]
            axis = AxisRF(
                first.stride,
                tuple(min(b[0] for b in bs) for bs in bounds),
                tuple(max(b[1] for b in bs) for bs in bounds),
                min(a.size_min for a in per_input),
            )
            axes.append(axis.reduced())
        else:
            flags["approximate"] = True
            axes.append(
                AxisRF(
                    max(a.stride for a in per_input),
                    (min(a.lo[0] for a in per_input),),
                    (max(a.hi[0] for a in per_input),),
                    min(a.size_min for a in per_input),
                )
            )
    return RFState(axes=tuple(axes), layout=layout, **flags)
