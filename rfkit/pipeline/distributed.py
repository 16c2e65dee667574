"""Runs spread over processes with ``torch.distributed``: ``torchrun --nproc-per-node N $(which rfkit) erf ...``.

torchrun starts N copies of the command and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`current_world` reads it and joins the default process
group (gloo on the CPU, NCCL when the run is on CUDA). An ERF run then reads and measures a share of the image stream on
each rank (:mod:`rfkit.pipeline.sharded`), so the N processes together see exactly the images one process
would, and sums the per-layer maps and image counts of every rank (:func:`all_reduce_sums`); rank 0 alone writes
files. The statistics behind the confidence intervals (:mod:`rfkit.erf.groups`) are added up the same way
(:func:`all_reduce_arrays`). Batch runs over many models give each rank every N-th model instead
(:func:`my_share`). Multi-node runs work through torchrun's own rendezvous (``--nnodes``,
``--rdzv-endpoint``): nothing here is node-specific.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rfkit.errors import RFKitError


class DistributedError(RFKitError, RuntimeError):
    """The torch.distributed environment is incomplete, or joining the process group failed."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run.

    Attributes
    ----------
    rank : int
        0 .. size - 1; rank 0 writes the outputs.
    size : int
        Number of processes (1 when not started by torchrun).
    backend : str or None
        ``"gloo"`` or ``"nccl"``; None for a single process.
    """

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes files and prints results (rank 0)."""
        return self.rank == 0


SINGLE = World()


def current_world(device: torch.device | None = None) -> World:
    """The world this process belongs to: :data:`SINGLE` unless torchrun (or another launcher setting
    ``WORLD_SIZE`` > 1) started it, in which case the default process group is joined (once) with gloo, or
    NCCL for a CUDA ``device``.

    >>> current_world() == SINGLE  # a plain process
    True
    """
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch has no torch.distributed; run one process")
    if not dist.is_initialized():
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise DistributedError(
                f"WORLD_SIZE={size} but {', '.join(missing)} not set: start the run with torchrun "
                "(torchrun --nproc-per-node N $(which rfkit) erf ...)"
            )
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        try:
            dist.init_process_group(backend)
        except Exception as e:  # noqa: BLE001 - any rendezvous failure is one line
            raise DistributedError(f"cannot join the torch.distributed process group ({backend}): {e}") from None
    return World(dist.get_rank(), dist.get_world_size(), dist.get_backend())


def all_reduce_sums(
    sums: dict[str, np.ndarray], seen: int, keys: Sequence[str], shape: tuple[int, ...], world: World
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Every rank's per-layer map sums added up (a rank that saw no image contributes zeros of ``shape``),
    and the number of images each rank saw, by rank; every rank gets both."""
    if not world.distributed:
        return sums, (seen,)
    import torch.distributed as dist

    device = _device(world)
    total = {}
    for key in keys:
        t = torch.as_tensor(sums.get(key, np.zeros(shape)), dtype=torch.float64, device=device)
        dist.all_reduce(t)
        total[key] = t.cpu().numpy()
    counts = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(world.size)]
    dist.all_gather(counts, torch.tensor([seen], dtype=torch.float64, device=device))
    return total, tuple(int(c.item()) for c in counts)


def _device(world: World) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if world.backend == "nccl" else torch.device("cpu")


def all_reduce_arrays(arrays: dict[str, np.ndarray], world: World) -> dict[str, np.ndarray]:
    """Every rank's arrays added up, as float64, by key (every rank passes the same keys and shapes, and gets
    the same sums); one process: unchanged.

    >>> all_reduce_arrays({"a": np.ones(2)}, SINGLE)["a"].tolist()
    [1.0, 1.0]
    """
    if not world.distributed:
        return arrays
    import torch.distributed as dist

    device = _device(world)
    out = {}
    for key in sorted(arrays):  # the same order on every rank
        t = torch.as_tensor(np.ascontiguousarray(arrays[key]), dtype=torch.float64, device=device)
        dist.all_reduce(t)
        out[key] = t.cpu().numpy()
    return {key: out[key] for key in arrays}


def all_reduce_max(value: int, world: World) -> int:
    """The largest ``value`` of any rank, on every rank; one process: ``value``.

    >>> all_reduce_max(3, SINGLE)
    3
    """
    if not world.distributed:
        return int(value)
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64, device=_device(world))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def my_share(items: Sequence, world: World) -> list:
    """The items this rank takes in a batch over many items (every ``size``-th, from ``rank``).

    >>> my_share(["a", "b", "c", "d", "e"], World(rank=1, size=2))
    ['b', 'd']
    """
    return list(items[world.rank :: world.size])


def gather_rows(index: np.ndarray, rows: dict, world: World) -> tuple[np.ndarray, dict]:
    """Every process's rows, in stream order: ``index`` holds the stream index of each of this process's
    rows, ``rows`` maps names to arrays with one row per index (or anything, when ``index`` is empty: a process
    that measured nothing); the result is every process's rows together, sorted by index, on every process.

    >>> i, r = gather_rows(np.array([2, 0]), {"a": np.array([20.0, 0.0])}, SINGLE)
    >>> i.tolist(), r["a"].tolist()
    ([0, 2], [0.0, 20.0])
    """
    everyone = [(index, rows)]
    if world.distributed:
        import torch.distributed as dist

        everyone = [None] * world.size
        dist.all_gather_object(everyone, (index, rows))
    parts = [(i, r) for i, r in everyone if len(i)]
    if not parts:
        return np.zeros(0, dtype=np.int64), {}
    order = np.argsort(np.concatenate([i for i, _ in parts]), kind="stable")
    merged = {k: np.concatenate([np.asarray(r[k]) for _, r in parts])[order] for k in parts[0][1]}
    return np.concatenate([i for i, _ in parts])[order], merged


def shared_map(fn, items: Sequence, world: World) -> list:
    """``[fn(x) for x in items]``, each process computing every ``size``-th item (from ``rank``) and every
    process getting all the results, in the items' order; one process: the plain list. ``fn``'s results must
    pickle.

    >>> shared_map(lambda x: x * x, [1, 2, 3], SINGLE)
    [1, 4, 9]
    """
    mine = list(range(world.rank, len(items), world.size))
    done = {i: fn(items[i]) for i in mine}
    if not world.distributed:
        return [done[i] for i in range(len(items))]
    import torch.distributed as dist

    everyone: list = [None] * world.size
    dist.all_gather_object(everyone, done)
    merged = {i: r for part in everyone for i, r in part.items()}
    return [merged[i] for i in range(len(items))]
