"""`sparse_newton`: the damped Newton step with the exact sparse Hessian, for Optax."""

from __future__ import annotations

import functools as ft
from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optax
import optimistix as optx
from jaxtyping import PyTree, Scalar

from .._colored import ColoredPattern
from .._trace import check_scalar_output, explain_traced_control_flow
from ..lineax._derivative_operators import (
    SparseHessianOperator,
    compressed_hessian,
)
from ..optimistix._misc import DEFAULT_LINEAR_SOLVER, as_compression
from ._common import (
    check_sample_kwargs,
    damped_update,
    make_transform,
    resolve_options,
    sample_structure,
)

_CALLER = "asdex.optax.sparse_newton"


def _check_scalar(fun: Callable, struct: PyTree, sample_kwargs: dict) -> None:
    with explain_traced_control_flow(_CALLER, "fun"):
        out = jax.eval_shape(lambda p, kw: fun(p, **kw), struct, sample_kwargs)
    check_scalar_output(
        jtu.tree_leaves(out),
        _CALLER,
        argument="fun",
        advice="For least squares, pass the residuals to "
        "`asdex.optax.sparse_gauss_newton` instead; for a batch of losses, reduce "
        "them with `jnp.sum` or `jnp.mean`.",
    )


@eqx.filter_jit
def _update(fun, tags, options, state, params, value, value_fn, kw, value_kw):
    # Jitted here too, so that eager calls compile once per objective instead of
    # tracing the linearisation and the trial loop at every step; inside the user's
    # `jit` it is inlined.
    def objective(p, kw):
        return fun(p, **kw)

    comp = state.compression
    f, grad, _, values = compressed_hessian(objective, params, kw, comp)
    hessian = SparseHessianOperator._from_values(
        values, comp, jax.eval_shape(lambda: params), tags
    )
    if value is not None:
        f = jnp.asarray(value).astype(f.dtype)
    f_info = optx.FunctionInfo.EvalGradHessian(f, grad, hessian)
    return damped_update(f_info, f_info, params, state, options, value_fn, value_kw)


def sparse_newton(
    fun: Callable[..., Scalar],
    sample_params: PyTree,
    *,
    damping: float | None = None,
    adaptive_damping: bool | None = None,
    linesearch: optax.GradientTransformation | None = None,
    linear_solver: lx.AbstractLinearSolver = DEFAULT_LINEAR_SOLVER,
    tags: object | Iterable[object] = (),
    coloring: ColoredPattern | None = None,
    max_trials: int = 30,
    **sample_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    r"""Newton's method with the exact sparse Hessian, as an Optax transform.

    Each update computes the gradient $g$ and the Hessian $H$ of `fun` at the
    current parameters (sparse: one forward-over-reverse linearisation and one
    Hessian-vector product per color, with a coloring detected once, here) and
    returns the damped Newton step $-(H + \lambda I)^{-1} g$, solved by asdex's
    sparse linear solvers without forming a dense matrix.

    By default λ adapts as in Levenberg–Marquardt: a step is returned only if
    `value_fn` (the objective, passed to `update` as `optax.lbfgs` takes it)
    decreases by at least a hundredth of what the quadratic model predicts;
    otherwise λ grows fourfold and the system is solved again (the Hessian is not
    recomputed). After a good step λ shrinks by 3.5, so that near a minimum the
    steps become Newton's, converging quadratically. Far from one, or where $H$ is
    indefinite, the damping keeps every step downhill (see
    [`asdex.optimistix.NewtonTrustRegion`][]).

    With `linesearch=` the undamped Newton step $-H^{-1} g$ is returned instead
    and the line search scales it, as `optax.lbfgs` chains its own; suitable for
    convex `fun`, where $H$ is positive definite.

    The gradient given to `update` is not used: $g$ comes from the same
    linearisation as $H$. Only its structure is checked.

    **Arguments:**

    - `fun`: the objective `fun(params, **kwargs) -> scalar`. The keyword arguments
        are the extra arguments of `update` that `fun` names (data, batches), picked
        as Optax's line searches pick those of `value_fn`.
    - `sample_params`: parameters of the shape and structure to be optimised (any
        PyTree of float arrays, or `jax.ShapeDtypeStruct`s; for an
        `equinox.Module`, the arrays selected by `eqx.partition`). Only shapes and
        dtypes are used, to detect the Hessian's sparsity pattern once.
    - `damping`: the λ of the first step (adaptive; default 1.0) or the fixed λ
        (default 0.0 with a line search).
    - `adaptive_damping`: adapt λ from the actual and predicted decrease (needs
        `value_fn`); the default unless `linesearch` is given.
    - `linesearch`: an Optax line search to chain after the step, such as
        `optax.scale_by_zoom_linesearch(max_linesearch_steps=20)` or
        `optax.scale_by_backtracking_linesearch(max_backtracking_steps=20)`.
    - `linear_solver`: the solver of the Newton systems; by default
        [`asdex.SparseLinearSolver`][] (sparse Cholesky when `tags` declare a
        positive semidefinite Hessian, else sparse LU).
    - `tags`: Lineax tags of the Hessian, such as `lineax.positive_semidefinite_tag`
        for a convex `fun`. They are trusted, not checked.
    - `coloring`: an [`asdex.ColoredPattern`][] of the Hessian, from
        `asdex.hessian_coloring(fun, sample_params, **sample_kwargs)`, to reuse;
        `None` detects and colors it now.
    - `max_trials`: the most solves per adaptive update; if none of them decreases
        the objective, the update is zero and the next one starts from the larger λ.
    - `**sample_kwargs`: samples of the extra arguments that `fun` takes (arrays or
        `jax.ShapeDtypeStruct`s), for the detection.

    **Returns:**

    An `optax.GradientTransformationExtraArgs`. Its `update(updates, state, params,
    *, value=None, value_fn=None, **extra_args)` needs `params`; `value_fn` (and
    optionally `value`, the objective at `params`) when the damping adapts. The
    state is a [`asdex.optax.SparseNewtonState`][].

    !!! Example

        ```python
        opt = asdex.optax.sparse_newton(f, params)
        state = opt.init(params)
        for _ in range(20):
            value, grad = jax.value_and_grad(f)(params)
            updates, state = opt.update(
                grad, state, params, value=value, value_fn=f
            )
            params = optax.apply_updates(params, updates)
        ```
    """
    if not callable(fun):
        raise TypeError(
            f"`{_CALLER}(fun=...)` must be the objective `fun(params, **kwargs) -> "
            f"scalar`, got {type(fun).__name__}."
        )
    options = resolve_options(
        damping, adaptive_damping, linesearch, max_trials, linear_solver, _CALLER
    )
    struct = sample_structure(sample_params, _CALLER)
    check_sample_kwargs(fun, sample_kwargs, _CALLER, "fun")
    _check_scalar(fun, struct, sample_kwargs)
    if coloring is None:
        from .._colorings import hessian_coloring

        coloring = hessian_coloring(lambda p, kw: fun(p, **kw), struct, sample_kwargs)
    comp = as_compression(coloring, _CALLER, hessian=True)
    n = sum(leaf.size for leaf in jtu.tree_leaves(struct))
    if comp.coloring.shape != (n, n):
        raise ValueError(
            f"`{_CALLER}(coloring=...)` is of a {comp.coloring.shape[0]}×"
            f"{comp.coloring.shape[1]} Hessian, but `sample_params` has {n} "
            "entries. Build it with `asdex.hessian_coloring(fun, sample_params)`."
        )
    tags = frozenset(tags) if isinstance(tags, Iterable) else frozenset([tags])

    step = ft.partial(_update, fun, tags, options)
    return make_transform(_CALLER, fun, struct, comp, options, linesearch, step)
