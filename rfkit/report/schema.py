"""What rfkit reads back from a report folder, checked in one place: ``run.json`` (the run header) and
``metrics.json`` (one row per measured layer).

A report folder may come from someone else, so every value that the site, ``rfkit figure`` or any other
reader uses is checked for its type and range before it is used: sizes are positive integers no larger
than :data:`MAX_SIDE`, numbers are finite (or the strings ``"inf"``/``"-inf"`` where rfkit writes
infinities), texts are strings of at most :data:`MAX_TEXT` characters, lists are lists and objects are
objects. The first value that is not what rfkit writes is named in a one-line
:class:`~rfkit.errors.ReportFileError` (``run.json: input_size[0]: 0 is below 1``).

>>> check_header({"model": "resnet50", "input_size": [224, 224]})["model"]
'resnet50'
>>> check_header({"model": "resnet50", "input_size": [0, 224]})
Traceback (most recent call last):
...
rfkit.report.schema.Bad: input_size[0]: 0 is below 1
"""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rfkit.errors import ReportFileError

MAX_TEXT = 10_000
"""The longest text (model name, layer name, warning, file name) rfkit reads back, in characters."""
MAX_SIDE = 16_384
"""The largest input size along one axis, in pixels."""
MAX_COORD = 1e9
"""The largest magnitude of a coordinate or other number (pixels, ratios, metrics)."""
MAX_METRIC = 1e300
"""The largest magnitude of a metric that is not geometry (it must convert to a float)."""
MAX_ITEMS = 100_000
"""The most items of a list or object (layers, files, warnings)."""
MAX_DEPTH = 8
"""The deepest nesting of lists and objects in a free-form value (``data_config``, ``bootstrap``)."""
MAX_JSON_BYTES = 64 << 20
"""The largest ``run.json`` or ``metrics.json`` read."""

Check = Callable[[Any, str], Any]


class Bad(ValueError):
    """One value is not what rfkit writes: ``where`` names it (``input_size[0]``), ``problem`` says why."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)


def _shown(v) -> str:
    """A short description of a JSON value for a message."""
    if isinstance(v, str):
        return repr(v if len(v) <= 30 else v[:29] + "…")
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**15:
        return f"an integer of {len(str(abs(v)))} digits"
    return repr(v)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def text(max_len: int = MAX_TEXT, *, empty: bool = True) -> Check:
    """A string of at most ``max_len`` characters (non-empty unless ``empty``)."""

    def check(v, where):
        if not isinstance(v, str):
            raise Bad(where, f"{_shown(v)} where a text goes")
        if len(v) > max_len:
            raise Bad(where, f"a text of {len(v)} characters, more than {max_len}")
        if not v and not empty:
            raise Bad(where, "an empty text")
        return v

    return check


def number(lo: float = -MAX_COORD, hi: float = MAX_COORD, *, inf: bool = False, integer: bool = False) -> Check:
    """A finite number in ``[lo, hi]`` (an integer with ``integer``); with ``inf``, also the strings
    ``"inf"``/``"-inf"`` (rfkit's spelling of infinities in JSON)."""

    def check(v, where):
        if inf and v in ("inf", "-inf"):
            return v
        if not _is_number(v) or (integer and not isinstance(v, numbers.Integral)):
            raise Bad(where, f"{_shown(v)} where {'an integer' if integer else 'a number'} goes")
        if isinstance(v, float) and not math.isfinite(v):
            raise Bad(where, f"{v!r} is not a finite number")
        if v < lo:
            raise Bad(where, f"{_shown(v)} is below {lo:g}")
        if v > hi:
            raise Bad(where, f"{_shown(v)} is above {hi:g}")
        return v

    return check


def integer(lo: int = 0, hi: float = MAX_COORD) -> Check:
    """An integer (not a bool) in ``[lo, hi]``."""
    return number(lo, hi, integer=True)


def boolean(v, where):
    """``true`` or ``false``."""
    if not isinstance(v, bool):
        raise Bad(where, f"{_shown(v)} where true or false goes")
    return v


def optional(check: Check) -> Check:
    """``null`` or what ``check`` accepts."""
    return lambda v, where: None if v is None else check(v, where)


def array(item: Check, lo: int = 0, hi: int = MAX_ITEMS) -> Check:
    """A list of ``lo`` to ``hi`` items, each accepted by ``item``."""

    def check(v, where):
        if not isinstance(v, list):
            raise Bad(where, f"{_shown(v)} where a list goes")
        if not lo <= len(v) <= hi:
            raise Bad(where, f"a list of {len(v)} items, not {lo}" + (f" to {hi}" if hi != lo else ""))
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")
        return v

    return check


def _key(where: str, key: str) -> str:
    shown = key if key.replace("_", "").replace(".", "").isalnum() and len(key) <= 40 else _shown(key)
    return f"{where}.{shown}" if where else shown


def mapping(value: Check, hi: int = MAX_ITEMS) -> Check:
    """An object of at most ``hi`` members, each value accepted by ``value``."""

    def check(v, where):
        if not isinstance(v, dict):
            raise Bad(where, f"{_shown(v)} where an object goes")
        if len(v) > hi:
            raise Bad(where, f"an object of {len(v)} members, more than {hi}")
        for k, x in v.items():
            value(x, _key(where, k))
        return v

    return check


def record(fields: dict[str, Check], required=(), other: Check | None = None) -> Check:
    """An object whose members ``fields`` names are checked by their check, ``required`` ones must be there,
    and any other member is checked by ``other`` (default :func:`free`)."""
    other = other or free

    def check(v, where):
        mapping(lambda x, w: x, MAX_ITEMS)(v, where)
        for key in required:
            if key not in v:
                raise Bad(_key(where, key), "missing")
        for k, x in v.items():
            (fields.get(k) or other)(x, _key(where, k))
        return v

    return check


def scalar(v, where):
    """``null``, true/false, a finite number, ``"inf"``/``"-inf"`` or a text: a metric of a row."""
    if v is None or isinstance(v, (bool, str)):
        return text()(v, where) if isinstance(v, str) else v
    return number(-MAX_METRIC, MAX_METRIC)(v, where)


def free(v, where, depth: int = 0):
    """Any JSON value that rfkit does not read itself, bounded: scalars as :func:`scalar`, lists and objects
    of at most :data:`MAX_ITEMS` items nested at most :data:`MAX_DEPTH` deep."""
    if isinstance(v, (list, dict)):
        if depth >= MAX_DEPTH:
            raise Bad(where, f"nested more than {MAX_DEPTH} deep")
        if len(v) > MAX_ITEMS:
            raise Bad(where, f"{len(v)} items, more than {MAX_ITEMS}")
        items = v.items() if isinstance(v, dict) else ((f"[{i}]", x) for i, x in enumerate(v))
        for k, x in items:
            free(x, f"{where}{k}" if k.startswith("[") else _key(where, k), depth + 1)
        return v
    return scalar(v, where)


SIDE = integer(1, MAX_SIDE)
SIZE = array(SIDE, 1, 3)
"""An input size: one positive integer per spatial axis (1 to 3 axes)."""
LENGTH = number(0, MAX_COORD, inf=True)
"""An RF size or a range bound in pixels: non-negative, or infinite."""
COORD = optional(number())
"""A coordinate in input pixels (None: not known)."""
NAME = text(empty=False)

RANGE = record({"min": array(optional(LENGTH), 1, 3), "max": array(optional(LENGTH), 1, 3)}, ("min", "max"))

HEADER = record(
    {
        "model": NAME,
        "model_id": text(),
        "weights": text(),
        "weights_kind": optional(text()),
        "weights_tag": optional(text()),
        "weights_file": optional(text()),
        "weights_sha256": optional(text()),
        "seed": optional(integer(0, 2**64 - 1)),
        "bootstrap": free,
        "images": text(),
        "num_images": integer(0),
        "input_size": SIZE,
        "data_config": record({"input_note": text()}),
        "device": text(),
        "rfkit_version": text(),
        "warnings": array(text()),
        "method": text(),
        "world_size": integer(1),
        "images_per_rank": array(integer(0)),
        "stopped": text(),
        "resolution": SIZE,
        "productivity": mapping(integer(0)),
        "input_range": RANGE,
        "input_range_local": RANGE,
        "layers": array(text()),
        "finished": text(),
        "files": array(text()),
        "figures": text(),
        "output": record(
            {
                "size": array(optional(LENGTH), 1, 3),
                "local_size": optional(array(optional(LENGTH), 1, 3)),
                "stride": array(optional(LENGTH), 1, 3),
                "is_global": boolean,
            },
            ("size", "stride", "is_global"),
        ),
        "unsupported": array(record({"op": text(), "count": integer(0)}, ("op", "count"))),
        "rf_missing": mapping(text()),
    },
    required=("model", "input_size"),
)
"""``run.json``: the members any reader uses, by their check; ``model`` and ``input_size`` must be there."""

ROW = record(
    {
        "model": text(),
        "layer": NAME,
        "node": text(),
        "status": optional(text()),
        "warnings": optional(text()),
        "gauss_reason": optional(text()),
        "gauss_like": optional(boolean),
        "is_global": boolean,
        **{k: optional(integer(0, MAX_SIDE)) for k in ("unit_h", "unit_w", "grid_h", "grid_w")},
        **{k: COORD for k in ("center_y", "center_x", "rf_first_y", "rf_last_y", "rf_first_x", "rf_last_x")},
        **{k: optional(LENGTH) for k in ("rf_h", "rf_w", "rf_local_h", "rf_local_w", "stride_h", "stride_w")},
        "depth": optional(integer(0)),
        "depth_fraction": optional(number(0, 1)),
    },
    required=("layer",),
    other=scalar,
)
"""A row of ``metrics.json``'s ``layers``: geometry by its check, any other member a :func:`scalar`."""


def check_header(doc) -> dict:
    """``doc`` (``run.json``) if it is what rfkit writes; :class:`Bad` naming the first value that is not."""
    if not isinstance(doc, dict):
        raise Bad("", f"{_shown(doc)}, not an object")
    return HEADER(doc, "")


def check_rows(doc) -> tuple[dict, ...]:
    """The per-layer rows of ``doc`` (``metrics.json``: an object whose ``layers`` maps each layer's name to
    its row), in order, if they are what rfkit writes; :class:`Bad` naming the first value that is not."""
    if not isinstance(doc, dict):
        raise Bad("", f"{_shown(doc)}, not an object")
    layers = doc.get("layers")
    if not isinstance(layers, dict):
        raise Bad("layers", "missing" if layers is None else f"{_shown(layers)} where an object of rows goes")
    mapping(ROW)(layers, "layers")
    for key, row in layers.items():
        if row["layer"] != key:
            raise Bad(_key("layers", key), f"its layer is {_shown(row['layer'])}, not its key")
    free(doc.get("run"), "run")
    return tuple(layers.values())


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON holds")


def read_json(path) -> Any:
    """The JSON in ``path``, a regular file (not a symlink) of at most :data:`MAX_JSON_BYTES`; ``NaN`` and
    ``Infinity`` are refused. :class:`Bad` (one line) when it cannot be read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise Bad("", "a symlink" if path.is_symlink() else f"cannot be read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Bad("", "not a regular file")
        if st.st_size > MAX_JSON_BYTES:
            raise Bad("", f"{st.st_size} bytes, more than {MAX_JSON_BYTES}")
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise Bad("", "nested too deep to read") from None
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise Bad("", f"not JSON rfkit writes ({first})") from None


def read_header(path) -> dict:
    """``run.json`` at ``path``, checked (:func:`check_header`); :class:`~rfkit.errors.ReportFileError`
    naming the file and the first bad value otherwise."""
    return _read(path, check_header)


def read_rows(path) -> tuple[dict, ...]:
    """The rows of ``metrics.json`` at ``path``, checked (:func:`check_rows`); :class:`~rfkit.errors.ReportFileError`
    naming the file and the first bad value otherwise."""
    return _read(path, check_rows)


def _read(path, check: Callable[[Any], Any]):
    try:
        return check(read_json(path))
    except Bad as e:
        raise ReportFileError(f"{path}: {e}; it is not what rfkit writes (rerun `rfkit analyze`)") from None
