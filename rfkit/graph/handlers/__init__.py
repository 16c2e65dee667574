"""RF handlers, one module per family of ops. Importing this package fills the default registry."""

from rfkit.graph.handlers import (  # noqa: F401
    aten,  # noqa: F401,E402 - ATen names for the rules above
    attention,
    conv,
    linear,
    merge,
    neutral,
    norm,
    pad,
    pool,
    reduce,
    resample,
    shape,
)
