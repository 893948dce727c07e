"""`SparseNewton`: Newton's method for roots, with a sparse Jacobian every step."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, PyTree, Scalar

from .._colored import ColoredPattern
from ..lineax._derivative_operators import (
    Compression,
    SparseJacobianOperator,
    compressed_jacobian,
)
from ._misc import (
    DEFAULT_LINEAR_SOLVER,
    as_compression,
    cauchy_termination,
    jac_option,
    jacobian_compression,
)


def _small(diffsize: Scalar) -> Bool[Array, ""]:
    # As Optimistix's Newton: a step below ~100 ulps of the iterate.
    resolution = 10 ** (2 - jnp.finfo(diffsize.dtype).precision)
    return diffsize < resolution


# A step that leaves ‖f‖ above this fraction of its smallest value so far makes no
# progress. Newton's method converging cuts ‖f‖ by far more.
_PROGRESS = 0.9


def _warn_stalled(is_stalled, norm, best, atol, stalled, steps) -> None:
    if not bool(is_stalled):
        return
    warnings.warn(
        f"asdex.optimistix.SparseNewton stopped after {int(steps)} steps: the "
        f"residual norm has not fallen below {_PROGRESS}x its smallest value, "
        f"{float(best):.3e}, for {int(stalled)} consecutive steps, and stays above "
        f"atol = {float(atol):.1e} (last {float(norm):.3e}). If that is the "
        "floor rounding leaves in the residual at this problem's scale, loosen "
        "atol above it or rescale the equations; otherwise the iteration is stuck "
        "(at a bound from `options`, at a singular Jacobian, or too far from a "
        "root). The result is reported as `optimistix.RESULTS.nonlinear_divergence`.",
        RuntimeWarning,
        stacklevel=1,
    )


class _SparseNewtonState(eqx.Module):
    f: PyTree[Array] | None
    compression: Compression
    diff: PyTree[Array]
    diffsize: Scalar
    diffsize_prev: Scalar
    result: optx.RESULTS
    step: Scalar
    best_norm: Scalar  # the smallest ‖f‖ seen
    stalled: Scalar  # consecutive steps without progress below `best_norm`


class SparseNewton(optx.AbstractRootFinder):
    """Newton's method for root finding, with the Jacobian computed sparsely.

    Each step evaluates `fn` and its sparse Jacobian together: one `jax.linearize`
    of `fn` and one JVP (or VJP) per color, read back with one gather into a
    [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator]. The step then solves `J δ = f(y)` with
    `linear_solver` (by default [`asdex.SparseLinearSolver`][], a sparse LU or,
    for a problem tagged positive or negative semidefinite, a sparse Cholesky
    factorisation). No dense Jacobian is ever formed.

    The sparsity pattern and its coloring are computed once: pass a precomputed
    `coloring` (from `asdex.jacobian_coloring(fn, y0, args)`) to reuse it across
    many solves and compilations, or leave it `None` to detect it when the solve is
    traced.

    It is a drop-in replacement for `optimistix.Newton`, with the same termination
    tests, `options` (`lower`, `upper`) and result codes; use it through
    `optimistix.root_find`, whose `throw` and `max_steps` apply as usual. `y0` and
    the residual may be PyTrees.

    Passing `tags=frozenset({lineax.positive_semidefinite_tag})` (or
    `negative_semidefinite_tag`) to `optimistix.root_find` declares the Jacobian
    symmetric definite, which halves the factorisation's cost.

    !!! Example

        ```python
        coloring = asdex.jacobian_coloring(fn, y0, args)
        solver = asdex.optimistix.SparseNewton(rtol=1e-8, atol=1e-8, coloring=coloring)
        sol = optx.root_find(fn, solver, y0, args)
        ```
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar]
    kappa: float
    linear_solver: lx.AbstractLinearSolver
    cauchy_termination: bool
    max_stalled_steps: int | None
    compression: Compression | None

    def __init__(
        self,
        rtol: float,
        atol: float,
        norm: Callable[[PyTree], Scalar] = optx.max_norm,
        kappa: float = 1e-2,
        linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER,
        cauchy_termination: bool = True,
        coloring: ColoredPattern | None = None,
        max_stalled_steps: int | None = 5,
    ):
        """**Arguments:**

        - `rtol`, `atol`: relative and absolute tolerances for terminating the solve.
        - `norm`: the norm of the convergence tests, as in `optimistix.Newton`.
        - `kappa`: the tolerance of the early convergence check when
            `cauchy_termination=False`.
        - `linear_solver`: the solver of each Newton step; it receives an
            [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator].
        - `cauchy_termination`: as in `optimistix.Newton`: `True` stops when two
            iterates and the residual are small; `False` uses the rate-based test
            of Hairer & Wanner, which also detects divergence.
        - `coloring`: an [`asdex.ColoredPattern`][] of the Jacobian of `fn` with
            respect to `y`, or `None` to detect it at trace time.
        - `max_stalled_steps`: stop, reporting
            `optimistix.RESULTS.nonlinear_divergence` and warning with the residual
            reached, after this many consecutive steps that do not bring `‖f‖`
            below 0.9x its smallest value so far: typically `atol` below the
            floor that rounding leaves in `f` (on the 1000² Bratu problem, 1.4e-10
            against `atol=1e-10`). `None` runs to `max_steps`.
        """
        if max_stalled_steps is not None and not (
            isinstance(max_stalled_steps, int) and max_stalled_steps >= 1
        ):
            raise ValueError(
                "`SparseNewton(max_stalled_steps=...)` must be a positive integer or "
                f"None, got {max_stalled_steps!r}."
            )
        self.max_stalled_steps = max_stalled_steps
        self.rtol = rtol
        self.atol = atol
        self.norm = norm
        self.kappa = kappa
        self.linear_solver = linear_solver
        self.cauchy_termination = cauchy_termination
        self.compression = as_compression(
            coloring, "asdex.optimistix.SparseNewton", hessian=False
        )

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
        f_struct: PyTree[jax.ShapeDtypeStruct],
        aux_struct: PyTree[jax.ShapeDtypeStruct],
        tags: frozenset[object],
    ) -> _SparseNewtonState:
        del aux_struct
        caller = "asdex.optimistix.SparseNewton"
        comp = jacobian_compression(
            self.compression, fn, y, args, tags, caller, jac_option(options, caller)
        )
        dtype = jnp.result_type(*jtu.tree_leaves(f_struct))
        return _SparseNewtonState(
            f=(
                jtu.tree_map(lambda s: jnp.full(s.shape, jnp.inf, s.dtype), f_struct)
                if self.cauchy_termination
                else None
            ),
            compression=comp,
            diff=jtu.tree_map(lambda a: jnp.full_like(a, jnp.inf), y),
            diffsize=jnp.array(jnp.inf, dtype=dtype),
            diffsize_prev=jnp.array(1.0, dtype=dtype),
            result=optx.RESULTS.successful,
            step=jnp.array(0),
            best_norm=jnp.array(jnp.inf, dtype=dtype),
            stalled=jnp.array(0),
        )

    def step(
        self,
        fn: Callable,
        y: PyTree[Array],
        args: PyTree,
        options: dict[str, Any],
        state: _SparseNewtonState,
        tags: frozenset[object],
    ):
        lower = options.get("lower")
        upper = options.get("upper")
        comp = state.compression
        fx, aux, values = compressed_jacobian(fn, y, args, comp, has_aux=True)
        jac = SparseJacobianOperator._from_values(
            values,
            comp,
            jax.eval_shape(lambda: y),
            jax.eval_shape(lambda: fx),
            frozenset(tags),
        )
        sol = lx.linear_solve(jac, fx, self.linear_solver, throw=False)
        f_norm = jnp.asarray(self.norm(fx), dtype=state.best_norm.dtype)
        progress = f_norm < _PROGRESS * state.best_norm
        diff = sol.value
        new_y = jtu.tree_map(lambda a, b: a - b, y, diff)
        if lower is not None:
            new_y = jtu.tree_map(lambda a, b: jnp.clip(a, min=b), new_y, lower)
        if upper is not None:
            new_y = jtu.tree_map(lambda a, b: jnp.clip(a, max=b), new_y, upper)
        if lower is not None or upper is not None:
            diff = jtu.tree_map(lambda a, b: a - b, y, new_y)
        scale = jtu.tree_map(lambda a: self.atol + self.rtol * jnp.abs(a), new_y)
        with jax.numpy_dtype_promotion("standard"):
            diffsize = self.norm(jtu.tree_map(lambda d, s: d / s, diff, scale))
        new_state = _SparseNewtonState(
            f=fx if self.cauchy_termination else None,
            compression=comp,
            diff=diff,
            diffsize=jnp.asarray(diffsize, dtype=state.diffsize.dtype),
            diffsize_prev=state.diffsize,
            result=optx.RESULTS.promote(sol.result),
            step=state.step + 1,
            best_norm=jnp.minimum(state.best_norm, f_norm),
            stalled=jnp.where(progress, 0, state.stalled + 1),
        )
        return new_y, new_state, aux

    def _is_stalled(self, state: _SparseNewtonState) -> Bool[Array, ""]:
        if self.max_stalled_steps is None:
            return jnp.array(False)
        return state.stalled >= self.max_stalled_steps

    def terminate(
        self,
        fn: Callable,
        y: PyTree[Array],
        args: PyTree,
        options: dict[str, Any],
        state: _SparseNewtonState,
        tags: frozenset[object],
    ):
        del fn, args, options, tags
        if self.cauchy_termination:
            # A root-find aims at f = 0, so f is compared against zero (only `atol`
            # matters in f-space), as in `optimistix.Newton`.
            zeros = jtu.tree_map(jnp.zeros_like, state.f)
            terminate = cauchy_termination(
                self.rtol, self.atol, self.norm, y, state.diff, zeros, state.f
            )
            terminate_result = optx.RESULTS.successful
        else:
            # Hairer & Wanner, "Solving Ordinary Differential Equations II", IV.8:
            # estimate the contraction rate from two successive steps.
            at_least_two = state.step >= 2
            rate = state.diffsize / state.diffsize_prev
            factor = state.diffsize * rate / (1 - rate)
            small = _small(state.diffsize)
            diverged = jnp.invert(jnp.isfinite(rate)) | (rate > 2)
            converged = (factor > 0) & (factor < self.kappa)
            terminate = at_least_two & (small | diverged | converged)
            terminate_result = optx.RESULTS.where(
                at_least_two & jnp.invert(small) & (diverged | jnp.invert(converged)),
                optx.RESULTS.nonlinear_divergence,
                optx.RESULTS.successful,
            )
        stalled = self._is_stalled(state) & jnp.invert(terminate)
        terminate_result = optx.RESULTS.where(
            stalled, optx.RESULTS.nonlinear_divergence, terminate_result
        )
        failed = state.result != optx.RESULTS.successful
        result = optx.RESULTS.where(failed, state.result, terminate_result)
        return failed | terminate | stalled, result

    def postprocess(
        self,
        fn: Callable,
        y: PyTree[Array],
        aux: PyTree,
        args: PyTree,
        options: dict[str, Any],
        state: _SparseNewtonState,
        tags: frozenset[object],
        result: optx.RESULTS,
    ):
        if self.max_stalled_steps is not None:
            # Say why, with the floor reached: the result code alone reads
            # "Nonlinear solve diverged.". The test is inside the callback: under
            # `vmap`, a `lax.cond` around it would run it for every element.
            jax.debug.callback(
                _warn_stalled,
                self._is_stalled(state) & (result == optx.RESULTS.nonlinear_divergence),
                self.norm(state.f) if state.f is not None else state.best_norm,
                state.best_norm,
                self.atol,
                state.stalled,
                state.step,
            )
        return y, aux, {}
