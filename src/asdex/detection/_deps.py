"""Dependency sets of many array elements at once, stored as one boolean CSR matrix.

Row `r` of a `Deps` is the set of input indices that element `r` (row-major) of an
array may depend on. Rows are kept sorted and free of duplicates, so that two
`Deps` can be compared for equality (loop fixed points need that).

Every propagation rule reduces to one operation: each output row is the union of a
few source rows. `compose` does it for any such map given in CSR form, and
`gather` is its fast special case of at most one source row per output row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# Bail out with a clear error rather than exhaust memory: beyond this many
# structural nonzeros in one intermediate, the pattern is effectively dense.
MAX_NNZ = 400_000_000


# Unions into at most this many (row, input) pairs are marked in a dense boolean
# matrix; larger ones are a scipy sparse product (see `Deps.compose`).
_SMALL_UNION = 2**22


# Row-aligned unions of this many rows or more merge in numba (see `union_aligned`).
# Loading the compiled merge costs a process about 0.25 s on first use (measured
# as the first detection of `(x[1:]-x[:-1])**2` at n = 10⁶: 0.47 against 0.22 s),
# more than scipy's slower merge loses at 10⁶ rows; at 10⁷ the merge saves 1-3 s.
_MERGE_FROM = 2**22

# `Deps.gather` copies runs of consecutive source rows whole when they are this
# long on average: a slice of a 3162² grid of 5-entry rows is 3162 runs, gathered
# in 0.21 s where the per-entry gather took 1.1 s (measured side by side).
_MIN_RUN = 64


class PatternTooDenseError(MemoryError):
    """Raised when an intermediate dependency pattern would exceed `MAX_NNZ` entries."""


class Deps:
    """A boolean `(size, n_inputs)` matrix in CSR form with sorted, unique rows."""

    __slots__ = ("indptr", "indices", "n_inputs")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_inputs: int):
        self.indptr = indptr
        self.indices = indices
        self.n_inputs = n_inputs

    @property
    def size(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @staticmethod
    def identity(size: int, offset: int, n_inputs: int) -> Deps:
        """Element `r` depends on input `offset + r` alone."""
        return Deps(
            np.arange(size + 1, dtype=np.int64),
            np.arange(offset, offset + size, dtype=index_dtype(n_inputs)),
            n_inputs,
        )

    @staticmethod
    def empty(size: int, n_inputs: int) -> Deps:
        return Deps(
            np.zeros(size + 1, dtype=np.int64),
            np.zeros(0, dtype=index_dtype(n_inputs)),
            n_inputs,
        )

    def is_empty(self) -> bool:
        return self.indptr[-1] == 0

    def equals(self, other: Deps) -> bool:
        return np.array_equal(self.indptr, other.indptr) and np.array_equal(
            self.indices, other.indices
        )

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def gather(self, source: np.ndarray) -> Deps:
        """Row `r` of the result is row `source[r]`, or empty where `source[r] < 0`."""
        source = np.ascontiguousarray(source, dtype=np.int64).ravel()
        lengths = np.diff(self.indptr)
        valid = source >= 0
        out_len = np.where(valid, lengths[np.where(valid, source, 0)], 0)
        indptr = np.zeros(len(source) + 1, dtype=np.int64)
        np.cumsum(out_len, out=indptr[1:])
        _check_nnz(indptr[-1])
        indices = self._copy_runs(source)
        if indices is None:
            starts = np.where(valid, self.indptr[np.where(valid, source, 0)], 0)
            # Output slot k of row r reads input slot starts[r] + (k - indptr[r]).
            shift = np.repeat(starts - indptr[:-1], out_len)
            indices = self.indices[np.arange(indptr[-1], dtype=np.int64) + shift]
        return Deps(indptr, indices, self.n_inputs)

    def _copy_runs(self, source: np.ndarray) -> np.ndarray | None:
        """The gathered indices, when `source` is made of few runs of consecutive
        rows (slices, pads, reshapes of stencils): each run is one contiguous
        block of `indices`, copied whole. `None` when the runs are short."""
        if source.size == 0:
            return None
        continues = (source[1:] == source[:-1] + 1) & (source[:-1] >= 0)
        starts = np.flatnonzero(np.concatenate(([True], ~continues)))
        if starts.size * _MIN_RUN > source.size:
            return None
        ends = np.append(starts[1:], source.size)
        first = source[starts]
        valid = first >= 0
        lo = self.indptr[first[valid]]
        hi = self.indptr[first[valid] + (ends - starts)[valid]]
        blocks = [self.indices[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
        if not blocks:
            return self.indices[:0].copy()
        return np.concatenate(blocks)

    def compose(self, map_indptr: np.ndarray, map_indices: np.ndarray) -> Deps:
        """Row `r` of the result is the union of rows `map_indices[map_indptr[r]:map_indptr[r+1]]`.

        Negative entries of `map_indices` are ignored.
        """
        map_indptr = np.asarray(map_indptr, dtype=np.int64)
        map_indices = np.asarray(map_indices, dtype=np.int64)
        size = len(map_indptr) - 1
        keep = map_indices >= 0
        if not keep.all():
            kept = np.concatenate(([0], np.cumsum(keep)))
            map_indptr, map_indices = kept[map_indptr], map_indices[keep]
        lengths = np.diff(self.indptr)[map_indices]
        total = int(lengths.sum())
        _check_nnz(total)
        if size * self.n_inputs <= _SMALL_UNION:
            return self._union_by_bitmap(map_indptr, map_indices, lengths, total)
        # The union of rows is the boolean product of the map and the rows: scipy's
        # sparse product in C++ (one pass with a marker per column), with nothing
        # to compile. Boolean data, whose sums are logical ors: integer counts
        # could wrap round to zero, and scipy drops entries that sum to zero.
        select = sp.csr_array(
            (np.ones(map_indices.size, bool), map_indices, map_indptr),
            shape=(size, self.size),
        )
        rows = sp.csr_array(
            (np.ones(self.indices.size, bool), self.indices, self.indptr),
            shape=(self.size, self.n_inputs),
        )
        union = select @ rows
        union.sort_indices()
        indices = union.indices.astype(self.indices.dtype, copy=False)
        return Deps(union.indptr.astype(np.int64, copy=False), indices, self.n_inputs)

    def _union_by_bitmap(self, map_indptr, map_indices, lengths, total) -> Deps:
        """`compose` into a dense boolean matrix, for small ones: marking every
        (row, input) pair and reading them back row-major costs less than
        building two scipy matrices."""
        size = len(map_indptr) - 1
        out_row = np.repeat(np.arange(size, dtype=np.int64), np.diff(map_indptr))
        starts = self.indptr[map_indices]
        offsets = np.cumsum(lengths) - lengths
        cols = self.indices[
            np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
        ]
        marked = np.zeros((size, self.n_inputs), dtype=bool)
        marked[np.repeat(out_row, lengths), cols] = True
        rows, cols = np.nonzero(marked)
        indptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=size), out=indptr[1:])
        return Deps(indptr, cols.astype(self.indices.dtype), self.n_inputs)

    def compose_dense(self, source: np.ndarray) -> Deps:
        """Row `r` of the result is the union of rows `source[r, :]` (negatives ignored)."""
        source = np.asarray(source, dtype=np.int64)
        if source.ndim == 1 or source.shape[1] == 1:
            return self.gather(source.reshape(-1))
        size, k = source.shape
        return self.compose(
            np.arange(0, size * k + 1, k, dtype=np.int64), source.reshape(-1)
        )

    def compose_coo(self, out_rows: np.ndarray, sources: np.ndarray, size: int) -> Deps:
        """Row `r` of the result is the union of `sources[k]` over all `k` with `out_rows[k] == r`."""
        out_rows = np.asarray(out_rows, dtype=np.int64).ravel()
        sources = np.asarray(sources, dtype=np.int64).ravel()
        order = np.argsort(out_rows, kind="stable")
        counts = np.bincount(out_rows, minlength=size)
        indptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return self.compose(indptr, sources[order])

    def group_union(self, target: np.ndarray, size: int) -> Deps:
        """Row `t` of the result is the union of the rows `r` with `target[r] == t`."""
        target = np.asarray(target, dtype=np.int64).ravel()
        keep = target >= 0
        rows = np.nonzero(keep)[0]
        return self.compose_coo(target[keep], rows, size)

    def union_all(self) -> Deps:
        """A single row: the union of all rows."""
        return self.compose(
            np.array([0, self.size], dtype=np.int64), np.arange(self.size)
        )


def union_aligned(deps: list[Deps]) -> Deps:
    """Row `r` of the result is the union of row `r` of every `Deps` in `deps`
    (all of one size and `n_inputs`).

    What an elementwise operation does with operands of its own shape. Sorted,
    unique rows merge in one linear pass: at 10⁷ rows that takes 0.2 s where
    `compose` of the stacked rows took 4.2 s (the difference of two shifted
    views, measured side by side). From `_MERGE_FROM` rows the merge is
    `_merge.merge_rows` (compiled by numba on first use); below, scipy's sum of
    boolean CSR matrices, which needs no compilation.
    """
    if len(deps) == 1:
        return deps[0]
    _check_nnz(sum(d.nnz for d in deps))
    first = deps[0]
    dtype = index_dtype(first.n_inputs)
    if first.size >= _MERGE_FROM:
        from ._merge import merge_rows

        ptr, idx = first.indptr, first.indices.astype(dtype, copy=False)
        for d in deps[1:]:
            ptr, idx = merge_rows(
                ptr, idx, d.indptr, d.indices.astype(dtype, copy=False)
            )
        return Deps(ptr, idx, first.n_inputs)
    shape = (first.size, first.n_inputs)
    total = None
    for d in deps:
        matrix = sp.csr_array((np.ones(d.nnz, bool), d.indices, d.indptr), shape=shape)
        matrix.has_canonical_format = True  # sorted, unique rows: the invariant
        total = matrix if total is None else total + matrix
    assert total is not None
    return Deps(
        total.indptr.astype(np.int64, copy=False),
        total.indices.astype(dtype, copy=False),
        first.n_inputs,
    )


def index_dtype(n_inputs: int):
    return np.int32 if n_inputs < 2**31 else np.int64


def vstack(deps: list[Deps]) -> Deps:
    """Stack the rows of several `Deps` (with the same `n_inputs`)."""
    if len(deps) == 1:
        return deps[0]
    n_inputs = deps[0].n_inputs
    offsets = np.cumsum([0] + [d.nnz for d in deps])
    indptr = np.concatenate(
        [np.zeros(1, dtype=np.int64)]
        + [d.indptr[1:] + off for d, off in zip(deps, offsets[:-1])]
    )
    indices = np.concatenate([d.indices for d in deps])
    return Deps(indptr, indices, n_inputs)


def _check_nnz(nnz) -> None:
    # Read the limit from the public module, where users set it.
    from . import MAX_NNZ as limit

    if nnz > limit:
        raise PatternTooDenseError(
            f"asdex: an intermediate sparsity pattern would hold {int(nnz):,} "
            f"nonzeros (the limit is {limit:,}); the Jacobian is effectively dense "
            "here. Raise `asdex.detection.MAX_NNZ` if you have the memory, or "
            "restructure the function so that fewer outputs depend on all inputs."
        )


def row_slice(deps: Deps, start: int, stop: int) -> Deps:
    """Rows `start:stop`, sharing no memory with `deps`."""
    lo, hi = deps.indptr[start], deps.indptr[stop]
    return Deps(
        deps.indptr[start : stop + 1] - lo, deps.indices[lo:hi].copy(), deps.n_inputs
    )


def transpose(deps: Deps, n_rows_out: int, n_inputs: int) -> Deps:
    """The transpose: a `(deps.n_inputs, deps.size)` matrix with `n_inputs` columns."""
    rows = np.repeat(np.arange(deps.size, dtype=np.int64), np.diff(deps.indptr))
    cols = deps.indices.astype(np.int64)
    order = np.lexsort((rows, cols))
    counts = np.bincount(cols, minlength=n_rows_out)
    indptr = np.zeros(n_rows_out + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Deps(indptr, rows[order].astype(index_dtype(n_inputs)), n_inputs)
