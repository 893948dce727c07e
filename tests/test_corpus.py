"""The corpus of `tests/corpus.py`, solved sparsely and compared with the dense default.

Every problem runs through every stock Optimistix solver that applies to its kind,
given `linear_solver=asdex.SparseLinearSolver()`, and through the matching
dedicated asdex solver. Each run is compared with the same stock solver left at its
dense default (the dedicated solvers with their stock counterpart) on:

- the result code (`sol.result`);
- the solution (on its identifiable part, see `corpus.Problem`);
- for the dedicated solvers, the gradient of a scalar function of the solution with
  respect to `args` through `optx.ImplicitAdjoint`, against the implicit function
  theorem evaluated densely in numpy at the dense solution (a minimum-norm solve,
  so that it is defined for rank-deficient fits too).

Every solve is traced inside `jax.jit`. Variants: float64, float32, strict dtype
promotion, and the dedicated solvers under the default (dense) `ImplicitAdjoint()`.

Failures that today's code is known to have are listed in `KNOWN_FAILURES`, each
with the section of issue 11 that fixes it: they run as `xfail(strict=True)`, so
a fix makes them pass loudly and the entry must then be deleted. Differences that
are meant to stay are in `DELIBERATE_DIFFERENCES`, with the reason.

The default suite runs a slice (see `_is_default`): every problem through the
first stock and the first dedicated solver of its kind in float64, every solver on
one showcase problem, and the other variants on a few cases. `-m slow` runs all
combinations.
"""

from __future__ import annotations

import contextlib
import functools as ft
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from jax.flatten_util import ravel_pytree

import asdex
import asdex.optimistix as aox
import corpus
import jitted

# ---------------------------------------------------------------- solvers

# The stock solvers that accept `linear_solver=`. Minimisation has no stock
# minimiser that takes one (BFGS keeps its own dense approximation), so the stock
# route for a minimisation is Newton's method on the gradient: `root_find` of
# `jax.grad(fn)`, whose Jacobian is the Hessian.
STOCK = {
    "root": ("Newton", "Chord"),
    "fixed_point": ("Newton", "Chord"),
    "least_squares": (
        "GaussNewton",
        "LevenbergMarquardt",
        "IndirectLevenbergMarquardt",
        "Dogleg",
    ),
    "minimise": ("Newton",),
}
DEDICATED = {
    "root": ("SparseNewton",),
    "fixed_point": ("SparseNewton",),
    "least_squares": ("SparseLevenbergMarquardt", "SparseGaussNewton"),
    "minimise": ("SparseNewtonMinimiser",),
}
# The dense solver each dedicated asdex solver is compared with.
COUNTERPART = {
    "SparseNewton": "Newton",
    "SparseGaussNewton": "GaussNewton",
    "SparseLevenbergMarquardt": "LevenbergMarquardt",
    "SparseNewtonMinimiser": "Newton",
}


class Variant(NamedTuple):
    dtype: type
    strict: bool
    default_adjoint: bool  # the dense `ImplicitAdjoint()` rather than a sparse one


VARIANTS = {
    "float64": Variant(jnp.float64, False, False),
    "float32": Variant(jnp.float32, False, False),
    "strict": Variant(jnp.float64, True, False),
    "strict_float32": Variant(jnp.float32, True, False),
    "default_adjoint": Variant(jnp.float64, False, True),
}


def _tolerances(dtype):
    """(solver rtol/atol, comparison tolerance of solutions, of gradients)."""
    if dtype == jnp.float64:
        return 1e-10, 1e-6, 1e-5
    return 1e-5, 5e-3, 5e-2


def make_solver(name: str, dtype, linear_solver: lx.AbstractLinearSolver | None):
    """Solver `name` at the tolerance of `dtype`; stock solvers get `linear_solver`
    if one is given and keep their own default otherwise."""
    tol, _, _ = _tolerances(dtype)
    if name in COUNTERPART:
        return getattr(aox, name)(tol, tol)
    kwargs = {} if linear_solver is None else {"linear_solver": linear_solver}
    return getattr(optx, name)(tol, tol, **kwargs)


# ---------------------------------------------------------------- expectations


class Difference(NamedTuple):
    reason: str
    # The dense oracle is the stock solver with this linear solver instead of its
    # default (`None`: no change).
    oracle_linear_solver: lx.AbstractLinearSolver | None = None
    # The combination is not run at all: there is nothing to compare.
    skip: bool = False
    # The gradient through the solve is compared (the solve itself always is).
    gradient: bool = True
    # The linear solver of asdex's `ImplicitAdjoint` (`None`: `SparseLinearSolver()`).
    adjoint_linear_solver: lx.AbstractLinearSolver | None = None


# Keyed by (problem, solver, variant); "*" matches any.
DELIBERATE_DIFFERENCES = {
    ("rank_deficient_fit", "*", "default_adjoint"): Difference(
        "The default `ImplicitAdjoint()` solves with `AutoLinearSolver("
        "well_posed=None)`, which needs a nonsingular Hessian; at a rank-deficient "
        "fit it fails in stock Optimistix too, whatever the forward solver. Users "
        "pass `ImplicitAdjoint(linear_solver=asdex.SparseLinearSolver())` or "
        "`AutoLinearSolver(well_posed=False)`; the sparse adjoint is covered by the "
        "other variants.",
        skip=True,
    ),
    ("custom_vjp_fit", "*", "*"): Difference(
        "Optimistix's `ImplicitAdjoint` differentiates the optimality condition "
        "`jax.grad(½‖r‖²)` in forward mode (`jax.jvp` in `implicit_jvp`), which "
        "JAX refuses through a `custom_vjp` residual: a gradient through the solve "
        "fails in stock Optimistix with any solver and any adjoint linear solver "
        '("can\'t apply forward-mode autodiff (jvp) to a custom_vjp function"). '
        "The solve itself is compared.",
        gradient=False,
    ),
    ("rank_deficient_fit", "*", "*"): Difference(
        "Dense default: `AutoLinearSolver(well_posed=None)` assumes full rank, so "
        "Gauss-Newton, Dogleg and the dense ImplicitAdjoint stop with `singular` "
        "on a fit whose parameters are not all determined. asdex's least-squares "
        "path takes a minimum-norm (or regularised) step instead (issue 11 §5), so "
        "the oracle is the stock solver with `AutoLinearSolver(well_posed=False)`. "
        "The Hessian at the fit is singular too, so the gradient goes through "
        "`sparse_adjoint(well_posed=False)`, as the least-squares how-to says.",
        lx.AutoLinearSolver(well_posed=False),
        adjoint_linear_solver=asdex.SparseLinearSolver(well_posed=False),
    ),
}

# Keyed by (problem, solver, variant); "*" matches any: combinations known to fail,
# run as `xfail(strict=True)`, so that a fix fails the suite until its entry goes.
# Empty since 2026-12-07: every combination (`-m "slow or not slow"`) agrees with
# the dense default or differs deliberately (`DELIBERATE_DIFFERENCES`).
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


def _lookup(table, *key):
    for candidate in (
        key,
        *(
            tuple("*" if i == j else k for j, k in enumerate(key))
            for i in range(len(key))
        ),
        *(
            tuple(k if i == j else "*" for j, k in enumerate(key))
            for i in range(len(key))
        ),
        ("*",) * len(key),
    ):
        if candidate in table:
            return table[candidate]
    return None


def _oracle_linear_solver(problem: str, solver: str):
    difference = _lookup(DELIBERATE_DIFFERENCES, problem, solver, "*")
    return None if difference is None else difference.oracle_linear_solver


# ---------------------------------------------------------------- running


@contextlib.contextmanager
def variant_context(variant: Variant):
    """Strict promotion where asked for; float32 runs with 64-bit types disabled,
    as float32 users run. (With x64 enabled, stock `optx.LevenbergMarquardt`,
    `IndirectLevenbergMarquardt` and `Dogleg` themselves fail on float32 `y`,
    mixing in float64 scalars: Optimistix's problem, not ours.)"""
    with contextlib.ExitStack() as stack:
        if variant.dtype == jnp.float32:
            stack.enter_context(jax.enable_x64(False))
        if variant.strict:
            stack.enter_context(jax.numpy_dtype_promotion("strict"))
        yield


def _solve(problem: corpus.Problem, solver, adjoint, args):
    """Solve `problem` at `args`; returns (target(y*), (y*, result))."""
    kwargs = dict(
        args=args,
        options=problem.options,
        adjoint=adjoint,
        throw=False,
        max_steps=256,
    )
    if problem.kind == "root":
        sol = optx.root_find(problem.fn, solver, problem.y0, **kwargs)
    elif problem.kind == "fixed_point":
        sol = optx.fixed_point(problem.fn, solver, problem.y0, **kwargs)
    elif problem.kind == "least_squares":
        sol = optx.least_squares(problem.fn, solver, problem.y0, **kwargs)
    elif isinstance(solver, optx.AbstractRootFinder):
        sol = optx.root_find(jax.grad(problem.fn), solver, problem.y0, **kwargs)
    else:
        sol = optx.minimise(problem.fn, solver, problem.y0, **kwargs)
    return problem.target(sol.value), (sol.value, sol.result)


def run(problem: corpus.Problem, solver, adjoint, gradient: bool):
    """`(y*, result, gradient or None)`, the whole solve traced in one `jax.jit`."""
    if gradient:
        fn = jax.value_and_grad(
            ft.partial(_solve, problem, solver, adjoint), has_aux=True
        )
        (_, (value, result)), grad = jax.jit(fn)(problem.args)
    else:
        _, (value, result) = jax.jit(ft.partial(_solve, problem, solver, adjoint))(
            problem.args
        )
        grad = None
    return value, result, grad


_RESULT_NAMES = (
    "successful",
    "max_steps_reached",
    "nonlinear_max_steps_reached",
    "nonlinear_divergence",
    "singular",
    "breakdown",
    "stagnation",
)


def result_name(result) -> str:
    for name in _RESULT_NAMES:
        item = getattr(optx.RESULTS, name, None)
        if item is not None and bool(result == item):
            return name
    return "other: " + optx.RESULTS[result].splitlines()[0]


@ft.cache
def dense_oracle(problem_name: str, solver_name: str, dtype):
    """The dense default's solve: `(identifiable y*, result name, y*)`."""
    with variant_context(Variant(dtype, strict=False, default_adjoint=False)):
        problem = corpus.make(problem_name, dtype)
        solver = make_solver(
            solver_name, dtype, _oracle_linear_solver(problem_name, solver_name)
        )
        value, result, _ = run(problem, solver, optx.ImplicitAdjoint(), gradient=False)
        return problem.identifiable(value), result_name(result), value


def _stationarity(problem: corpus.Problem):
    """The condition F(y, args) = 0 that Optimistix's `ImplicitAdjoint`
    differentiates for this kind of problem."""
    fn = problem.fn
    if problem.kind == "root":
        return fn
    if problem.kind == "fixed_point":
        return lambda y, args: jtu.tree_map(jnp.subtract, y, fn(y, args))
    if problem.kind == "least_squares":
        return jax.grad(
            lambda y, args: (
                0.5 * sum(jnp.sum(r**2) for r in jtu.tree_leaves(fn(y, args)))
            )
        )
    return jax.grad(fn)


def implicit_gradient(problem: corpus.Problem, y):
    """d target(y*(args)) / d args at the solution `y`, by the implicit function
    theorem, densely in float64: −(∂target/∂y) (∂F/∂y)⁺ (∂F/∂args), with a
    minimum-norm pseudo-inverse. Reverse mode throughout, so that `custom_vjp`
    residuals are differentiable."""
    y_flat, unravel_y = ravel_pytree(jtu.tree_map(lambda v: v.astype(float), y))
    a_flat, unravel_a = ravel_pytree(
        jtu.tree_map(lambda v: v.astype(float), problem.args)
    )
    condition = _stationarity(problem)

    def flat_condition(yf, af):
        return ravel_pytree(condition(unravel_y(yf), unravel_a(af)))[0]

    f_y = np.asarray(jitted.jacrev(flat_condition, 0)(y_flat, a_flat))
    f_a = np.asarray(jitted.jacrev(flat_condition, 1)(y_flat, a_flat))
    t_y = np.asarray(jax.grad(lambda yf: problem.target(unravel_y(yf)))(y_flat))
    w = np.linalg.lstsq(f_y.T, t_y, rcond=1e-10)[0]
    gradient = unravel_a(jnp.asarray(-(w @ f_a)))
    return jtu.tree_map(lambda g, a: g.astype(a.dtype), gradient, problem.args)


def assert_tree_close(actual, expected, tol, what):
    actual_leaves, actual_def = jtu.tree_flatten(actual)
    expected_leaves, expected_def = jtu.tree_flatten(expected)
    assert actual_def == expected_def, (
        f"{what}: structure {actual_def} != {expected_def}"
    )
    for a, e in zip(actual_leaves, expected_leaves):
        assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
        np.testing.assert_allclose(
            np.asarray(a, float), np.asarray(e, float), rtol=tol, atol=tol, err_msg=what
        )


# ---------------------------------------------------------------- the matrix


# The default suite keeps within its time budget (each case traces and compiles a
# whole solve, 1-3 s on an idle core, more for the dedicated solvers, whose case
# also differentiates through the solve) by running every problem once through the
# first stock and the first dedicated solver in float64, every other solver on the
# showcase problem of its kind, and the other variants on a few cases only.
# `-m slow` runs the full product.
SHOWCASE = {
    "root": "cos_root",
    "fixed_point": "cos_fixed_point",
    "least_squares": "graph_residual",
    "minimise": "rosenbrock_dict",
}
# The indirect Levenberg-Marquardt solves a scalar root-find inside every step and
# is the slowest to compile; its showcase is the smallest least-squares problem.
SHOWCASE_OVERRIDES = {"IndirectLevenbergMarquardt": "rosenbrock_list"}
# A second instance of a family already in the default suite.
SLOW_PROBLEMS = {"coupled_fixed_point"}
DEFAULT_VARIANT_CASES = {
    ("cos_root", "Newton", "float32"),
    ("cos_root", "SparseNewton", "float32"),
    ("graph_residual", "GaussNewton", "float32"),
    ("cos_root", "Newton", "strict"),
    ("cos_root", "SparseNewton", "strict"),
    ("graph_residual", "GaussNewton", "strict"),
    ("graph_residual", "SparseLevenbergMarquardt", "strict"),
    ("cos_root", "SparseNewton", "default_adjoint"),
}


def _is_default(problem: str, solver: str, variant: str) -> bool:
    if variant != "float64":
        return (problem, solver, variant) in DEFAULT_VARIANT_CASES
    kind = corpus.KINDS[problem]
    first = solver in (STOCK[kind][0], DEDICATED[kind][0])
    showcase = SHOWCASE_OVERRIDES.get(solver, SHOWCASE[kind])
    return problem not in SLOW_PROBLEMS and (first or problem == showcase)


def _cases():
    """(problem, solver, variant, slow) for every combination that applies."""
    for problem in corpus.NAMES:
        kind = corpus.KINDS[problem]
        for solver in STOCK[kind] + DEDICATED[kind]:
            for variant in VARIANTS:
                difference = _lookup(DELIBERATE_DIFFERENCES, problem, solver, variant)
                if difference is not None and difference.skip:
                    continue
                # The adjoint does not depend on the forward solver, so the dense
                # adjoint is checked behind the asdex solver whose sparse adjoint
                # it replaces.
                if variant == "default_adjoint" and solver not in COUNTERPART:
                    continue
                yield (
                    problem,
                    solver,
                    variant,
                    not _is_default(problem, solver, variant),
                )


def _params():
    params = []
    for problem, solver, variant, slow in _cases():
        marks = [pytest.mark.slow] if slow else []
        reason = _lookup(KNOWN_FAILURES, problem, solver, variant)
        if reason is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(
            pytest.param(
                problem,
                solver,
                variant,
                marks=marks,
                id=f"{problem}-{solver}-{variant}",
            )
        )
    return params


@pytest.mark.parametrize("problem_name, solver_name, variant_name", _params())
def test_corpus(problem_name, solver_name, variant_name):
    variant = VARIANTS[variant_name]
    dedicated = solver_name in COUNTERPART
    _, solution_tol, gradient_tol = _tolerances(variant.dtype)
    difference = _lookup(DELIBERATE_DIFFERENCES, problem_name, solver_name, "*")
    gradient = dedicated and (difference is None or difference.gradient)
    # Problem and solver are built under the variant's settings, as a user's are: a
    # solver built with x64 on and run with it off changes its leaves' dtypes
    # between Optimistix's closure conversion and the call, in stock Optimistix too.
    # The oracles below run outside the variant's settings, on their own copy.
    problem = corpus.make(problem_name, variant.dtype)
    with variant_context(variant):
        solved = corpus.make(problem_name, variant.dtype)
        if variant.default_adjoint:
            adjoint = optx.ImplicitAdjoint()
        else:
            linear_solver = getattr(difference, "adjoint_linear_solver", None)
            adjoint = optx.ImplicitAdjoint(
                linear_solver=linear_solver or asdex.SparseLinearSolver()
            )
        solver = make_solver(solver_name, variant.dtype, asdex.SparseLinearSolver())
        value, result, grad = run(solved, solver, adjoint, gradient=gradient)

    oracle_name = COUNTERPART.get(solver_name, solver_name)
    expected, expected_result, dense_value = dense_oracle(
        problem_name, oracle_name, variant.dtype
    )
    # The oracle itself must have solved the problem: the corpus holds no problem
    # that the dense route (with its deliberate differences) cannot solve.
    assert expected_result == "successful", (oracle_name, expected_result)
    assert result_name(result) == expected_result
    assert_tree_close(problem.identifiable(value), expected, solution_tol, "solution")
    if problem.expected is not None:
        assert_tree_close(value, problem.expected, solution_tol, "known solution")
    if grad is not None:
        assert_tree_close(
            grad, implicit_gradient(problem, dense_value), gradient_tol, "gradient"
        )


def test_deliberate_differences_are_real():
    """The dense default really does fail where `DELIBERATE_DIFFERENCES` says it
    does, so the entries document a difference rather than hide a regression."""
    problem = corpus.make("rank_deficient_fit", jnp.float64)
    solver = make_solver("GaussNewton", jnp.float64, None)
    _, result, _ = run(problem, solver, optx.ImplicitAdjoint(), gradient=False)
    assert result_name(result) == "singular"

    problem = corpus.make("custom_vjp_fit", jnp.float64)
    solver = make_solver("GaussNewton", jnp.float64, None)
    with pytest.raises(TypeError, match="custom_vjp"):
        run(problem, solver, optx.ImplicitAdjoint(), gradient=True)


def test_every_problem_is_covered():
    """Each kind of problem has stock and dedicated solvers, and every problem family
    that the corpus promises is present."""
    kinds = set(corpus.KINDS.values())
    assert kinds == {"root", "least_squares", "minimise", "fixed_point"}
    assert all(STOCK[kind] and DEDICATED[kind] for kind in kinds)
    # Every table entry names a combination that runs, so none is left stale.
    cases = {case[:3] for case in _cases()}
    for key in KNOWN_FAILURES:
        assert "*" in key or key in cases, key
    for key in DELIBERATE_DIFFERENCES:
        problem, *_ = key
        assert problem in corpus.NAMES, key
