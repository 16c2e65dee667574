"""Runs spread over processes with ``torch.distributed``: ``torchrun --nproc-per-node N $(which rfkit) erf ...``.

torchrun starts N copies of the command and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`current_world` reads it and joins the default process
group (gloo on the CPU, NCCL when the run is on CUDA). An ERF run then reads and measures a share of the image stream on
each rank (:mod:`rfkit.pipeline.sharded`), so the N processes together see exactly the images one process
would, and sums the per-layer maps and image counts of every rank (:func:`all_reduce_sums`); rank 0 alone writes
files. The statistics behind the confidence intervals (:mod:`rfkit.effective.groups`) are added up the same way
(:func:`all_reduce_arrays`). Batch runs over many models give each rank every N-th model instead
(:func:`my_share`). Multi-node runs work through torchrun's own rendezvous (``--nnodes``,
``--rdzv-endpoint``): nothing here is node-specific.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

from rfkit.errors import DistributedError


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


#: Seconds a process waits for the others to join before giving up (``RFKIT_DISTRIBUTED_TIMEOUT`` overrides it).
CONNECT_TIMEOUT = 60.0
#: The environment variable that sets the wait for the other processes, in seconds.
TIMEOUT_VARIABLE = "RFKIT_DISTRIBUTED_TIMEOUT"
_STALE = "if no torchrun launched this run, unset WORLD_SIZE (a launcher's environment left over)"


@dataclass(frozen=True)
class Launch:
    """Where this process stands according to the launcher's environment (torchrun's variables).

    Attributes
    ----------
    rank, size : int
        ``RANK`` and ``WORLD_SIZE``.
    local_rank : int
        ``LOCAL_RANK``: the process's place on its machine (its GPU).
    address : str
        ``MASTER_ADDR``.
    port : int
        ``MASTER_PORT``.
    timeout : float
        Seconds to wait for the other processes (:data:`CONNECT_TIMEOUT` or ``RFKIT_DISTRIBUTED_TIMEOUT``).
    """

    rank: int
    size: int
    local_rank: int
    address: str
    port: int
    timeout: float


def _integer(name: str, env, low: int, high: int | None = None, why: str = "") -> int:
    """Environment variable ``name`` as an int in ``low`` .. ``high`` (inclusive), else a one-line error."""
    text = env.get(name, "").strip()
    value = int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise DistributedError(
            f"{name}={text!r} must be a whole number {bound}{why}: {_STALE}, or launch with torchrun"
        )
    return value


def _timeout(env) -> float:
    text = env.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return CONNECT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds <= 86400):
        raise DistributedError(
            f"{TIMEOUT_VARIABLE}={text!r}: give seconds to wait for the other processes, 0 < s <= 86400"
        )
    return seconds


def launch_environment(env=None) -> Launch | None:
    """The launcher's environment (default ``os.environ``) read and checked: None for a single process
    (``WORLD_SIZE`` unset, empty or 1), else a :class:`Launch` whose every variable torchrun sets is present,
    a whole number in range where it is one (``RANK`` < ``WORLD_SIZE``, ``LOCAL_RANK`` < ``LOCAL_WORLD_SIZE``),
    with a ``MASTER_ADDR`` that resolves.

    Raises
    ------
    DistributedError
        One line naming the variable at fault and saying to unset ``WORLD_SIZE`` if no launcher started the run.

    Examples
    --------
    >>> launch_environment({}) is None, launch_environment({"WORLD_SIZE": "1"}) is None
    (True, True)
    >>> env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    >>> launch_environment(env)
    Launch(rank=1, size=2, local_rank=1, address='127.0.0.1', port=29500, timeout=60.0)
    >>> launch_environment({**env, "RANK": "2"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rfkit.errors.DistributedError: RANK='2' must be a whole number from 0 to 1 (below WORLD_SIZE=2): ...
    """
    env = os.environ if env is None else env
    if not env.get("WORLD_SIZE", "").strip():
        return None
    size = _integer("WORLD_SIZE", env, 1)
    if size == 1:
        return None
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(v, "").strip()]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={size} but {', '.join(missing)} not set: start the run with torchrun "
            f"(torchrun --nproc-per-node N $(which rfkit) erf ...); {_STALE}"
        )
    rank = _integer("RANK", env, 0, size - 1, f" (below WORLD_SIZE={size})")
    local_size = _integer("LOCAL_WORLD_SIZE", env, 1, size) if env.get("LOCAL_WORLD_SIZE", "").strip() else size
    local_rank = _integer(
        "LOCAL_RANK", env, 0, min(local_size, rank + 1) - 1, " (below LOCAL_WORLD_SIZE, at most RANK)"
    )
    port = _integer("MASTER_PORT", env, 1, 65535)
    address = env["MASTER_ADDR"].strip()
    try:
        socket.getaddrinfo(address, port)
    except (OSError, UnicodeError):
        raise DistributedError(
            f"MASTER_ADDR={address!r} is not a host name or address this machine can resolve: {_STALE}"
        ) from None
    return Launch(rank, size, local_rank, address, port, _timeout(env))


def _join(launch: Launch, backend: str) -> None:
    """Join the default process group, waiting at most ``launch.timeout`` seconds for the other processes to
    connect (collectives keep torch's own, longer timeout)."""
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout

    wait = timedelta(seconds=launch.timeout)
    store, rank, size = next(dist.rendezvous("env://", timeout=wait))
    store.set_timeout(wait)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size)
    atexit.register(leave)
    # NCCL exchanges its communicator's id through the store at the first collective, which a rank may reach
    # long after another: from here on the store waits as long as the collectives do
    store.set_timeout(default_pg_timeout)


def leave() -> None:
    """Destroy the default process group if this process joined one (at exit: a gloo group left to the interpreter's
    teardown can abort the process, "terminate called without an active exception", when its worker threads
    still hold tensors). A no-op otherwise.

    >>> leave()  # no group: nothing to do
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _native_stderr_held():
    """Hold what native code (torch's C++ logging: every connection retry, with a stack dump) writes on the
    stderr file descriptor; pass it on if the block ends normally, drop it if it raises (the caller then
    says what went wrong in one line)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        os.write(2, held.read())


def current_world(device: torch.device | None = None) -> World:
    """The world this process belongs to: :data:`SINGLE` unless torchrun (or another launcher setting
    ``WORLD_SIZE`` > 1 and the other variables torchrun sets, see :func:`launch_environment`) started it, in
    which case the default process group is joined (once) with gloo, or NCCL for a CUDA ``device``, waiting at
    most :data:`CONNECT_TIMEOUT` seconds (``RFKIT_DISTRIBUTED_TIMEOUT``) for the other processes.

    >>> current_world() == SINGLE  # a plain process
    True
    """
    launch = launch_environment()
    if launch is None:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch has no torch.distributed; run one process")
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(launch.local_rank)
        try:
            with _native_stderr_held():
                _join(launch, backend)
        except Exception as e:  # noqa: BLE001 - any rendezvous failure is one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DistributedError(
                f"rank {launch.rank} of {launch.size} could not join the others at "
                f"{launch.address}:{launch.port} within {launch.timeout:g} s ({backend}: {first[:200]}): "
                f"{_STALE}; to wait longer set {TIMEOUT_VARIABLE}=SECONDS"
            ) from None
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
