"""The options every measuring stage shares, as small frozen dataclasses: which images to read
(:class:`Images`) and how the run uses the machine (:class:`Runtime`).

:func:`rfkit.erf`, :func:`rfkit.attribute` and :func:`rfkit.analyze` take them as ``images=`` and
``runtime=``; the command line builds the same objects from its options (``rfkit_cli/options.py``), one place
per option. Plain values stand for the common cases: ``images="photos/"`` (a folder), ``images=8`` (eight
sample photographs), ``runtime="cpu"`` (a device). Change a field of an object with :meth:`Images.replace`.

>>> Images.of("noise"), Images.of(8).num_images, Runtime.of("cpu").device
(Images(source='noise', num_images=None, input_size=None), 8, 'cpu')
>>> Images("noise", 4).replace(input_size=16)
Images(source='noise', num_images=4, input_size=16)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfkit.errors import ArgumentError

if TYPE_CHECKING:
    import torch


class OptionObject:
    """The base of the option objects: :meth:`replace` a field, by name."""

    def replace(self, **changes):
        """A copy with ``changes`` (field name -> value); an unknown field is an :class:`ArgumentError`."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ArgumentError(f"{type(self).__name__} has no field {unknown[0]!r}; its fields: {', '.join(names)}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Images(OptionObject):
    """What the measurement reads: the images, how many, and at what size.

    Attributes
    ----------
    source : str, path, list of paths or Tensor
        ``"sample"`` (photographs shipped with scikit-image, offline), ``"noise"``, a folder (recursive), image
        files, or a model-ready tensor ``(N, C, H, W)`` (:mod:`rfkit.pipeline.images`).
    num_images : int, optional
        How many images; default the function's own (32 for :func:`rfkit.erf` and :func:`rfkit.analyze`, 4 for
        :func:`rfkit.attribute`).
    input_size : int or (h, w), optional
        The model's input size (the preprocessing and the traced graph follow); default the model's own.

    Examples
    --------
    >>> Images("photos/", 16, input_size=(256, 192)).num_images
    16
    """

    source: str | Path | Sequence[str | Path] | torch.Tensor = "sample"
    num_images: int | None = None
    input_size: int | tuple[int, ...] | None = None

    @classmethod
    def of(cls, value: Any) -> Images:
        """``value`` as :class:`Images`: an :class:`Images` as it is, an int ``n`` as ``n`` sample photographs,
        anything else (a source name, folder, files, tensor) as the source.

        >>> Images.of(Images("noise")) == Images("noise"), Images.of(3)
        (True, Images(source='sample', num_images=3, input_size=None))
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, bool) or value is None:
            raise ArgumentError(
                f"images={value!r}: give 'sample', 'noise', a folder, image files, a tensor, a number of sample "
                "images or rfkit.Images(...)"
            )
        if isinstance(value, int):
            return cls("sample", num_images=value)
        return cls(source=value)

    def count(self, default: int) -> int:
        """``num_images``, or ``default`` where it is not set."""
        return default if self.num_images is None else self.num_images


@dataclass(frozen=True)
class Runtime(OptionObject):
    """How a run uses the machine; none of it changes the maps, except ``seed``.

    Attributes
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA, MPS, else CPU), ``"cpu"``, ``"cuda:1"``, ... (checked to exist on this machine).
    batch_size : int, optional
        Images per forward pass (default: as many as fit, :func:`rfkit.pipeline.devices.auto_batch_size`).
    threads : int, optional
        torch CPU threads during the run (restored afterwards).
    workers : int, optional
        Threads decoding image files ahead of the model (default: none on the CPU, up to 8 on a GPU:
        :func:`rfkit.pipeline.devices.decode_workers`).
    seed : int
        Seeds random weights, ``"noise"`` images, the random views of ``"sample"``, SmoothGrad's noise and the
        bootstrap.
    channels_last : bool
        Channels-last memory format (:func:`rfkit.erf`).
    autocast : bool
        bfloat16 autocast on a GPU (:func:`rfkit.erf`; ignored with a warning on the CPU).
    distributed : bool
        Under torchrun (``WORLD_SIZE`` > 1), share the images among the processes
        (:mod:`rfkit.pipeline.distributed`); False: this process measures every image alone.

    Examples
    --------
    >>> Runtime("cpu", batch_size=8).replace(seed=1)
    Runtime(device='cpu', batch_size=8, threads=None, workers=None, seed=1, channels_last=False, autocast=False, \
distributed=True)
    """

    device: str | torch.device = "auto"
    batch_size: int | None = None
    threads: int | None = None
    workers: int | None = None
    seed: int = 0
    channels_last: bool = False
    autocast: bool = False
    distributed: bool = True

    @classmethod
    def of(cls, value: Any) -> Runtime:
        """``value`` as :class:`Runtime`: a :class:`Runtime` as it is, None as the defaults, a device (``"cpu"``,
        ``torch.device``) as that device with the other defaults."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if isinstance(value, str) or type(value).__name__ == "device":
            return cls(device=value)
        raise ArgumentError(f"runtime={value!r}: give a device ('cpu', 'cuda:0', 'auto') or rfkit.Runtime(...)")
