"""Graphs of a sparsity pattern, as flat CSR arrays for the numba kernels.

Two graphs serve the coloring problems (Gebremedhin, Manne & Pothen 2005, §3):

- the *bipartite graph* of an `(m, n)` pattern, with rows on one side and columns
  on the other, for partial distance-2 coloring of columns or rows;
- the *adjacency graph* of a square symmetric pattern, one vertex per row/column
  and one edge per off-diagonal pair `{i, j}`, for star and acyclic coloring. The
  bipartite graph of a Jacobian is the adjacency graph of the augmented symmetric
  matrix `[[0, Jᵀ], [J, 0]]`, which is how bicoloring is done (Montoison, Dalle &
  Gebremedhin 2025).

All index arrays are `int64`, so that every kernel is compiled once.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp

from .._pattern import SparsityPattern


def transpose_csr(n_rows, n_cols, indptr, indices, *, positions: bool = True):
    """Transpose of a CSR structure, by scipy's counting sort (`tocsc`).

    Returns `(tptr, tidx, perm)`: the CSR structure of the transpose and, for each
    of its entries, the position of the same entry in the input (`None` without
    `positions`: carrying them through the sort moves eight bytes an entry, one
    without, 1.0 against 0.23 s at 5·10⁷ entries). Column indices stay sorted
    within each row of the transpose.
    """
    nnz = len(indices)
    data = np.arange(nnz, dtype=np.int64) if positions else np.ones(nnz, bool)
    transposed = sp.csr_array((data, indices, indptr), shape=(n_rows, n_cols)).tocsc()
    return (
        transposed.indptr.astype(np.int64, copy=False),
        transposed.indices.astype(np.int64, copy=False),
        transposed.data if positions else None,
    )


def _split_diagonal(n, indptr, indices, perm):
    """Drop the diagonal of a symmetric CSR structure.

    `perm` maps each entry to the entry of its transpose. Returns the off-diagonal
    structure `(ptr, idx)`, for each half-edge the position of its entry in the
    pattern (`hpos`) and the index of the reverse half-edge (`rev`).
    """
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    off = indices != rows
    new_index = np.cumsum(off) - 1
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows[off], minlength=n), out=ptr[1:])
    hpos = np.flatnonzero(off)
    return ptr, indices[off].astype(np.int64), hpos, new_index[perm[hpos]]


@dataclasses.dataclass(frozen=True)
class BipartiteGraph:
    """Rows and columns of an `(m, n)` pattern, linked by its nonzeros.

    `row_ptr`/`row_idx` is the CSR structure (row to columns) and
    `col_ptr`/`col_idx` the CSC structure (column to rows); `col_pos[k]` is the
    pattern position of the `k`-th CSC entry.
    """

    m: int
    n: int
    row_ptr: np.ndarray
    row_idx: np.ndarray
    col_ptr: np.ndarray
    col_idx: np.ndarray

    @classmethod
    def from_pattern(cls, pattern: SparsityPattern) -> BipartiteGraph:
        m, n = pattern.shape
        row_ptr = pattern.indptr.astype(np.int64)
        row_idx = pattern.cols.astype(np.int64)
        col_ptr, col_idx, _ = transpose_csr(m, n, row_ptr, row_idx, positions=False)
        return cls(m, n, row_ptr, row_idx, col_ptr, col_idx)

    @functools.cached_property
    def col_pos(self) -> np.ndarray:
        """The pattern position of each CSC entry (bicoloring needs them; partial
        distance-2 coloring does not, so they are computed on first use)."""
        _, _, positions = transpose_csr(self.m, self.n, self.row_ptr, self.row_idx)
        return positions

    def vertices(self, partition: str) -> tuple[int, np.ndarray, np.ndarray]:
        """`(count, ptr, idx)` from the colored side to the other side."""
        if partition == "column":
            return self.n, self.col_ptr, self.col_idx
        return self.m, self.row_ptr, self.row_idx

    def neighbours(self, partition: str) -> tuple[np.ndarray, np.ndarray]:
        """`(ptr, idx)` from the other side back to the colored side."""
        if partition == "column":
            return self.row_ptr, self.row_idx
        return self.col_ptr, self.col_idx


@dataclasses.dataclass(frozen=True)
class AdjacencyGraph:
    """The adjacency graph of a square symmetric pattern, without self-loops.

    Each undirected edge `{u, v}` is stored as two half-edges: `h` in the row of
    `u` (`idx[h] == v`) and `rev[h]` in the row of `v`. `hpos[h]` is the position
    of the entry `(u, v)` in the pattern. The edge is identified by
    `min(h, rev[h])`. For a graph built from a symmetric pattern, `mirror[p]` is
    the position of the entry `(j, i)` for the entry `(i, j)` at position `p`.
    """

    n: int
    ptr: np.ndarray
    idx: np.ndarray
    hpos: np.ndarray
    rev: np.ndarray
    mirror: np.ndarray | None = None

    @classmethod
    def from_pattern(cls, pattern: SparsityPattern, *, caller: str) -> AdjacencyGraph:
        m, n = pattern.shape
        if m != n:
            raise ValueError(
                f"`{caller}` needs a square symmetric pattern (a Hessian's), got "
                f"shape {pattern.shape}. For a Jacobian use column, row or "
                "bidirectional coloring instead."
            )
        indptr = pattern.indptr.astype(np.int64)
        indices = pattern.cols.astype(np.int64)
        tptr, tidx, perm = transpose_csr(n, n, indptr, indices)
        # The transpose lists the entries (j, i) in row-major order; the pattern is
        # symmetric exactly when that listing is the pattern itself, and then
        # `perm[k]` is the position of the mirror image of entry k.
        if not (np.array_equal(tptr, indptr) and np.array_equal(tidx, indices)):
            raise ValueError(
                f"`{caller}` needs a symmetric pattern, but "
                f"{_first_asymmetry(pattern)} Symmetrize it with "
                "`pattern | pattern.T` if the matrix is symmetric."
            )
        ptr, idx, hpos, rev = _split_diagonal(n, indptr, indices, perm)
        return cls(n, ptr, idx, hpos, rev, perm)

    @classmethod
    def augmented(cls, graph: BipartiteGraph) -> AdjacencyGraph:
        """The adjacency graph of `[[0, Jᵀ], [J, 0]]`: columns `0..n-1`, rows `n..n+m-1`."""
        m, n = graph.m, graph.n
        nnz = graph.row_idx.shape[0]
        ptr = np.concatenate([graph.col_ptr, nnz + graph.row_ptr[1:]])
        idx = np.concatenate([graph.col_idx + n, graph.row_idx])
        # Half-edge k < nnz leaves column j towards row i, the same entry as the
        # half-edge nnz + col_pos[k] leaving row i.
        hpos = np.concatenate([graph.col_pos, np.arange(nnz, dtype=np.int64)])
        rev = np.empty(2 * nnz, np.int64)
        rev[:nnz] = nnz + graph.col_pos
        rev[nnz + graph.col_pos] = np.arange(nnz, dtype=np.int64)
        return cls(m + n, ptr, idx, hpos, rev)


def _first_asymmetry(pattern: SparsityPattern) -> str:
    """Name one entry `(i, j)` whose mirror image `(j, i)` is missing."""
    n = pattern.shape[1]
    keys = pattern.rows.astype(np.int64) * n + pattern.cols
    mirrors = pattern.cols.astype(np.int64) * n + pattern.rows
    lonely = np.flatnonzero(~np.isin(mirrors, keys))[0]
    i, j = int(pattern.rows[lonely]), int(pattern.cols[lonely])
    return f"the entry ({i}, {j}) is in it and ({j}, {i}) is not."


_NO_INDEX = np.zeros(0, np.int64)


@dataclasses.dataclass(frozen=True)
class ConflictGraph:
    """Which vertices may not share a color, as the numba kernels see it.

    With `two_hop=False` the neighbours of `v` are `idx1[ptr1[v]:ptr1[v + 1]]`.
    With `two_hop=True` they are the vertices two steps away through the other side
    of a bipartite graph (`idx1` then `idx2`), without `v` itself: the column
    intersection graph of partial distance-2 coloring, never built explicitly.
    """

    nv: int
    ptr1: np.ndarray
    idx1: np.ndarray
    ptr2: np.ndarray
    idx2: np.ndarray
    two_hop: bool

    @classmethod
    def of_bipartite(cls, graph: BipartiteGraph, partition: str) -> ConflictGraph:
        nv, ptr1, idx1 = graph.vertices(partition)
        ptr2, idx2 = graph.neighbours(partition)
        return cls(nv, ptr1, idx1, ptr2, idx2, True)

    @classmethod
    def of_adjacency(cls, graph: AdjacencyGraph) -> ConflictGraph:
        return cls(graph.n, graph.ptr, graph.idx, _NO_INDEX, _NO_INDEX, False)
