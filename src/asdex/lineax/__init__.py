"""Lineax operators and sparse linear solvers.

- [`asdex.lineax.SparseMatrixOperator`][]: a sparse matrix as a Lineax operator.
- [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator], [`asdex.SparseHessianOperator`][asdex.SparseHessianOperator]: sparse
  derivatives of a function as Lineax operators.
- [`asdex.lineax.sparsify`][]: see through Lineax's wrappers to one sparse matrix;
  matrix-free operators are detected, colored and compressed
  ([`asdex.lineax.sparsify_linear_map`][]).
- Solvers: [`asdex.lineax.SparseLU`][], [`asdex.lineax.SparseCholesky`][],
  [`asdex.lineax.SparseNormalEquations`][], [`asdex.lineax.SparseSchur`][],
  [`asdex.lineax.SparseKrylov`][],
  [`asdex.lineax.SparseAMG`][] and
  the automatic [`asdex.SparseLinearSolver`][].
"""

from ._damping import damped_operator as damped_operator
from ._derivative_operators import (
    Compression as Compression,
    SparseHessianOperator as SparseHessianOperator,
    SparseJacobianOperator as SparseJacobianOperator,
    compression as compression,
)
from ._operator import (
    PatternIndices as PatternIndices,
    SparseMatrixOperator as SparseMatrixOperator,
    pattern_indices as pattern_indices,
)
from ._solver import (
    SparseAMG as SparseAMG,
    SparseCholesky as SparseCholesky,
    SparseKrylov as SparseKrylov,
    SparseLinearSolver as SparseLinearSolver,
    SparseLU as SparseLU,
    SparseNormalEquations as SparseNormalEquations,
    SparseSchur as SparseSchur,
    jacobi_preconditioner as jacobi_preconditioner,
)
from ._sparsify import sparsify as sparsify
from ._sparsify_matrix_free import sparsify_linear_map as sparsify_linear_map
from ._superlu import set_factor_cache_size as set_factor_cache_size
