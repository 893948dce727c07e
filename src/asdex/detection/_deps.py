"""Dependency sets of many array elements at once, stored as one boolean CSR matrix.

Row `r` of a `Deps` is the set of input indices that element `r` (row-major) of an
array may depend on. Rows are kept sorted and free of duplicates, so that two
`Deps` can be compared for equality (loop fixed points need that).

Every propagation rule reduces to one operation: each output row is the union of a
few source rows. `compose` does it for any such map given in CSR form, and
`gather` is its fast special case of at most one source row per output row.
"""

from __future__ import annotations

import numba
import numpy as np

# Bail out with a clear error rather than exhaust memory: beyond this many
# structural nonzeros in one intermediate, the pattern is effectively dense.
MAX_NNZ = 400_000_000


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
        indices = np.empty(indptr[-1], dtype=self.indices.dtype)
        _gather_kernel(self.indptr, self.indices, source, indptr, indices)
        return Deps(indptr, indices, self.n_inputs)

    def compose(self, map_indptr: np.ndarray, map_indices: np.ndarray) -> Deps:
        """Row `r` of the result is the union of rows `map_indices[map_indptr[r]:map_indptr[r+1]]`.

        Negative entries of `map_indices` are ignored.
        """
        map_indptr = np.ascontiguousarray(map_indptr, dtype=np.int64)
        map_indices = np.ascontiguousarray(map_indices, dtype=np.int64)
        bound = _compose_bound(map_indptr, map_indices, self.indptr)
        _check_nnz(bound)
        indptr, indices = _compose_kernel(
            map_indptr, map_indices, self.indptr, self.indices, bound
        )
        return Deps(indptr, indices, self.n_inputs)

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


@numba.njit(cache=True, nogil=True)
def _gather_kernel(src_indptr, src_indices, source, out_indptr, out_indices):
    for r in range(len(source)):
        s = source[r]
        if s < 0:
            continue
        start = src_indptr[s]
        n = src_indptr[s + 1] - start
        o = out_indptr[r]
        for k in range(n):
            out_indices[o + k] = src_indices[start + k]


@numba.njit(cache=True, nogil=True)
def _compose_bound(map_indptr, map_indices, src_indptr):
    total = 0
    for k in range(len(map_indices)):
        s = map_indices[k]
        if s >= 0:
            total += src_indptr[s + 1] - src_indptr[s]
    return total


@numba.njit(cache=True, nogil=True)
def _merge(a, a_lo, a_hi, b, b_lo, b_hi, out, o):
    """Merge two sorted, duplicate-free runs into `out[o:]`; returns the new end."""
    while a_lo < a_hi and b_lo < b_hi:
        va = a[a_lo]
        vb = b[b_lo]
        if va < vb:
            out[o] = va
            a_lo += 1
        elif vb < va:
            out[o] = vb
            b_lo += 1
        else:
            out[o] = va
            a_lo += 1
            b_lo += 1
        o += 1
    while a_lo < a_hi:
        out[o] = a[a_lo]
        a_lo += 1
        o += 1
    while b_lo < b_hi:
        out[o] = b[b_lo]
        b_lo += 1
        o += 1
    return o


@numba.njit(cache=True, nogil=True)
def _compose_kernel(map_indptr, map_indices, src_indptr, src_indices, bound):
    size = len(map_indptr) - 1
    # The longest output row bounds the scratch space of the k-way merge.
    widest = 0
    for r in range(size):
        width = 0
        for k in range(map_indptr[r], map_indptr[r + 1]):
            s = map_indices[k]
            if s >= 0:
                width += src_indptr[s + 1] - src_indptr[s]
        widest = max(widest, width)
    scratch_a = np.empty(widest, dtype=src_indices.dtype)
    scratch_b = np.empty(widest, dtype=src_indices.dtype)
    out_indptr = np.zeros(size + 1, dtype=np.int64)
    out_indices = np.empty(bound, dtype=src_indices.dtype)
    pos = 0
    for r in range(size):
        # Rows are sorted and unique, so the union is a sequence of linear merges.
        n_merged = 0
        length = 0
        for k in range(map_indptr[r], map_indptr[r + 1]):
            s = map_indices[k]
            if s < 0:
                continue
            lo, hi = src_indptr[s], src_indptr[s + 1]
            if n_merged == 0:
                scratch_a[: hi - lo] = src_indices[lo:hi]
                length = hi - lo
            else:
                length = _merge(scratch_a, 0, length, src_indices, lo, hi, scratch_b, 0)
                scratch_a, scratch_b = scratch_b, scratch_a
            n_merged += 1
        out_indices[pos : pos + length] = scratch_a[:length]
        pos += length
        out_indptr[r + 1] = pos
    return out_indptr, out_indices[:pos].copy()


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
