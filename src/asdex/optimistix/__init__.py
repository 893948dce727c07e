"""Optimistix solvers that differentiate sparsely and never form a dense matrix.

- [`asdex.optimistix.SparseNewton`][]: Newton's method for roots.
- [`asdex.optimistix.SparseGaussNewton`][] and
  [`asdex.optimistix.SparseLevenbergMarquardt`][]: nonlinear least squares.
- [`asdex.optimistix.SparseNewtonMinimiser`][]: minimisation with the exact sparse
  Hessian and a trust region.
- [`asdex.optimistix.SparseDampedNewtonDescent`][]: the damped Newton descent,
  solved sparsely, for building other solvers.

Each reuses a precomputed coloring (`coloring=`) across solves, or detects the
pattern once when the solve is traced. Stock Optimistix solvers become sparse too
when given `linear_solver=asdex.SparseLinearSolver()`.

Gradients through any solve, stock or asdex's, stay sparse with
`adjoint=asdex.optimistix.sparse_adjoint()` (see
[`asdex.optimistix.sparse_adjoint`][]): Optimistix's default adjoint forms the
Jacobian at the solution densely.
"""

from ._adjoint import sparse_adjoint as sparse_adjoint
from ._least_squares import (
    AbstractSparseGaussNewton as AbstractSparseGaussNewton,
    SparseDampedNewtonDescent as SparseDampedNewtonDescent,
    SparseGaussNewton as SparseGaussNewton,
    SparseLevenbergMarquardt as SparseLevenbergMarquardt,
)
from ._minimiser import (
    AbstractSparseNewtonMinimiser as AbstractSparseNewtonMinimiser,
    NewtonTrustRegion as NewtonTrustRegion,
    SparseNewtonMinimiser as SparseNewtonMinimiser,
)
from ._newton import SparseNewton as SparseNewton
