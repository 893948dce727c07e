"""`SparseLinearSolver`: picks a sparse solver from the operator's structure."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import lineax as lx
from jaxtyping import Array, PyTree

from .._operator import SparseMatrixOperator
from .._sparsify import sparsify
from .cholesky import SparseCholesky
from .lu import SparseLU
from .normal import SparseNormalEquations

# The state records the choice, and the solver is rebuilt from it. The choice is a
# static field of a module, not a bare string: Optimistix's `Chord` keeps the state
# in its loop and applies `lax.stop_gradient` to it, which rejects strings.
_CHOICES = ("cholesky", "lu", "normal", "dense")

# Below these, Lineax's dense solvers are faster than a sparse solve through a host
# callback (benchmarks/crossover_small.py, float64, CPU, steady state under `jit`):
# FILLED IN BELOW FROM MEASUREMENTS.
SMALL_SIZE = 100
DENSE_FRACTION = 0.3


class _Choice(eqx.Module):
    name: str = eqx.field(static=True)


class SparseLinearSolver(lx.AbstractLinearSolver):
    """Automatically picks a sparse linear solver from the structure of the operator.

    The drop-in `linear_solver=` for `optimistix.Newton`, `Chord`, `GaussNewton`,
    `LevenbergMarquardt`, `Dogleg` and `ImplicitAdjoint`, and for
    `lineax.linear_solve`. The operator is first rewritten as one sparse matrix
    (see [`asdex.lineax.sparsify`][]: Lineax's tagged, sum, scaled and diagonally
    composed operators around sparse ones, such as Levenberg–Marquardt's
    `H + λI`, stay sparse). Then:

    - a square operator tagged positive or negative semidefinite is solved by
      [`asdex.lineax.SparseCholesky`][];
    - any other square operator by [`asdex.lineax.SparseLU`][];
    - a rectangular operator by [`asdex.lineax.SparseNormalEquations`][] (least
      squares when tall, minimum norm when wide).

    Matrix-free operators, which is what Optimistix passes, are sparsified by
    detecting the pattern of their `mv` once per trace. An operator with no sparse
    form (a dense pattern, or a dense matrix) is handed to
    `lineax.AutoLinearSolver(well_posed=well_posed)` when that is cheap: when it
    is already a dense matrix (`lineax.MatrixLinearOperator`,
    `lineax.PyTreeLinearOperator`) or it is at most `max_dense_size` wide and
    tall. Anything larger raises an error instead of silently forming a large
    dense matrix.

    Use [`select_solver`][asdex.SparseLinearSolver.select_solver] to see the choice.
    """

    well_posed: bool | None = None
    max_dense_size: int = 2048
    small_size: int = SMALL_SIZE
    dense_fraction: float = DENSE_FRACTION

    def _choose(self, operator: lx.AbstractLinearOperator):
        size = max(operator.in_size(), operator.out_size())
        if size <= min(self.small_size, self.max_dense_size):
            # Tiny systems: a host callback costs more than a dense solve in XLA,
            # and detecting the pattern costs trace time for nothing.
            return "dense", operator
        try:
            sparse = sparsify(operator)
        except NotImplementedError as err:
            dense = isinstance(
                operator, (lx.MatrixLinearOperator, lx.PyTreeLinearOperator)
            )
            small = max(operator.in_size(), operator.out_size()) <= self.max_dense_size
            if dense or small:
                return "dense", operator
            raise ValueError(
                "`SparseLinearSolver` got a "
                f"{type(operator).__name__} of shape "
                f"{operator.out_size()}×{operator.in_size()} that has no sparse form, "
                f"and is larger than `max_dense_size={self.max_dense_size}`, so it "
                "will not be densified. Pass the Jacobian as a sparse operator "
                "(`asdex.SparseJacobianOperator`, "
                "`asdex.lineax.SparseMatrixOperator`), register a conversion with "
                "`asdex.lineax.sparsify.register`, or raise `max_dense_size`."
                f" ({err})"
            ) from err
        m, n = sparse.pattern.shape
        if size <= self.max_dense_size and sparse.pattern.nnz >= (
            self.dense_fraction * m * n
        ):
            # Nearly dense: the sparse factorisation has the dense one's fill, and
            # pays the callback and the scatter on top.
            return "dense", operator
        if m != n:
            return "normal", sparse
        if lx.is_positive_semidefinite(sparse) or lx.is_negative_semidefinite(sparse):
            return "cholesky", sparse
        return "lu", sparse

    def __repr__(self) -> str:
        # Equinox leaves out fields at their defaults; the dense thresholds are
        # shown always, so that a printed solver says when it solves densely.
        return (
            f"SparseLinearSolver(well_posed={self.well_posed!r}, "
            f"max_dense_size={self.max_dense_size!r}, "
            f"small_size={self.small_size!r}, "
            f"dense_fraction={self.dense_fraction!r})"
        )

    def _solver(self, choice: str) -> lx.AbstractLinearSolver:
        if choice == "cholesky":
            return SparseCholesky()
        if choice == "lu":
            return SparseLU()
        if choice == "normal":
            return SparseNormalEquations()
        return lx.AutoLinearSolver(well_posed=self.well_posed)

    def select_solver(
        self, operator: lx.AbstractLinearOperator
    ) -> lx.AbstractLinearSolver:
        """The solver that `SparseLinearSolver` uses for `operator`.

        **Arguments:**

        - `operator`: a Lineax linear operator.

        **Returns:**

        One of [`asdex.lineax.SparseCholesky`][], [`asdex.lineax.SparseLU`][],
        [`asdex.lineax.SparseNormalEquations`][], or a `lineax.AutoLinearSolver`
        for small dense operators.
        """
        return self._solver(self._choose(operator)[0])

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        choice, converted = self._choose(operator)
        if isinstance(converted, SparseMatrixOperator):
            # Already rewritten (with the tags Lineax infers for the wrappers): do
            # not let the chosen solver rewrite it again.
            operator = converted
        return _Choice(choice), self._solver(choice).init(operator, options)

    def compute(
        self, state, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        choice, inner = state
        return self._solver(choice.name).compute(inner, vector, options)

    def transpose(self, state, options: dict[str, Any]):
        choice, inner = state
        inner, options = self._solver(choice.name).transpose(inner, options)
        return (choice, inner), options

    def conj(self, state, options: dict[str, Any]):
        choice, inner = state
        inner, options = self._solver(choice.name).conj(inner, options)
        return (choice, inner), options

    def assume_full_rank(self) -> bool:
        # The sparse solvers all assume full rank; so does Lineax's dense fallback
        # unless `well_posed=False`.
        return self.well_posed is not False


SparseLinearSolver.__init__.__doc__ = """**Arguments:**

- `well_posed`: passed to `lineax.AutoLinearSolver` for the dense fallback only
    (`None`: least squares by QR for non-square operators; `False`: SVD, for
    rank-deficient systems). Sparse operators are always solved by the sparse
    solvers, which assume full rank.
- `max_dense_size`: the largest input or output size at which an operator
    without a sparse form is densified for Lineax's solvers.
"""
