"""The stacked operator of a damped least-squares step, built sparsely."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import ArrayLike

from .._caches import cached
from .._pattern import SparsityPattern
from ._operator import PatternIndices, SparseMatrixOperator, pattern_indices
from ._sparsify import sparsify


def damped_operator(
    jacobian: lx.AbstractLinearOperator, damping: ArrayLike
) -> SparseMatrixOperator:
    r"""The stacked operator $[J;\ \sqrt{\lambda} I]$ of a damped least-squares step.

    Levenberg–Marquardt's step solves $\min_x \|Jx - r\|^2 + \lambda \|x\|^2$: the
    least-squares problem for this operator against `(r, zeros)`, whose normal
    equations are $(J^\top J + \lambda I)\,x = J^\top r$. `optx.LevenbergMarquardt`
    builds the same operator as a `lineax.FunctionLinearOperator`, whose function
    Lineax traces into a jaxpr, so that no solver can recover the sparse $J$ from
    it; a sparse Levenberg–Marquardt descent should build it with this function
    instead and solve with [`asdex.lineax.SparseNormalEquations`][] (or
    [`asdex.SparseLinearSolver`][]).

    The output structure is `(J's output structure, J's input structure)`, as in
    Optimistix. Nothing dense is formed. When `J`'s index arrays are traced
    (arguments of a jitted caller), the stacked ones are computed from them, so
    they stay arguments; concrete ones come from a cache per pattern.

    **Arguments:**

    - `jacobian`: an operator with a sparse form, `J` (see
        [`asdex.lineax.sparsify`][]).
    - `damping`: the scalar $\lambda \ge 0$.

    **Returns:**

    A [`asdex.lineax.SparseMatrixOperator`][] of shape `(m + n, n)`.
    """
    sparse = sparsify(jacobian)
    m, n = sparse.pattern.shape
    nnz = sparse.pattern.nnz
    pattern = damped_pattern(sparse.pattern)
    if not any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(sparse.indices)):
        # Concrete indices are the pattern's own: take the stacked pattern's from
        # the cache. Computed in the program instead, XLA constant-folds their
        # scatters at compile time, for seconds at 10⁵ columns.
        indices = pattern_indices(pattern)
    else:
        indices = _stacked_indices(sparse.indices, m, n, nnz)
    with jax.numpy_dtype_promotion("standard"):
        root = jnp.sqrt(jnp.asarray(damping)).astype(sparse.values.dtype)
    values = jnp.concatenate(
        [sparse.values, jnp.broadcast_to(root, (n,)).astype(sparse.values.dtype)]
    )
    return SparseMatrixOperator(
        values,
        pattern,
        sparse.in_structure(),
        (sparse.out_structure(), sparse.in_structure()),
        indices=indices,
    )


def _stacked_indices(
    indices: PatternIndices, m: int, n: int, nnz: int
) -> PatternIndices:
    """The index arrays of `[J; I]` from `J`'s, in the program (for traced ones)."""
    rows, cols, perm = indices.rows, indices.cols, indices.transpose_perm
    dtype = rows.dtype
    diagonal = jnp.arange(n, dtype=dtype)
    # Row-major order of [J; I]: J's entries, then one entry per row of I.
    stacked_rows = jnp.concatenate([rows, m + diagonal])
    stacked_cols = jnp.concatenate([cols, diagonal])
    # The transpose's order is column by column: J's entries of column j (in J's
    # transpose order), then the identity's entry of column j, whose row m + j is
    # the largest. So J's t-th entry in transpose order, in column c, moves to
    # t + c, and column j's identity entry lands after the c ≤ j entries of J.
    cols_t = cols.at[perm].get(mode="promise_in_bounds", wrap_negative_indices=False)
    per_column = jax.ops.segment_sum(
        jnp.ones(nnz, dtype), cols, num_segments=n, mode="promise_in_bounds"
    )
    through = jnp.cumsum(per_column).astype(dtype)
    stacked_perm = (
        jnp.zeros(nnz + n, dtype)
        .at[jnp.arange(nnz, dtype=dtype) + cols_t]
        .set(perm, unique_indices=True, mode="promise_in_bounds")
        .at[through + diagonal]
        .set(nnz + diagonal, unique_indices=True, mode="promise_in_bounds")
    )
    return PatternIndices(stacked_rows, stacked_cols, stacked_perm)


@cached(maxsize=8)
def damped_pattern(pattern: SparsityPattern) -> SparsityPattern:
    m, n = pattern.shape
    diagonal = np.arange(n)
    stacked = SparsityPattern._canonical(
        np.concatenate([pattern.rows, m + diagonal]),
        np.concatenate([pattern.cols, diagonal]),
        (m + n, n),
    )
    return stacked
