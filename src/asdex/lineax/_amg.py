"""Algebraic-multigrid-preconditioned Krylov solves on the host, with pyamg.

A sparse direct factorisation of a 2-D or 3-D elliptic operator fills in: QDLDL
takes 1.29 s on a shifted 512² Laplacian and 4.0 s on a 32³ one, where pyamg's
classical (Ruge–Stüben) hierarchy plus CG to a relative residual of 1e-10 takes
0.41 s and 0.13 s (`benchmarks/large_solves.py --orderings`, 2-core CPU). The
hierarchy is the analogue of a factorisation: it is built from the matrix, then
each solve is a few cycles.

Newton's method solves with a new matrix on the same pattern every step. The
hierarchy built for an earlier matrix is still a good preconditioner for the next
one, so it is kept per pattern and reused. Reuse can never make an answer wrong:
every solve is checked against the current matrix (its backward error, see
`AMGFactor._krylov`), and a stale hierarchy that does not converge within the step budget is
rebuilt from the current matrix and the solve retried once.

A solve that still does not converge raises `NotConverged`, with the residual it
reached; the caller reports `lineax.RESULTS.max_steps_reached`, or (with a direct
fallback) factorises instead and remembers the pattern, so that later solves with
that pattern do not try multigrid again.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import numpy as np
import pyamg
import scipy.sparse as sp

from .._caches import on_clear
from .._pattern import SparsityPattern
from ._pattern_data import pattern_data

Method = Literal["ruge_stuben", "smoothed_aggregation"]
Krylov = Literal["cg", "gmres"]


@dataclasses.dataclass(frozen=True)
class AMGConfig:
    """How to solve: the part of the host call's key that is not the matrix.

    `fallback` names the direct factorisation (a `Kind` of `_superlu.py`) to use
    when multigrid does not converge, or is `None` to report the failure.
    """

    method: Method = "ruge_stuben"
    krylov: Krylov = "cg"
    rtol: float = 1e-10
    atol: float = 0.0
    max_steps: int = 100
    reuse: bool = True
    fallback: str | None = None


class NotConverged(RuntimeError):
    """The Krylov solve stopped above its tolerance; `residual` is where it got to."""

    def __init__(self, residual: float, steps: int):
        super().__init__(
            "the multigrid-preconditioned Krylov solve did not converge in "
            f"{steps} iteration{'' if steps == 1 else 's'}: max |b - A x| = "
            f"{residual:.3e}"
        )
        self.residual = residual


class _Hierarchy:
    __slots__ = ("solver", "steps")

    def __init__(self, solver):
        self.solver = solver
        self.steps: int | None = None  # iterations of its first solve


# One hierarchy per (pattern, method, Krylov method, transpose), the most recent few: a hierarchy
# holds about 1.3x the matrix (operator complexity) at every level.
_MAX_HIERARCHIES = 2
_hierarchies: OrderedDict = OrderedDict()
# Patterns on which multigrid failed even with a fresh hierarchy: solved directly.
_failed: set = set()
_lock = threading.RLock()

# A reused hierarchy that needs more than this many times its first solve's
# iterations is rebuilt for the next matrix: it still converges, but slowly.
_STALE_FACTOR = 2
_EPS = float(np.finfo(np.float64).eps)


@on_clear
def clear() -> None:
    """Forget every hierarchy and every recorded failure."""
    with _lock:
        _hierarchies.clear()
        _failed.clear()


def amg_failed_before(key) -> bool:
    with _lock:
        return key in _failed


def _build(matrix: sp.csr_array, method: Method):
    if method == "smoothed_aggregation":
        return pyamg.smoothed_aggregation_solver(matrix)
    return pyamg.ruge_stuben_solver(matrix)


class AMGFactor:
    """Solves with `A` (stored on `pattern`) by AMG-preconditioned CG or GMRES.

    Has the `solve(b, trans)` of SuperLU's factors, so that the host solve treats
    it as one. `trans="T"` solves with `Aᵀ`: the same matrix for CG, which needs
    `A` symmetric, and a hierarchy of its own for GMRES.
    """

    def __init__(
        self,
        pattern: SparsityPattern,
        values: np.ndarray,
        config: AMGConfig,
        direct: Callable[[], object] | None,
    ):
        # pyamg's kernels are compiled for float32 and float64; solving float32
        # systems in float64 costs little and keeps the tolerance reachable.
        a = sp.csr_array(
            (values.astype(np.float64), pattern.cols, pattern_data(pattern).indptr),
            shape=pattern.shape,
        )
        self._a = a
        self._pattern = pattern
        self._config = config
        self._direct = direct
        self._direct_factor = None
        # The hierarchy that solved with this matrix (per `trans`): later solves
        # with it (more right-hand sides, a transposed solve) start from it.
        self._own: dict[str, _Hierarchy] = {}
        self.shape = pattern.shape

    def _key(self, trans: str):
        # What the hierarchy depends on: the matrix's pattern, which matrix (A or
        # Aᵀ) and how it is built; not the tolerances.
        config = self._config
        return (self._pattern, config.method, config.krylov, trans == "T")

    def _hierarchy(self, matrix: sp.csr_array, trans: str, fresh: bool) -> _Hierarchy:
        key = self._key(trans)
        with _lock:
            hierarchy = _hierarchies.get(key)
            if hierarchy is not None and not fresh and self._config.reuse:
                _hierarchies.move_to_end(key)
                return hierarchy
            _hierarchies.pop(key, None)
            while len(_hierarchies) >= _MAX_HIERARCHIES:
                _hierarchies.popitem(last=False)
        hierarchy = _Hierarchy(_build(matrix, self._config.method))
        with _lock:
            _hierarchies[key] = hierarchy
        return hierarchy

    def _krylov(self, matrix, b: np.ndarray, hierarchy: _Hierarchy):
        """Iterate until the backward error is below `rtol`; `(x, ok, steps)`.

        The test is normwise, `max|b − A x| ≤ atol + rtol (‖A‖∞ max|x| + max|b|)`
        (Higham, "Accuracy and Stability of Numerical Algorithms", §7.1), the
        quantity a direct solve makes of the order of ε. A test relative to `b`
        alone cannot be met by ill-conditioned systems: on the 1000² Bratu
        Jacobian (‖A‖∞ = 8·10⁶) rounding leaves `max|b − A x|` near 10⁻¹⁰ even
        for the exact solution.
        """
        config = self._config
        b_norm = float(np.max(np.abs(b), initial=0.0))
        if b_norm == 0.0:
            return np.zeros_like(b), True, 0
        a_norm = self._norm(matrix)
        preconditioner = hierarchy.solver.aspreconditioner(cycle="V")
        method = pyamg.krylov.cg if config.krylov == "cg" else pyamg.krylov.gmres
        x = np.zeros_like(b)
        steps = 0
        # pyamg stops on the 2-norm of the residual relative to `b`'s, a stricter
        # test as long as it stays above rounding. If it still fails the test here,
        # each round asks for ten times less, until the step budget is spent.
        tol = max(config.rtol, 1e3 * _EPS)
        while True:
            count = [0]

            def counted(_, count=count):
                count[0] += 1

            x, _ = method(
                matrix,
                b,
                x0=x,
                tol=tol,
                maxiter=max(config.max_steps - steps, 1),
                M=preconditioner,
                callback=counted,
            )
            steps += max(count[0], 1)
            residual = float(np.max(np.abs(b - matrix @ x), initial=0.0))
            x_norm = float(np.max(np.abs(x), initial=0.0))
            if residual <= config.atol + config.rtol * (a_norm * x_norm + b_norm):
                return x, True, steps
            if steps >= config.max_steps or not np.isfinite(residual):
                return x, False, steps
            tol = max(tol / 10, 10 * _EPS)

    def _norm(self, matrix) -> float:
        return float(abs(matrix).sum(axis=1).max(initial=0.0))

    def _solve_one(self, b: np.ndarray, trans: str) -> np.ndarray:
        matrix = (
            self._a.T.tocsr()
            if (trans == "T" and self._config.krylov != "cg")
            else self._a
        )
        hierarchy = self._own.get(trans) or self._hierarchy(matrix, trans, fresh=False)
        reused = hierarchy.steps is not None
        x, ok, steps = self._krylov(matrix, b, hierarchy)
        if ok:
            if hierarchy.steps is None:
                hierarchy.steps = steps
            elif steps > _STALE_FACTOR * hierarchy.steps + 2:
                with _lock:  # converged, slowly: rebuild for the next matrix
                    _hierarchies.pop(self._key(trans), None)
            self._own[trans] = hierarchy
            return x
        if reused:
            # A stale hierarchy: rebuild it from this matrix and try once more.
            hierarchy = self._hierarchy(matrix, trans, fresh=True)
            x, ok, steps = self._krylov(matrix, b, hierarchy)
            if ok:
                hierarchy.steps = steps
                self._own[trans] = hierarchy
                return x
        residual = float(np.max(np.abs(b - matrix @ x), initial=0.0))
        raise NotConverged(residual, steps)

    def solve(self, b: np.ndarray, trans: str = "N") -> np.ndarray:
        if self._direct_factor is not None:
            return self._direct_factor.solve(
                b, direct_trans(self._config.fallback, trans)
            )
        b = np.asarray(b, dtype=np.float64)
        columns = b[:, None] if b.ndim == 1 else b
        out = np.empty_like(columns)
        try:
            for j in range(columns.shape[1]):
                out[:, j] = self._solve_one(np.ascontiguousarray(columns[:, j]), trans)
        except NotConverged as error:
            if self._direct is None:
                raise
            with _lock:
                _failed.add((self._pattern, self._config))
            warnings.warn(
                f"asdex: {error} on a {self.shape[0]}×{self.shape[1]} matrix; "
                "factorising it directly instead, for this and every later matrix "
                "with this pattern. Pass `asdex.lineax.SparseCholesky()` or "
                "`SparseLU()` to skip the attempt.",
                RuntimeWarning,
                stacklevel=2,
            )
            self._direct_factor = self._direct()
            return self.solve(b, trans)
        return out[:, 0] if b.ndim == 1 else out


def direct_trans(fallback: str, trans: str) -> str:
    """`trans` for the direct fallback: `_superlu`'s "lu" factor is of `Aᵀ`."""
    if fallback == "lu":
        return "N" if trans == "T" else "T"
    return trans
