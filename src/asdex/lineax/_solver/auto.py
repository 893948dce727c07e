"""`SparseLinearSolver`: picks a sparse solver from the operator's structure."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
from jaxtyping import Array, PyTree

from ..._colored import ColoredPattern, DenseColoringWarning, refuse_local
from .._banded import band_widths
from .._operator import SparseMatrixOperator
from .._pattern_data import pattern_data
from .._schur_plan import elimination
from .._sparsify import sparsify
from .._sparsify_matrix_free import given_coloring, is_damped_stack
from .amg import SparseAMG
from .cholesky import SparseCholesky
from .lu import SparseLU
from .normal import SparseNormalEquations
from .schur import MAX_BLOCK, SparseSchur

# The state records the choice, and the solver is rebuilt from it. The choice is a
# static field of a module, not a bare string: Optimistix's `Chord` keeps the state
# in its loop and applies `lax.stop_gradient` to it, which rejects strings.
_CHOICES = (
    "amg",
    "schur",
    "cholesky",
    "lu",
    "normal",
    "dense",
    "dense_rectangular",
    "dense_damped",
)

# Below these, Lineax's dense solvers beat a sparse solve through a host callback.
# Measured on a shared 2-core CPU (float64, steady state under `jit`, best of 20;
# the machine was loaded, so only the orders of magnitude are firm):
# - whole solves, sparse forced against the dense default: heat equation with
#   `optx.Newton`, n = 100: 19.6 against 1.2 ms; n = 300: 23 against 57 ms. A
#   diagonal problem with `optx.Dogleg`, n = 100: 2.9 against 0.72 ms; n = 300: 3.1
#   against 343 ms. The crossover lies between 100 and 300 unknowns: 200.
# - one solve of a `FunctionLinearOperator` (benchmarks/crossover_small.py): with
#   30% of the entries nonzero, sparse / dense = 1.56 at 100², 2.64 at 200², 0.92
#   at 400²; at 10% and 2%, 0.34-0.8. Above 30%, the dense path.
SMALL_SIZE = 200
DENSE_FRACTION = 0.3

# From this size, definite operators whose pattern is not a narrow band are solved
# by multigrid-preconditioned CG (`SparseAMG`), falling back to Cholesky if it
# does not converge. Setup plus one solve to 1e-10 against QDLDL's Cholesky,
# float64, 2-core CPU (`benchmarks/large_solves.py --orderings`), on shifted
# Laplacians: 5-point, 128² (16k unknowns) 0.032 against 0.020 s, 256² 0.10
# against 0.15 s, 512² 0.41 against 1.29 s; 7-point, 20³ (8k) 0.036 against
# 0.14 s, 32³ 0.13 against 4.0 s. The crossover of 2-D grids lies near 20,000
# unknowns; 3-D grids gain below it, but little time is at stake there.
AMG_MIN_SIZE = 20_000


# Full-rank least-squares problems whose normal equations lose at least this
# fraction of their unknowns to block elimination are solved by `SparseSchur`
# instead of a sparse factorisation of the whole normal equations on the host.
# One damped Gauss–Newton system of bundle adjustment, in `jit`, float64, 2-core
# CPU: 50 cameras, 10,000 points, 40,000 observations (30,450 unknowns, 450
# left, S dense, all in JAX): 0.098 against 0.19 s (`benchmarks/run.py
# --sections bundle`); 1,000 cameras, 100,000 points, 10⁶ observations (309,000
# unknowns, 9,000 left, S sparse and factorised on the host): 7.0 against 28 s
# (separate runs).
SCHUR_MIN_ELIMINATED = 0.9


def _suits_schur(sparse: SparseMatrixOperator) -> bool:
    """Real, tall, and nearly all of it eliminated in small blocks. (Only the
    elimination is worked out here; the rest of the plan only if it pays.)"""
    m, n = sparse.pattern.shape
    if m < n or not jnp.issubdtype(sparse.values.dtype, jnp.floating):
        return False
    _, eliminated = elimination(sparse.pattern, MAX_BLOCK)
    return np.mean(eliminated) >= SCHUR_MIN_ELIMINATED


def _dense_choice(operator: lx.AbstractLinearOperator) -> str:
    if operator.in_size() != operator.out_size():
        # Levenberg–Marquardt's `[J; √λ I]` has full rank: QR, as Optimistix's
        # default (an SVD costs 1.4x the whole solve at 10 unknowns).
        return "dense_damped" if is_damped_stack(operator) else "dense_rectangular"
    return "dense"


def _traced_indices_hint(operator: lx.AbstractLinearOperator) -> str:
    """Why a matrix-free operator's pattern may be dense, when it is likely."""
    traced = sum(
        isinstance(leaf, jax.core.Tracer) and jnp.issubdtype(leaf.dtype, jnp.integer)
        for leaf in jtu.tree_leaves(operator)
    )
    if not traced:
        return ""
    return (
        f"its pattern was detected as dense, and it closes over {traced} traced "
        "integer array(s). Index arrays (`src` in `y[src] - y[dst]`) are traced "
        "inside Optimistix's `jit`, so their sparsity is unknown there. Detect the "
        "residual's coloring before the solve and pass it: "
        "`asdex.SparseLinearSolver(coloring=asdex.jacobian_coloring(lambda y: "
        "fn(y, args), y0))`. "
    )


def _suits_multigrid(sparse: SparseMatrixOperator) -> bool:
    """Large, real, structurally symmetric and not a narrow band (which banded LU
    solves in linear time)."""
    pattern = sparse.pattern
    return (
        pattern.shape[0] >= AMG_MIN_SIZE
        and jnp.issubdtype(sparse.values.dtype, jnp.floating)
        and pattern_data(pattern).is_symmetric_pattern
        and band_widths(pattern) is None
    )


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
      [`asdex.lineax.SparseCholesky`][], or, when it has at least 20,000 unknowns
      and its pattern is not a narrow band (2-D and 3-D grids and meshes), by
      multigrid-preconditioned CG, [`asdex.lineax.SparseAMG`][] with
      `fallback=True`, which factorises instead if multigrid does not converge;
    - any other square operator by [`asdex.lineax.SparseLU`][];
    - a rectangular operator by [`asdex.lineax.SparseNormalEquations`][]: the
      minimum-norm least-squares solution, which is correct for rank-deficient
      operators too (dead units, unused parameters), unless `well_posed=True`;
    - but a tall operator of full rank (Levenberg–Marquardt's damped stack
      `[J; √λ I]`, or any with `well_posed=True`) whose normal equations lose at
      least 90% of their unknowns to the elimination of small independent blocks
      (the points of bundle adjustment, the parameters of independent fits) by
      [`asdex.lineax.SparseSchur`][];
    - with `well_posed=False`, square operators too, so that a singular square
      system gets its minimum-norm least-squares solution, as with
      `lineax.AutoLinearSolver(well_posed=False)`.

    A square operator that is singular up to rounding is reported as
    `lineax.RESULTS.singular` by the direct solvers, never solved into garbage.

    Matrix-free operators, which is what Optimistix passes, are sparsified by
    detecting the pattern of their `mv` once per trace. Inside Optimistix's `jit`,
    index arrays of the residual (`src` in `y[src] - y[dst]`) are traced values,
    so a pattern detected there is dense: pass the coloring of the residual's
    Jacobian, detected before the solve, as `coloring=` (see its argument
    below). An operator with no sparse
    form (a dense pattern, or a dense matrix) is handed to
    `lineax.AutoLinearSolver(well_posed=well_posed)` when that is cheap: when it
    is already a dense matrix (`lineax.MatrixLinearOperator`,
    `lineax.PyTreeLinearOperator`) or it is at most `max_dense_size` wide and
    tall. Anything larger raises an error instead of silently forming a large
    dense matrix.

    Small systems (at most `small_size` wide and tall) and nearly dense ones (at
    least `dense_fraction` of the entries nonzero, and at most `max_dense_size`)
    also go to the dense solver: there a sparse solve through the host costs more
    than Lineax's dense one. Both thresholds are shown in the `repr`.

    Use [`select_solver`][asdex.SparseLinearSolver.select_solver] to see the choice.
    """

    well_posed: bool | None = None
    max_dense_size: int = 2048
    small_size: int = SMALL_SIZE
    dense_fraction: float = DENSE_FRACTION
    coloring: ColoredPattern | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.coloring is not None and not isinstance(self.coloring, ColoredPattern):
            raise TypeError(
                "`asdex.SparseLinearSolver(coloring=...)` must be an "
                f"`asdex.ColoredPattern` or None, got {type(self.coloring).__name__}. "
                "Build it with `asdex.jacobian_coloring(lambda y: fn(y, args), y0)`."
            )
        if self.coloring is not None:
            refuse_local(self.coloring, "asdex.SparseLinearSolver")

    def _choose(self, operator: lx.AbstractLinearOperator):
        size = max(operator.in_size(), operator.out_size())
        if size <= min(self.small_size, self.max_dense_size):
            # Tiny systems: a host callback costs more than a dense solve in XLA,
            # and detecting the pattern costs trace time for nothing.
            return _dense_choice(operator), operator
        try:
            with given_coloring(self.coloring):
                sparse = sparsify(operator)
        except NotImplementedError as err:
            dense = isinstance(
                operator, (lx.MatrixLinearOperator, lx.PyTreeLinearOperator)
            )
            hint = "" if dense else _traced_indices_hint(operator)
            if dense or size <= self.max_dense_size:
                if hint:
                    warnings.warn(
                        f"`SparseLinearSolver` solves a {operator.out_size()}×"
                        f"{operator.in_size()} {type(operator).__name__} densely: "
                        f"{hint}",
                        DenseColoringWarning,
                        stacklevel=2,
                    )
                return _dense_choice(operator), operator
            raise ValueError(
                "`SparseLinearSolver` got a "
                f"{type(operator).__name__} of shape "
                f"{operator.out_size()}×{operator.in_size()} that has no sparse form, "
                f"and is larger than `max_dense_size={self.max_dense_size}`, so it "
                "will not be densified. Pass the Jacobian as a sparse operator "
                "(`asdex.SparseJacobianOperator`, "
                "`asdex.lineax.SparseMatrixOperator`), register a conversion with "
                "`asdex.lineax.sparsify.register`, or raise `max_dense_size`."
                f" {hint}({err})"
            ) from err
        m, n = sparse.pattern.shape
        if size <= self.max_dense_size and sparse.pattern.nnz >= (
            self.dense_fraction * m * n
        ):
            # Nearly dense: the sparse factorisation has the dense one's fill, and
            # pays the callback and the scatter on top.
            return _dense_choice(operator), operator
        if m != n or self.well_posed is False:
            # A damped stack has full rank whatever J is; `well_posed=True`
            # promises it. The Schur complement needs it.
            full_rank = self.well_posed is True or is_damped_stack(operator)
            if full_rank and _suits_schur(sparse):
                return "schur", sparse
            return "normal", sparse
        if lx.is_positive_semidefinite(sparse) or lx.is_negative_semidefinite(sparse):
            if _suits_multigrid(sparse):
                return "amg", sparse
            return "cholesky", sparse
        return "lu", sparse

    def __repr__(self) -> str:
        # Equinox leaves out fields at their defaults; the dense thresholds are
        # shown always, so that a printed solver says when it solves densely.
        given = (
            "" if self.coloring is None else f", coloring={self.coloring._summary()[0]}"
        )
        return (
            f"SparseLinearSolver(well_posed={self.well_posed!r}, "
            f"max_dense_size={self.max_dense_size!r}, "
            f"small_size={self.small_size!r}, "
            f"dense_fraction={self.dense_fraction!r}{given})"
        )

    def _solver(self, choice: str) -> lx.AbstractLinearSolver:
        if choice == "amg":
            return SparseAMG(fallback=True)
        if choice == "schur":
            return SparseSchur()
        if choice == "cholesky":
            return SparseCholesky()
        if choice == "lu":
            return SparseLU()
        if choice == "normal":
            return SparseNormalEquations(min_norm=self.well_posed is not True)
        if choice == "dense_rectangular":
            # Rectangular operators get minimum-norm solves, dense ones too (SVD,
            # where Lineax's default QR assumes full rank); `well_posed=True`
            # promises full rank, and gets QR (Lineax takes only `None` for it).
            return lx.AutoLinearSolver(
                well_posed=None if self.well_posed is True else False
            )
        if choice == "dense_damped":
            return lx.AutoLinearSolver(well_posed=None)
        return lx.AutoLinearSolver(well_posed=self.well_posed)

    def select_solver(
        self, operator: lx.AbstractLinearOperator
    ) -> lx.AbstractLinearSolver:
        """The solver that `SparseLinearSolver` uses for `operator`.

        **Arguments:**

        - `operator`: a Lineax linear operator.

        **Returns:**

        One of [`asdex.lineax.SparseAMG`][], [`asdex.lineax.SparseCholesky`][],
        [`asdex.lineax.SparseLU`][], [`asdex.lineax.SparseSchur`][],
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
        solution, result, stats = self._solver(choice.name).compute(
            inner, vector, options
        )
        if choice.name.startswith("dense"):
            # Lineax's dense LU does not report a singular matrix; the sparse
            # solvers do. Report it on the dense path too, rather than return NaN
            # as a success.
            finite = jnp.all(
                jnp.stack([jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(solution)])
            )
            result = lx.RESULTS.where(finite, result, lx.RESULTS.singular)
        return solution, result, stats

    def transpose(self, state, options: dict[str, Any]):
        choice, inner = state
        inner, options = self._solver(choice.name).transpose(inner, options)
        return (choice, inner), options

    def conj(self, state, options: dict[str, Any]):
        choice, inner = state
        inner, options = self._solver(choice.name).conj(inner, options)
        return (choice, inner), options

    def assume_full_rank(self) -> bool:
        # Only `well_posed=True` promises full rank: by default rectangular
        # operators get minimum-norm solves, whose derivatives need Lineax's
        # pseudo-inverse terms (a few more solves with the cached factor).
        return self.well_posed is True


SparseLinearSolver.__init__.__doc__ = """**Arguments:**

- `well_posed`: as for `lineax.AutoLinearSolver`. `None` (the default): square
    operators are solved directly (assumed nonsingular; a singular one is
    reported as `lineax.RESULTS.singular`) and rectangular ones by minimum-norm
    least squares. `False`: every operator by minimum-norm least squares, for
    singular square systems (the Hessian of a rank-deficient fit in
    `optimistix.ImplicitAdjoint`). `True`: rectangular operators are assumed to
    have full rank too, skipping the few extra solves of the minimum-norm
    refinement. The dense fallback passes it to `lineax.AutoLinearSolver`,
    except that a rectangular operator with `None` gets `False` (SVD, minimum
    norm) there too.
- `max_dense_size`: the largest input or output size at which an operator
    without a sparse form is densified for Lineax's solvers.
- `small_size`: operators at most this wide and tall are solved densely, without
    detecting their pattern (200 by default, measured; `0` switches this off).
- `dense_fraction`: operators with at least this fraction of nonzero entries are
    solved densely, when at most `max_dense_size` (0.3 by default; above 1 switches
    this off).
- `coloring`: the [`asdex.ColoredPattern`][] of the Jacobian `J` of the residual
    (least squares) or of the function (root finding), from
    [`asdex.jacobian_coloring`][] called before the solve. It replaces pattern
    detection for matrix-free operators of `J`'s shape, and for
    Levenberg–Marquardt's stacked operator `v ↦ (J v, √λ v)`, whose pattern is
    `[J; I]`; other operators are detected as usual. Needed where the residual
    gathers with index arrays: inside Optimistix's `jit` those are traced, and the
    pattern detected there is dense. The compiled solve checks the coloring against
    the operator with one probe product, and raises if the operator has nonzeros
    outside its pattern.
"""
