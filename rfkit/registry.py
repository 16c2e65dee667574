"""Named records of one extension kind (ERF methods, ERF metrics, figure types, presets): registration that
refuses a taken name, lookup whose error names the close matches and every choice.

Each kind keeps one :class:`NamedRegistry` next to the code that uses it (``rfkit.effective.methods.ERF_METHODS``,
``rfkit.effective.metric_registry.ERF_METRICS``, ``rfkit.report.figures.registry.FIGURE_TYPES``,
``rfkit.report.presets.PRESETS``). The RF rules of ops are looked up by module type, function or method name
instead, in :class:`rfkit.graph.registry.Registry`.

Examples
--------
>>> from rfkit.errors import PresetError
>>> colours = NamedRegistry("colour", PresetError)
>>> colours.register("magma", "#000004")
'#000004'
>>> colours.get("magma"), "magma" in colours, colours.names()
('#000004', True, ['magma'])
>>> colours.get("magam")
Traceback (most recent call last):
...
rfkit.errors.PresetError: unknown colour 'magam' (close matches: magma); use one of magma
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


def unknown_name(kind: str, name: object, choices: list[str]) -> str:
    """The one-line message of an unknown name: the close matches, if any, and every choice.

    >>> unknown_name("ERF method", "replknt", ["replknet", "openerf"])
    "unknown ERF method 'replknt' (close matches: replknet); use one of replknet, openerf"
    """
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5) if isinstance(name, str) else []
    hint = f" (close matches: {', '.join(close)})" if close else ""
    return f"unknown {kind} {name!r}{hint}; use one of {', '.join(choices)}"


class NamedRegistry(Generic[T]):
    """Records of one kind by name, in the order they were registered.

    Parameters
    ----------
    kind : str
        What a record is, for messages ("ERF method", "figure type", "preset").
    error : type
        The exception raised for an unknown or a taken name (an :class:`~rfkit.errors.RFKitError` subclass).
    """

    def __init__(self, kind: str, error: type[Exception]) -> None:
        self.kind = kind
        self.error = error
        self._records: dict[str, T] = {}

    def register(self, name: str, record: T, *, replace: bool = False) -> T:
        """Add ``record`` under ``name`` and return it; a taken name is refused unless ``replace``."""
        if not isinstance(name, str) or not name.strip():
            raise self.error(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._records and not replace:
            raise self.error(f"{self.kind} {name!r} is registered already (pass replace=True to replace it)")
        self._records[name] = record
        return record

    def unregister(self, name: str) -> T:
        """Remove the record ``name`` and return it."""
        record = self.get(name)
        del self._records[name]
        return record

    def get(self, name: str) -> T:
        """The record called ``name``; an unknown name raises ``error`` with the close matches."""
        try:
            return self._records[name]
        except (KeyError, TypeError):
            raise self.error(unknown_name(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        """Every name, in the order of registration."""
        return list(self._records)

    def values(self) -> list[T]:
        return list(self._records.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._records.items())

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._records
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    @contextmanager
    def scoped(self) -> Iterator[NamedRegistry[T]]:
        """Undo every registration made inside the ``with`` block (for tests and examples).

        >>> from rfkit.errors import PresetError
        >>> r = NamedRegistry("colour", PresetError)
        >>> with r.scoped():
        ...     _ = r.register("plasma", 1)
        >>> r.names()
        []
        """
        before = dict(self._records)
        try:
            yield self
        finally:
            self._records = before

    def __repr__(self) -> str:
        return f"NamedRegistry({self.kind!r}: {', '.join(self._records)})"
