"""Solves inside XLA for matrices of trivial structure: tridiagonal, and block
diagonal with small blocks.

A host solve costs a callback and copies on every call, however small the work.
Two structures are common and need no sparse factorisation at all:

- **tridiagonal** square matrices (1-D stencils, the chained Rosenbrock Hessian):
  `lax.linalg.tridiagonal_solve`, LAPACK's `?gtsv` on CPU;
- **block diagonal** matrices with blocks of at most `MAX_BLOCK` (independent
  fits, per-element parameters): one batched dense LU. For least squares, the
  Gram matrix `AᵀA` of a matrix whose every row lies within one block of columns
  (independent curves, and Levenberg–Marquardt's `[J; √λ I]` of them) is block
  diagonal, and is formed blockwise by one segment sum.

Both run in the compiled program, under `jit`, `vmap` and Lineax's derivatives
like any other JAX code. Singular matrices are reported as the host path reports
them: a pivot of the blocks' LU below `min(size, 100) · ε` of the largest (see
`check_pivots`), or a solution that is not finite.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._caches import cached
from .._pattern import SparsityPattern
from ._pattern_data import pattern_data

# Blocks up to this size are solved as dense batched LU inside XLA.
MAX_BLOCK = 16


class _Blocks(NamedTuple):
    """Where each stored value goes in a `(count, depth, size)` stack of blocks.

    For a square matrix `depth == size`, and each nonzero goes to `[block, row,
    col]`. For the rows of a Gram matrix's factor A, the rows of each column
    block are stacked `depth` deep (zero-padded), and each nonzero goes to
    `[block of its row, slot of its row, its column within the block]`.
    """

    size: int
    count: int
    depth: int
    block: np.ndarray
    row: np.ndarray
    col: np.ndarray


def _smallest_block(first: np.ndarray, second: np.ndarray, n: int) -> int | None:
    """The smallest block size `k` (dividing `n`, at most `MAX_BLOCK`, and giving
    at least two blocks) such that `first // k == second // k` everywhere."""
    for k in range(1, min(MAX_BLOCK, n // 2) + 1):
        if n % k == 0 and np.array_equal(first // k, second // k):
            return k
    return None


@cached(maxsize=64)
def square_blocks(pattern: SparsityPattern) -> _Blocks | None:
    """The blocks of a square block-diagonal pattern, or `None`."""
    m, n = pattern.shape
    if m != n or n == 0 or pattern.nnz == 0:
        return None
    rows, cols = pattern.rows.astype(np.int64), pattern.cols.astype(np.int64)
    k = _smallest_block(rows, cols, n)
    if k is None:
        return None
    return _Blocks(k, n // k, k, rows // k, rows % k, cols % k)


@cached(maxsize=64)
def gram_blocks(pattern: SparsityPattern) -> _Blocks | None:
    """For `AᵀA`: the column blocks of a pattern whose every row lies within one
    of them, with the rows stacked per block, or `None`."""
    m, n = pattern.shape
    if n == 0 or pattern.nnz == 0:
        return None
    rows, cols = pattern.rows.astype(np.int64), pattern.cols.astype(np.int64)
    indptr = pattern_data(pattern).indptr
    nonempty = np.diff(indptr) > 0
    first = np.zeros(m, np.int64)
    first[nonempty] = cols[indptr[:-1][nonempty]]
    k = _smallest_block(cols, first[rows], n)
    if k is None:
        return None
    count = n // k
    row_block = first[nonempty] // k
    # Each nonempty row's slot among its block's rows.
    order = np.argsort(row_block, kind="stable")
    per_block = np.bincount(row_block, minlength=count)
    starts = np.concatenate(([0], np.cumsum(per_block)[:-1]))
    slot_sorted = np.arange(order.size) - np.repeat(starts, per_block)
    slot = np.empty(m, np.int64)
    slot[np.flatnonzero(nonempty)[order]] = slot_sorted
    depth = int(per_block.max())
    if count * depth > 4 * max(int(nonempty.sum()), n):
        return None  # very unequal blocks: the padding would cost too much
    return _Blocks(k, count, depth, first[rows] // k, slot[rows], cols % k)


def is_tridiagonal(pattern: SparsityPattern) -> bool:
    m, n = pattern.shape
    if m != n or n < 3 or pattern.nnz == 0:
        return False
    offsets = pattern_data(pattern).offsets
    return bool(offsets.min() >= -1 and offsets.max() <= 1)


def _pivots_ok(pivots: jax.Array, dtype) -> jax.Array:
    magnitudes = jnp.abs(pivots)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    tol = min(magnitudes.size, 100) * eps * jnp.max(magnitudes)
    return jnp.min(magnitudes) > tol


def _block_solve(stack: jax.Array, rhs: jax.Array, transpose: bool):
    """Solve each `k × k` block against its part of `rhs`; `(x, info)`."""
    count, k, _ = stack.shape
    lu, pivots, _ = jax.lax.linalg.lu(stack)
    ok = _pivots_ok(jnp.diagonal(lu, axis1=-2, axis2=-1), stack.dtype)
    b = rhs.reshape(count, k)
    x = jax.vmap(
        lambda f, p, v: jax.scipy.linalg.lu_solve((f, p), v, trans=int(transpose))
    )(lu, pivots, b).reshape(-1)
    ok = ok & jnp.all(jnp.isfinite(x))
    return x, jnp.where(ok, 0, 1).astype(jnp.int32)


def _stack(blocks: _Blocks, values) -> jax.Array:
    stack = jnp.zeros((blocks.count, blocks.depth, blocks.size), values.dtype)
    return stack.at[blocks.block, blocks.row, blocks.col].set(
        values, unique_indices=True
    )


def _gram_block_solve(blocks: _Blocks, values, rhs):
    """`(AᵀA) x = rhs`, with `AᵀA` formed block by block from A's rows."""
    rows = _stack(blocks, values)
    gram = jnp.einsum("cpk,cpl->ckl", rows, rows)
    return _block_solve(gram, rhs, transpose=False)


def _tridiagonal_solve(pattern: SparsityPattern, values, rhs, transpose: bool):
    n = pattern.shape[0]
    rows, cols = pattern.rows, pattern.cols
    if transpose:
        rows, cols = cols, rows
    diagonals = jnp.zeros((3, n), values.dtype)
    # LAPACK's layout: dl[i] = A[i, i-1], d[i] = A[i, i], du[i] = A[i, i+1].
    diagonals = diagonals.at[cols - rows + 1, rows].set(values)
    dl, d, du = diagonals
    x = jax.lax.linalg.tridiagonal_solve(dl, d, du, rhs[:, None])
    x = x[:, 0]
    return x, jnp.where(jnp.all(jnp.isfinite(x)), 0, 1).astype(jnp.int32)


def solve_in_xla(kind: str, pattern: SparsityPattern, values, rhs, transpose: bool):
    """`(x, info)` as `superlu_solve` gives them, or `None` when the structure is
    not one of those solved here."""
    if not jnp.issubdtype(values.dtype, jnp.floating) or not jnp.issubdtype(
        rhs.dtype, jnp.floating
    ):
        return None  # complex: the host's solvers
    if values.ndim != 1 or rhs.ndim != 1:
        return None
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(values, rhs)
    values, rhs = values.astype(dtype), rhs.astype(dtype)
    if kind in ("lu", "symmetric"):
        blocks = square_blocks(pattern)
        if blocks is not None:
            return _block_solve(_stack(blocks, values), rhs, transpose)
        if is_tridiagonal(pattern):
            return _tridiagonal_solve(pattern, values, rhs, transpose)
    if kind == "gram_cols":
        blocks = gram_blocks(pattern)
        if blocks is not None:
            return _gram_block_solve(blocks, values, rhs)
    return None
