"""The parts shared by the sparse Optax transforms: arguments, checks, state, steps.

Both transforms compute a sparse second derivative at the current parameters (the
Hessian, or the Jacobian of the residuals) and solve one damped system with it.
The systems and their solves are those of the dedicated Optimistix solvers: the
damped step is [`asdex.optimistix.SparseDampedNewtonDescent`][], the undamped one
`optimistix.NewtonDescent` with asdex's linear solver, and the adaptive damping is
decided by [`asdex.optimistix.NewtonTrustRegion`][], whose step size is `1/λ`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optax
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PyTree

from ..lineax._derivative_operators import Compression, compression
from ..optimistix._least_squares import SparseDampedNewtonDescent
from ..optimistix._minimiser import NewtonTrustRegion, _TrustRegionState

FunctionInfo = optx.FunctionInfo

# The extra arguments that Optax's line searches read themselves; they never reach
# the objective.
_RESERVED = frozenset(["value", "grad", "value_fn"])


class SparseNewtonInfo(NamedTuple):
    """What the last update did.

    - `used_damping`: the damping λ of the returned step.
    - `num_solves`: the sparse linear solves it took (one per trial damping).
    - `accepted`: whether a step was taken; with adaptive damping, `False` means that
      no trial decreased the objective in `max_trials`, and the update is zero.
    - `solve_succeeded`: whether the linear solve of the returned step succeeded.
    """

    used_damping: Float[Array, ""]
    num_solves: Int[Array, ""]
    accepted: Bool[Array, ""]
    solve_succeeded: Bool[Array, ""]


class SparseNewtonState(NamedTuple):
    """The state of [`asdex.optax.sparse_newton`][] and
    [`asdex.optax.sparse_gauss_newton`][].

    A PyTree of arrays, so it can be checkpointed (for example with
    `equinox.tree_serialise_leaves`) and carried through `jax.lax.while_loop`.

    - `damping`: the damping λ that the next update tries first.
    - `count`: the number of updates so far.
    - `info`: a [`asdex.optax.SparseNewtonInfo`][] about the last update.
    - `compression`: the index arrays of the coloring (an
      [`asdex.lineax.Compression`][]). They live in the state, not in the
      transform, so that a jitted step receives them as arguments instead of
      compiling them in as constants.
    """

    damping: Float[Array, ""]
    count: Int[Array, ""]
    info: SparseNewtonInfo
    compression: Compression


def kwargs_for(fn: Callable, extra_args: dict[str, Any]) -> dict[str, Any]:
    """The extra arguments that `fn` accepts, picked by name as Optax's line searches
    pick those of `value_fn` (all of them when `fn` takes `**kwargs`)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature (some builtins): pass everything
        return {k: v for k, v in extra_args.items() if k not in _RESERVED}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {k: v for k, v in extra_args.items() if k not in _RESERVED}
    return {
        k: v for k, v in extra_args.items() if k in parameters and k not in _RESERVED
    }


def check_sample_kwargs(
    fn: Callable, sample_kwargs: dict[str, Any], caller: str, name: str
) -> None:
    """Refuse sample keyword arguments that `fn` would never receive (typos)."""
    unused = set(sample_kwargs) - set(kwargs_for(fn, sample_kwargs))
    if unused:
        raise TypeError(
            f"`{caller}` got the sample keyword argument(s) {sorted(unused)}, which "
            f"`{name}` does not accept. Keyword arguments after `sample_params` are "
            f"samples of the extra arguments that Optax passes on to `{name}` (data, "
            "batches); check their names against its signature."
        )


def _describe(leaf) -> str:
    return type(leaf).__name__


def sample_structure(sample_params: PyTree, caller: str) -> PyTree:
    """The shapes and dtypes of `sample_params`, refusing non-float leaves."""

    def struct(leaf):
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            if isinstance(leaf, float):
                leaf = jnp.asarray(leaf)
            else:
                raise TypeError(
                    f"`{caller}(sample_params=...)` must be a PyTree of floating-point "
                    f"arrays, but has a leaf of type {_describe(leaf)}. For an "
                    "`equinox.Module`, optimise only its arrays: "
                    "`params, static = eqx.partition(model, eqx.is_inexact_array)`."
                )
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"`{caller}(sample_params=...)` has a leaf of dtype {leaf.dtype}; "
                "Newton steps need real floating-point parameters. Cast it with "
                "`.astype(jnp.float64)` (or float32), or keep integer leaves out of "
                "the parameters (`eqx.partition(model, eqx.is_inexact_array)`)."
            )
        return jax.ShapeDtypeStruct(jnp.shape(leaf), leaf.dtype)

    return jtu.tree_map(struct, sample_params)


def check_params(params: PyTree, struct: PyTree, caller: str, argument: str) -> None:
    """Refuse `params` (or `updates`) whose PyTree or shapes differ from the sample's."""
    if params is None:
        raise ValueError(
            f"`{caller}` needs `{argument}`: call "
            "`update(updates, state, params, ...)` with the gradient as `updates` "
            "and the current parameters as `params`."
        )
    got, want = jtu.tree_structure(params), jtu.tree_structure(struct)
    if got != want:
        raise ValueError(
            f"`{caller}`: `{argument}` has the PyTree structure {got}, but the "
            f"transform was built for `sample_params` of structure {want}. The "
            "sparsity pattern belongs to that structure: pass parameters of the same "
            "structure, or build the transform again with new `sample_params`."
        )
    for path, leaf, sample in zip(
        jtu.tree_flatten_with_path(params)[0],
        jtu.tree_leaves(params),
        jtu.tree_leaves(struct),
        strict=True,
    ):
        where = jtu.keystr(path[0])
        if jnp.shape(leaf) != sample.shape:
            raise ValueError(
                f"`{caller}`: `{argument}{where}` has shape {jnp.shape(leaf)}, but "
                f"`sample_params{where}` had shape {sample.shape}. Build the "
                "transform again with `sample_params` of the new shapes."
            )
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(
                f"`{caller}`: `{argument}{where}` has dtype {jnp.result_type(leaf)}; "
                "Newton steps need real floating-point parameters. Cast it with "
                "`.astype(...)` to the dtype of `sample_params`."
            )


def params_dtype(struct: PyTree):
    leaves = jtu.tree_leaves(struct)
    if not leaves:
        return jnp.result_type(float)
    return jnp.result_type(*(leaf.dtype for leaf in leaves))


def _tree_add(a: PyTree, b: PyTree) -> PyTree:
    return jtu.tree_map(lambda x, y: x + y.astype(x.dtype), a, b)


def _zeros_like(tree: PyTree) -> PyTree:
    return jtu.tree_map(jnp.zeros_like, tree)


def initial_state(damping: float, dtype, comp: Compression) -> SparseNewtonState:
    lam = jnp.asarray(damping, dtype)
    return SparseNewtonState(
        damping=lam,
        count=jnp.zeros((), jnp.int32),
        info=SparseNewtonInfo(
            used_damping=lam,
            num_solves=jnp.zeros((), jnp.int32),
            accepted=jnp.array(False),
            solve_succeeded=jnp.array(True),
        ),
        compression=comp,
    )


def _damping_bounds(dtype) -> tuple[float, float]:
    # λ and the trust region's step size 1/λ both stay finite and nonzero, so that
    # growing or shrinking either never gets stuck at 0 or ∞.
    tiny = float(jnp.finfo(dtype).tiny) ** 0.5
    return tiny, 1 / tiny


def fixed_step(
    descent_info,
    params: PyTree,
    damping: Array,
    linear_solver: lx.AbstractLinearSolver,
    undamped: bool,
):
    """`-(H + λI)⁻¹ g` for a fixed λ (or `-H⁻¹ g`, or the Gauss–Newton step)."""
    if undamped:
        descent = optx.NewtonDescent(linear_solver=linear_solver)
        step_size = jnp.ones((), damping.dtype)
    else:
        descent = SparseDampedNewtonDescent(linear_solver=linear_solver)
        step_size = 1 / damping
    descent_state = descent.query(params, descent_info, None)
    step, result = descent.step(step_size, descent_state)
    return step, result == optx.RESULTS.successful


def adaptive_step(
    descent_info,
    search_info: FunctionInfo.EvalGradHessian,
    params: PyTree,
    damping: Array,
    linear_solver: lx.AbstractLinearSolver,
    value_fn: Callable,
    value_fn_kwargs: dict[str, Any],
    max_trials: int,
):
    r"""The Levenberg–Marquardt step: retry with a larger λ until the objective falls.

    Each trial solves $(H + \lambda I)\,\delta = -g$ and evaluates `value_fn` at
    `params + δ`; the trust-region test compares the actual decrease with the
    model's $g^\top\delta + \tfrac12 \delta^\top H \delta$ and accepts the step or
    multiplies λ by 4 (`NewtonTrustRegion`'s `1/low_constant`). The Hessian is
    computed once per update; a retry costs one solve and one function value.
    Returns `(step, accepted, used_damping, next_damping, num_solves, solved)`.
    """
    dtype = damping.dtype
    low, high = _damping_bounds(dtype)
    descent = SparseDampedNewtonDescent(linear_solver=linear_solver)
    descent_state = descent.query(params, descent_info, None)
    search = NewtonTrustRegion()
    f = search_info.as_min()

    def trial(carry):
        lam, _, _, _, _, count, _ = carry
        step, result = descent.step(1 / lam, descent_state)
        solved = result == optx.RESULTS.successful
        f_trial = jnp.asarray(
            value_fn(_tree_add(params, step), **value_fn_kwargs)
        ).astype(f.dtype)
        new_step_size, accept, _, _ = search.step(
            jnp.array(False),
            params,
            _tree_add(params, step),
            search_info,
            FunctionInfo.Eval(f_trial),
            _TrustRegionState(1 / lam),
        )
        # At a stationary point the step is zero and so is the predicted decrease,
        # which the trust region would reject for ever: take the zero step and keep λ.
        stationary = jnp.all(
            jnp.stack([jnp.all(leaf == 0) for leaf in jtu.tree_leaves(step)] or [True])
        )
        accept = (accept | stationary) & solved & jnp.isfinite(f_trial)
        next_lam = jnp.clip((1 / new_step_size).astype(dtype), low, high)
        next_lam = jnp.where(stationary, lam, next_lam)
        return next_lam, accept, step, lam, solved, count + 1, next_lam

    def pending(carry):
        _, accept, _, _, _, count, _ = carry
        return jnp.invert(accept) & (count < max_trials)

    init = (
        damping,
        jnp.array(False),
        _zeros_like(params),
        damping,
        jnp.array(True),
        jnp.zeros((), jnp.int32),
        damping,
    )
    _, accept, step, used, solved, count, next_lam = jax.lax.while_loop(
        pending, trial, init
    )
    step = jtu.tree_map(lambda s: jnp.where(accept, s, jnp.zeros_like(s)), step)
    return step, accept, used, next_lam, count, solved


def check_value_fn(value_fn, caller: str) -> None:
    if value_fn is None:
        raise ValueError(
            f"`{caller}` adapts its damping from the decrease of the objective, so "
            "`update` needs the keyword argument `value_fn` (the objective, as "
            "`optax.lbfgs` and the line searches take it): call "
            "`update(grad, state, params, value=value, value_fn=fun)`. For a fixed "
            "damping without `value_fn`, build the transform with "
            "`adaptive_damping=False`."
        )
    if not callable(value_fn):
        raise TypeError(
            f"`{caller}`: `update(value_fn=...)` must be the objective function, got "
            f"{type(value_fn).__name__}."
        )


class StepOptions(NamedTuple):
    """How both transforms step, resolved once when the transform is built."""

    damping: float
    adaptive: bool
    linear_solver: lx.AbstractLinearSolver | None
    max_trials: int


def resolve_options(
    damping: float | None,
    adaptive_damping: bool | None,
    linesearch,
    max_trials: int,
    linear_solver: lx.AbstractLinearSolver | None,
    caller: str,
) -> StepOptions:
    """The damping and adaptivity the user asked for, with the defaults filled in
    (the linear solver's is the transform's own, so `None` stays).

    Alone, the transform adapts λ (starting at 1); with a line search it takes the
    undamped step (λ = 0), which the line search then scales.
    """
    if adaptive_damping is None:
        adaptive_damping = linesearch is None
    if damping is None:
        damping = 1.0 if adaptive_damping else 0.0
    if adaptive_damping and linesearch is not None:
        raise ValueError(
            f"`{caller}(linesearch=...)` and `adaptive_damping=True` both decide the "
            "step length. With a line search, pass `adaptive_damping=False` (and "
            "`damping=0.0`, the default then, for the Newton step itself)."
        )
    if not isinstance(damping, (int, float)) or damping < 0:
        raise ValueError(f"`{caller}(damping={damping!r})` must be a float λ ≥ 0.")
    if adaptive_damping and damping == 0:
        raise ValueError(
            f"`{caller}(damping=0.0)` cannot adapt: it is multiplied on rejection. "
            "Start from a positive λ (the default, 1.0), or pass "
            "`adaptive_damping=False` for fixed λ = 0."
        )
    if not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"`{caller}(max_trials={max_trials!r})` must be an int ≥ 1.")
    if linesearch is not None and not isinstance(
        linesearch,
        (optax.GradientTransformation, optax.GradientTransformationExtraArgs),
    ):
        raise TypeError(
            f"`{caller}(linesearch=...)` must be an Optax transform such as "
            "`optax.scale_by_zoom_linesearch(max_linesearch_steps=20)`, got "
            f"{type(linesearch).__name__}."
        )
    return StepOptions(
        float(damping), bool(adaptive_damping), linear_solver, max_trials
    )


def damped_update(
    descent_info,
    search_info,
    params: PyTree,
    state: SparseNewtonState,
    options: StepOptions,
    value_fn,
    value_kw,
):
    """The update and next state of both transforms: an adaptive step (trial
    dampings judged on `search_info`'s model) or one step at the fixed damping."""
    lam = state.damping
    if options.adaptive:
        step, accepted, used, next_lam, solves, solved = adaptive_step(
            descent_info,
            search_info,
            params,
            lam,
            options.linear_solver,
            value_fn,
            value_kw,
            options.max_trials,
        )
    else:
        step, solved = fixed_step(
            descent_info, params, lam, options.linear_solver, options.damping == 0
        )
        accepted, used, next_lam = jnp.array(True), lam, lam
        solves = jnp.ones((), jnp.int32)
    info = SparseNewtonInfo(used, solves, accepted, solved)
    return step, SparseNewtonState(next_lam, state.count + 1, info, state.compression)


def chain_linesearch(transform, linesearch):
    """`transform` followed by the line search, as `optax.lbfgs` chains its own."""
    if linesearch is None:
        return transform
    return optax.chain(transform, linesearch)


def make_transform(
    caller: str,
    fn: Callable,
    struct: PyTree,
    comp: Compression,
    options: StepOptions,
    linesearch,
    step: Callable,
):
    """The Optax transform of both `sparse_newton` and `sparse_gauss_newton`.

    It checks `params` and `updates` against `struct`, splits Optax's extra
    arguments between `fn` and `value_fn`, and calls
    `step(state, params, value, value_fn, fn_kwargs, value_fn_kwargs)`.
    """

    def init_fn(params):
        check_params(params, struct, caller, "params")
        return initial_state(
            options.damping, params_dtype(params), compression(comp.coloring)
        )

    def update_fn(updates, state, params=None, *, value=None, value_fn=None, **extra):
        check_params(params, struct, caller, "params")
        check_params(updates, struct, caller, "updates")
        if options.adaptive:
            check_value_fn(value_fn, caller)
            value_kw = kwargs_for(value_fn, extra)
        else:
            value_fn = value_kw = None
        if value is not None:
            # An array, not a static Python float that would recompile every step.
            value = jnp.asarray(value)
        return step(state, params, value, value_fn, kwargs_for(fn, extra), value_kw)

    transform = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    return chain_linesearch(transform, linesearch)
