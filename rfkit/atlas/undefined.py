"""Whether a model that failed at an input size can run there at all: "not defined at this size".

Some models cannot take some input sizes by design: a ViT with patch 14 at 640 px (timm asserts "Input height
should be divisible by patch size"), EfficientFormer's attention bias fixed to a 7×7 grid, HaloNet's blocks that
must tile the feature map, any network fed an input smaller than its downsampling. Those are not rfkit failures,
and the atlas says so (status ``not-defined`` in ``failures.csv``) with **the model's own reason**: the model
itself is run, on the meta device (no weights, no memory), on an input of that size, and the error it raises is
the reason. Only where it runs at its default size and fails at the other is the size called undefined; a
model that fails on the meta device at its default size too (a ``.item()`` on a tensor) cannot be told apart, and
its failure stays an rfkit failure.
"""

from __future__ import annotations

import os
import traceback

import torch

from rfkit.errors import InputTooSmallError

#: Path parts of frames that are torch's own: the model's reason is the last frame outside them.
_LIBRARY_FRAMES = (f"{os.sep}torch{os.sep}", f"{os.sep}rfkit{os.sep}")


def where_raised(e: BaseException) -> str:
    """``file.py:LINE: code`` of the last frame of ``e``'s traceback outside torch and rfkit (the model's code
    that raised it), the file named from its package folder on; "" when there is none.

    >>> try:
    ...     assert 640 % 14 == 0, "not divisible"
    ... except AssertionError as e:
    ...     where_raised(e).endswith("assert 640 % 14 == 0, \\"not divisible\\"")
    True
    """
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not any(p in f.filename for p in _LIBRARY_FRAMES)]
    if not frames:
        return ""
    f = frames[-1]
    parts = f.filename.split(os.sep)
    shown = os.sep.join(parts[parts.index("site-packages") + 1 :]) if "site-packages" in parts else parts[-1]
    return f"{shown}:{f.lineno}: {(f.line or '').strip()}"


def _own_error(module: torch.nn.Module, size: tuple[int, ...], chans: int, dtype) -> BaseException | None:
    """What ``module`` (on the meta device) raises on an input of ``size``, or None when it runs."""
    x = torch.empty((1, chans, *size), device="meta", dtype=dtype)
    try:
        with torch.no_grad():
            module(x)
    except Exception as e:  # noqa: BLE001 - whatever the model raises is its reason
        return e
    return None


def model_reason(e: BaseException) -> str:
    """One line: the error the model raised and where.

    >>> model_reason(ValueError("bad size\\nmore"))
    'ValueError: bad size'
    """
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    where = where_raised(e)
    return f"{text} (at {where})" if where else text


def undefined_reason(spec: str | None, module: torch.nn.Module, default: tuple, size: tuple, error: BaseException):
    """Why the model cannot run at ``size`` (its own error there), or None where it can (or where that cannot be
    told): then the failure ``error`` at ``size`` is rfkit's.

    Parameters
    ----------
    spec : str or None
        The model's spec; a model whose source builds it for one input size (a timm ViT) is built again for
        ``size`` from it, on the meta device, as the atlas traced it. None: ``module`` is run at both sizes.
    module : nn.Module
        The model as built for its default size, on the meta device.
    default, size : tuple of int
        Its default input size, and the size that failed.
    error : BaseException
        What the trace at ``size`` raised. rfkit's own :class:`~rfkit.errors.InputTooSmallError` (the
        network's downsampling leaves nothing of the input: the message names the smallest size it takes) is
        already about the model: its message is the reason.

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Unflatten(1, (2, 2)))  # runs at any size
    >>> undefined_reason(None, net.to("meta"), (32, 32), (8, 8), RuntimeError("trace failed")) is None
    True
    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).to("meta")  # a 4x4 input only
    >>> undefined_reason(None, lin, (4, 4), (8, 8), RuntimeError("x"))
    'RuntimeError: a and b must have same reduction dim, but got [1, 192] X [48, 2].'
    """
    if isinstance(error, InputTooSmallError):
        return (str(error).strip().splitlines() or ["input too small"])[0]
    from rfkit.models.sources import get_source
    from rfkit.models.spec import build_model, default_input, input_dtype, parse_spec

    chans = default_input(module, parse_spec(spec) if spec else None)[1] or 3
    dtype = input_dtype(module)
    if _own_error(module, default, chans, dtype) is not None:
        return None  # it does not run on the meta device even at its own size: nothing can be told
    sized = module
    if spec is not None:
        parsed = parse_spec(spec)
        source = get_source(parsed.source)
        if source.builds_for_size:
            try:
                sized = build_model(parsed, **source.size_kwargs(size))
            except Exception as e:  # noqa: BLE001 - the model's constructor refuses the size: its reason
                return model_reason(e)
    own = _own_error(sized, size, chans, dtype)
    return None if own is None else model_reason(own)
