"""Sparse Gauss–Newton and Levenberg–Marquardt for nonlinear least squares.

These follow the structure of Optimistix's `AbstractGaussNewton`: each step
evaluates the residual and its Jacobian at the trial point `y_eval`, a *search*
(a fixed learning rate, or a trust region) decides whether to accept it, and a
*descent* proposes the next trial point from the last accepted one. The
differences are where the Jacobian comes from and how the damped system is built:

- the Jacobian is an [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator], computed by compressed
  automatic differentiation with a coloring that is detected once (or given);
- Levenberg–Marquardt's damped step solves the least-squares problem of the
  stacked operator `[J; √λ I]`, built sparsely by
  [`asdex.lineax.damped_operator`][], rather than Optimistix's
  `FunctionLinearOperator`, which hides `J` from the linear solver.
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
from ..lineax._damping import damped_operator
from ..lineax._derivative_operators import (
    Compression,
    SparseJacobianOperator,
    compressed_jacobian,
)
from ._misc import (
    DEFAULT_LINEAR_SOLVER,
    as_compression,
    cauchy_termination,
    finish_step,
    jac_option,
    jacobian_compression,
    tree_zeros_like,
)

FunctionInfo = optx.FunctionInfo


def _zeros_from_struct(tree: PyTree) -> PyTree:
    return jtu.tree_map(
        lambda x: (
            jnp.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x
        ),
        tree,
    )


# ---------------------------------------------------------------- descent


class _SparseDampedNewtonDescentState(eqx.Module):
    f_info: FunctionInfo.EvalGradHessian | FunctionInfo.ResidualJac


class SparseDampedNewtonDescent(optx.AbstractDescent):
    r"""The damped Newton (Levenberg–Marquardt) descent, solved sparsely.

    Like `optimistix.DampedNewtonDescent`, this moves along $-(H + \lambda I)^{-1} g$
    with $\lambda = 1/\text{step size}$. For least squares ($H \approx J^\top J$,
    $g = J^\top r$) the step is the least-squares solution of
    $[J;\ \sqrt{\lambda} I]\,\delta = [r;\ 0]$, and the stacked operator is built
    sparsely from the sparse Jacobian by [`asdex.lineax.damped_operator`][], so that
    [`asdex.SparseLinearSolver`][] solves it through the sparse normal equations
    $(J^\top J + \lambda I)\,\delta = J^\top r$. For minimisation, $H + \lambda I$
    is a sum of sparse operators and stays sparse as well (positive semidefinite
    when $H$ is tagged so).

    Use it with a search that adapts the step size, such as
    `optimistix.ClassicalTrustRegion`.
    """

    linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER

    def init(self, y, f_info_struct):
        del y
        return _SparseDampedNewtonDescentState(_zeros_from_struct(f_info_struct))

    def query(self, y, f_info, state):
        del y, state
        return _SparseDampedNewtonDescentState(f_info)

    def step(self, step_size: Scalar, state: _SparseDampedNewtonDescentState):
        f_info = state.f_info
        pred = step_size > jnp.finfo(step_size.dtype).eps
        safe_step_size = jnp.where(pred, step_size, 1)
        damping = jnp.where(pred, 1 / safe_step_size, jnp.finfo(step_size.dtype).max)
        if isinstance(f_info, FunctionInfo.ResidualJac):
            operator = damped_operator(f_info.jac, damping)
            vector = (f_info.residual, tree_zeros_like(f_info.jac.in_structure()))
        elif isinstance(f_info, FunctionInfo.EvalGradHessian):
            hessian = f_info.hessian
            identity = lx.IdentityLinearOperator(hessian.in_structure())
            # In the Hessian's dtype: a float64 step size (x64 on) must not
            # promote a float32 Hessian, which strict promotion refuses.
            with jax.numpy_dtype_promotion("standard"):
                dtype = jnp.result_type(*jtu.tree_leaves(hessian.in_structure()))
            operator = hessian + damping.astype(dtype) * identity
            if lx.is_positive_semidefinite(hessian):
                operator = lx.TaggedLinearOperator(
                    operator, lx.positive_semidefinite_tag
                )
            vector = f_info.grad
        else:
            raise ValueError(
                "`SparseDampedNewtonDescent` needs the residual and Jacobian (least "
                "squares) or the gradient and Hessian (minimisation), got "
                f"{type(f_info).__name__}."
            )
        sol = lx.linear_solve(operator, vector, self.linear_solver, throw=False)
        y_diff = jtu.tree_map(jnp.negative, sol.value)
        return y_diff, optx.RESULTS.promote(sol.result)


SparseDampedNewtonDescent.__init__.__doc__ = """**Arguments:**

- `linear_solver`: the solver of the damped systems; by default
    [`asdex.SparseLinearSolver`][].
"""


# ---------------------------------------------------------------- solvers


class _SparseGaussNewtonState(eqx.Module):
    # Updated every search step
    first_step: Bool[Array, ""]
    y_eval: PyTree[Array]
    search_state: PyTree
    compression: Compression
    # Updated after each accepted step
    f_info: FunctionInfo.ResidualJac
    aux: PyTree
    descent_state: PyTree
    # Termination
    terminate: Bool[Array, ""]
    result: optx.RESULTS
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]


class AbstractSparseGaussNewton(optx.AbstractLeastSquaresSolver):
    """Gauss–Newton-type least-squares solvers with a sparse Jacobian.

    The sparse counterpart of `optimistix.AbstractGaussNewton`: subclasses choose a
    `descent` (which receives `FunctionInfo.ResidualJac` with an
    [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator]) and a `search`. Each step computes the
    residual and the sparse Jacobian at the trial point in one linearisation plus
    one JVP (or VJP) per color.

    Subclasses must provide `rtol`, `atol`, `norm`, `descent`, `search` and
    `compression` (an [`asdex.lineax.Compression`][], or `None` to detect the
    pattern when the solve is traced).
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

    def _f_info(self, fn, y, args, comp, tags):
        residual, aux, values = compressed_jacobian(fn, y, args, comp, has_aux=True)
        jac = SparseJacobianOperator._from_values(
            values,
            comp,
            jax.eval_shape(lambda: y),
            jax.eval_shape(lambda: residual),
            frozenset(tags),
        )
        return FunctionInfo.ResidualJac(residual, jac), aux

    def init(
        self,
        fn: Callable,
        y: PyTree[Array],
        args: PyTree,
        options: dict[str, Any],
        f_struct: PyTree[jax.ShapeDtypeStruct],
        aux_struct: PyTree[jax.ShapeDtypeStruct],
        tags: frozenset[object],
    ) -> _SparseGaussNewtonState:
        caller = type(self).__name__
        comp = jacobian_compression(
            self.compression,
            fn,
            y,
            args,
            tags,
            caller,
            jac_option(options, caller),
        )
        jac = SparseJacobianOperator._from_values(
            jnp.zeros(comp.pattern.nnz, jnp.result_type(*jtu.tree_leaves(f_struct))),
            comp,
            jax.eval_shape(lambda: y),
            f_struct,
            frozenset(tags),
        )
        f_info = FunctionInfo.ResidualJac(_zeros_from_struct(f_struct), jac)
        f_info_struct = eqx.filter_eval_shape(lambda: f_info)
        return _SparseGaussNewtonState(
            first_step=jnp.array(True),
            y_eval=y,
            search_state=self.search.init(y, f_info_struct),
            compression=comp,
            f_info=f_info,
            aux=_zeros_from_struct(aux_struct),
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
        state: _SparseGaussNewtonState,
        tags: frozenset[object],
    ):
        del options
        f_eval_info, aux_eval = self._f_info(
            fn, state.y_eval, args, state.compression, tags
        )
        step_size, accept, search_result, search_state = self.search.step(
            state.first_step,
            y,
            state.y_eval,
            state.f_info,
            f_eval_info,
            state.search_state,
        )

        def accepted(descent_state):
            descent_state = self.descent.query(state.y_eval, f_eval_info, descent_state)
            y_diff = jtu.tree_map(lambda a, b: a - b, state.y_eval, y)
            f_diff = jtu.tree_map(
                lambda a, b: a - b, f_eval_info.residual, state.f_info.residual
            )
            terminate = cauchy_termination(
                self.rtol,
                self.atol,
                self.norm,
                state.y_eval,
                y_diff,
                f_eval_info.residual,
                f_diff,
            )
            return state.y_eval, f_eval_info, aux_eval, descent_state, terminate

        return finish_step(
            self, state, y, accept, accepted, step_size, search_state, search_result
        )

    def terminate(self, fn, y, args, options, state, tags):
        return state.terminate, state.result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {"num_accepted_steps": state.num_accepted_steps}


_COMMON_ARGS = """- `rtol`, `atol`: relative and absolute tolerances: the solve stops when both
    the step in `y` and the change of the residual are small (Optimistix's Cauchy
    test).
- `norm`: the norm of these tests, as in Optimistix (`optimistix.max_norm`, ...).
- `linear_solver`: the solver of the linear least-squares problems; by default
    [`asdex.SparseLinearSolver`][], which uses the sparse normal equations and
    returns minimum-norm steps when `J` is rank deficient (dead units, unused
    parameters), as `lineax.AutoLinearSolver(well_posed=False)` does densely.
    `asdex.SparseLinearSolver(well_posed=True)` assumes full rank instead and
    reports a rank-deficient step as a failed solve.
- `coloring`: an [`asdex.ColoredPattern`][] of the residual's Jacobian with
    respect to `y` (from `asdex.jacobian_coloring(fn, y0, args)`), to reuse across
    solves; `None` detects and colors the pattern when the solve is traced.
"""


class SparseGaussNewton(AbstractSparseGaussNewton):
    """The Gauss–Newton method for nonlinear least squares, with a sparse Jacobian.

    Each step solves the linear least-squares problem `min ‖J δ + r‖²` with the
    sparse Jacobian `J` (by default through the sparse normal equations) and takes
    the full step. The sparse counterpart of `optimistix.GaussNewton`; use it with
    `optimistix.least_squares`. [`asdex.optimistix.SparseLevenbergMarquardt`][] is
    usually more robust.
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar]
    descent: optx.NewtonDescent
    search: optx.LearningRate
    compression: Compression | None

    def __init__(
        self,
        rtol: float,
        atol: float,
        norm: Callable[[PyTree], Scalar] = optx.max_norm,
        linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER,
        coloring: ColoredPattern | None = None,
    ):
        self.rtol = rtol
        self.atol = atol
        self.norm = norm
        self.descent = optx.NewtonDescent(linear_solver=linear_solver)
        self.search = optx.LearningRate(1.0)
        self.compression = as_compression(
            coloring, "asdex.optimistix.SparseGaussNewton", hessian=False
        )


SparseGaussNewton.__init__.__doc__ = "**Arguments:**\n\n" + _COMMON_ARGS


class SparseLevenbergMarquardt(AbstractSparseGaussNewton):
    r"""The Levenberg–Marquardt method for nonlinear least squares, solved sparsely.

    Gauss–Newton regularised by a damping $\lambda$ that a trust region adapts:
    each step solves $(J^\top J + \lambda I)\,\delta = -J^\top r$ through the
    sparse stacked operator $[J;\ \sqrt{\lambda} I]$ (see
    [`asdex.optimistix.SparseDampedNewtonDescent`][]), and
    `optimistix.ClassicalTrustRegion` accepts or rejects it and sets the next
    $\lambda$. The sparse counterpart of `optimistix.LevenbergMarquardt`, with the
    same iterates; use it with `optimistix.least_squares`.

    The Jacobian is computed sparsely at every trial point, and never formed
    densely: a fit with a million residuals and forty thousand parameters needs
    memory for a few million nonzeros, not for a 320 GB matrix.

    !!! Example

        ```python
        coloring = asdex.jacobian_coloring(residuals, params0, data)
        solver = asdex.optimistix.SparseLevenbergMarquardt(
            rtol=1e-8, atol=1e-8, coloring=coloring
        )
        sol = optx.least_squares(residuals, solver, params0, data)
        ```
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar]
    descent: SparseDampedNewtonDescent
    search: optx.ClassicalTrustRegion
    compression: Compression | None

    def __init__(
        self,
        rtol: float,
        atol: float,
        norm: Callable[[PyTree], Scalar] = optx.max_norm,
        linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER,
        coloring: ColoredPattern | None = None,
    ):
        self.rtol = rtol
        self.atol = atol
        self.norm = norm
        self.descent = SparseDampedNewtonDescent(linear_solver=linear_solver)
        self.search = optx.ClassicalTrustRegion()
        self.compression = as_compression(
            coloring, "asdex.optimistix.SparseLevenbergMarquardt", hessian=False
        )


SparseLevenbergMarquardt.__init__.__doc__ = "**Arguments:**\n\n" + _COMMON_ARGS
