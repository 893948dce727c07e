"""asdex: automatic sparse differentiation in JAX."""

from . import (
    coloring as coloring,
    lineax as lineax,
    optax as optax,
    optimistix as optimistix,
)
from ._api import (
    hessian as hessian,
    jacobian as jacobian,
    value_and_hessian as value_and_hessian,
    value_and_jacobian as value_and_jacobian,
)
from ._caches import clear_caches as clear_caches
from ._colored import (
    ColoredPattern as ColoredPattern,
    DenseColoringWarning as DenseColoringWarning,
)
from ._colorings import (
    hessian_coloring as hessian_coloring,
    jacobian_coloring as jacobian_coloring,
)
from ._from_given import (
    hessian_from_coloring as hessian_from_coloring,
    hessian_from_pattern as hessian_from_pattern,
    jacobian_from_coloring as jacobian_from_coloring,
    jacobian_from_pattern as jacobian_from_pattern,
)
from ._function import SparseFunction as SparseFunction
from ._pattern import SparsityPattern as SparsityPattern
from ._sharding import ProductSharding as ProductSharding
from ._spy import spy as spy
from ._version import __version__ as __version__
from .ad import (
    AbstractSparseDerivative as AbstractSparseDerivative,
    CheckReport as CheckReport,
    SparseHessian as SparseHessian,
    SparseJacobian as SparseJacobian,
    check_hessian as check_hessian,
    check_jacobian as check_jacobian,
)
from .detection import (
    PatternTooDenseError as PatternTooDenseError,
    UnknownPrimitiveWarning as UnknownPrimitiveWarning,
    hessian_sparsity as hessian_sparsity,
    jacobian_sparsity as jacobian_sparsity,
)
from .lineax import (
    SparseHessianOperator as SparseHessianOperator,
    SparseJacobianOperator as SparseJacobianOperator,
    SparseLinearSolver as SparseLinearSolver,
)
