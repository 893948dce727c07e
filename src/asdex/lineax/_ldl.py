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


class LDLFactor:
    """`A = L D Lᵀ` of a real symmetric sparse matrix, with SuperLU's `solve`."""

    def __init__(self, a: sp.sparray):
        upper = sp.triu(a, format="csc")
        upper.sort_indices()
        # QDLDL works in float64; float32 systems are solved in float64 and cast
        # back by the caller.
        self._solver = qdldl.Solver(upper.astype(np.float64), upper=True)
        self.shape = a.shape

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
