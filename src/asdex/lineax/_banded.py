"""Banded factorisations by LAPACK, for square matrices of narrow band: LU
(`?gbtrf` / `?gbtrs`) in the given order, and Cholesky (`?pbtrf` / `?pbtrs`) of
symmetric matrices after a bandwidth-reducing ordering.

A general sparse factorisation pays for a fill-reducing ordering and symbolic
analysis at every factorisation. A matrix whose nonzeros lie within a few
diagonals of the main one (1-D stencils, the chained Rosenbrock Hessian, small
blocks along the diagonal) needs neither: LAPACK's banded LU with partial pivoting
stores `2 kl + ku + 1` diagonals and fills nothing outside them. On a
100,000 × 100,000 tridiagonal matrix it factorises in 6.5 ms where QDLDL's LDLᵀ
took 95 ms and SuperLU 63-94 ms (measured side by side, one process, loaded
2-core machine).

A symmetric matrix whose band is mostly full once reordered by reverse
Cuthill–McKee (a bundle adjuster's reduced camera system when the cameras see
the scene in sequence, as along a video or a ring) is factorised by banded
Cholesky. Its band then holds about as much as a sparse factor would fill in
anyway, and LAPACK's blocked kernels run it far faster than QDLDL's scalar
loops: the 9,000 × 9,000 reduced system of the large bundle adjustment
benchmark (6.4 M nonzeros, half-bandwidth 1,025 after the ordering) factorised
in 0.38-0.39 s, where QDLDL took 2.7-3.4 s, alternately in one process on the
2-core benchmark machine.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from .._caches import cached, on_clear
from .._pattern import SparsityPattern
from ._ldl import check_pivots
from ._pattern_data import pattern_data

# Banded storage at most this many times the nonzeros: a tridiagonal pattern needs
# 4n entries for 3n nonzeros, a 2-D grid of side s some 3s per row, far more.
_MAX_STORAGE_PER_NONZERO = 4

_TRANS = {"N": 0, "T": 1, "H": 2}


def band_widths(pattern: SparsityPattern) -> tuple[int, int] | None:
    """`(kl, ku)` if banded LU suits this square pattern, else `None`."""
    data = pattern_data(pattern)
    m, n = pattern.shape
    if m != n or n == 0 or pattern.nnz == 0:
        return None
    kl = int(max(-data.offsets.min(), 0))
    ku = int(max(data.offsets.max(), 0))
    if (2 * kl + ku + 1) * n > _MAX_STORAGE_PER_NONZERO * pattern.nnz:
        return None
    return kl, ku


class BandedLU:
    """`A = P L U` of a square banded matrix, with SuperLU's `solve(b, trans)`.

    `A[rows[k], cols[k]] = values[k]`, with `kl` diagonals below the main one and
    `ku` above. Raises `RuntimeError` if a pivot is zero or negligible (see
    `check_pivots`).
    """

    def __init__(self, n: int, rows, cols, values: np.ndarray, kl: int, ku: int):
        band = np.zeros((2 * kl + ku + 1, n), dtype=values.dtype)
        # LAPACK's layout: A[i, j] at band[kl + ku + i - j, j]; the first kl rows
        # are workspace for the fill that pivoting brings.
        band[kl + ku + np.asarray(rows) - np.asarray(cols), cols] = values
        gbtrf, self._gbtrs = sla.get_lapack_funcs(("gbtrf", "gbtrs"), (band,))
        self._lu, self._piv, info = gbtrf(band, kl, ku, overwrite_ab=True)
        if info > 0:
            raise RuntimeError("Factor is exactly singular")
        if info < 0:
            raise ValueError(f"LAPACK ?gbtrf: illegal argument {-info}")
        check_pivots(self._lu[kl + ku], values.dtype)
        self._kl, self._ku = kl, ku
        self.shape = (n, n)

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        b = np.asarray(b, dtype=self._lu.dtype)
        x, info = self._gbtrs(
            self._lu, self._kl, self._ku, b, self._piv, trans=_TRANS[trans]
        )
        if info != 0:
            raise ValueError(f"LAPACK ?gbtrs: illegal argument {-info}")
        return x


@dataclasses.dataclass(frozen=True, eq=False)
class CholeskyBand:
    """Where a symmetric pattern's lower triangle goes in LAPACK's band storage,
    after the rows and columns are reordered by `perm`."""

    perm: np.ndarray  # (n,) old index of each new one
    kd: int  # half-bandwidth in the new order
    lower: np.ndarray  # (nnz,) whether each entry is on or below the diagonal
    # Flat places of those entries in the (kd + 1, n) band, stored column-major
    # as LAPACK wants it (so that it factorises in place, with no copy).
    place: np.ndarray


@cached(maxsize=4)
def cholesky_band(pattern: SparsityPattern) -> CholeskyBand | None:
    """The banded-Cholesky layout of this symmetric square pattern, or `None` when,
    reordered by reverse Cuthill–McKee, its band would hold more than
    `_MAX_STORAGE_PER_NONZERO` times its nonzeros (a 2-D grid of side s: about
    s / 5 times)."""
    data = pattern_data(pattern)
    n = pattern.shape[0]
    if not data.square or n == 0 or not data.is_symmetric_pattern:
        return None
    matrix = sp.csr_array(
        (np.ones(pattern.nnz, np.int8), pattern.cols, data.indptr), shape=(n, n)
    )
    perm = reverse_cuthill_mckee(matrix, symmetric_mode=True).astype(np.int64)
    new = np.empty(n, np.int64)
    new[perm] = np.arange(n)
    rows, cols = new[pattern.rows], new[pattern.cols]
    lower = rows >= cols
    kd = int(np.max(rows - cols, initial=0))
    if (kd + 1) * n > _MAX_STORAGE_PER_NONZERO * pattern.nnz:
        return None
    place = cols[lower] * (kd + 1) + (rows - cols)[lower]
    return CholeskyBand(perm, kd, lower, place)


# The band of the last factor that was dropped, for the next factorisation of the
# same size to fill. A Newton or Levenberg–Marquardt solve factorises a matrix of
# one size at every step; on a virtual machine whose host takes freed memory back,
# a new band of 76 MB (the large bundle adjustment's) cost more to fault in than
# to factorise.
_spare: list[np.ndarray] = []
_spare_lock = threading.Lock()
on_clear(_spare.clear)


def _band_buffer(shape: tuple[int, int], dtype) -> np.ndarray:
    with _spare_lock:
        if _spare and _spare[0].shape == shape and _spare[0].dtype == dtype:
            return _spare.pop()
    return np.empty(shape, dtype, order="F")


def _keep_spare(band: np.ndarray) -> None:
    with _spare_lock:
        _spare[:] = [band]


class BandedCholesky:
    """`P A Pᵀ = L Lᵀ` of a real symmetric positive definite matrix, with SuperLU's
    `solve(b, trans)`.

    `A[rows[k], cols[k]] = values[k]` on the pattern that gave `band`. Raises
    `RuntimeError` if `A` is not numerically positive definite, so that the
    caller can fall back to an indefinite factorisation.
    """

    def __init__(self, band: CholeskyBand, values: np.ndarray):
        n = band.perm.size
        ab = _band_buffer((band.kd + 1, n), values.dtype)
        ab.fill(0)
        ab.T.reshape(-1)[band.place] = values[band.lower]  # a view: ab is F-ordered
        pbtrf, self._pbtrs = sla.get_lapack_funcs(("pbtrf", "pbtrs"), (ab,))
        self._factor, info = pbtrf(ab, lower=1, overwrite_ab=True)
        if self._factor is ab:
            # Factorised in place: the band goes back for reuse when this factor
            # is dropped.
            weakref.finalize(self, _keep_spare, ab)
        if info > 0:
            raise RuntimeError("Matrix is not positive definite")
        if info < 0:
            raise ValueError(f"LAPACK ?pbtrf: illegal argument {-info}")
        # The pivots of L D Lᵀ are the squares of L's diagonal.
        check_pivots(self._factor[0] ** 2, values.dtype)
        self._perm = band.perm
        self.shape = (n, n)

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        """Solve `A x = b` for `b` of shape (n,) or (n, k) (`trans` is moot:
        `A = Aᵀ`)."""
        del trans
        b = np.asarray(b, dtype=self._factor.dtype)
        y, info = self._pbtrs(self._factor, b[self._perm], lower=1)
        if info != 0:
            raise ValueError(f"LAPACK ?pbtrs: illegal argument {-info}")
        x = np.empty_like(y)
        x[self._perm] = y
        return x
