"""`SparseNormalEquations`: least squares by the sparse normal equations."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, PyTree

from .._structure import ravel, unravel
from .._superlu import superlu_solve
from ._direct import AbstractDirectSolver, DirectState, flat_mv, to_sparse


class SparseNormalEquations(AbstractDirectSolver):
    r"""Sparse least squares (or minimum norm) solves through the normal equations.

    For a tall or square operator $A$ ($m \ge n$) this returns the least-squares
    solution $x = (A^\top A)^{-1} A^\top b$; for a wide one the minimum-norm solution
    $x = A^\top (A A^\top)^{-1} b$. The Gram matrix ($A^\top A$ or $A A^\top$, the
    smaller of the two) is formed on the host with scipy from the nonzero values
    and factorised as $L D L^\top$ (as by [`asdex.lineax.SparseCholesky`][]); the products with $A^\top$ and $A$ run in JAX
    with the sparse matrix-vector product. The transposed solve (for reverse-mode
    derivatives) uses the same Gram matrix and hits the factorisation cache.

    The damped systems of Levenberg–Marquardt, $(J^\top J + \lambda I)\,x =
    J^\top r$, are least-squares problems for the stacked operator
    $[J;\ \sqrt{\lambda} I]$: store that operator (a [`asdex.lineax.SparseMatrixOperator`][]
    with output structure `(residual, y)`) and its Gram matrix is
    $J^\top J + \lambda I$. Square systems `H + λI` built by
    `optx.LevenbergMarquardt` for minimisation are square, and are better solved
    directly: [`asdex.SparseLinearSolver`][] picks a direct solver for them.

    Forming the normal equations squares the condition number of $A$; that is the
    usual price for Gauss–Newton steps and fine unless $A$ is badly conditioned. The
    operator is assumed to have full rank: a rank-deficient $A$ gives a singular
    Gram matrix, reported as `lineax.RESULTS.singular`.

    Only real dtypes are supported.
    """

    def init(
        self, operator: lx.AbstractLinearOperator, options: dict[str, Any]
    ) -> DirectState:
        del options
        sparse = to_sparse("SparseNormalEquations", operator)
        if jnp.issubdtype(sparse.values.dtype, jnp.complexfloating):
            raise ValueError(
                "`SparseNormalEquations` supports real operators only, got dtype "
                f"{sparse.values.dtype}. Use `asdex.lineax.SparseLU()` for square "
                "complex systems."
            )
        return DirectState(sparse, transpose=False)

    def compute(
        self, state: DirectState, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        del options
        a = state.operator
        m, n = a.pattern.shape
        b = ravel(vector, state.flat_out)
        # The Gram matrix is that of A whichever of A or Aᵀ is being solved with:
        # AᵀA when A is tall, AAᵀ when it is wide. B = A or Aᵀ is tall exactly
        # when its Gram is BᵀB; otherwise the Gram is BBᵀ.
        gram = "gram_cols" if m >= n else "gram_rows"
        tall = (m >= n) != state.transpose
        if tall:
            # x = (BᵀB)⁻¹ Bᵀ b, with B = A (Gram AᵀA) or B = Aᵀ (Gram AAᵀ).
            rhs = flat_mv(a, b, transpose=not state.transpose)
            x, info = superlu_solve(gram, a.pattern, a.values, rhs)
        else:
            # x = Bᵀ (BBᵀ)⁻¹ b.
            y, info = superlu_solve(gram, a.pattern, a.values, b)
            x = flat_mv(a, y, transpose=not state.transpose)
        solution = unravel(x, state.flat_in)
        result = lx.RESULTS.where(info == 0, lx.RESULTS.successful, lx.RESULTS.singular)
        return solution, result, {}


SparseNormalEquations.__init__.__doc__ = """**Arguments:**

Nothing.
"""
