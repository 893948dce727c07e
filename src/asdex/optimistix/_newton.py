"""`SparseNewton`: Newton's method for roots, with a sparse Jacobian every step."""

from __future__ import annotations

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


class _SparseNewtonState(eqx.Module):
    f: PyTree[Array] | None
    compression: Compression
    diff: PyTree[Array]
    diffsize: Scalar
    diffsize_prev: Scalar
    result: optx.RESULTS
    step: Scalar


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
        """
        self.rtol = rtol
        self.atol = atol
        self.norm = norm
        self.kappa = kappa
        self.linear_solver = linear_solver
        self.cauchy_termination = cauchy_termination
        self.compression = as_compression(
            coloring, "jacobian", "asdex.optimistix.SparseNewton"
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
        )
        return new_y, new_state, aux

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
        failed = state.result != optx.RESULTS.successful
        result = optx.RESULTS.where(failed, state.result, terminate_result)
        return failed | terminate, result

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
        return y, aux, {}
