"""`SparseLU`: sparse LU factorisation of square systems, by scipy's SuperLU."""

from __future__ import annotations

from typing import Any

import lineax as lx
from jaxtyping import Array, PyTree

from ._direct import (
    AbstractDirectSolver,
    DirectState,
    direct_compute,
    require_square,
    to_sparse,
)


class SparseLU(AbstractDirectSolver):
    """Sparse LU solver for square nonsingular sparse systems.

    The matrix is factorised on the host by SuperLU (`scipy.sparse.linalg.splu`,
    partial pivoting; columns ordered by minimum degree on `A + Aᵀ` for a
    structurally symmetric pattern, by COLAMD otherwise), called through
    `jax.pure_callback`, so the solver runs inside `jax.jit`, `jax.vmap` and
    Optimistix loops. Only the nonzero values and the right-hand side cross to the
    host; the pattern is static.

    A real matrix whose values are exactly symmetric (a discretised Laplacian, say,
    handed over by Optimistix without tags) is first factorised as `L D Lᵀ` like
    [`asdex.lineax.SparseCholesky`][] does, in 0.6x the time on the 64² Bratu
    Jacobian. Every such solve is checked by its backward error, and a zero pivot
    or a failed check falls back to the pivoted LU, so an indefinite matrix costs
    time, never accuracy.

    Transposed and conjugated solves (as used by reverse-mode differentiation
    through `lineax.linear_solve`) reuse the same factorisation: the host keeps the
    most recent factor, keyed by the exact values (see
    [`asdex.lineax.set_factor_cache_size`][]), so a solve and its transposed solve
    factorise once. Under `jax.vmap` over the right-hand side only, one
    factorisation serves the whole batch.

    A singular matrix (SuperLU finds an exactly zero pivot) or one with non-finite
    values gives `lineax.RESULTS.singular`, so `lineax.linear_solve(...,
    throw=True)` raises and `throw=False` reports it in `Solution.result`.

    The operator must have a sparse form: a [`asdex.lineax.SparseMatrixOperator`][]
    (or an asdex sparse Jacobian or Hessian operator), possibly inside Lineax's
    tagged, sum, scaled and diagonally composed operators; see
    [`asdex.lineax.sparsify`][].

    !!! Example

        ```python
        solution = lx.linear_solve(operator, vector, asdex.lineax.SparseLU())
        ```
    """

    def init(
        self, operator: lx.AbstractLinearOperator, options: dict[str, Any]
    ) -> DirectState:
        del options
        sparse = to_sparse("SparseLU", operator)
        require_square(
            "SparseLU",
            sparse,
            "For least squares use `asdex.lineax.SparseNormalEquations()` or "
            "`asdex.SparseLinearSolver()`.",
        )
        return DirectState(sparse, transpose=False)

    def compute(
        self, state: DirectState, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        del options
        return direct_compute("lu", state, vector)


SparseLU.__init__.__doc__ = """**Arguments:**

Nothing.
"""
