"""The ordered registry of model sources: which source a spec string belongs to, and each source by name.

A spec ``NAME:MODEL`` belongs to the registered source called NAME; any other spec to the first source (in
registration order) that :meth:`~rfkit.models.sources.base.ModelSource.claims` it, else to the fallback
source (timm: a bare name is a timm name).
"""

from __future__ import annotations

from rfkit.errors import ArgumentError
from rfkit.models.sources.base import ModelSource, close_matches

_SOURCES: dict[str, ModelSource] = {}


def register_source(source: ModelSource, *, replace: bool = False) -> ModelSource:
    """Add ``source`` to the registry, after those registered before it; returns it.

    Parameters
    ----------
    source : ModelSource
        Its ``name`` is its spec prefix.
    replace : bool
        Replace a registered source of the same name (keeping its place) instead of refusing.

    Raises
    ------
    ArgumentError
        Not a :class:`ModelSource`, a name that is empty or has a ``:``, a name already registered, or a
        second fallback source.

    Examples
    --------
    >>> from rfkit.models.sources.base import ModelSource
    >>> class Nothing(ModelSource):
    ...     name, description = "nothing", "no models"
    >>> _ = register_source(Nothing())
    >>> get_source("nothing").description
    'no models'
    >>> unregister_source("nothing").name
    'nothing'
    """
    if not isinstance(source, ModelSource):
        raise ArgumentError(f"register_source takes a ModelSource, got {type(source).__name__}")
    name = source.name
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ArgumentError(f"a model source needs a name without ':' or spaces (its spec prefix), got {name!r}")
    if name in _SOURCES and not replace:
        raise ArgumentError(f"a model source named {name!r} is registered already: pass replace=True to replace it")
    other = next((s.name for s in _SOURCES.values() if s.fallback and s.name != name), None)
    if source.fallback and other:
        raise ArgumentError(f"{other!r} is the fallback source already: only one source takes the bare names")
    _SOURCES[name] = source
    return source


def unregister_source(name: str) -> ModelSource:
    """Remove the source called ``name`` from the registry and return it (:func:`get_source`'s errors)."""
    return _SOURCES.pop(get_source(name).name)


def get_source(name: str) -> ModelSource:
    """The registered source called ``name``.

    Raises
    ------
    ArgumentError
        No such source; the message lists the registered ones and close matches.

    Examples
    --------
    >>> get_source("torchvision").name
    'torchvision'
    >>> get_source("torchvison")
    Traceback (most recent call last):
    ...
    rfkit.errors.ArgumentError: unknown model source 'torchvison'. Close matches: torchvision. Sources: timm, ...
    """
    try:
        return _SOURCES[name]
    except (KeyError, TypeError):
        names = list(_SOURCES)
        raise ArgumentError(
            f"unknown model source {name!r}.{close_matches(str(name), names)} Sources: {', '.join(names)}."
        ) from None


def source_names() -> tuple[str, ...]:
    """The names of the registered sources, in registration order.

    >>> source_names()[:4]
    ('timm', 'torchvision', 'ultralytics', 'file')
    """
    return tuple(_SOURCES)


def owner_of(model) -> ModelSource | None:
    """The source that :meth:`~rfkit.models.sources.base.ModelSource.owns` the model object ``model`` (a Keras
    model), None for anything else (a torch module is traced as one).

    >>> import torch.nn as nn
    >>> owner_of(nn.Conv2d(1, 1, 1)) is None
    True
    """
    return next((s for s in _SOURCES.values() if s.owns(model)), None)


def source_for(text: str) -> ModelSource:
    """The source of the spec string ``text``: the one its ``NAME:`` prefix names, else the first that
    claims it, else the fallback.

    >>> source_for("torchvision:vgg16").name, source_for("nets/mine.py:build").name, source_for("resnet50").name
    ('torchvision', 'file', 'timm')
    """
    prefix = text.split(":", 1)[0] if ":" in text else None
    if prefix in _SOURCES:
        return _SOURCES[prefix]
    for source in _SOURCES.values():
        if source.claims(text):
            return source
    for source in _SOURCES.values():
        if source.fallback:
            return source
    raise ArgumentError(f"no model source takes {text!r}: name one as SOURCE:MODEL ({', '.join(_SOURCES)})")
