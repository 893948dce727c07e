"""The state and the solve shared by the direct solvers (SuperLU, QDLDL)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, PyTree

from .._operator import SparseMatrixOperator
from .._sparsify import sparsify
from .._superlu import Kind, superlu_solve


class DirectState(eqx.Module):
    """What `init` keeps: the sparse matrix A and which system to solve.

    - `operator`: A, as a `SparseMatrixOperator` (the untransposed one).
    - `transpose`: solve with Aᵀ instead of A (set by `solver.transpose`).
    - `negate`: the factorised matrix is -A (negative definite A for Cholesky).
    """

    operator: SparseMatrixOperator
    transpose: bool = eqx.field(static=True)
    negate: bool = eqx.field(static=True, default=False)

    def transposed(self) -> DirectState:
        return DirectState(self.operator, not self.transpose, self.negate)

    def conjugated(self) -> DirectState:
        return DirectState(lx.conj(self.operator), self.transpose, self.negate)

    @property
    def flat_in(self):
        op = self.operator
        return op.output_structure if self.transpose else op.input_structure

    @property
    def flat_out(self):
        op = self.operator
        return op.input_structure if self.transpose else op.output_structure


class AbstractDirectSolver(lx.AbstractLinearSolver[DirectState]):
    """A solver that factorises on the host and keeps a `DirectState`.

    Transposing or conjugating the system only flips a flag or conjugates the values
    in the state, so the concrete solvers supply `init` and `compute` alone.
    """

    def transpose(self, state: DirectState, options: dict[str, Any]):
        return state.transposed(), options

    def conj(self, state: DirectState, options: dict[str, Any]):
        return state.conjugated(), options

    def assume_full_rank(self) -> bool:
        return True


def to_sparse(solver: str, operator: lx.AbstractLinearOperator) -> SparseMatrixOperator:
    """`sparsify(operator)`, with an error that names the solver."""
    if not isinstance(operator, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{solver}.init(operator=...)` needs a Lineax operator, got "
            f"{type(operator).__name__}."
        )
    try:
        return sparsify(operator)
    except NotImplementedError as err:
        raise ValueError(
            f"`{solver}` solves sparse operators, but got a "
            f"{type(operator).__name__} that has no sparse form. Pass an "
            "`asdex.lineax.SparseMatrixOperator` (or an asdex sparse Jacobian or "
            "Hessian operator), or use `asdex.SparseLinearSolver()`, which falls back "
            f"to Lineax's dense solvers for small dense operators. ({err})"
        ) from err


def require_square(solver: str, operator: SparseMatrixOperator, hint: str) -> None:
    m, n = operator.pattern.shape
    if m != n:
        raise ValueError(
            f"`{solver}` needs a square operator, got one of shape {m}×{n}. {hint}"
        )


def direct_compute(
    kind: Kind, state: DirectState, vector: PyTree[Array]
) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
    b = state.flat_out.ravel(vector)
    values = state.operator.values
    if state.negate:
        values, b = -values, -b
    x, info = superlu_solve(
        kind, state.operator.pattern, values, b, transpose=state.transpose
    )
    solution = state.flat_in.unravel(x)
    # Codes from `_solve_host`: 3 is an iterative solve that did not converge.
    failed = lx.RESULTS.where(
        info == 3, lx.RESULTS.max_steps_reached, lx.RESULTS.singular
    )
    result = lx.RESULTS.where(info == 0, lx.RESULTS.successful, failed)
    return solution, result, {}


def flat_mv(
    operator: SparseMatrixOperator, x: Array, *, transpose: bool = False
) -> Array:
    """`A x` (or `Aᵀ x`) on flat vectors, by one gather and one segment sum."""
    rows, cols = operator.indices.rows, operator.indices.cols
    m, n = operator.pattern.shape
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(operator.values, x)
    values, x = operator.values.astype(dtype), x.astype(dtype)
    if transpose:
        gather, scatter, size, is_sorted = rows, cols, n, False
    else:
        gather, scatter, size, is_sorted = cols, rows, m, True
    products = values * x.at[gather].get(
        mode="promise_in_bounds", wrap_negative_indices=False
    )
    return jax.ops.segment_sum(
        products,
        scatter,
        num_segments=size,
        indices_are_sorted=is_sorted,
        mode="promise_in_bounds",
    )
