"""Each process's share of the image stream, read by that process alone, with every image's index in the
stream: what an ERF run under torchrun measures (:mod:`rfkit.pipeline.distributed`).

The stream is the one :func:`rfkit.pipeline.images.image_batches` gives one process: the first
``num_images`` readable images of the source, in its order. Under torchrun the source's items (files, sample
views, noise images) are taken in steps of ``batch_size × size``; in each step rank ``r`` decodes only the
items at positions ``r, r + size, ...`` of the step, and the ranks then tell each other (one small
``all_gather_object``) which of their items could be read, so that every rank knows which readable items are
among the first ``num_images`` and where each stands in the stream. A file one rank cannot read is replaced
by the next readable item of the stream, whichever rank decodes it: the N processes together measure exactly
the images one process would, each decoded once. A tensor source (already model-ready) is sliced the same
way, without decoding or messages.

Every rank yields exactly one batch per step (empty when none of its items is kept), so that the ranks stay
in step with any check they make together after each batch (``until_stable``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch

from rfkit.errors import ImageSourceError
from rfkit.pipeline.distributed import SINGLE, World
from rfkit.pipeline.images import (
    ImageStats,
    checked_tensor,
    decoded_items,
    failure_reason,
    image_batches,
    no_readable_image,
    opened,
    source_ids,
)


@dataclass(frozen=True)
class IndexedBatch:
    """A batch of model-ready images and where each stands in the stream.

    Attributes
    ----------
    images : torch.Tensor
        ``(B, C, H, W)`` float32 (``B`` may be 0 under torchrun: see the module docstring).
    index : numpy.ndarray
        ``(B,)`` int64: image ``k`` of the batch is image ``index[k]`` of the stream (0-based, counting the
        images used, not the files skipped).
    source : numpy.ndarray, optional
        ``(B,)`` int64: the independent source of each image (:func:`~rfkit.pipeline.images.source_ids`:
        views of one photo share one); None reads as ``index`` (every image its own source).
    """

    images: torch.Tensor
    index: np.ndarray
    source: np.ndarray | None = None

    @property
    def sources(self) -> np.ndarray:
        """:attr:`source`, or :attr:`index` where none was given."""
        return self.index if self.source is None else self.source

    def __len__(self) -> int:
        return int(self.images.shape[0])


def sharded_batches(
    images,
    data_config: dict,
    num_images: int,
    batch_size: int,
    world: World = SINGLE,
    *,
    seed: int = 0,
    stats: ImageStats | None = None,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[IndexedBatch]:
    """This process's share of the batches of :func:`~rfkit.pipeline.images.image_batches` (same arguments),
    with each image's stream index and source id (:func:`~rfkit.pipeline.images.source_ids`); one process:
    every batch.

    ``stats`` ends up the same on every rank and the same as one process's: images used and files skipped of
    the whole stream.

    Examples
    --------
    >>> cfg = {"input_size": (3, 8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3,
    ...        "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
    >>> [b.index.tolist() for b in sharded_batches("noise", cfg, 5, 2)]
    [[0, 1], [2, 3], [4]]
    >>> x = torch.zeros(5, 3, 8, 8)
    >>> [b.index.tolist() for b in sharded_batches(x, cfg, 5, 2, World(rank=1, size=2))]  # steps of 4 images
    [[1, 3], []]
    >>> [b.source.tolist() for b in sharded_batches("sample", cfg, 12, 6)]  # views 10, 11: photos 0, 1
    [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 0, 1]]
    """
    batches = _indexed(images, data_config, num_images, batch_size, world, seed, stats, workers, pin_memory)
    return (IndexedBatch(b.images, b.index, source_ids(images, b.index)) for b in batches)


def _indexed(images, data_config, num_images, batch_size, world, seed, stats, workers, pin_memory):
    """:func:`sharded_batches` without the source ids."""
    if not world.distributed:
        batches = image_batches(
            images,
            data_config,
            num_images,
            batch_size,
            seed=seed,
            stats=stats,
            workers=workers,
            pin_memory=pin_memory,
        )
        return _numbered(batches)
    cfg, stats, source = opened(images, data_config, num_images, batch_size, seed, stats, workers)
    if isinstance(images, torch.Tensor):
        batches = _tensor_share(checked_tensor(images, cfg), num_images, batch_size, world, stats)
    else:
        batches = _file_share(source, num_images, batch_size, world, stats, cfg, workers)
    return (IndexedBatch(b.images.pin_memory(), b.index) for b in batches) if pin_memory else batches


def _numbered(batches) -> Iterator[IndexedBatch]:
    start = 0
    for b in batches:
        yield IndexedBatch(b, np.arange(start, start + b.shape[0], dtype=np.int64))
        start += b.shape[0]


def _steps(n: int, step: int) -> Iterator[range]:
    for first in range(0, n, step):
        yield range(first, min(first + step, n))


def _tensor_share(x: torch.Tensor, n: int, bs: int, world: World, stats: ImageStats) -> Iterator[IndexedBatch]:
    n = min(n, x.shape[0])
    for rows in _steps(n, bs * world.size):
        mine = np.asarray([i for i in rows if i % world.size == world.rank], dtype=np.int64)
        rows_of = torch.as_tensor(mine, dtype=torch.long)
        stats.used += len(rows)  # the whole stream's count, as for files
        yield IndexedBatch(x[rows_of].detach().to("cpu", torch.float32, copy=True), mine)


def _file_share(source, n: int, bs: int, world: World, stats: ImageStats, cfg: dict, workers: int):
    import torch.distributed as dist

    shape = tuple(cfg["input_size"])
    items = iter(source)
    tried = 0
    while stats.used < n:
        step = list(islice(items, bs * world.size))
        mine = [(p, name, load) for p, (name, load) in enumerate(step) if p % world.size == world.rank]
        decoded = decoded_items(((name, load) for _, name, load in mine), workers)
        readable, failed, kept_images = [], [], {}
        for (p, _, _), (name, img, error) in zip(mine, decoded):
            if error is not None:
                failed.append((p, name, failure_reason(error)))
                continue
            if tuple(img.shape) != shape:  # a transform that does not give the configured size is a bug
                raise ImageSourceError(f"preprocessing {name} gave shape {tuple(img.shape)}, expected {shape}")
            readable.append(p)
            kept_images[p] = img.to(torch.float32)
        everyone: list = [None] * world.size
        dist.all_gather_object(everyone, (readable, failed))
        ok = sorted(p for r, _ in everyone for p in r)[: n - stats.used]
        last = ok[-1] if len(ok) == n - stats.used else len(step)  # one process stops trying after image n
        skipped = sorted(f for _, fs in everyone for f in fs if f[0] < last)
        tried += sum(1 for p in range(len(step)) if p <= last)
        stats.skipped.extend((name, why) for _, name, why in skipped)
        rank_of = {p: stats.used + k for k, p in enumerate(ok)}
        chosen = [p for p in readable if p in rank_of]
        stats.used += len(ok)
        images = torch.stack([kept_images[p] for p in chosen]) if chosen else torch.zeros((0, *shape))
        yield IndexedBatch(images, np.asarray([rank_of[p] for p in chosen], dtype=np.int64))
        if len(step) < bs * world.size:
            break
    if stats.used == 0:
        raise no_readable_image(stats, tried)
