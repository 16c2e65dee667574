"""Checks of the arguments every entry point takes, so that each says the same one line about the same mistake.

Each function returns the value in the form the caller works with (an int, a tuple per axis, a list of
names) or raises :class:`~rfkit.errors.ArgumentError` (a bad count, names or unit),
:class:`~rfkit.errors.InputSizeError` (a size of the wrong type or number of axes) or
:class:`~rfkit.errors.InputTooSmallError` (a size that is not positive), naming the argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from rfkit.errors import ArgumentError, InputSizeError, InputTooSmallError

#: The largest seed: torch's generators take 0 .. 2**64 - 1 (numpy's take any non-negative int).
MAX_SEED = 2**64 - 1
#: Bootstrap resamples at most (each recomputes every layer's metrics: 100 000 on one 16x16 layer take 88 s, 1.3 GB).
MAX_BOOTSTRAP = 100_000
#: Path steps (IG, Blur IG, deletion/insertion curves) and SmoothGrad samples at most.
MAX_STEPS = 10_000
#: Images per batch at most.
MAX_BATCH = 65_536
#: Decoding threads and torch CPU threads at most.
MAX_THREADS = 1024
#: Pixels (or voxels) of one input at most: 2**40, a 1048576 x 1048576 image, whose activations no machine holds;
#: beyond it torch's size arithmetic overflows while tracing.
MAX_PIXELS = 2**40


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _shown(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def count(value, name: str, *, minimum: int = 1, maximum: int | None = None, optional: bool = False) -> int | None:
    """``value`` as an int of at least ``minimum`` and at most ``maximum`` (``None`` passes when ``optional``).

    >>> count(4, "threads"), count(None, "batch_size", optional=True), count(0, "seed", minimum=0)
    (4, None, 0)
    >>> count(0, "threads")
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: threads must be an int >= 1, got 0 (int)
    >>> count(10**6, "steps", maximum=1000)
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: steps must be an int from 1 to 1000, got 1000000 (int)
    """
    if value is None and optional:
        return None
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ArgumentError(f"{name} must be an int {bound}, got {_shown(value)}")
    return int(value)


def seed(value, name: str = "seed") -> int:
    """A seed: an int from 0 to :data:`MAX_SEED` (what torch's generators take).

    >>> seed(0), seed(2**64 - 1) == MAX_SEED
    (0, True)
    >>> seed(2**64)
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: seed must be an int from 0 to 18446744073709551615, got 18446744073709551616 (int)
    """
    return count(value, name, minimum=0, maximum=MAX_SEED)


def input_size(value, ndim: int | None = None, name: str = "input_size", *, fill: int = 2) -> tuple[int, ...]:
    """An int (square) or one int per axis as a tuple of positive ints.

    Parameters
    ----------
    value : int or sequence of int
        One value for every axis, or one per axis.
    ndim : int, optional
        The number of axes required; ``None`` accepts any number (an int or a single value then fills
        ``fill`` axes).
    name : str
        The argument's name, for the message.

    Examples
    --------
    >>> input_size(32), input_size((16, 64), 2), input_size([8], 3)
    ((32, 32), (16, 64), (8, 8, 8))
    >>> input_size(16.0)
    Traceback (most recent call last):
    ...
    rfkit.errors.InputSizeError: input_size must be an int or a tuple of ints (one per axis), got 16.0 (float)
    """
    fill = ndim or fill
    if _is_int(value):
        size = (int(value),) * fill
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value and all(map(_is_int, value)):
        size = tuple(int(v) for v in value)
        size = size * fill if len(size) == 1 else size
    else:
        raise InputSizeError(f"{name} must be an int or a tuple of ints (one per axis), got {_shown(value)}")
    if ndim is not None and len(size) != ndim:
        raise InputSizeError(f"{name} {size} has {len(size)} axes; the graph has {ndim} spatial axes")
    if any(s < 1 for s in size):
        raise InputTooSmallError(f"{name} {size} must be positive on every axis")
    if math.prod(size) > MAX_PIXELS:
        raise InputSizeError(
            f"{name} {size} is too large: rfkit takes at most 2**40 pixels per input (1048576 x 1048576); "
            "give a smaller size"
        )
    return size


def resolution(value, ndim: int) -> tuple[int, ...]:
    """A resolution for the productivity analysis of a graph with ``ndim`` spatial axes (see :func:`input_size`).

    >>> resolution(32, 2)
    (32, 32)
    """
    return input_size(value, ndim, "resolution")


def layer_names(value, name: str = "layers") -> str | list[str] | None:
    """``None``, one name, or a list of names (a tuple or other sequence of strings becomes a list).

    >>> layer_names("layer4"), layer_names(("layer1", "add_3")), layer_names(None)
    ('layer4', ['layer1', 'add_3'], None)
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ArgumentError(
        f"{name} must be a layer name or a list of layer names (module or node names, as "
        f"`rfkit graph MODEL` lists them), got {_shown(value)}"
    )


def unit_index(value, naxes: int, name: str = "unit") -> tuple[int, ...]:
    """An output unit: one non-negative int per spatial axis of a layer's grid.

    >>> unit_index((3, 4), 2)
    (3, 4)
    """
    ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and all(map(_is_int, value))
    if not ok or len(value) != naxes or any(v < 0 for v in value):
        raise ArgumentError(
            f"{name} must be {naxes} non-negative int(s), one per axis of the layer's grid, got {_shown(value)}"
        )
    return tuple(int(v) for v in value)


def model(value) -> None:
    """Raise unless ``value`` is a model spec string, an ``nn.Module``, an ``onnx.ModelProto`` or the path of an
    ``.onnx`` file."""
    import os

    import torch.nn as nn

    if type(value).__name__ == "ModelProto" and type(value).__module__.startswith("onnx"):
        return  # an ONNX model (rfkit.models.onnx_file)
    if isinstance(value, os.PathLike) and os.fspath(value).lower().endswith(".onnx"):
        return  # the path of an ONNX file
    if not isinstance(value, (str, nn.Module)):
        if type(value).__module__.startswith("keras"):
            import keras

            raise ArgumentError(
                f"model is a Keras object on the {keras.backend.backend()} backend; rfkit runs Keras models on "
                "its torch backend: set KERAS_BACKEND=torch before importing keras"
            )
        raise ArgumentError(
            f"model must be a spec string (timm name, torchvision:NAME, FILE.py:FACTORY, PATH.onnx), an "
            f"nn.Module or an onnx.ModelProto, got {type(value).__name__}"
        )


def paths(value, name: str) -> list:
    """One path (``str`` or ``os.PathLike``) or a sequence of them, as a list of :class:`pathlib.Path`.

    >>> paths("runs", "dirs"), paths(["a", "b"], "dirs")
    ([PosixPath('runs')], [PosixPath('a'), PosixPath('b')])
    >>> paths(42, "dirs")
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: dirs must be a path or a list of paths, got 42 (int)
    """
    import os
    from pathlib import Path

    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    if isinstance(value, Sequence) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return [Path(v) for v in value]
    raise ArgumentError(f"{name} must be a path or a list of paths, got {_shown(value)}")
