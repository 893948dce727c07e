"""Sparse LDLᵀ factorisations of symmetric definite matrices, with QDLDL.

SuperLU factorises a symmetric matrix as a general one (`L` and `U`, twice the
work of a symmetric factorisation). QDLDL (the factorisation inside the OSQP
solver) computes `A = L D Lᵀ` after an approximate-minimum-degree ordering, without
pivoting, which is stable for definite (and quasi-definite) matrices, the ones the
symmetric solvers are for. On the 2-D Bratu Jacobian it takes 0.6x SuperLU's time
at 64² and 0.8x at 256², and it keeps half the nonzeros.

A zero or non-finite pivot (a singular or badly indefinite matrix) shows as a
non-finite solution, which the caller reports as singular.
"""

from __future__ import annotations

import numpy as np
import qdldl
import scipy.sparse as sp


def check_pivots(pivots: np.ndarray, dtype) -> None:
    """Raise `RuntimeError` if a pivot is negligible against the largest one.

    A pivot below `min(size, 100) · ε` of the largest magnitude is what rounding
    leaves of an exactly singular matrix; a nonsingular matrix has its pivots far above
    that (the pivots of a 1-D Laplacian with 2·10⁵ unknowns, whose condition number
    is 10¹⁰, stay within a factor of 2 of each other). Solving with such a pivot
    gives an answer of the size of its reciprocal, silently wrong.
    """
    magnitudes = np.abs(pivots)
    largest = float(np.max(magnitudes, initial=0.0))
    eps = float(np.finfo(np.dtype(dtype)).eps)
    tol = min(magnitudes.size, 100) * eps * largest
    if magnitudes.size and float(np.min(magnitudes)) <= tol:
        raise RuntimeError("Factor is numerically singular")


class LDLFactor:
    """`A = L D Lᵀ` of a real symmetric sparse matrix, with SuperLU's `solve`."""

    def __init__(self, a: sp.sparray, *, check: bool = True):
        upper = sp.triu(a, format="csc")
        upper.sort_indices()
        # QDLDL works in float64; float32 systems are solved in float64 and cast
        # back by the caller.
        self._solver = qdldl.Solver(upper.astype(np.float64), upper=True)
        self.shape = a.shape
        if check:
            check_pivots(self._solver.factors()[1], a.dtype)

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        """Solve `A x = b` for each column of `b` (`trans` is moot: `A = Aᵀ`)."""
        del trans
        b = np.asarray(b, dtype=np.float64)
        if b.ndim == 1:
            return self._solver.solve(b)
        out = np.empty_like(b)
        for j in range(b.shape[1]):
            out[:, j] = self._solver.solve(np.ascontiguousarray(b[:, j]))
        return out


class CheckedLDLFactor:
    """A symmetric matrix of unknown definiteness: `L D Lᵀ` first, LU if needed.

    A Jacobian handed over without tags (as Optimistix's root finders do) may be
    symmetric, as discretised Laplacians are, without being known to be definite.
    `L D Lᵀ` without pivoting is then tried first, and each solve is checked by its
    backward error `‖b − A x‖∞ ≤ 1000 ε (‖A‖∞ ‖x‖∞ + ‖b‖∞)`. A zero pivot or a
    failed check switches to the partially pivoted LU from `make_lu` for good, so
    an unstable `L D Lᵀ` costs time, never accuracy.
    """

    def __init__(self, a: sp.sparray, make_lu):
        self._a = sp.csr_array(a)
        self._make_lu = make_lu
        self._lu = None
        self._ldl = None
        try:
            self._ldl = LDLFactor(a)
        except RuntimeError:  # a zero pivot: not quasi-definite
            self._lu = make_lu()
        self._norm = float(abs(self._a).sum(axis=1).max(initial=0.0))
        self._tol = 1000 * float(np.finfo(self._a.dtype).eps)
        self.shape = a.shape

    @property
    def uses_ldl(self) -> bool:
        return self._lu is None

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        if self._lu is None:
            assert self._ldl is not None
            x = self._ldl.solve(b)
            residual = np.max(np.abs(b - self._a @ x), initial=0.0)
            scale = self._norm * np.max(np.abs(x), initial=0.0)
            scale += np.max(np.abs(b), initial=0.0)
            if np.isfinite(residual) and residual <= self._tol * scale:
                return x
            self._lu = self._make_lu()
        return self._lu.solve(b, trans)
