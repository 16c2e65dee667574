"""The words of the figures: layer names, RF and ERF captions, the provenance footer and which weights are
flagged as random. Numbers are printed by :mod:`rfkit.formatting`, colours come from
:mod:`rfkit.report.figures.style`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rfkit.formatting import num, pair, ratio, rf_label
from rfkit.report.figures.colors import COLORS
from rfkit.version import __version__

RANDOM_KINDS = ("random", "random-safe")
"""Weights kinds that are not a trained network (:class:`~rfkit.models.weights.WeightsInfo` ``kind``)."""

INFO_WARNINGS = ("center_outside_image",)
"""Map warnings (:func:`rfkit.effective.metrics.diagnose`) that do not make a map suspect."""


def layer_name(layer: str) -> str:
    """How a layer is named in a figure: ``""`` (the model's output) is ``<output>``.

    >>> layer_name("layer4"), layer_name("")
    ('layer4', '<output>')
    """
    return layer or "<output>"


def is_random(weights) -> bool:
    """Whether ``weights`` (a :class:`~rfkit.models.weights.WeightsInfo`, a result holding one in
    ``.weights``, or a kind string) are randomly initialised rather than trained.

    >>> is_random("random-safe"), is_random("pretrained"), is_random(None)
    (True, False, False)
    """
    if hasattr(weights, "weights"):
        weights = weights.weights
    kind = weights if isinstance(weights, str) or weights is None else getattr(weights, "kind", None)
    return kind in RANDOM_KINDS


def suspect_warnings(warnings: Sequence[str]) -> list[str]:
    """The map warnings that make a map suspect (all but :data:`INFO_WARNINGS`).

    >>> suspect_warnings(["center_outside_image: (-3, 4)", "concentrated: 90% in one pixel"])
    ['concentrated: 90% in one pixel']
    """
    return [w for w in warnings if w.split(":", 1)[0] not in INFO_WARNINGS]


def method_label(result) -> str:
    """``ERF (replknet)``: the quantity a heat map shows."""
    return f"ERF ({result.method})"


def rf_text(info) -> str:
    """The analytic RF of a layer in a caption: ``RF 41×41 px, stride 8×8``, ``RF global (local 8×8 px),
    stride 8×8``, ``RF unknown``."""
    if info.unknown:
        return "RF unknown"
    return f"RF {rf_label(info.size, info.local_size, info.is_global, unit='px')}, stride {pair(info.stride)}"


def missing_rf_text(result, layer: str) -> str | None:
    """Why a measured layer has no analytic RF to draw, briefly (None when it has one): the first clause of
    ``result.rf_missing[layer]`` (the op it is unknown after, or that the model could not be traced).

    >>> from types import SimpleNamespace as R
    >>> res = R(rf_missing={"23-0": "its RF is unknown after Detect at node model_23: no RF rule, and ..."})
    >>> missing_rf_text(res, "23-0"), missing_rf_text(res, "13")
    ('no analytic RF to draw: its RF is unknown after Detect at node model_23', None)
    """
    return missing_rf_clause((getattr(result, "rf_missing", None) or {}).get(layer))


def missing_rf_clause(why: str | None) -> str | None:
    """:func:`missing_rf_text` of the reason a layer has no RF (None when it has one), as ``run.json``'s
    ``rf_missing`` keeps it.

    >>> missing_rf_clause("its RF is unknown after Detect at node model_23: no RF rule"), missing_rf_clause(None)
    ('no analytic RF to draw: its RF is unknown after Detect at node model_23', None)
    """
    if why is None:
        return None
    return f"no analytic RF to draw: {why.split(': ')[0]}"


def erf_text(info, metrics, short: bool = False) -> str:
    """The measured ERF of a layer in a caption: ``ERF 31×29 px (95% mass) · ERF/RF 0.76, 0.71``, or with
    ``short`` the ratio alone; for a global layer (whose RF is the input) ERF/input."""
    e = getattr(metrics, "erf_rf", None)
    if e is None:
        return "ERF metrics not computed"
    if e.side[0] is None:
        return "ERF: the map is all zero"
    if info.is_global or not all(math.isfinite(v) for v in info.size):
        text = f"ERF/input {ratio(e.input_ratio)}"
    else:
        text = f"ERF/RF {ratio(e.ratio)}"
    if short:
        return text
    return f"ERF {pair(e.side, unit='px')} ({e.mass:.0%} mass) · {text}"


ROUND_WITHIN = 0.05
"""A Gaussian fit whose principal σ differ by less than this (relative) is called round."""


def sigma_text(fit) -> str:
    """The spread of a :class:`~rfkit.effective.gaussian.GaussianFit` in words, saying which σ: one σ for a round
    fit (principal σ within :data:`ROUND_WITHIN` of each other), else the principal σ and the major axis's
    angle from +x (clockwise on the image, y down).

    >>> from types import SimpleNamespace as F
    >>> sigma_text(F(sigma_major=9.2, sigma_minor=9.0, rotation=0.47))
    'σ ≈ 9.1 px in every direction (principal σ within 2%)'
    >>> sigma_text(F(sigma_major=12.0, sigma_minor=5.0, rotation=math.radians(30)))
    'principal σ 12.0 and 5.0 px, major axis at 30° from x'
    """
    major, minor = fit.sigma_major, fit.sigma_minor
    if major - minor < ROUND_WITHIN * major:
        return f"σ ≈ {(major + minor) / 2:.1f} px in every direction (principal σ within {1 - minor / major:.0%})"
    return f"principal σ {major:.1f} and {minor:.1f} px, major axis at {math.degrees(fit.rotation) % 180:.0f}° from x"


def extent_labels(beyond: dict, unit: str = " px") -> dict[str, str]:
    """The label of each side an RF extends beyond the input (:func:`rfkit.report.figures.style.rf_beyond`).

    >>> extent_labels({"top": 732, "left": 3.5}), extent_labels({"top": 9}, unit="")
    ({'top': '+732 px', 'left': '+3.5 px'}, {'top': '+9'})
    """
    return {side: f"+{num(v)}{unit}" for side, v in beyond.items()}


def compact_extent_labels(beyond: dict) -> dict[str, str]:
    """For a small panel: the first side the RF goes beyond carries its number, the others an arrow alone.

    >>> compact_extent_labels({"top": 117, "bottom": 86, "left": 117})
    {'top': '+117', 'bottom': '', 'left': ''}
    """
    return {side: (f"+{num(v)}" if i == 0 else "") for i, (side, v) in enumerate(beyond.items())}


def wrap_name(name: str, width: int = 12) -> str:
    """A long model name on several lines, broken after ``_``, ``.``, ``-`` or ``:``, so it fits beside a
    small panel.

    >>> wrap_name("vit_small_patch16_224"), wrap_name("resnet50")
    ('vit_small_\\npatch16_224', 'resnet50')
    """
    import re

    lines: list[str] = []
    for part in re.findall(r"[^_.:-]+[_.:-]?", name) or [name]:
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def beyond_text(beyond: dict) -> str:
    """How far an RF extends beyond the input, in words.

    >>> beyond_text({"top": 732, "bottom": 732, "left": 732, "right": 732})
    '732 px beyond each side'
    >>> beyond_text({"top": 20, "bottom": 21}), beyond_text({})
    ('beyond the input by 20 px (top), 21 px (bottom)', '')
    """
    if not beyond:
        return ""
    if len(beyond) == 4 and len(set(beyond.values())) == 1:
        return f"{num(next(iter(beyond.values())))} px beyond each side"
    return "beyond the input by " + ", ".join(f"{num(v)} px ({side})" for side, v in beyond.items())


def footer_lines(result, layers: Sequence[str], notes: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The provenance footer of an ERF figure as ``(text, colour)`` lines: weights, images, method, input
    size and rfkit version; then ``notes``; then, in the warning colour, random weights, the run's warnings
    and the suspect map warnings of ``layers``."""
    w = result.weights
    desc = getattr(w, "description", str(w))
    src = getattr(result.images, "source", None)
    lines = [
        (
            f"weights: {desc} · {result.num_images} image(s)"
            + (f" ({src})" if src else "")
            + f" · ERF method: {result.method} · input {pair(result.input_size)} (h×w) · rfkit {__version__}",
            COLORS["note"],
        )
    ]
    lines += [(n, COLORS["note"]) for n in notes]
    if is_random(w):
        lines.append(
            (
                f"RANDOM WEIGHTS ({getattr(w, 'kind', '?')}): not a trained model; the ERF of trained weights differs",
                COLORS["warning"],
            )
        )
    per_layer = {f"{k}: {x}" for k, m in result.metrics.items() for x in (getattr(m, "warnings", ()) or ())}
    lines += [(f"warning: {x}", COLORS["warning"]) for x in result.warnings if x not in per_layer]
    for layer in layers:
        m = result.metrics.get(layer)
        for x in suspect_warnings(getattr(m, "warnings", ()) or ()):
            lines.append((f"{layer_name(layer)}: map flagged {x}", COLORS["warning"]))
    return lines


def rf_beyond(window, shape) -> dict[str, float]:
    """How many pixels an RF window extends beyond the input, per side (only the sides where it does).

    Parameters
    ----------
    window : ((y_first, y_last), (x_first, x_last))
        From :meth:`RFInfo.window_of <rfkit.RFInfo.window_of>`.
    shape : (H, W)
        The input.

    Examples
    --------
    >>> rf_beyond(((-732, 955), (-732, 955)), (224, 224))
    {'top': 732, 'bottom': 732, 'left': 732, 'right': 732}
    >>> rf_beyond(((10, 20), (-3, 5)), (64, 96))
    {'left': 3}
    """
    (y0, y1), (x0, x1) = window
    H, W = shape
    sides = {"top": -y0, "bottom": y1 - (H - 1), "left": -x0, "right": x1 - (W - 1)}
    return {side: v for side, v in sides.items() if v > 0}
