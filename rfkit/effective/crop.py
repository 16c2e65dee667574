"""Measuring a unit on the part of the input it can see.

The input gradient of one unit of a local layer is zero outside the unit's RF window, and the unit's value
depends only on the pixels inside it. So an early layer's ERF can be measured on a crop of the input
around that window, at a fraction of the cost (``layer1`` of a ResNet-50 at 224 px: a 48 px crop). The
crop starts at a multiple of the layer's stride, so every feature map of the crop is an exact sub-grid of
the full one, and it holds the whole window, so no zero padding at the crop's border reaches the unit.

This is only done where the analytic RF says it is safe (a local, shift-invariant, aligned layer with an
integer stride, held in plain spatial dims) and, because a model can break translation equivariance in
ways the graph cannot see (TF 'SAME' padding that depends on the input size, a resize to a fixed size),
the engine checks the crop against the full computation on the first batch and keeps it only if the maps
agree.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FRACTION = 0.5  # crop only when the crop is at most this fraction of the input's area


@dataclass(frozen=True)
class Crop:
    """Per spatial axis, the input pixels ``[start, stop)`` to keep, and the unit's index in the crop's grid."""

    start: tuple[int, ...]
    stop: tuple[int, ...]
    unit: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def fraction(self, input_size) -> float:
        f = 1.0
        for a, b, n in zip(self.start, self.stop, input_size):
            f *= (b - a) / n
        return f


def crop_for(info, unit, input_size, max_fraction: float = MAX_FRACTION) -> Crop | None:
    """The crop that holds ``unit``'s RF window, or None when cropping is not safe or not worth it.

    >>> from rfkit.graph.info import RFInfo
    >>> info = RFInfo((35, 35), (35, 35), (35, 35), (4, 4), (17, 17), (0, 0), dims=(2, 3),
    ...               windows=(((-17, 17),), ((-17, 17),)))
    >>> crop_for(info, (28, 28), (224, 224))  # the window 95..129 in a crop starting at 92 (a multiple of 4)
    Crop(start=(92, 92), stop=(130, 130), unit=(5, 5))
    """
    if info.is_global or info.unknown or info.approximate or info.misaligned or not info.shift_invariant:
        return None
    if info.dims is None or info.windows is None:
        return None
    start, stop, inner = [], [], []
    for (lo, hi), s, u, n in zip(info.window_of(tuple(unit)), info.stride, unit, input_size):
        if s != int(s) or s < 1:
            return None
        s = int(s)
        a = (max(lo, 0) // s) * s
        b = min(n, hi + 1)
        if b <= a:
            return None
        start.append(a)
        stop.append(b)
        inner.append(u - a // s)
    crop = Crop(tuple(start), tuple(stop), tuple(inner))
    return crop if crop.fraction(input_size) <= max_fraction else None
