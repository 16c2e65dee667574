"""Where an ERF runs: choosing and checking the device, sizing a CPU batch to the free memory, and telling
an out-of-memory failure from other errors."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from rfkit.errors import DeviceError, DeviceMemoryError

#: Images per batch when the user gives none (on the CPU and CUDA, at most this: see :func:`auto_batch_size`).
DEFAULT_BATCH = {"cuda": 64, "mps": 16, "cpu": 8}
#: Image-decoding threads by default on an accelerator (:func:`decode_workers`).
MAX_DECODE_WORKERS = 8
#: Bytes a batch needs per float32 activation element: the activation, its gradient, and autograd's copy.
BYTES_PER_ELEMENT = 4 * 3
#: Share of the available memory a batch may take (the rest is left to the model, Python and others).
MEMORY_SHARE = 0.5


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def available_devices() -> list[str]:
    """The devices of this machine torch can use, ``"cpu"`` first.

    >>> available_devices()[0]
    'cpu'
    """
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def _missing(dev: torch.device) -> str | None:
    """Why ``dev`` cannot be used here (None if it can)."""
    if dev.type == "cpu":
        return None
    if dev.type == "meta":
        return "the meta device holds no values to take gradients of"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA GPU (or no driver, or a torch built without CUDA) on this machine"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return f"this machine has {count} CUDA GPU(s), numbered from 0"
        return None
    if dev.type == "mps":
        return None if _mps_available() else "no Apple MPS device (or a torch built without it) on this machine"
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if callable(available) and available():
        return None
    return f"torch has no {dev.type} device on this machine"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None): CUDA, then MPS, then CPU; anything else as ``torch.device`` reads it, checked
    to exist on this machine.

    Raises
    ------
    DeviceError
        The name is not a device, or the device is not on this machine (the message lists those that are).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("cuda:99")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rfkit.errors.DeviceError: device 'cuda:99' is not available: ...; available: cpu...
    """
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    why = _missing(dev)
    if why:
        raise DeviceError(
            f"device {str(device)!r} is not available: {why}; available: {', '.join(available_devices())} (or auto)"
        )
    return dev


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation on this machine: ``MemAvailable`` from ``/proc/meminfo``
    (Linux), else the free physical pages ``os.sysconf`` reports, else None (unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def bytes_per_image(g) -> int:
    """Memory one image takes through a forward and backward pass of the traced graph ``g``: every node's
    output elements per image (batch dim left out) times :data:`BYTES_PER_ELEMENT`.

    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Conv2d(3, 4, 3, padding=1), input_size=8)
    >>> bytes_per_image(g)  # (3·8·8 input + 4·8·8 output) elements × 12 bytes
    5376
    """
    elements = sum(math.prod(r.info.shape[1:]) for r in g.records.values() if r.info.shape)
    return max(1, elements) * BYTES_PER_ELEMENT


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device``: :func:`available_memory` for the CPU, what the CUDA
    driver reports free (``torch.cuda.mem_get_info``) plus what torch's caching allocator holds unused for a
    CUDA device; None where unknown (MPS)."""
    if device.type == "cpu":
        return available_memory()
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        except (RuntimeError, AssertionError):
            return None
        return int(free + max(cached, 0))
    return None


def auto_batch_size(g, device: torch.device, available: int | None = None) -> int:
    """The batch size to use when none is given: at most :data:`DEFAULT_BATCH` for the device type, and on
    the CPU and CUDA at most what fits in :data:`MEMORY_SHARE` of the ``available`` memory (default
    :func:`free_device_memory`; unknown: the default), never less than 1.

    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Conv2d(3, 4, 3, padding=1), input_size=8)  # 5376 bytes per image
    >>> auto_batch_size(g, torch.device("cpu"), available=40_000)  # 20000 // 5376
    3
    >>> auto_batch_size(g, torch.device("cuda"), available=10**12)  # a large GPU: the CUDA default
    64
    """
    default = DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])
    available = free_device_memory(device) if available is None else available
    if available is None:
        return default
    return max(1, min(default, int(available * MEMORY_SHARE) // bytes_per_image(g)))


def readable_bytes(n: int) -> str:
    """A number of bytes for a message, in the largest binary unit that keeps it at 1 or more.

    >>> readable_bytes(500), readable_bytes(5376), readable_bytes(3 * 2**30), readable_bytes(2**50)
    ('500 B', '5.2 KiB', '3.0 GiB', '1024.0 TiB')
    """
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_one_image_fits(g, device: torch.device, available: int | None = None) -> None:
    """Raise :class:`~rfkit.errors.DeviceMemoryError` when one image through the traced graph ``g``
    (:func:`bytes_per_image`) needs more than the ``available`` memory (default :func:`free_device_memory`;
    unknown: no check), before any image is decoded or batched.

    >>> import torch.nn as nn, rfkit
    >>> g = rfkit.trace(nn.Conv2d(3, 4, 3, padding=1), input_size=8)  # 5376 bytes per image
    >>> check_one_image_fits(g, torch.device("cpu"), available=5376)
    >>> check_one_image_fits(g, torch.device("cpu"), available=5000)
    Traceback (most recent call last):
    ...
    rfkit.errors.DeviceMemoryError: out of memory: one 8x8 input needs about 5.2 KiB ... has 4.9 KiB free: ...
    """
    need = bytes_per_image(g)
    available = free_device_memory(device) if available is None else available
    if available is not None and need > available:
        size = "x".join(map(str, g.input_size))
        raise DeviceMemoryError(
            f"out of memory: one {size} input needs about {readable_bytes(need)} (activations and gradients) and "
            f"{device} has {readable_bytes(available)} free: use a smaller --input-size"
        )


def decode_workers(device: torch.device) -> int:
    """Threads decoding images ahead of the model by default (:func:`rfkit.pipeline.images.image_batches`):
    none on the CPU, whose cores run the model; on an accelerator one per core but one, at most
    :data:`MAX_DECODE_WORKERS`, so that decoding keeps up with the device.

    >>> decode_workers(torch.device("cpu"))
    0
    >>> 1 <= decode_workers(torch.device("cuda")) <= MAX_DECODE_WORKERS
    True
    """
    if device.type == "cpu":
        return 0
    return max(1, min(MAX_DECODE_WORKERS, (os.cpu_count() or 2) - 1))


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says an allocation failed: torch's GPU ``OutOfMemoryError``, a ``MemoryError``, or the
    ``RuntimeError`` torch's CPU allocator raises (``DefaultCPUAllocator: can't allocate memory``)."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    msg = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in msg or "out of memory" in msg.lower())


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` inside the block (``Runtime.threads``; None: left as they are), and put
    back afterwards, also when the block raises.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
