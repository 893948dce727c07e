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
"""

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
