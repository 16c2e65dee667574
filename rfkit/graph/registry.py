"""The RF rule registry: one handler per op kind (the fvcore ``_DEFAULT_SUPPORTED_OPS`` pattern).

An op of the traced graph is a leaf module call (matched by type, most specific class first), a function
call (matched by the function object) or a tensor method call (matched by name). A handler receives an
:class:`~rfkit.graph.context.OpContext` and returns the :class:`~rfkit.graph.state.RFState` of the op's
output (or a tuple of states for ops returning several tensors).

Adding support for an op is one decorated function (the recipe in ``docs/architecture.md`` runs in CI)::

    from rfkit.graph.registry import DEFAULT_REGISTRY as R

    @R.module(MyBlurPool, leaf=True)
    def _blur(ctx):
        return ctx.local_op(kernel=3, stride=2, pad=1)

A handler that raises :class:`~rfkit.errors.UnsupportedOpError` lists its op as unsupported with the reason;
one that raises anything else is reported with a :class:`~rfkit.errors.RuleFailedWarning` and makes the graph
incomplete (:mod:`rfkit.graph.propagate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch.nn as nn

if TYPE_CHECKING:
    from rfkit.graph.context import OpContext

Handler = Callable[["OpContext"], Any]


class Registry:
    """Maps module types, functions and tensor-method names to RF handlers.

    Module types registered with ``leaf=True`` are kept whole by the tracer (not traced into), which is
    what a handler for a module needs when its forward is not traceable or is easier to model whole.
    """

    def __init__(self) -> None:
        self.modules: dict[type, Handler] = {}
        self.functions: dict[Callable, Handler] = {}
        self.methods: dict[str, Handler] = {}
        self.leaf_types: set[type] = set()

    def module(self, *types: type, leaf: bool = False) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for calls of modules of the given types."""

        def deco(fn: Handler) -> Handler:
            for t in types:
                self.modules[t] = fn
                if leaf:
                    self.leaf_types.add(t)
            return fn

        return deco

    def function(self, *fns: Callable) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for calls of the given functions (``torch.cat``, ``F.conv2d``...)."""

        def deco(fn: Handler) -> Handler:
            for f in fns:
                self.functions[f] = fn
            return fn

        return deco

    def method(self, *names: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for tensor methods called by name (``x.permute``...)."""

        def deco(fn: Handler) -> Handler:
            for n in names:
                self.methods[n] = fn
            return fn

        return deco

    def register_all(
        self,
        handler: Handler,
        *,
        modules: Iterable[type] = (),
        functions: Iterable[Callable] = (),
        methods: Iterable[str] = (),
    ) -> None:
        """Register one handler for many ops at once (used for the RF-neutral sets)."""
        self.module(*modules)(handler)
        self.function(*functions)(handler)
        self.method(*methods)(handler)

    def for_module(self, module: nn.Module) -> Handler | None:
        """Handler of the most specific registered class in the module's MRO."""
        for cls in type(module).__mro__:
            if cls in self.modules:
                return self.modules[cls]
        return None

    def for_function(self, fn: Callable) -> Handler | None:
        """Handler of a function, or of the ATen op an ``OpOverload`` belongs to (``aten.add.Tensor``)."""
        try:
            handler = self.functions.get(fn)
        except TypeError:  # unhashable callables
            return None
        packet = getattr(fn, "overloadpacket", None)
        return handler if handler is not None or packet is None else self.functions.get(packet)

    def for_method(self, name: str) -> Handler | None:
        return self.methods.get(name)

    @contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Undo every registration made inside the ``with`` block (for tests and examples).

        >>> r = Registry()
        >>> with r.scoped():
        ...     _ = r.method("frobnicate")(lambda ctx: None)
        >>> r.for_method("frobnicate") is None
        True
        """
        before = (dict(self.modules), dict(self.functions), dict(self.methods), set(self.leaf_types))
        try:
            yield self
        finally:
            self.modules, self.functions, self.methods, self.leaf_types = before


DEFAULT_REGISTRY = Registry()
"""The registry rfkit uses unless told otherwise; the modules in :mod:`rfkit.graph.handlers` fill it."""
