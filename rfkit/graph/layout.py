"""Where a tensor keeps its spatial axes.

A tensor's layout lists, for each tensor dim, what that dim indexes: a product of *factors*, major to
minor, after an optional run of ``prefix`` entries that are not on the grid (class, register or
distillation tokens). A factor is a piece of one spatial axis — ``size`` positions, ``step`` grid units
apart — or non-spatial content (channels, batch). This describes every layout vision models use:

======================================  ==============================================================
NCHW feature map                        dim 2: [h], dim 3: [w]
channels-last (B, H, W, C)              dim 1: [h], dim 2: [w]
ViT tokens (B, 1 + H*W, C)              dim 1: prefix 1, [h, w]
Swin windows (B*nH*nW, ws*ws, C)        dim 0: [batch, h/ws (step ws), w/ws (step ws)], dim 1: [h ws, w ws]
======================================  ==============================================================

Reshapes split and merge factors exactly (like einops), so a window partition followed by its reverse
gives the plain layout back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Factor:
    """``size`` positions of spatial axis ``axis`` (None: non-spatial content), ``step`` grid units apart."""

    axis: int | None
    size: int
    step: int = 1


@dataclass(frozen=True)
class DimLayout:
    """What one tensor dim indexes: ``prefix`` off-grid entries, then the product of ``factors``."""

    factors: tuple[Factor, ...]
    prefix: int = 0

    @property
    def size(self) -> int:
        return self.prefix + math.prod(f.size for f in self.factors)

    @property
    def spatial(self) -> bool:
        return any(f.axis is not None for f in self.factors)

    @classmethod
    def other(cls, size: int) -> DimLayout:
        return cls((Factor(None, size),))


Layout = tuple[DimLayout, ...]


class LayoutError(ValueError):
    """A reshape that splits or merges dims in a way the layout cannot follow."""


def plain(shape: Sequence[int], spatial_dims: Sequence[int]) -> Layout:
    """Layout of a tensor whose spatial axis ``i`` is the whole dim ``spatial_dims[i]``."""
    axis_of = {d: i for i, d in enumerate(spatial_dims)}
    return tuple(DimLayout((Factor(axis_of.get(d), n),)) for d, n in enumerate(shape))


def normalise(factors: Sequence[Factor]) -> tuple[Factor, ...]:
    """Merge neighbouring factors that are one piece (same axis, outer step = inner step × inner size)."""
    out: list[Factor] = []
    for f in factors:
        if out:
            prev = out[-1]
            if prev.axis is None and f.axis is None:
                out[-1] = Factor(None, prev.size * f.size)
                continue
            if prev.axis is not None and prev.axis == f.axis and prev.step == f.step * f.size:
                out[-1] = Factor(f.axis, prev.size * f.size, f.step)
                continue
        out.append(f)
    return tuple(out)


def axis_count(layout: Layout) -> int:
    axes = [f.axis for d in layout for f in d.factors if f.axis is not None]
    return max(axes) + 1 if axes else 0


def spatial_dims(layout: Layout | None, naxes: int) -> tuple[int, ...] | None:
    """The dim holding each axis when every axis is one whole dim of its own (NCHW, channels-last); else None."""
    if layout is None:
        return None
    found: list[int] = []
    for a in range(naxes):
        holders = [(d, dl) for d, dl in enumerate(layout) if any(f.axis == a for f in dl.factors)]
        if len(holders) != 1:
            return None
        d, dl = holders[0]
        if dl.prefix or len(dl.factors) != 1 or dl.factors[0].step != 1:
            return None
        found.append(d)
    return tuple(found)


def fit(layout: Layout, shape: Sequence[int]) -> Layout | None:
    """Bring a layout in line with the shape an op produced: a dim of one factor takes the new size
    (a conv shortened the map), a non-spatial dim becomes plain content; a composite dim whose size
    changed cannot be followed (None)."""
    if len(layout) != len(shape):
        return None
    out = []
    for dl, n in zip(layout, shape):
        if dl.size == n:
            out.append(dl)
        elif not dl.prefix and len(dl.factors) == 1:
            f = dl.factors[0]
            out.append(DimLayout((Factor(f.axis, n, f.step),)))
        elif not dl.spatial:
            out.append(DimLayout.other(n))
        else:
            return None
    return tuple(out)


def permute(layout: Layout, perm: Sequence[int]) -> Layout:
    return tuple(layout[p] for p in perm)


def drop(layout: Layout, dims: set[int]) -> Layout:
    return tuple(dl for d, dl in enumerate(layout) if d not in dims)


def insert(layout: Layout, dim: int, size: int = 1) -> Layout:
    return layout[:dim] + (DimLayout.other(size),) + layout[dim:]


def _groups(in_shape: Sequence[int], out_shape: Sequence[int]):
    """Smallest runs of consecutive dims whose sizes multiply to the same number on both sides (each run
    takes at least one dim from each side that has dims left)."""
    i = j = 0
    n, m = len(in_shape), len(out_shape)
    while i < n or j < m:
        gi, gj = [], []
        pi = pj = 1
        if i < n:
            pi, i = in_shape[i], i + 1
            gi.append(i - 1)
        if j < m:
            pj, j = out_shape[j], j + 1
            gj.append(j - 1)
        while pi != pj:
            if pi < pj and i < n:
                pi, i = pi * in_shape[i], i + 1
                gi.append(i - 1)
            elif pj < pi and j < m:
                pj, j = pj * out_shape[j], j + 1
                gj.append(j - 1)
            else:
                raise LayoutError(f"cannot reshape {tuple(in_shape)} to {tuple(out_shape)}")
        yield gi, gj


def _distribute(factors: list[Factor], sizes: Sequence[int]) -> list[DimLayout]:
    """Deal the factors out to output dims of the given sizes, splitting a factor where a dim ends inside it."""
    pending = list(factors)
    out = []
    for n in sizes:
        dim, prod = [], 1
        if n == 1 and pending and pending[0].size == 1:  # a length-1 axis keeps its own dim
            dim.append(pending.pop(0))
        while prod < n:
            if not pending:
                raise LayoutError("factors run out")
            f = pending.pop(0)
            if f.size == 1:  # a length-1 axis merged into another dim: nothing left to track
                continue
            if n % (prod * f.size) == 0:
                dim.append(f)
                prod *= f.size
                continue
            k = n // prod
            if n % prod or f.size % k:
                raise LayoutError(f"a dim of {n} cuts a factor of {f.size} unevenly")
            dim.append(Factor(f.axis, k, f.step * (f.size // k) if f.axis is not None else 1))
            pending.insert(0, Factor(f.axis, f.size // k, f.step))
            prod *= k
        out.append(DimLayout(normalise(dim) or (Factor(None, 1),)))
    if any(f.size != 1 for f in pending):
        raise LayoutError("factors left over")
    return out


def reshape(layout: Layout, in_shape: Sequence[int], out_shape: Sequence[int]) -> Layout:
    """The layout after ``reshape(out_shape)`` (also view, flatten, unflatten, squeeze, unsqueeze).

    >>> lay = reshape(plain((2, 8, 4, 6), (2, 3)), (2, 8, 4, 6), (2, 8, 24))   # flatten(2): tokens
    >>> lay[2].factors
    (Factor(axis=0, size=4, step=1), Factor(axis=1, size=6, step=1))
    >>> reshape(lay, (2, 8, 24), (2, 8, 4, 6)) == plain((2, 8, 4, 6), (2, 3))
    True
    """
    out: list[DimLayout] = []
    for gi, gj in _groups(in_shape, out_shape):
        src = [layout[d] for d in gi]
        if any(dl.prefix for dl in src):
            if len(gi) == 1 and len(gj) == 1:  # prefixed dim passes through unchanged
                out.append(src[0])
                continue
            raise LayoutError("reshaping a dim that holds prefix tokens")
        factors = [f for dl in src for f in dl.factors]
        out.extend(_distribute(factors, [out_shape[j] for j in gj]))
    return tuple(out)
