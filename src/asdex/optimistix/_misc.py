"""Helpers shared by the sparse Optimistix solvers."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, PyTree, Scalar

from .._colored import ColoredPattern, DenseColoringWarning, check_coloring
from ..ad._layout import Structure, check_coloring_samples
from ..coloring import color_hessian, color_jacobian
from ..detection import hessian_sparsity, jacobian_sparsity
from ..lineax._derivative_operators import (
    Compression,
    compression,
)
from ..lineax._pattern_data import pattern_data
from ..lineax._solver import SparseLinearSolver

# The default `linear_solver=` of the solvers (a module is immutable, so one
# instance serves them all).
DEFAULT_LINEAR_SOLVER = SparseLinearSolver()

_SYMMETRIC_TAGS = frozenset(
    [lx.symmetric_tag, lx.positive_semidefinite_tag, lx.negative_semidefinite_tag]
)


def cauchy_termination(
    rtol: float,
    atol: float,
    norm: Callable[[PyTree], Scalar],
    y: PyTree[Array],
    y_diff: PyTree[Array],
    f: PyTree[Array],
    f_diff: PyTree[Array],
) -> Bool[Array, ""]:
    """Optimistix's test: small steps in both `y` and `f`, relative to `atol + rtol |·|`."""
    y_scale = jtu.tree_map(lambda a: atol + rtol * jnp.abs(a), y)
    f_scale = jtu.tree_map(lambda a: atol + rtol * jnp.abs(a), f)
    y_small = norm(jtu.tree_map(lambda d, s: jnp.abs(d) / s, y_diff, y_scale)) < 1
    f_small = norm(jtu.tree_map(lambda d, s: jnp.abs(d) / s, f_diff, f_scale)) < 1
    return y_small & f_small


def tree_zeros_like(tree: PyTree) -> PyTree:
    return jtu.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), tree)


def tree_where(pred: Bool[Array, ""], true: PyTree, false: PyTree) -> PyTree:
    return jtu.tree_map(lambda a, b: jnp.where(pred, a, b), true, false)


def as_compression(coloring: ColoredPattern | None, caller: str, *, hessian: bool):
    """The solver's `Compression` of a user-given coloring (or None)."""
    if coloring is None:
        return None
    check_coloring(coloring, caller, hessian=hessian)
    return compression(coloring)


def _symmetric(tags: frozenset[object]) -> bool:
    return bool(frozenset(tags) & _SYMMETRIC_TAGS)


def jac_option(options: dict, caller: str) -> str:
    """Optimistix's `options["jac"]`: `"fwd"` (the default) or `"bwd"`."""
    jac = options.get("jac", "fwd")
    if jac not in ("fwd", "bwd"):
        raise ValueError(
            f"`{caller}`: `options['jac']` must be 'fwd' or 'bwd' (as in "
            f"Optimistix), got {jac!r}."
        )
    return jac


def forward_mode_works(fn: Callable, y: PyTree[Array], args: PyTree) -> bool:
    """Whether `fn(y, args)[0]` can be differentiated by JVPs.

    A `jax.custom_vjp` function traces under `jax.jvp` into a `custom_lin`
    equation, which fails only when it is evaluated or batched. So the JVP's jaxpr
    is traced (abstractly, nothing is computed) and searched for one.
    """
    jaxpr = jax.make_jaxpr(lambda y: jax.jvp(lambda y: fn(y, args)[0], (y,), (y,)))(y)
    return not _has_primitive(jaxpr.jaxpr, "custom_lin")


def _has_primitive(jaxpr, name: str) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            return True
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns") and _has_primitive(inner, name):
                    return True
    return False


def jacobian_compression(
    given: Compression | None,
    fn: Callable,
    y: PyTree[Array],
    args: PyTree,
    tags: frozenset[object],
    caller: str,
    jac: str = "fwd",
) -> Compression:
    """The compression of `fn`'s Jacobian at `y`: the given one, checked, or a new one.

    `fn(y, args)` returns `(out, aux)`, as Optimistix passes it to its solvers. A new
    coloring is detected and colored now (once per trace); with symmetric tags the
    symmetrised pattern is colored, so that the operator can carry the tags.

    `jac="bwd"` (Optimistix's `options["jac"]`), or a residual that forward mode
    cannot differentiate (a `jax.custom_vjp`), gives a row coloring: the Jacobian
    is then computed with VJPs only. A given coloring that needs JVPs is recolored
    by rows from its own pattern.
    """
    n = Structure.of_tree(y).size
    out_struct = jax.eval_shape(lambda: fn(y, args)[0])
    m = Structure.of(out_struct).size
    reverse_only = jac == "bwd" or not forward_mode_works(fn, y, args)
    if given is None:
        pattern = jacobian_sparsity(lambda y, args: fn(y, args)[0], y, args)
        if _symmetric(tags):
            pattern = pattern | pattern.T
        mode = "rev" if reverse_only else None
        coloring = ColoredPattern(color_jacobian(pattern, mode))
        _warn_if_indices_traced(coloring, fn, args, caller)
        return compression(coloring)
    check_coloring(given.coloring, caller, hessian=False, shape=(m, n))
    check_coloring_samples(given.coloring, (y, args), caller)
    if reverse_only and given.coloring.num_jvps:
        given = compression(
            ColoredPattern(color_jacobian(given.coloring.pattern, "rev"))
        )
    if _symmetric(tags) and not pattern_data(given.pattern).is_symmetric_pattern:
        raise ValueError(
            f"`{caller}`: the problem's `tags` declare a symmetric Jacobian, but the "
            "pattern of `coloring=` is not symmetric. Color the symmetrised pattern, "
            "`asdex.ColoredPattern(asdex.coloring.color_jacobian(pattern | "
            "pattern.T))`, or drop the tags."
        )
    return given


def _traced_integer_leaves(tree: PyTree) -> int:
    return sum(
        isinstance(leaf, jax.core.Tracer) and jnp.issubdtype(leaf.dtype, jnp.integer)
        for leaf in jtu.tree_leaves(tree)
    )


def _warn_if_indices_traced(
    coloring: ColoredPattern, fn: Callable, args: PyTree, caller: str
) -> None:
    """Say why a pattern detected inside Optimistix's trace may be dense, and the fix.

    `optx.least_squares` and `optx.root_find` closure-convert the residual inside
    their `jit`, and pass its constants (and `args`) through their loop as traced
    values: index arrays such as `src` in `y[src]` reach detection without their
    values, so each gathered entry may depend on any entry of `y`.
    """
    m, n = coloring.shape
    traced = _traced_integer_leaves((fn, args))
    if traced and coloring.num_colors > max(1, min(m, n) // 2):
        warnings.warn(
            f"`{caller}`: the Jacobian pattern detected inside the solve is nearly "
            f"dense ({coloring.num_colors} colors for {m}×{n}). The residual "
            f"closes over or takes {traced} integer array(s) (index arrays, such "
            "as `src` in `y[src]`) that Optimistix passes as traced values, so "
            "their values, and the sparsity they give, are unknown there. Detect "
            "the coloring before the solve and pass it: `coloring="
            "asdex.jacobian_coloring(lambda y: fn(y, args), y0)`.",
            DenseColoringWarning,
            stacklevel=3,
        )


def hessian_compression(
    given: Compression | None,
    fn: Callable,
    y: PyTree[Array],
    args: PyTree,
    caller: str,
) -> Compression:
    """The compression of the Hessian of the scalar `fn(y, args)[0]` at `y`."""
    n = Structure.of_tree(y).size
    if given is None:
        pattern = hessian_sparsity(lambda y, args: fn(y, args)[0], y, args)
        return compression(ColoredPattern(color_hessian(pattern)))
    check_coloring(given.coloring, caller, hessian=True, shape=(n, n))
    check_coloring_samples(given.coloring, (y, args), caller)
    return given


def finish_step(
    solver, state, y, accept, accepted: Callable, step_size, search_state, search_result
):
    """The end of a search-and-descend step, shared by the sparse solvers.

    As in Optimistix's own least-squares and minimisation solvers: `accepted` (the
    step's update when the search accepts `state.y_eval`) or keep `y`; then take
    the descent step from there. `state` is any of the solvers' states, which
    share their fields. Returns `(y, new_state, aux)` for `step`.
    """

    def rejected(descent_state):
        return y, state.f_info, state.aux, descent_state, jnp.array(False)

    y, f_info, aux, descent_state, terminate = jax.lax.cond(
        accept, accepted, rejected, state.descent_state
    )
    y_descent, descent_result = solver.descent.step(step_size, descent_state)
    y_eval = jtu.tree_map(lambda a, b: a + b, y, y_descent)
    result = optx.RESULTS.where(
        search_result == optx.RESULTS.successful, descent_result, search_result
    )
    prev_aux = tree_where(state.first_step, aux, state.aux)
    new_state = type(state)(
        first_step=jnp.array(False),
        y_eval=y_eval,
        search_state=search_state,
        compression=state.compression,
        f_info=f_info,
        aux=aux,
        descent_state=descent_state,
        terminate=terminate,
        result=result,
        num_steps=state.num_steps + 1,
        num_accepted_steps=state.num_accepted_steps + jnp.where(accept, 1, 0),
    )
    return y, new_state, prev_aux
