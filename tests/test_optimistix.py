"""Optimistix with sparse derivatives: the drop-in solver and the dedicated solvers.

Every solve is compared with the same solve by Optimistix's own dense solvers (or
with a dense derivative), and the result codes, `throw` and `max_steps` keep
Optimistix's conventions.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.lineax._sparsify_matrix_free as matrix_free
import asdex.optimistix as aox
import jitted
from asdex.lineax import SparseLinearSolver

# ---------------------------------------------------------------- problems


def bratu(u, lam):
    """The 2-D Bratu residual `−Δu − λeᵘ` on an N × N grid, scaled by h²."""
    h = 1.0 / (u.shape[0] + 1)
    w = jnp.pad(u, 1)
    lap = w[2:, 1:-1] + w[:-2, 1:-1] + w[1:-1, 2:] + w[1:-1, :-2] - 4 * u
    return -lap - h**2 * lam * jnp.exp(u)


def rosenbrock(x, args):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


class Decay(eqx.Module):
    amplitude: jax.Array
    rate: jax.Array


def decay_residuals(model, data):
    t, observed = data
    return model.amplitude[:, None] * jnp.exp(-model.rate[:, None] * t) - observed


def decay_problem(k=6, samples=8):
    rng = np.random.default_rng(0)
    t = jnp.linspace(0.0, 2.0, samples)
    true = Decay(jnp.asarray(rng.uniform(1, 2, k)), jnp.asarray(rng.uniform(0.5, 1, k)))
    observed = decay_residuals(true, (t, 0.0)) + 0.01 * jnp.asarray(
        rng.normal(size=(k, samples))
    )
    guess = Decay(jnp.ones(k), jnp.full(k, 0.7))
    return guess, (t, observed)


@pytest.fixture
def count_sparsify(monkeypatch):
    """Count the matrix-free operators that the drop-in path sparsified."""
    calls = []
    detect = matrix_free._detect

    def counting(operator, symmetric):
        calls.append(type(operator).__name__)
        return detect(operator, symmetric)

    monkeypatch.setattr(matrix_free, "_detect", counting)
    return calls


# ---------------------------------------------------------------- drop-in


def test_drop_in_root_finders(count_sparsify):
    u0 = jnp.zeros((8, 8))
    dense = optx.root_find(bratu, optx.Newton(1e-11, 1e-11), u0, 1.0).value
    newton = optx.Newton(1e-11, 1e-11, linear_solver=SparseLinearSolver(small_size=0))
    sol = optx.root_find(bratu, newton, u0, 1.0)
    np.testing.assert_allclose(sol.value, dense, atol=1e-12)
    assert count_sparsify == ["FunctionLinearOperator"]  # once per trace
    chord = optx.Chord(1e-11, 1e-11, linear_solver=SparseLinearSolver(small_size=0))
    sol = optx.root_find(bratu, chord, u0, 1.0)
    np.testing.assert_allclose(sol.value, dense, atol=1e-10)


def test_drop_in_least_squares(count_sparsify):
    guess, data = decay_problem()
    reference = optx.least_squares(
        decay_residuals, optx.LevenbergMarquardt(1e-10, 1e-10), guess, data
    ).value
    for cls in (optx.GaussNewton, optx.LevenbergMarquardt, optx.Dogleg):
        solver = cls(1e-10, 1e-10, linear_solver=SparseLinearSolver(small_size=0))
        sol = optx.least_squares(decay_residuals, solver, guess, data, max_steps=100)
        assert isinstance(sol.value, Decay)
        np.testing.assert_allclose(sol.value.rate, reference.rate, atol=1e-8)
    # One detection per trace of each solve (GaussNewton, LM and Dogleg's).
    assert 3 <= len(count_sparsify) <= 6


def test_drop_in_implicit_adjoint(count_sparsify):
    """`jax.grad` through a root-find: the implicit function theorem's solve is
    sparse too (a `JacobianLinearOperator`)."""
    u0 = jnp.zeros((6, 6))

    def loss(lam, adjoint, linear_solver):
        solver = optx.Newton(1e-11, 1e-11, linear_solver=linear_solver)
        u = optx.root_find(bratu, solver, u0, lam, adjoint=adjoint).value
        return jnp.sum(u**2)

    sparse = jax.grad(loss)(
        1.0,
        optx.ImplicitAdjoint(linear_solver=SparseLinearSolver(small_size=0)),
        SparseLinearSolver(small_size=0),
    )
    dense = jax.grad(loss)(
        1.0, optx.ImplicitAdjoint(), lx.AutoLinearSolver(well_posed=None)
    )
    np.testing.assert_allclose(sparse, dense, rtol=1e-9)
    assert "JacobianLinearOperator" in count_sparsify


# ---------------------------------------------------------------- SparseNewton


def test_sparse_newton(count_sparsify):
    u0 = jnp.zeros((8, 8))
    dense = optx.root_find(bratu, optx.Newton(1e-11, 1e-11), u0, 1.0).value
    coloring = asdex.jacobian_coloring(bratu, u0, 1.0)
    solve = eqx.filter_jit(
        lambda solver, u0, tags: optx.root_find(bratu, solver, u0, 1.0, tags=tags)
    )
    for solver, tags in (
        (aox.SparseNewton(1e-11, 1e-11, coloring=coloring), frozenset()),
        (aox.SparseNewton(1e-11, 1e-11), frozenset({lx.positive_semidefinite_tag})),
    ):
        sol = solve(solver, u0, tags)
        np.testing.assert_allclose(sol.value, dense, atol=1e-12)
    assert aox.SparseNewton(1e-8, 1e-8, coloring=coloring).coloring == coloring
    # The rate-based termination of Hairer & Wanner, as in `optx.Newton`: same
    # iterates and the same verdict.
    for tol in (1e-11, 1e-3):
        ours = optx.root_find(
            bratu,
            aox.SparseNewton(tol, tol, cauchy_termination=False),
            u0,
            1.0,
            throw=False,
        )
        theirs = optx.root_find(
            bratu, optx.Newton(tol, tol, cauchy_termination=False), u0, 1.0, throw=False
        )
        assert ours.result == theirs.result
        assert int(ours.stats["num_steps"]) == int(theirs.stats["num_steps"])
        np.testing.assert_allclose(ours.value, theirs.value, atol=1e-12)
    assert not count_sparsify  # the dedicated solver never goes matrix-free


def test_sparse_newton_pytree_bounds_and_results():
    def fn(y, args):
        x, z = y["x"], y["z"]
        return {"x": x**3 + z - args, "z": z - jnp.roll(x, 1) ** 2}

    y0 = {"x": jnp.ones(5), "z": jnp.ones(5)}
    solver = aox.SparseNewton(1e-10, 1e-10)
    sol = optx.root_find(fn, solver, y0, 3.0)
    out = fn(sol.value, 3.0)
    assert max(float(jnp.max(jnp.abs(v))) for v in out.values()) < 1e-9
    # `lower` clips the iterates, as in `optx.Newton`.
    # The bound keeps it from the root, so it stops once it makes no progress.
    with pytest.warns(RuntimeWarning, match="consecutive steps"):
        sol = optx.root_find(
            fn,
            solver,
            y0,
            3.0,
            options=dict(lower={"x": 1.2, "z": -jnp.inf}),
            throw=False,
        )
    assert sol.result == optx.RESULTS.nonlinear_divergence
    assert float(jnp.min(sol.value["x"])) >= 1.2
    # max_steps and throw.
    sol = optx.root_find(fn, solver, y0, 3.0, max_steps=1, throw=False)
    assert sol.result == optx.RESULTS.nonlinear_max_steps_reached
    with pytest.raises(Exception, match="maximum number of steps"):
        optx.root_find(fn, solver, y0, 3.0, max_steps=1)
    # A singular Jacobian is reported by the sparse path, not hidden. (This tiny
    # system would go to Lineax's dense solver by default.)
    sparse_only = SparseLinearSolver(small_size=0, dense_fraction=1.1)
    sol = optx.root_find(
        lambda y, _: y**2,
        aox.SparseNewton(1e-10, 1e-10, linear_solver=sparse_only),
        jnp.zeros(3),
        None,
        throw=False,
        max_steps=5,
    )
    assert sol.result != optx.RESULTS.successful


def test_sparse_newton_stops_at_the_rounding_floor():
    # |x² − 2| cannot fall below ~1e-16 in float64, so atol = 1e-20 is out of
    # reach: the solve stops once five steps make no progress, says why, and
    # does not run to max_steps.
    def fn(y, args):
        return y**2 - args

    y0 = jnp.ones(4)
    solver = aox.SparseNewton(1e-20, 1e-20)
    with pytest.warns(
        RuntimeWarning, match=r"for 5 consecutive steps.*atol = 1\.0e-20"
    ):
        sol = jax.jit(
            lambda y: optx.root_find(fn, solver, y, 2.0, max_steps=100, throw=False)
        )(y0)
        jax.block_until_ready(sol.value)
    assert sol.result == optx.RESULTS.nonlinear_divergence
    assert int(sol.stats["num_steps"]) < 15
    np.testing.assert_allclose(sol.value, np.sqrt(2.0), rtol=1e-15)
    # With the test off, it runs to max_steps as Optimistix's Newton does.
    patient = aox.SparseNewton(1e-20, 1e-20, max_stalled_steps=None)
    sol = optx.root_find(fn, patient, y0, 2.0, max_steps=30, throw=False)
    assert sol.result == optx.RESULTS.nonlinear_max_steps_reached
    # A reachable tolerance is unaffected, and warns of nothing, under vmap too.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = optx.root_find(fn, aox.SparseNewton(1e-10, 1e-10), y0, 2.0)
        batched = jax.vmap(
            lambda y: optx.root_find(fn, aox.SparseNewton(1e-10, 1e-10), y, 2.0).value
        )(jnp.stack([y0, 3 * y0]))
    assert sol.result == optx.RESULTS.successful
    np.testing.assert_allclose(batched, np.sqrt(2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="max_stalled_steps"):
        aox.SparseNewton(1e-8, 1e-8, max_stalled_steps=0)


# ---------------------------------------------------------------- least squares


def test_sparse_gauss_newton_and_levenberg_marquardt():
    guess, data = decay_problem()
    reference = optx.least_squares(
        decay_residuals, optx.LevenbergMarquardt(1e-10, 1e-10), guess, data
    ).value
    coloring = asdex.jacobian_coloring(decay_residuals, guess, data)
    assert coloring.num_colors == 2
    fit = eqx.filter_jit(
        lambda solver, guess, data: optx.least_squares(
            decay_residuals, solver, guess, data, max_steps=100
        )
    )
    for solver in (
        aox.SparseGaussNewton(1e-10, 1e-10, coloring=coloring),
        aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=coloring),
        aox.SparseLevenbergMarquardt(1e-10, 1e-10),
    ):
        sol = fit(solver, guess, data)
        assert isinstance(sol.value, Decay)
        np.testing.assert_allclose(sol.value.amplitude, reference.amplitude, atol=1e-8)
        np.testing.assert_allclose(sol.value.rate, reference.rate, atol=1e-8)
        assert sol.stats["num_accepted_steps"] <= sol.stats["num_steps"]


def test_levenberg_marquardt_iterates_match_optimistix():
    """The sparse LM takes Optimistix's steps: same iterates after k steps."""
    guess, data = decay_problem()
    for k in (1, 3, 6):
        dense = optx.least_squares(
            decay_residuals,
            optx.LevenbergMarquardt(1e-14, 1e-14),
            guess,
            data,
            max_steps=k,
            throw=False,
        )
        sparse = optx.least_squares(
            decay_residuals,
            aox.SparseLevenbergMarquardt(1e-14, 1e-14),
            guess,
            data,
            max_steps=k,
            throw=False,
        )
        np.testing.assert_allclose(sparse.value.rate, dense.value.rate, atol=1e-10)


def test_least_squares_gradient_through_solution():
    guess, (t, observed) = decay_problem(k=3)

    def loss(observed, solver):
        sol = optx.least_squares(
            decay_residuals,
            solver,
            guess,
            (t, observed),
            adjoint=optx.ImplicitAdjoint(
                linear_solver=SparseLinearSolver(small_size=0)
            ),
        )
        return jnp.sum(sol.value.rate)

    sparse = jax.grad(loss)(observed, aox.SparseLevenbergMarquardt(1e-12, 1e-12))
    dense = jax.grad(loss)(observed, optx.LevenbergMarquardt(1e-12, 1e-12))
    np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-10)


def test_damped_descent_matches_optimistix(rng):
    """One damped step, for least squares and for minimisation."""
    jac = jnp.asarray(rng.normal(size=(7, 4)) * (rng.random((7, 4)) < 0.6))
    jac = jac.at[jnp.arange(4), jnp.arange(4)].set(1.0)
    residual = jnp.asarray(rng.normal(size=7))
    sparse_jac = asdex.lineax.SparseMatrixOperator.from_dense(np.asarray(jac))
    for sparse, dense in (
        (
            optx.FunctionInfo.ResidualJac(residual, sparse_jac),
            optx.FunctionInfo.ResidualJac(residual, lx.MatrixLinearOperator(jac)),
        ),
        (
            optx.FunctionInfo.EvalGradHessian(
                jnp.asarray(0.0),
                jac.T @ residual,
                asdex.lineax.SparseMatrixOperator.from_dense(
                    np.asarray(jac.T @ jac), tags=lx.positive_semidefinite_tag
                ),
            ),
            optx.FunctionInfo.EvalGradHessian(
                jnp.asarray(0.0),
                jac.T @ residual,
                lx.MatrixLinearOperator(jac.T @ jac, lx.positive_semidefinite_tag),
            ),
        ),
    ):
        ours = aox.SparseDampedNewtonDescent()
        theirs = optx.DampedNewtonDescent()
        step, result = ours.step(
            jnp.asarray(0.5),
            ours.query(jnp.zeros(4), sparse, ours.init(jnp.zeros(4), sparse)),
        )
        expected, _ = theirs.step(
            jnp.asarray(0.5),
            theirs.query(jnp.zeros(4), dense, theirs.init(jnp.zeros(4), dense)),
        )
        assert result == optx.RESULTS.successful
        np.testing.assert_allclose(step, expected, atol=1e-10)


# ---------------------------------------------------------------- minimiser


def test_sparse_newton_minimiser():
    x0 = jnp.tile(jnp.array([-1.2, 1.0]), 5)
    coloring = asdex.hessian_coloring(rosenbrock, x0, None)
    assert coloring.mode == "star" and coloring.num_colors == 3
    solver = aox.SparseNewtonMinimiser(1e-12, 1e-12, coloring=coloring)
    sol = optx.minimise(rosenbrock, solver, x0, max_steps=500)
    gradient = jax.grad(rosenbrock)(sol.value, None)
    assert float(jnp.linalg.norm(gradient)) <= 1e-8
    # From this start the chained function (n ≥ 4) goes to its local minimum
    # near x₀ = −1, f ≈ 3.9866: a minimum (positive definite Hessian), not a
    # saddle.
    np.testing.assert_allclose(rosenbrock(sol.value, None), 3.98657911, rtol=1e-8)
    assert np.linalg.eigvalsh(jitted.hessian(rosenbrock)(sol.value, None)).min() > 0
    # From x = 0.5 it reaches the global minimum.
    sol = optx.minimise(rosenbrock, solver, jnp.full(10, 0.5), max_steps=500)
    np.testing.assert_allclose(sol.value, 1.0, atol=1e-12)
    # A PyTree `y`, a convex function declared positive semidefinite (Cholesky),
    # and detection at trace time.

    def convex(y, args):
        x, z = y
        return (
            jnp.sum((x[1:] - x[:-1]) ** 2)
            + jnp.sum(jnp.cosh(x - args))
            + jnp.sum((z - x[:3]) ** 2)
        )

    y0 = (jnp.zeros(6), jnp.ones(3))
    sol = optx.minimise(
        convex,
        aox.SparseNewtonMinimiser(1e-12, 1e-12),
        y0,
        0.3,
        tags=frozenset({lx.positive_semidefinite_tag}),
    )
    grad = jax.grad(convex)(sol.value, 0.3)
    assert max(float(jnp.max(jnp.abs(g))) for g in grad) < 1e-10
    np.testing.assert_allclose(sol.value[0], 0.3, atol=1e-9)
    # max_steps and result codes.
    sol = optx.minimise(rosenbrock, solver, x0, max_steps=3, throw=False)
    assert sol.result == optx.RESULTS.nonlinear_max_steps_reached


def test_newton_trust_region_rejects_uphill_model():
    """An indefinite Hessian: the model predicts an increase; reject and shrink."""
    search = aox.NewtonTrustRegion()
    hessian = asdex.lineax.SparseMatrixOperator.from_dense(
        np.diag([1.0, -1.0]), tags=lx.symmetric_tag
    )
    f_info = optx.FunctionInfo.EvalGradHessian(
        jnp.asarray(0.0), jnp.array([0.0, 0.1]), hessian
    )
    state = search.init(jnp.zeros(2), f_info)
    step_size, accept, _, _ = search.step(
        jnp.asarray(False),
        jnp.zeros(2),
        jnp.array([0.0, 1.0]),  # m = 0.1 − 0.5 < 0, f decreased: accepted
        f_info,
        optx.FunctionInfo.Eval(jnp.asarray(-0.3)),
        state,
    )
    assert bool(accept) and float(step_size) >= 1.0
    step_size, accept, _, _ = search.step(
        jnp.asarray(False),
        jnp.zeros(2),
        jnp.array([1.0, 0.0]),  # m = +0.5: rejected even though f decreased
        f_info,
        optx.FunctionInfo.Eval(jnp.asarray(-1.0)),
        state,
    )
    assert not bool(accept) and float(step_size) == 0.25
    with pytest.raises(ValueError, match="low_cutoff"):
        aox.NewtonTrustRegion(low_cutoff=0.5, high_cutoff=0.1)


def test_solver_errors():
    x0 = jnp.ones(6)
    jacobian_coloring = asdex.jacobian_coloring(lambda y, a: y[1:] - y[:-1], x0, None)
    with pytest.raises(ValueError, match="hessian_coloring"):
        aox.SparseNewtonMinimiser(1e-8, 1e-8, coloring=jacobian_coloring)
    # A pattern is not a coloring: the same TypeError as every entry point's.
    with pytest.raises(TypeError, match="jacobian_coloring"):
        aox.SparseNewton(1e-8, 1e-8, coloring=jacobian_coloring.pattern)
    square = asdex.jacobian_coloring(lambda y, a: y**2 + jnp.roll(y, 1), x0, None)
    with pytest.raises(ValueError, match="other shapes"):
        optx.root_find(
            lambda y, a: y**2 + jnp.roll(y, 1),
            aox.SparseNewton(1e-8, 1e-8, coloring=square),
            jnp.ones(5),
        )
    with pytest.raises(ValueError, match="symmetric"):
        optx.root_find(
            lambda y, a: y**2 + jnp.roll(y, 1) - 3,
            aox.SparseNewton(1e-8, 1e-8, coloring=square),
            x0,
            tags=frozenset({lx.symmetric_tag}),
        )
