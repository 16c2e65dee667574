"""RF handlers, one module per family of ops. Importing this package fills the default registry."""

from rfkit.graph.handlers import (attention, conv, linear, merge, neutral, norm, pad, pool, reduce,  # noqa: F401
                                  resample, shape)
from rfkit.graph.handlers import aten  # noqa: F401,E402 - ATen names for the rules above
