"""Effective receptive fields measured from gradients.

``rfkit.erf`` is both this package and the function :func:`rfkit.erf.engine.erf`: calling the package
calls the function, so ``rfkit.erf(model, ...)`` works however the package was imported.
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from rfkit.erf.engine import erf

        return erf(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
