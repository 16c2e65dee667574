"""RF handlers, one module per family of ops. Importing this package fills the default registry."""

from rfkit.graph.handlers import conv, layout, linear, merge, neutral, norm, pad, pool, reduce, resample  # noqa: F401
