"""`SparseNewtonMinimiser`: Newton's method for minimisation with the exact sparse Hessian.

Optimistix's minimisers approximate the Hessian (BFGS, DFP, L-BFGS) or use none
(gradient descent, nonlinear CG). With a sparse Hessian, the exact one costs a few
Hessian-vector products, and Newton's method converges quadratically. The solver
follows the structure of Optimistix's `AbstractQuasiNewton`: the function is
evaluated at each trial point, a search accepts or rejects it, and on acceptance
the gradient and the sparse Hessian are computed (one forward-over-reverse
linearisation plus one HVP per color) and the descent proposes the next trial point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, Int, PyTree, Scalar

from .._colored import ColoredPattern
from ..lineax._derivative_operators import (
    Compression,
    SparseHessianOperator,
    compressed_hessian,
)
from ._least_squares import SparseDampedNewtonDescent
from ._misc import (
    DEFAULT_LINEAR_SOLVER,
    as_compression,
    cauchy_termination,
    finish_step,
    hessian_compression,
    tree_zeros_like,
)

FunctionInfo = optx.FunctionInfo

_HESSIAN_TAGS = frozenset(
    [lx.positive_semidefinite_tag, lx.negative_semidefinite_tag, lx.symmetric_tag]
)


class _TrustRegionState(eqx.Module):
    step_size: Scalar


class NewtonTrustRegion(optx.AbstractSearch):
    r"""A trust-region update for Newton steps with an exact, possibly indefinite Hessian.

    The rule is that of `optimistix.ClassicalTrustRegion`: with the predicted
    reduction $m(\delta) = g^\top \delta + \tfrac12 \delta^\top H \delta$ of the
    quadratic model and the actual reduction $f(y + \delta) - f(y)$, a step is
    accepted when the actual reduction is at least `low_cutoff` times the predicted
    one, and the step size grows by `high_constant` when it is at least
    `high_cutoff` times as large, or shrinks by `low_constant` on rejection.

    One safeguard is added: a step is accepted only if the model predicts a
    *decrease*, $m(\delta) < 0$. With an approximate, positive definite Hessian (as
    in BFGS or Gauss–Newton) this always holds. With the exact Hessian far from a
    minimum, $H + \lambda I$ can be indefinite and the damped Newton step can point
    uphill, with $m(\delta) \ge 0$; then `ClassicalTrustRegion` may accept a step
    that increases $f$, while this search rejects it and increases the damping
    $\lambda$ until $H + \lambda I$ is positive definite along the step. And a step
    whose predicted decrease is below the round-off of $f$ is accepted unless $f$
    rises by more than that round-off: near a minimum, where Newton's steps change
    $f$ by less than its round-off, the ratio test would reject them for ever.

    It needs `FunctionInfo.EvalGradHessian` (it is meant for
    [`asdex.optimistix.SparseNewtonMinimiser`][]), or `FunctionInfo.ResidualJac`
    for least squares, whose model ½‖r + Jδ‖² costs one product with J.
    """

    high_cutoff: float = 0.99
    low_cutoff: float = 0.01
    high_constant: float = 3.5
    low_constant: float = 0.25

    def __check_init__(self):
        if not 0 <= self.low_cutoff <= self.high_cutoff:
            raise ValueError(
                "`NewtonTrustRegion` needs `0 <= low_cutoff <= high_cutoff`, got "
                f"low_cutoff={self.low_cutoff}, high_cutoff={self.high_cutoff}."
            )
        if self.low_constant <= 0 or self.high_constant <= 0:
            raise ValueError(
                "`NewtonTrustRegion` needs positive `low_constant` and `high_constant`."
            )

    def init(self, y, f_info_struct) -> _TrustRegionState:
        del y, f_info_struct
        return _TrustRegionState(jnp.array(1.0))

    def step(self, first_step, y, y_eval, f_info, f_eval_info, state):
        y_diff = jtu.tree_map(lambda a, b: a - b, y_eval, y)
        predicted = _predicted_reduction(y_diff, f_info)
        f, f_eval = f_info.as_min(), f_eval_info.as_min()
        actual = f_eval - f
        decrease = predicted < 0
        accept = decrease & (actual <= self.low_cutoff * predicted)
        good = accept & (actual < self.high_cutoff * predicted)
        # Close to a minimum, Newton's steps change `f` by less than its round-off,
        # so that the actual reduction is noise and the ratio test would reject
        # every step (and shrink the step size for ever). A step that the model
        # says decreases `f` by less than the round-off is accepted unless `f`
        # rose by more than the round-off.
        noise = (
            64
            * jnp.finfo(jnp.result_type(f)).eps
            * jnp.maximum(jnp.abs(f), jnp.abs(f_eval))
        )
        accept = accept | (decrease & (-predicted <= noise) & (actual <= noise))
        accept = accept | first_step
        good = good & jnp.invert(first_step)
        factor = jnp.where(
            good, self.high_constant, jnp.where(accept, 1.0, self.low_constant)
        )
        step_size = factor * state.step_size
        return step_size, accept, optx.RESULTS.successful, _TrustRegionState(step_size)


def _predicted_reduction(y_diff, f_info):
    """The model's change of `f` along `y_diff`: `gᵀδ + ½ δᵀHδ`, or for least
    squares (the Gauss–Newton model of ½‖r‖²) `½(‖r + Jδ‖² − ‖r‖²)`, which needs
    one product with J instead of three."""
    if isinstance(f_info, FunctionInfo.ResidualJac):
        moved = jtu.tree_map(jnp.add, f_info.residual, f_info.jac.mv(y_diff))
        return 0.5 * (_sum_squares(moved) - _sum_squares(f_info.residual))
    if not isinstance(f_info, FunctionInfo.EvalGradHessian):
        raise ValueError(
            "`NewtonTrustRegion` needs the gradient and Hessian "
            "(`FunctionInfo.EvalGradHessian`) or the residuals and Jacobian "
            f"(`FunctionInfo.ResidualJac`), got {type(f_info).__name__}."
        )
    h_diff = f_info.hessian.mv(y_diff)
    return sum(
        jnp.vdot(d, g + 0.5 * h)
        for d, g, h in zip(
            jtu.tree_leaves(y_diff),
            jtu.tree_leaves(f_info.grad),
            jtu.tree_leaves(h_diff),
            strict=True,
        )
    )


def _sum_squares(tree) -> jax.Array:
    return sum(jnp.sum(jnp.abs(leaf) ** 2) for leaf in jtu.tree_leaves(tree))


NewtonTrustRegion.__init__.__doc__ = """**Arguments:**

- `high_cutoff`, `low_cutoff`: the bounds on the ratio of actual to predicted
    reduction, as in `optimistix.ClassicalTrustRegion`.
- `high_constant`: the factor by which the step size grows after a good step.
- `low_constant`: the factor by which it shrinks after a rejected step.
"""


class _SparseNewtonMinimiserState(eqx.Module):
    # Updated every search step
    first_step: Bool[Array, ""]
    y_eval: PyTree[Array]
    search_state: PyTree
    compression: Compression
    # Updated after each accepted step
    f_info: FunctionInfo.EvalGradHessian
    aux: PyTree
    descent_state: PyTree
    # Termination
    terminate: Bool[Array, ""]
    result: optx.RESULTS
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]


class AbstractSparseNewtonMinimiser(optx.AbstractMinimiser):
    """Newton-type minimisers with the exact sparse Hessian.

    Subclasses choose a `descent` (which receives `FunctionInfo.EvalGradHessian`
    with an [`asdex.SparseHessianOperator`][asdex.SparseHessianOperator]) and a `search`, for example
    `optimistix.NewtonDescent` with `optimistix.BacktrackingArmijo` for a line
    search on a convex problem, or
    [`asdex.optimistix.SparseDampedNewtonDescent`][] with
    [`asdex.optimistix.NewtonTrustRegion`][] (as
    [`asdex.optimistix.SparseNewtonMinimiser`][]).

    Subclasses must provide `rtol`, `atol`, `norm`, `descent`, `search` and
    `compression` (an [`asdex.lineax.Compression`][] of a Hessian coloring, or
    `None` to detect the pattern when the solve is traced).
    """

    rtol: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]
    norm: eqx.AbstractVar[Callable[[PyTree], Scalar]]
    descent: eqx.AbstractVar[optx.AbstractDescent]
    search: eqx.AbstractVar[optx.AbstractSearch]
    compression: eqx.AbstractVar[Compression | None]

    @property
    def coloring(self) -> ColoredPattern | None:
        """The precomputed coloring, if one was given."""
        return None if self.compression is None else self.compression.coloring

    def init(
        self,
        fn: Callable,
        y: PyTree[Array],
        args: PyTree,
        options: dict[str, Any],
        f_struct: jax.ShapeDtypeStruct,
        aux_struct: PyTree[jax.ShapeDtypeStruct],
        tags: frozenset[object],
    ) -> _SparseNewtonMinimiserState:
        del options
        comp = hessian_compression(self.compression, fn, y, args, type(self).__name__)
        dtype = jnp.result_type(*jtu.tree_leaves(y))
        hessian = SparseHessianOperator._from_values(
            jnp.zeros(comp.pattern.nnz, dtype),
            comp,
            jax.eval_shape(lambda: y),
            frozenset(tags) & _HESSIAN_TAGS,
        )
        f_info = FunctionInfo.EvalGradHessian(
            jnp.zeros(f_struct.shape, f_struct.dtype), tree_zeros_like(y), hessian
        )
        f_info_struct = eqx.filter_eval_shape(lambda: f_info)
        return _SparseNewtonMinimiserState(
            first_step=jnp.array(True),
            y_eval=y,
            search_state=self.search.init(y, f_info_struct),
            compression=comp,
            f_info=f_info,
            aux=jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), aux_struct),
            descent_state=self.descent.init(y, f_info_struct),
            terminate=jnp.array(False),
            result=optx.RESULTS.successful,
            num_steps=jnp.array(0),
            num_accepted_steps=jnp.array(0),
        )

    def step(
        self,
        fn: Callable,
        y: PyTree[Array],
        args: PyTree,
        options: dict[str, Any],
        state: _SparseNewtonMinimiserState,
        tags: frozenset[object],
    ):
        del options
        f_eval, aux_eval = fn(state.y_eval, args)
        step_size, accept, search_result, search_state = self.search.step(
            state.first_step,
            y,
            state.y_eval,
            state.f_info,
            FunctionInfo.Eval(f_eval),
            state.search_state,
        )

        def accepted(descent_state):
            comp = state.compression
            _, grad, _, values = compressed_hessian(
                fn, state.y_eval, args, comp, has_aux=True
            )
            hessian = SparseHessianOperator._from_values(
                values,
                comp,
                jax.eval_shape(lambda: state.y_eval),
                frozenset(tags) & _HESSIAN_TAGS,
            )
            f_eval_info = FunctionInfo.EvalGradHessian(f_eval, grad, hessian)
            descent_state = self.descent.query(state.y_eval, f_eval_info, descent_state)
            y_diff = jtu.tree_map(lambda a, b: a - b, state.y_eval, y)
            f_diff = f_eval - state.f_info.f
            terminate = cauchy_termination(
                self.rtol, self.atol, self.norm, state.y_eval, y_diff, f_eval, f_diff
            )
            # Both differences are meaningless before the first accepted step.
            terminate = terminate & jnp.invert(state.first_step)
            return state.y_eval, f_eval_info, aux_eval, descent_state, terminate

        return finish_step(
            self, state, y, accept, accepted, step_size, search_state, search_result
        )

    def terminate(self, fn, y, args, options, state, tags):
        return state.terminate, state.result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {"num_accepted_steps": state.num_accepted_steps}


class SparseNewtonMinimiser(AbstractSparseNewtonMinimiser):
    r"""Newton's method for minimisation with the exact sparse Hessian and a trust region.

    Each accepted step computes the gradient $g$ and the exact Hessian $H$ (sparse,
    by one forward-over-reverse linearisation and one Hessian-vector product per
    color of a star or acyclic coloring). The step solves
    $(H + \lambda I)\,\delta = -g$ sparsely, where the damping $\lambda$ is set by
    a Levenberg–Marquardt-style trust region ($\lambda = 1/\text{step size}$, see
    [`asdex.optimistix.NewtonTrustRegion`][]). Far from a minimum, or where $H$ is
    indefinite, the damping grows until the step decreases the function; close to
    a minimum it vanishes and the iteration is Newton's, converging quadratically.

    Optimistix itself has no exact-Hessian Newton minimiser. Use this one with
    `optimistix.minimise`; `throw`, `max_steps` and the result codes are
    Optimistix's. Passing `tags=frozenset({lineax.positive_semidefinite_tag})` to
    `optimistix.minimise` for a convex function lets the damped systems be
    factorised by sparse Cholesky.

    !!! Example

        ```python
        solver = asdex.optimistix.SparseNewtonMinimiser(rtol=1e-10, atol=1e-10)
        sol = optx.minimise(rosenbrock, solver, y0, max_steps=200)
        ```
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar]
    descent: SparseDampedNewtonDescent
    search: NewtonTrustRegion
    compression: Compression | None

    def __init__(
        self,
        rtol: float,
        atol: float,
        norm: Callable[[PyTree], Scalar] = optx.max_norm,
        linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER,
        coloring: ColoredPattern | None = None,
    ):
        """**Arguments:**

        - `rtol`, `atol`: relative and absolute tolerances: the solve stops when both
            the step in `y` and the change of the function value are small
            (Optimistix's Cauchy test).
        - `norm`: the norm of these tests (`optimistix.max_norm`, ...).
        - `linear_solver`: the solver of the damped Newton systems; by default
            [`asdex.SparseLinearSolver`][].
        - `coloring`: an [`asdex.ColoredPattern`][] of the Hessian (from
            `asdex.hessian_coloring(fn, y0, args)`), to reuse across solves; `None`
            detects and colors the pattern when the solve is traced.
        """
        self.rtol = rtol
        self.atol = atol
        self.norm = norm
        self.descent = SparseDampedNewtonDescent(linear_solver=linear_solver)
        self.search = NewtonTrustRegion()
        self.compression = as_compression(
            coloring, "asdex.optimistix.SparseNewtonMinimiser", hessian=True
        )
