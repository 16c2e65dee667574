"""Any layer's output as a ``(B, C, *grid)`` feature map, from the layout the graph pass recorded.

CAM libraries need a feature map ``(B, C, H, W)``; ViT tokens behind a class token, Swin windows,
channels-last outputs and attention heads each need a hand-written ``reshape_transform`` there. The layout of
every node (:mod:`rfkit.graph.layout`) already says which tensor dims hold which pieces of each spatial axis,
so one function does all of them: prefix tokens are dropped, every dim is split into its factors, the batch
factor goes first, the other non-spatial factors (channels, heads) are merged into ``C``, and the pieces of
each axis are put back in order (major to minor, by their step).
"""

from __future__ import annotations

import math

import torch

from rfkit.graph.layout import Factor, Layout
from rfkit.graph.units import LayoutMismatchError, fit_batch


def _axis_order(factors: list[tuple[int, Factor]], axis: int) -> list[int]:
    """Positions of ``axis``'s factors, major to minor; raises unless they tile the axis exactly."""
    mine = sorted(((f.step, i, f) for i, f in factors if f.axis == axis), key=lambda t: -t[0])
    expected = 1
    for step, _, f in reversed(mine):
        if step != expected:
            raise LayoutMismatchError(
                f"the pieces of spatial axis {axis} do not tile it (step {step}, expected {expected})"
            )
        expected *= f.size
    return [i for _, i, _ in mine]


def to_grid(y: torch.Tensor, layout: Layout, naxes: int) -> torch.Tensor:
    """``y`` (a node's output, at any batch size) as ``(B, C, *grid)``.

    Parameters
    ----------
    y : Tensor
        The node's output.
    layout : Layout
        The node's layout as the graph pass recorded it (at the traced batch size).
    naxes : int
        Spatial axes of the input (2 for images).

    Returns
    -------
    Tensor
        A view or copy of ``y`` with the batch first, every non-spatial factor but the batch merged into
        channels, then the spatial axes in order. Prefix (class, register) tokens are left out.

    Raises
    ------
    LayoutMismatchError
        ``y`` does not fit the layout, the batch is not the outermost factor of dim 0, or an axis is held
        only in part.

    Examples
    --------
    ViT tokens ``(B, 1 + 2*3, C)`` behind a class token:

    >>> from rfkit.graph.layout import DimLayout
    >>> tokens = (DimLayout((Factor(None, 2),)), DimLayout((Factor(0, 2), Factor(1, 3)), prefix=1),
    ...           DimLayout((Factor(None, 4),)))
    >>> y = torch.arange(2 * 7 * 4).reshape(2, 7, 4)
    >>> g = to_grid(y, tokens, 2)
    >>> tuple(g.shape), g[0, :, 1, 2].tolist() == y[0, 1 + 1 * 3 + 2].tolist()
    ((2, 4, 2, 3), True)
    """
    layout = fit_batch(layout, tuple(y.shape))
    for d, dl in enumerate(layout):
        if dl.prefix:
            y = y.narrow(d, dl.prefix, dl.size - dl.prefix)
    factors = [f for dl in layout for f in dl.factors]
    y = y.reshape([f.size for f in factors])
    first = layout[0].factors[0] if layout and layout[0].factors else None
    if first is None or first.axis is not None:
        raise LayoutMismatchError("the batch is not the first dim of the layer's output")
    indexed = list(enumerate(factors))
    channels = [i for i, f in indexed[1:] if f.axis is None]
    spatial = [i for a in range(naxes) for i in _axis_order(indexed, a)]
    y = y.permute([0, *channels, *spatial])
    grid = [math.prod(f.size for f in factors if f.axis == a) for a in range(naxes)]
    return y.reshape(factors[0].size, math.prod(factors[i].size for i in channels), *grid)


class GridTransform:
    """A ``reshape_transform`` for pytorch-grad-cam: ``to_grid`` with a fixed layout.

    >>> from rfkit.graph.layout import plain
    >>> t = GridTransform(plain((2, 5, 6, 3), (1, 2)), 2)  # channels-last (B, H, W, C)
    >>> tuple(t(torch.zeros(4, 5, 6, 3)).shape)
    (4, 3, 5, 6)
    """

    def __init__(self, layout: Layout, naxes: int) -> None:
        self.layout, self.naxes = layout, naxes

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if isinstance(y, (tuple, list)):
            y = y[0]
        return to_grid(y, self.layout, self.naxes)


def is_nchw(layout: Layout, naxes: int) -> bool:
    """Whether a layout is the plain ``(N, C, *grid)``: batch, channels, then each spatial axis whole.

    >>> from rfkit.graph.layout import plain
    >>> is_nchw(plain((2, 8, 5, 6), (2, 3)), 2), is_nchw(plain((2, 5, 6, 8), (1, 2)), 2)
    (True, False)
    """
    if layout is None or len(layout) != 2 + naxes or any(dl.prefix or len(dl.factors) != 1 for dl in layout):
        return False
    axes = [dl.factors[0].axis for dl in layout]
    steps = [dl.factors[0].step for dl in layout[2:]]
    return axes == [None, None, *range(naxes)] and all(s == 1 for s in steps)
