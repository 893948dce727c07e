"""Sums of sparse operators, on the union of their patterns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._caches import cached
from .._pattern import SparsityPattern
from ._operator import SparseMatrixOperator, pattern_indices
from ._pattern_data import pattern_data


def with_values(
    operator: SparseMatrixOperator,
    values: Array | None = None,
    tags: frozenset[object] | None = None,
    input_structure=None,
    output_structure=None,
) -> SparseMatrixOperator:
    return SparseMatrixOperator(
        operator.values if values is None else values,
        operator.pattern,
        operator.in_structure() if input_structure is None else input_structure,
        operator.out_structure() if output_structure is None else output_structure,
        operator.tags if tags is None else tags,
        indices=operator.indices,
    )


def add(a: SparseMatrixOperator, b: SparseMatrixOperator) -> SparseMatrixOperator:
    """The sum of two sparse operators of the same shape, on the union pattern."""
    if a.pattern.shape != b.pattern.shape:
        raise ValueError(
            f"Cannot add sparse operators of shapes {a.pattern.shape} and "
            f"{b.pattern.shape}."
        )
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(a.values, b.values)
    va, vb = a.values.astype(dtype), b.values.astype(dtype)
    if a.pattern is b.pattern or a.pattern == b.pattern:
        return with_values(a, va + vb, frozenset())
    data_a, data_b = pattern_data(a.pattern), pattern_data(b.pattern)
    # The common case `H + λI` (Levenberg–Marquardt, Tikhonov): add the diagonal
    # elementwise, `where(row == col, d[row], 0)`, without any new index array.
    if data_b.is_diagonal and data_a.has_full_diagonal:
        return with_values(a, va + _spread_diagonal(b, a, dtype), frozenset())
    if data_a.is_diagonal and data_b.has_full_diagonal:
        return with_values(b, vb + _spread_diagonal(a, b, dtype), frozenset())
    union, pos_a, pos_b = _union(a.pattern, b.pattern)
    # The positions are derived from the static patterns, so under `jit` they are
    # constants of the program (as are the union's own index arrays).
    values = (
        jnp.zeros(union.nnz, dtype)
        .at[pos_a]
        .add(va, unique_indices=True, mode="promise_in_bounds")
        .at[pos_b]
        .add(vb, unique_indices=True, mode="promise_in_bounds")
    )
    return SparseMatrixOperator(
        values,
        union,
        a.in_structure(),
        a.out_structure(),
        indices=pattern_indices(union),
    )


def _spread_diagonal(diag_op: SparseMatrixOperator, full: SparseMatrixOperator, dtype):
    """`diag_op`'s diagonal laid out on `full`'s pattern, which holds the diagonal."""
    m, n = full.pattern.shape
    size = min(m, n)
    d = (
        jnp.zeros(size, dtype)
        .at[diag_op.indices.rows]
        .add(diag_op.values.astype(dtype), mode="promise_in_bounds")
    )
    frows, fcols = full.indices.rows, full.indices.cols
    on_diagonal = frows == fcols
    safe = jnp.where(on_diagonal, frows, 0)
    return jnp.where(on_diagonal, d.at[safe].get(mode="promise_in_bounds"), 0)


@cached(maxsize=8)
def _union(pa: SparsityPattern, pb: SparsityPattern):
    n = pa.shape[1]
    keys_a = pa.rows.astype(np.int64) * n + pa.cols
    keys_b = pb.rows.astype(np.int64) * n + pb.cols
    keys = np.union1d(keys_a, keys_b)
    rows, cols = np.divmod(keys, max(n, 1))
    union = SparsityPattern._canonical(rows, cols, pa.shape)
    dtype = pattern_data(union).index_dtype
    with jax.ensure_compile_time_eval():
        pos_a = jnp.asarray(np.searchsorted(keys, keys_a).astype(dtype))
        pos_b = jnp.asarray(np.searchsorted(keys, keys_b).astype(dtype))
    return union, pos_a, pos_b
