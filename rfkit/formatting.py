"""How rfkit prints numbers: one module for the terminal tables, ``report.md``, the site, GraphViz labels and
figure texts, so that the same value reads the same everywhere.

Conventions:

- a per-axis **size** or **stride** is ``h×w``, both values always (``7×7``, ``224×192``); an RF that
  covers the whole input on every axis is ``global``, a global RF with finite local paths
  ``global (local 16×16)``;
- a per-axis value that is not a size (a unit, a centre, a padding, a ratio) is ``y, x`` / ``h, w`` with a
  comma (``8, 8``; ERF/RF ``1.00, 0.50``), so a ratio never reads like a size;
- geometry (sizes, strides, centres, in pixels) prints integers as integers and other values with at most
  two decimals (``7.5``, ``0.33``); metrics print a fixed number of decimals (``0.50``, R² ``0.849``);
- missing (not measured, not applicable): ``–``; unknown (an op without an RF rule before it): ``?``;
  infinite: ``∞``. ``metrics.json`` and ``run.json`` store infinities as the strings ``"inf"`` and
  ``"-inf"``; they read as infinities here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MISSING = "–"
"""A value that was not measured or does not apply."""
UNKNOWN = "?"
"""A value rfkit cannot know (an RF after an op without a rule)."""
INFINITE = "∞"


def _number(v):
    """``v`` as a float when it is a number or the JSON spelling of an infinity, else unchanged."""
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def _special(v) -> str | None:
    """The text of a value that is not a finite number: missing, unknown, infinite, or any other text."""
    v = _number(v)
    if v is None:
        return MISSING
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return UNKNOWN
    if isinstance(v, float) and math.isinf(v):
        return INFINITE if v > 0 else "-" + INFINITE
    return None


def num(v, digits: int = 2) -> str:
    """A geometric value (pixels, strides, centres): integers as integers, other values with at most
    ``digits`` decimals.

    Parameters
    ----------
    v : int, float, str or None
    digits : int
        Most decimals shown.

    Examples
    --------
    >>> num(7), num(7.0), num(7.5), num(1 / 3), num(-0.5)
    ('7', '7', '7.5', '0.33', '-0.5')
    >>> num(None), num(float("nan")), num(float("inf")), num("inf")
    ('–', '?', '∞', '∞')
    """
    text = _special(v)
    if text is not None:
        return text
    v = _number(v)
    if float(v).is_integer():
        return str(int(v))
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def fixed(v, digits: int = 2) -> str:
    """A metric with ``digits`` decimals, always (ratios, R², area ratios).

    Examples
    --------
    >>> fixed(0.5), fixed(1), fixed(0.84912, 3), fixed(None), fixed(float("nan"))
    ('0.50', '1.00', '0.849', '–', '?')
    """
    text = _special(v)
    return text if text is not None else f"{_number(v):.{digits}f}"


def _all_infinite(values: Sequence) -> bool:
    vals = [_number(v) for v in values]
    return bool(vals) and all(isinstance(v, float) and math.isinf(v) and v > 0 for v in vals)


def pair(values, sep: str = "×", *, digits: int = 2, unit: str = "", all_inf: str | None = None) -> str:
    """Per-axis values, every axis shown: ``7×7``, ``8, 8``.

    Parameters
    ----------
    values : sequence or None
        One value per axis, (h, w) or (y, x); None is missing.
    sep : str
        ``"×"`` for sizes and strides, ``", "`` for anything else.
    digits : int
        As :func:`num`.
    unit : str
        Appended after a space (``"px"``).
    all_inf : str, optional
        The text when every value is +infinity (``"global"`` for an RF size, ``"unbounded"`` for a range).

    Examples
    --------
    >>> pair((7, 7)), pair((8.0, 7.5), ", "), pair((43, 43), unit="px"), pair(None)
    ('7×7', '8, 7.5', '43×43 px', '–')
    >>> pair((float("inf"),) * 2, all_inf="global"), pair((float("nan"),) * 2)
    ('global', '?×?')
    """
    if values is None:
        return MISSING
    values = tuple(values)
    if all_inf is not None and _all_infinite(values):
        return all_inf
    return sep.join(num(v, digits) for v in values) + (f" {unit}" if unit else "")


def size(values, unit: str = "") -> str:
    """An RF size (or any size): :func:`pair` with ``×``; ``global`` when infinite on every axis.

    >>> size((427, 427)), size((float("inf"), float("inf"))), size((3, 5), unit="px")
    ('427×427', 'global', '3×5 px')
    """
    return pair(values, unit=unit, all_inf="global")


def rf_label(rf_size, local_size=None, is_global: bool = False, unit: str = "") -> str:
    """An analytic RF: its size, ``global`` for a layer that sees the whole input (with its local paths'
    size when known), ``?×?`` when unknown (None or NaN values).

    Parameters
    ----------
    rf_size : sequence
        Max-over-paths size per axis.
    local_size : sequence, optional
        Size of the local paths of a global layer.
    is_global : bool
    unit : str
        Appended to each size (``"px"``).

    Examples
    --------
    >>> rf_label((7, 5)), rf_label((float("inf"),) * 2, (16, 16), True), rf_label((None, None))
    ('7×5', 'global (local 16×16)', '?×?')
    >>> rf_label((float("inf"),) * 2, None, True), rf_label((41, 41), unit="px")
    ('global', '41×41 px')
    """
    if is_global or _all_infinite(rf_size):
        local = [v for v in (local_size or ()) if v is not None and not _is_nan(v)]
        return "global" + (f" (local {size(local_size, unit)})" if local else "")
    return size([float("nan") if v is None else v for v in rf_size], unit)


def _is_nan(v) -> bool:
    v = _number(v)
    return isinstance(v, float) and math.isnan(v)


def ratio(values, of: str = "") -> str:
    """A per-axis ratio (ERF/RF, ERF/input) with two decimals, ``h, w``, never like a size.

    >>> ratio((1.0, 1.0)), ratio((0.5, 0.25)), ratio((0.9, 0.9), of="of the input"), ratio((None, None))
    ('1.00, 1.00', '0.50, 0.25', '0.90, 0.90 of the input', '–')
    """
    if values is None or all(_number(v) is None for v in values):
        return MISSING
    return ", ".join(fixed(v) for v in values) + (f" {of}" if of else "")


def mean(values, digits: int = 3) -> str:
    """The mean of the finite ``values`` with ``digits`` significant digits, ``–`` when there are none.

    >>> mean([1.0, 2.0, float("nan")]), mean([]), mean([0.123456])
    ('1.5', '–', '0.123')
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    return f"{a.mean():.{digits}g}" if a.size else MISSING


def short_op(op: str) -> str:
    """The last part of an op's qualified name.

    >>> short_op("torch.nn.modules.conv.Conv2d"), short_op("operator.add")
    ('Conv2d', 'add')
    """
    return op.rsplit(".", 1)[-1]


def one_line(text, limit: int | None = None) -> str:
    """``str(text)`` on one line: control characters (newlines, tabs, ...) as spaces, lone surrogates (file
    names that are not UTF-8) as ``?``; cut to ``limit`` characters when given.

    >>> one_line("a\\nb\\tc"), one_line("x" * 10, limit=4)
    ('a b c', 'xxx…')
    """
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
