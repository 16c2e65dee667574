"""What an ERF run keeps besides the mean map, so that its metrics get confidence intervals: per-group map
sums and the per-pixel sum of squares (:class:`GroupSums`).

Images are not all independent: the sample photographs' extra views are crops and flips of the same ten
photos. So every image carries a **source id** (:func:`rfkit.pipeline.images.source_ids`: views of one photo
share one; any other image is its own source; ids are dense, ``0 .. S - 1``), and the maps are added up per
source: every view of a photo lands in its photo's group, whatever its place in the stream.

Per-source maps cannot be kept for 50,000 sources, so the sources are pooled into **groups** by id: source
``s`` belongs to group ``s // k``, ``k`` sources per group. ``k`` starts at 1 (a group is a source) and
doubles whenever a source would open group ``capacity``: the groups are then added up pairwise (``0 + 1``,
``2 + 3``, ...), so they stay contiguous blocks of ``k`` sources, between ``capacity / 2`` and ``capacity``
of them once there are that many sources. Memory is ``capacity × H × W`` float64 per layer, with
``capacity`` set by a memory budget (:func:`group_capacity`).

Why resampling groups is the bootstrap over independent images: the sources are a random sample (drawn
independently from the same distribution), so the sums over disjoint blocks of ``k`` of them, with all
their views, are independent and identically distributed too (a group may hold more or fewer images: the
mean map is the ratio of summed map to summed count, and a resample draws groups with their counts).
Resampling groups with replacement is the cluster bootstrap; with one image per source and ``k = 1`` it is
the ordinary bootstrap over images.

Under torchrun each process measures a share of the images (:mod:`rfkit.pipeline.distributed`); since a
group is defined by source id, not by process, the groups of all processes added up (:meth:`GroupSums.reduce`)
are the groups one process would have kept over the same images.

>>> g = GroupSums(["a"], (1, 2), capacity=2, expected=4)
>>> g.add({"a": np.array([[[1.0, 0.0]], [[3.0, 0.0]], [[5.0, 1.0]]])}, np.array([0, 1, 2]))
>>> g.size, g.counts.tolist(), g.sums["a"].sum(axis=(1, 2)).tolist()  # source 2 opened group 2: pairs merged
(2, [2, 1], [4.0, 6.0])
>>> v = GroupSums(["a"], (1, 2), capacity=4, expected=3)  # three views of two photos: 0, 1, 0
>>> v.add({"a": np.array([[[1.0, 0.0]], [[3.0, 0.0]], [[5.0, 1.0]]])}, np.array([0, 1, 0]))
>>> v.counts.tolist(), v.sources, v.images
([2, 1, 0], 2, 3)
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
        Sources per group (the last used group may hold fewer).
    sources : int
        Independent sources seen (the largest source id plus one).
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
        self.sources = 0

    @property
    def groups(self) -> int:
        """Groups holding at least one image (they come first: groups fill in stream order)."""
        used = np.flatnonzero(self.counts)
        return int(used[-1]) + 1 if used.size else 0

    @property
    def images(self) -> int:
        return int(self.counts.sum())

    def add(self, maps: dict[str, np.ndarray], sources: np.ndarray) -> None:
        """Add per-image maps (``(b, H, W)`` per layer) of images whose source ids are ``sources``."""
        sources = np.asarray(sources, dtype=np.int64)
        if sources.size == 0:
            return
        self.sources = max(self.sources, int(sources.max()) + 1)
        while int(sources.max()) // self.size >= self.capacity:
            self._merge()
        which = sources // self.size
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
        """Merge until there are ``size`` sources per group (a power of two at least :attr:`size`)."""
        while self.size < size:
            self._merge()

    def reduce(self, world: World = SINGLE) -> GroupSums:
        """This object with every process's groups added in (in place; every process gets the same): the
        group size is first brought to the largest any process has, so that group ``j`` holds the same images
        everywhere. One process: unchanged."""
        if not world.distributed:
            return self
        self.grow_to(all_reduce_max(self.size, world))
        self.sources = all_reduce_max(self.sources, world)
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
        :func:`rfkit.effective.bootstrap.ratio_intervals` needs, a fraction of the size of the maps."""
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
