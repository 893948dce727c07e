"""asdex: automatic sparse differentiation in JAX."""

from ._pattern import SparsityPattern as SparsityPattern
from ._version import __version__ as __version__
from .detection import (
    hessian_sparsity as hessian_sparsity,
    jacobian_sparsity as jacobian_sparsity,
    PatternTooDenseError as PatternTooDenseError,
    UnknownPrimitiveWarning as UnknownPrimitiveWarning,
)
