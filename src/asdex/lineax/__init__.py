"""Lineax operators and sparse linear solvers.

- [`asdex.lineax.SparseMatrixOperator`][]: a sparse matrix as a Lineax operator.
- [`asdex.lineax.sparsify`][]: see through Lineax's wrappers to one sparse matrix.
- Solvers: [`asdex.lineax.SparseLU`][], [`asdex.lineax.SparseCholesky`][],
  [`asdex.lineax.SparseNormalEquations`][], [`asdex.lineax.SparseKrylov`][] and
  the automatic [`asdex.SparseLinearSolver`][].
"""

from ._operator import (
    PatternIndices as PatternIndices,
    SparseMatrixOperator as SparseMatrixOperator,
    pattern_indices as pattern_indices,
)
from ._solver import (
    SparseCholesky as SparseCholesky,
    SparseKrylov as SparseKrylov,
    SparseLinearSolver as SparseLinearSolver,
    SparseLU as SparseLU,
    SparseNormalEquations as SparseNormalEquations,
    jacobi_preconditioner as jacobi_preconditioner,
)
from ._sparsify import damped_operator as damped_operator, sparsify as sparsify
from ._superlu import set_factor_cache_size as set_factor_cache_size
