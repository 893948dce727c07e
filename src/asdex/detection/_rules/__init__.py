"""Detection rules, one module per family. Importing this package registers them all."""

from . import (  # noqa: F401
    control_flow,
    custom,
    elementwise,
    indexing,
    linalg,
    ranges,
    reductions,
    structural,
)
