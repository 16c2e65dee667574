"""Effective receptive fields measured from gradients: the engine (:func:`rfkit.effective.engine.erf`, which
the namespace offers as ``rfkit.erf``), the methods, the metrics and their intervals, the result type.

The package is not named ``erf``: ``rfkit.erf`` is the function, and a package of that name would be shadowed
by it (or shadow it) depending on what was imported first.
"""
