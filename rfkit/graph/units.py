"""From a unit of the spatial grid to the tensor entries that hold it.

A node's :mod:`layout <rfkit.graph.layout>` says which tensor dims hold which pieces of each spatial axis,
so the entries of one unit can be found without guessing from shapes: ``(B, C, H, W)``, channels-last
``(B, H, W, C)``, ViT tokens ``(B, 1 + H*W, C)`` behind a class token, Swin windows
``(B*nH*nW, ws*ws, C)`` all work the same way. The ERF engine uses this to pick the measured unit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from rfkit.graph.layout import DimLayout, Factor, Layout


class LayoutMismatchError(ValueError):
    """A tensor's shape cannot be matched with the layout the graph pass recorded for its node."""


def grid_shape(layout: Layout, naxes: int) -> tuple[int, ...]:
    """Units per spatial axis held by a tensor of this layout.

    >>> from rfkit.graph.layout import plain
    >>> grid_shape(plain((2, 8, 7, 5), (2, 3)), 2)
    (7, 5)
    """
    extent = [1] * naxes
    for dl in layout:
        for f in dl.factors:
            if f.axis is not None:
                extent[f.axis] = max(extent[f.axis], f.step * f.size)
    held = [any(f.axis == a for dl in layout for f in dl.factors) for a in range(naxes)]
    if not all(held):
        missing = [a for a, h in enumerate(held) if not h]
        raise LayoutMismatchError(f"the tensor holds no positions of spatial axis {missing}")
    return tuple(extent)


def centre_unit(grid: Sequence[int]) -> tuple[int, ...]:
    """The unit at the centre of a grid, ``n // 2`` per axis (the ERF's unit, Luo et al. 2016).

    >>> centre_unit((14, 7))
    (7, 3)
    """
    return tuple(n // 2 for n in grid)


def fit_batch(layout: Layout, shape: Sequence[int]) -> Layout:
    """The layout of the same node run at another batch size: in each dim whose size differs, the
    outermost non-spatial factor (the batch, alone or merged with heads or windows) takes the ratio."""
    if len(layout) != len(shape):
        raise LayoutMismatchError(f"tensor of rank {len(shape)} does not match the traced rank {len(layout)}")
    out = []
    for dl, n in zip(layout, shape):
        if dl.size == n:
            out.append(dl)
            continue
        rest = dl.size - dl.prefix
        k = next((i for i, f in enumerate(dl.factors) if f.axis is None), None)
        if k is None or (n - dl.prefix) % (rest // dl.factors[k].size) or n < dl.prefix:
            raise LayoutMismatchError(f"tensor dim of size {n} does not match the traced size {dl.size}")
        f = dl.factors[k]
        scaled = Factor(None, (n - dl.prefix) // (rest // f.size))
        out.append(DimLayout(dl.factors[:k] + (scaled,) + dl.factors[k + 1 :], dl.prefix))
    return tuple(out)


def _dim_indices(dl: DimLayout, unit: Sequence[int]) -> list[int]:
    """Indices along one dim whose spatial digits match ``unit`` (every value of non-spatial factors)."""
    choices = []
    for f in dl.factors:
        if f.axis is None:
            choices.append(range(f.size))
        else:
            choices.append([(unit[f.axis] // f.step) % f.size])
    sizes = [f.size for f in dl.factors]
    strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
    return [dl.prefix + sum(d * s for d, s in zip(digits, strides)) for digits in itertools.product(*choices)]


def select_unit(y: torch.Tensor, layout: Layout, unit: Sequence[int]) -> torch.Tensor:
    """The entries of ``y`` that belong to grid unit ``unit`` (all batch items, channels, heads), flattened
    per dim: shape ``(n0, n1, ...)`` with one index per spatial-holding dim.

    Parameters
    ----------
    y : Tensor
        The node's output, at any batch size.
    layout : Layout
        The node's layout as recorded by the graph pass (at the traced batch size).
    unit : sequence of int
        One index per spatial axis, each inside :func:`grid_shape`.

    Examples
    --------
    >>> import torch
    >>> from rfkit.graph.layout import DimLayout, Factor
    >>> tokens = (DimLayout((Factor(None, 2),)), DimLayout((Factor(0, 3), Factor(1, 4)), prefix=1),
    ...           DimLayout((Factor(None, 5),)))
    >>> y = torch.arange(2 * 13 * 5).reshape(2, 13, 5)
    >>> select_unit(y, tokens, (1, 2)).flatten().tolist()[:5]   # token 1 + 1*4 + 2 of image 0
    [35, 36, 37, 38, 39]
    """
    layout = fit_batch(layout, tuple(y.shape))
    grid = grid_shape(layout, len(unit))
    if any(not 0 <= u < n for u, n in zip(unit, grid)):
        raise IndexError(f"unit {tuple(unit)} is outside the grid {grid}")
    for d, dl in enumerate(layout):
        if any(f.axis is not None for f in dl.factors):
            index = torch.tensor(_dim_indices(dl, unit), device=y.device)
            y = y.index_select(d, index)
    return y
