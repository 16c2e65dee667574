"""The attribution methods rfkit runs, by name (the records of :mod:`rfkit.attribution.registry`, the
built-in ones from :mod:`rfkit.attribution.catalogue`), and how a list of names with ``A*B`` products is read.

A product ``A*B`` multiplies a method whose map is an input gradient (``saliency``, ``ig``, ...) by a CAM
method (``gradcam``, ...), either order, each map divided by its largest absolute value per image first
(the recipe of Guided Grad-CAM, which captum computes whole as ``guided_gradcam``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import rfkit.attribution.catalogue  # noqa: F401 -- registers the built-in methods
from rfkit.attribution.errors import MethodError
from rfkit.attribution.registry import CHANNEL_RULES, SCORES, Method, lookup, registered
from rfkit.attribution.settings import DEFAULT_STEPS, MAX_AUTO_STEPS, STEPS_TARGET_ERROR, Settings

__all__ = [
    "DEFAULT_STEPS",
    "MAX_AUTO_STEPS",
    "STEPS_TARGET_ERROR",
    "Settings",
    "base_methods",
    "check_method",
    "display_name",
    "method_names",
    "parse_methods",
    "parse_options",
    "parts",
    "record",
]


def method_names(family: str | None = None) -> tuple[str, ...]:
    """The registered methods' names (of one ``family``: ``"gradient"``, ``"path"``, ``"cam"``, ...).

    >>> method_names("path")
    ('ig', 'blur_ig', 'blur_ig_pair', 'guided_ig')
    """
    return tuple(n for n, m in registered().items() if family is None or m.family == family)


def record(name: str) -> Method:
    """The record of a base method (not a product), or :class:`MethodError` with close matches."""
    found = lookup(name)
    if found is None:
        raise _unknown(name)
    return found


def parts(name: str) -> tuple[str, ...]:
    """The base methods of a method name: ``("gradcam", "saliency")`` for ``"gradcam*saliency"``.

    >>> parts("ig"), parts("guided_backprop*gradcam")
    (('ig',), ('guided_backprop', 'gradcam'))
    """
    return tuple(name.split("*"))


def _gradient_factor(m: Method) -> bool:
    return m.input_gradient and m.layer is None


def _cam_factor(m: Method) -> bool:
    return m.family == "cam"


def uses_layer(name: str) -> bool:
    """Whether ``name`` needs a CAM layer (a method that reads one, alone or in a product)."""
    return any(record(p).layer is not None for p in parts(name))


def zero_outside_rf(name: str) -> bool:
    """Whether ``name``'s map is zero where the score has no input gradient (so outside a unit's RF window):
    an input-gradient method alone or times a CAM."""
    return any(record(p).input_gradient for p in parts(name))


def signed(name: str) -> bool:
    """Whether ``name``'s raw maps can be negative (a product is signed when a factor is)."""
    return any(record(p).signed for p in parts(name))


def _unknown(name: str) -> MethodError:
    names = method_names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.7)
    hint = f" (close matches: {', '.join(close)})" if close else ""
    return MethodError(
        f"unknown attribution method {name!r}{hint}; use one of {', '.join(names)}, or "
        "GRADIENT*CAM (e.g. guided_backprop*gradcam)"
    )


def check_method(name: str) -> str:
    """``name`` itself, when it is a method or a gradient*CAM product; else :class:`MethodError`.

    >>> check_method("gradcam*saliency")
    'gradcam*saliency'
    >>> check_method("saliancy")
    Traceback (most recent call last):
    ...
    rfkit.errors.MethodError: unknown attribution method 'saliancy' (close matches: saliency); ...
    """
    if not isinstance(name, str):
        raise MethodError(f"a method name must be a string, got {name!r} ({type(name).__name__})")
    names = parts(name.strip())
    records = [record(p) for p in names]
    if len(names) == 1:
        return names[0]
    if len(names) != 2 or sum(map(_cam_factor, records)) != 1 or not any(map(_gradient_factor, records)):
        gradients = [n for n, m in registered().items() if _gradient_factor(m)]
        cams = [n for n, m in registered().items() if _cam_factor(m)]
        raise MethodError(
            f"product {name!r}: multiply one gradient method ({', '.join(gradients)}) by one CAM "
            f"method ({', '.join(cams)}), e.g. guided_backprop*gradcam"
        )
    return "*".join(names)


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Method names from a sequence or a comma-separated string, checked, duplicates dropped, in order.

    >>> parse_methods("saliency, ig,gradcam*saliency,ig")
    ('saliency', 'ig', 'gradcam*saliency')
    """
    items = methods.split(",") if isinstance(methods, str) else methods
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise MethodError(f"methods must be a list of method names or a comma-separated string, got {methods!r}")
    names = [
        check_method(m.strip() if isinstance(m, str) else m)
        for m in items
        if not (isinstance(m, str) and not m.strip())
    ]
    if not names:
        raise MethodError(f"no attribution method given; use one or more of {', '.join(method_names())}")
    return tuple(dict.fromkeys(names))


def parse_options(options, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every base method's options: its defaults, overridden by ``options`` — ``{method: {option: value}}``,
    ``{"method.option": value}`` or a sequence of ``"method.option=value"`` strings (the CLI's ``--option``).

    >>> parse_options(["occlusion.window=8"], ("occlusion", "saliency"))["occlusion"]
    {'window': 8, 'stride': None}
    >>> parse_options({"xrai": {"algorithm": "fast"}}, ("saliency",))
    Traceback (most recent call last):
    ...
    rfkit.attribution.errors.MethodError: options given for xrai, which is not among the methods (saliency)
    """
    given: dict[str, dict[str, Any]] = {}
    for key, value in _option_items(options):
        if isinstance(value, Mapping):
            given.setdefault(key, {}).update(value)
            continue
        method, dot, option = key.partition(".")
        if not dot or not option:
            raise MethodError(f"option {key!r}: write METHOD.OPTION (e.g. occlusion.window)")
        given.setdefault(method, {})[option] = value
    bases = base_methods(methods)
    for method in given:
        if method not in bases:
            raise MethodError(f"options given for {method}, which is not among the methods ({', '.join(bases)})")
    return {m: record(m).resolve(given.get(m)) for m in bases}


def _option_items(options) -> list[tuple[str, Any]]:
    if options is None:
        return []
    if isinstance(options, Mapping):
        return list(options.items())
    if isinstance(options, str) or not isinstance(options, Sequence):
        raise MethodError(f"options must be a mapping or a list of 'method.option=value', got {options!r}")
    items = []
    for text in options:
        key, eq, value = str(text).partition("=")
        if not eq or not key.strip():
            raise MethodError(f"option {text!r}: write METHOD.OPTION=VALUE (e.g. occlusion.window=8)")
        items.append((key.strip(), value.strip()))
    return items


def check_choice(value, allowed: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``allowed``; else :class:`MethodError`."""
    if value not in allowed:
        raise MethodError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def check_run(score: str, channels: str) -> None:
    """:class:`MethodError` for an unknown score or channel rule (:data:`SCORES`, :data:`CHANNEL_RULES`)."""
    check_choice(score, SCORES, "score")
    check_choice(channels, CHANNEL_RULES, "channels")


def display_name(method: str) -> str:
    """The name the literature gives ``method`` (its record's ``display``); a product ``A*B`` is ``"A × B"``
    (a factor that holds a ``×`` itself in parentheses).

    >>> display_name("ig"), display_name("gradcam++"), display_name("guided_gradcam")
    ('Integrated Gradients', 'Grad-CAM++', 'Guided Grad-CAM')
    >>> display_name("saliency*layercam"), display_name("input_x_gradient*gradcam")
    ('Saliency × LayerCAM', '(Input × Gradient) × Grad-CAM')
    """
    shown = [m.display if (m := lookup(p)) else p for p in parts(method)]
    if len(shown) == 1:
        return shown[0]
    return " × ".join(f"({n})" if "×" in n else n for n in shown)


def base_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Every base method the list needs, each once, in order.

    >>> base_methods(("saliency", "gradcam*saliency", "ig"))
    ('saliency', 'gradcam', 'ig')
    """
    return tuple(dict.fromkeys(p for m in methods for p in parts(m)))
