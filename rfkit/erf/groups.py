"""What an ERF run keeps besides the mean map, so that its metrics get confidence intervals: per-group map
sums and the per-pixel sum of squares (:class:`GroupSums`).

Per-image maps cannot be kept for 50,000 images, so the images are pooled into **groups** by their index in
the stream (the order one process reads it): image ``i`` belongs to group ``i // k``, ``k`` images per group.
``k`` starts at 1 (a group is an image) and doubles whenever an image would open group ``capacity``: the
groups are then added up pairwise (``0 + 1``, ``2 + 3``, ...), so they stay contiguous blocks of ``k`` images,
between ``capacity / 2`` and ``capacity`` of them once there are that many images, whatever the number of
images. Memory is ``capacity × H × W`` float64 per layer, with ``capacity`` set by a memory budget
(:func:`group_capacity`).

Why resampling groups is the bootstrap over images: the images are a random sample (drawn independently
from the same distribution), so the sums over disjoint blocks of ``k`` of them are independent and
identically distributed too (the last block may hold fewer images: the mean map is the ratio of summed map
to summed count, and a resample draws blocks with their counts). Resampling blocks with replacement is the
block (cluster) bootstrap over images; with ``k = 1`` it is the ordinary bootstrap.

Under torchrun each process measures a share of the images (:mod:`rfkit.pipeline.distributed`); since a
group is defined by image index, not by process, the groups of all processes added up (:meth:`GroupSums.reduce`)
are the groups one process would have kept over the same images.

>>> g = GroupSums(["a"], (1, 2), capacity=2, expected=4)
>>> g.add({"a": np.array([[[1.0, 0.0]], [[3.0, 0.0]], [[5.0, 1.0]]])}, np.array([0, 1, 2]))
>>> g.size, g.counts.tolist(), g.sums["a"].sum(axis=(1, 2)).tolist()  # image 2 opened group 2: pairs merged
(2, [2, 1], [4.0, 6.0])
>>> g.squares["a"].tolist()
[[35.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from rfkit.pipeline.distributed import SINGLE, World, all_reduce_arrays, all_reduce_max

MEMORY_BUDGET = 256 * 2**20
"""Bytes the group sums of one run may take, all layers together (see :func:`group_capacity`)."""
MAX_GROUPS = 200
MIN_GROUPS = 16


def group_capacity(shape: tuple[int, ...], layers: int, budget: int = MEMORY_BUDGET) -> int:
    """The most groups :class:`GroupSums` keeps: as many float64 maps of ``shape`` per layer as fit in
    ``budget`` bytes, between :data:`MIN_GROUPS` and :data:`MAX_GROUPS`, and even (groups merge in pairs).

    >>> group_capacity((224, 224), 4), group_capacity((1024, 1024), 4), group_capacity((32, 32), 1)
    (166, 16, 200)
    """
    per_group = 8 * int(np.prod(shape)) * max(layers, 1)
    fit = budget // max(per_group, 1)
    return int(min(MAX_GROUPS, max(MIN_GROUPS, fit))) // 2 * 2


class GroupSums:
    """Per-group sums of the per-image maps of each layer, images per group, and per-pixel sums of squares.

    Parameters
    ----------
    keys : sequence of str
        The layers.
    shape : tuple of int
        ``(H, W)`` of a map.
    capacity : int
        The most groups kept (even, >= 2): :func:`group_capacity`.
    expected : int
        The most images the run can see (``num_images``): no more than that many groups are allocated.

    Attributes
    ----------
    size : int
        Images per group (the last used group may hold fewer).
    sums : dict[str, numpy.ndarray]
        Per layer, ``(rows, H, W)``: the sum of the maps of each group's images.
    counts : numpy.ndarray
        ``(rows,)`` images in each group.
    squares : dict[str, numpy.ndarray]
        Per layer, ``(H, W)``: the sum over images of the squared per-image map (for :meth:`sem`).
    """

    def __init__(self, keys, shape: tuple[int, ...], capacity: int, expected: int) -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even number >= 2; got {capacity}")
        self.capacity = int(capacity)
        self.size = 1
        rows = max(1, min(self.capacity, int(expected)))
        self.sums = {k: np.zeros((rows, *shape)) for k in keys}
        self.squares = {k: np.zeros(shape) for k in keys}
        self.counts = np.zeros(rows, dtype=np.int64)

    @property
    def groups(self) -> int:
        """Groups holding at least one image (they come first: groups fill in stream order)."""
        used = np.flatnonzero(self.counts)
        return int(used[-1]) + 1 if used.size else 0

    @property
    def images(self) -> int:
        return int(self.counts.sum())

    def add(self, maps: dict[str, np.ndarray], indices: np.ndarray) -> None:
        """Add per-image maps (``(b, H, W)`` per layer) of the images whose stream indices are ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return
        while int(indices.max()) // self.size >= self.capacity:
            self._merge()
        which = indices // self.size
        for g in np.unique(which):
            chosen = which == g
            self.counts[g] += int(chosen.sum())
            for key, m in maps.items():
                self.sums[key][g] += m[chosen].sum(axis=0)
        for key, m in maps.items():
            self.squares[key] += np.einsum("bhw,bhw->hw", m, m)

    def _merge(self) -> None:
        """Add up neighbouring groups pairwise: ``k`` doubles, the groups stay contiguous."""
        for arr in (*self.sums.values(), self.counts):
            pairs = arr[0::2].copy()
            pairs[: arr[1::2].shape[0]] += arr[1::2]
            arr[:] = 0
            arr[: pairs.shape[0]] = pairs
        self.size *= 2

    def grow_to(self, size: int) -> None:
        """Merge until there are ``size`` images per group (a power of two at least :attr:`size`)."""
        while self.size < size:
            self._merge()

    def reduce(self, world: World = SINGLE) -> GroupSums:
        """This object with every process's groups added in (in place; every process gets the same): the
        group size is first brought to the largest any process has, so that group ``j`` holds the same images
        everywhere. One process: unchanged."""
        if not world.distributed:
            return self
        self.grow_to(all_reduce_max(self.size, world))
        arrays = {f"sum:{k}": v for k, v in self.sums.items()} | {f"sq:{k}": v for k, v in self.squares.items()}
        arrays["counts"] = self.counts.astype(np.float64)
        total = all_reduce_arrays(arrays, world)
        self.sums = {k: total[f"sum:{k}"] for k in self.sums}
        self.squares = {k: total[f"sq:{k}"] for k in self.squares}
        self.counts = np.rint(total["counts"]).astype(np.int64)
        return self

    def profiles(self, world: World = SINGLE) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Per layer the row and column sums of each group's map (``(rows, H)``, ``(rows, W)``), and the counts,
        added up over the processes (the group sizes aligned first, as :meth:`reduce`): what
        :func:`rfkit.erf.bootstrap.ratio_half_widths` needs, a fraction of the size of the maps."""
        if world.distributed:
            self.grow_to(all_reduce_max(self.size, world))
        arrays = {f"r:{k}": v.sum(axis=2) for k, v in self.sums.items()}
        arrays |= {f"c:{k}": v.sum(axis=1) for k, v in self.sums.items()}
        arrays["counts"] = self.counts.astype(np.float64)
        if world.distributed:
            arrays = all_reduce_arrays(arrays, world)
        return {k: (arrays[f"r:{k}"], arrays[f"c:{k}"]) for k in self.sums}, np.rint(arrays["counts"]).astype(np.int64)

    def sem(self, key: str) -> np.ndarray:
        """The standard error of the mean map, per pixel: ``sqrt(s² / N)`` with ``s²`` the per-pixel sample
        variance of the per-image maps over the ``N`` images (all zero for fewer than two images)."""
        n = self.images
        if n < 2:
            return np.zeros_like(self.squares[key])
        mean = self.sums[key].sum(axis=0) / n
        var = np.maximum(self.squares[key] - n * mean * mean, 0.0) / (n - 1)
        return np.sqrt(var / n)
