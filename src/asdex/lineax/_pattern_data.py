"""Facts about a `SparsityPattern` that the operator and the solvers reuse.

Everything here is derived once per pattern, in numpy, and kept in a small
least-recently-used cache keyed by the pattern (see `asdex._caches`). Patterns
hash once (their hash is cached) and a lookup checks identity before equality, so
a lookup with the pattern object that filled the entry costs nothing beyond the
hash.
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np

from .._caches import cached
from .._pattern import SparsityPattern

_MAX_PATTERNS = 16


class PatternData:
    """Lazily computed, read-only facts about one pattern."""

    def __init__(self, pattern: SparsityPattern):
        self.pattern = pattern

    @ft.cached_property
    def square(self) -> bool:
        m, n = self.pattern.shape
        return m == n

    @ft.cached_property
    def offsets(self) -> np.ndarray:
        # `cols - rows` of every entry, in int64 so that it cannot overflow.
        return self.pattern.cols.astype(np.int64) - self.pattern.rows.astype(np.int64)

    @ft.cached_property
    def is_diagonal(self) -> bool:
        return self.square and bool(np.all(self.offsets == 0))

    @ft.cached_property
    def is_tridiagonal(self) -> bool:
        return self.square and bool(np.all(np.abs(self.offsets) <= 1))

    @ft.cached_property
    def is_lower_triangular(self) -> bool:
        return self.square and bool(np.all(self.offsets <= 0))

    @ft.cached_property
    def is_upper_triangular(self) -> bool:
        return self.square and bool(np.all(self.offsets >= 0))

    @ft.cached_property
    def has_full_diagonal(self) -> bool:
        """Whether every diagonal entry `(i, i)`, `i < min(m, n)`, is in the pattern."""
        m, n = self.pattern.shape
        return int(np.count_nonzero(self.offsets == 0)) == min(m, n)

    @ft.cached_property
    def is_symmetric_pattern(self) -> bool:
        return self.pattern.is_symmetric()

    @ft.cached_property
    def indptr(self) -> np.ndarray:
        """CSR row pointers, in the narrowest integer type scipy accepts."""
        indptr = self.pattern.indptr
        if indptr[-1] < 2**31:
            indptr = indptr.astype(np.int32)
        return indptr

    @ft.cached_property
    def index_dtype(self):
        m, n = self.pattern.shape
        if max(m, n, self.pattern.nnz) < 2**31:
            return np.int32
        return np.int64

    @ft.cached_property
    def transpose_perm(self) -> np.ndarray:
        """`perm` with `values_of_transpose = values[perm]`, both row-major."""
        # A stable sort by column keeps rows ascending within each column: exactly the
        # row-major order of the transpose (as `SparsityPattern.T` builds it).
        return np.argsort(self.pattern.cols, kind="stable").astype(self.index_dtype)

    @ft.cached_property
    def transposed(self) -> SparsityPattern:
        pattern_t = self.pattern.T
        # Remember the way back, so that transposing twice gives the very same
        # pattern object (and its cached hash) instead of an equal copy.
        data_t = pattern_data(pattern_t)
        data_t.__dict__.setdefault("transposed", self.pattern)
        return pattern_t

    @ft.cached_property
    def device_indices(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """`(rows, cols, transpose_perm)` as concrete device arrays."""
        dtype = self.index_dtype
        with jax.ensure_compile_time_eval():
            return (
                jnp.asarray(self.pattern.rows.astype(dtype, copy=False)),
                jnp.asarray(self.pattern.cols.astype(dtype, copy=False)),
                jnp.asarray(self.transpose_perm),
            )


@cached(maxsize=_MAX_PATTERNS)
def pattern_data(pattern: SparsityPattern) -> PatternData:
    """The (cached) `PatternData` of `pattern`."""
    return PatternData(pattern)
