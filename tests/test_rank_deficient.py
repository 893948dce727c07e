"""Rank-deficient and ill-posed least squares (issue 11, sections 5 and 8).

A ReLU network fitted to 20 points with 25 parameters, three of its eight hidden
units dead (they never activate on the data): its Jacobian has rank 7. The stock
dense solvers handle it only with `lineax.AutoLinearSolver(well_posed=False)`
(an SVD); the oracle here is that, and `numpy.linalg.lstsq` / `pinv` for the
linear solves.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.optimistix as aox
import jitted
from asdex.lineax import SparseLU, SparseMatrixOperator, SparseNormalEquations, _superlu

X = jnp.linspace(-1.0, 1.0, 20)
Y = jnp.sin(2 * X) + 0.3 * X


def network(p, args):
    """1 → 8 ReLU → 1: weights, biases, output weights, output bias (25)."""
    x, y = args
    w1, b1, w2, b2 = p[0:8], p[8:16], p[16:24], p[24]
    return jax.nn.relu(x[:, None] * w1 + b1) @ w2 + b2 - y


def network_p0(dtype=jnp.float64):
    w1 = jnp.array([1.0, -1.0, 2.0, -2.0, 0.5, 0.1, -0.1, 0.2])
    b1 = jnp.array([0.1, 0.2, -0.3, 0.5, 0.0, -5.0, -5.0, -5.0])  # 3 dead units
    return jnp.concatenate([w1, b1, 0.1 * jnp.ones(8), jnp.zeros(1)]).astype(dtype)


SVD = lx.AutoLinearSolver(well_posed=False)


def rank_deficient(rng, m, n, rank):
    """A sparse m×n matrix of the given rank, with a zero column."""
    left = rng.normal(size=(m, rank)) * (rng.random((m, rank)) < 0.5)
    right = rng.normal(size=(rank, n)) * (rng.random((rank, n)) < 0.5)
    matrix = left @ right
    matrix[:, 1] = 0.0  # an unused parameter
    matrix[:, 2] = 3.0 * matrix[:, 0]  # collinear columns
    return matrix


@pytest.mark.parametrize(
    "shape",
    [
        (12, 7),
        pytest.param((7, 12), marks=pytest.mark.slow),
        pytest.param((9, 9), marks=pytest.mark.slow),
    ],
)
def test_minimum_norm_solves_match_pinv(rng, shape):
    matrix = rank_deficient(rng, *shape, rank=4)
    assert np.linalg.matrix_rank(matrix) < min(shape)
    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.asarray(rng.normal(size=shape[0]))
    expected = np.linalg.pinv(matrix) @ np.asarray(b)
    solvers = [SparseNormalEquations(), asdex.SparseLinearSolver(well_posed=False)]
    if shape[0] != shape[1]:  # rectangular: minimum norm by default
        solvers.append(asdex.SparseLinearSolver())
    for solver in solvers:
        solution = lx.linear_solve(operator, b, solver, throw=False)
        assert solution.result == lx.RESULTS.successful
        np.testing.assert_allclose(solution.value, expected, atol=1e-10)
    # The transposed solve (reverse mode) is the pseudo-inverse of Aᵀ.
    c = jnp.asarray(rng.normal(size=shape[1]))
    grad = jax.grad(
        lambda v: jnp.vdot(
            c, lx.linear_solve(operator, v, SparseNormalEquations()).value
        )
    )(b)
    np.testing.assert_allclose(
        grad, np.linalg.pinv(matrix).T @ np.asarray(c), atol=1e-10
    )

    # Derivatives with respect to the matrix use Lineax's pseudo-inverse terms.
    def loss(values, solver):
        op = SparseMatrixOperator(values, operator.pattern)
        return jnp.sum(lx.linear_solve(op, b, solver).value ** 2)

    dense_loss = lambda mat: jnp.sum(
        lx.linear_solve(  # noqa: E731
            lx.MatrixLinearOperator(mat), b, SVD
        ).value
        ** 2
    )
    rows, cols = operator.pattern.rows, operator.pattern.cols
    expected_grad = jax.grad(dense_loss)(jnp.asarray(matrix))[rows, cols]
    got = jax.grad(loss)(operator.values, SparseNormalEquations())
    np.testing.assert_allclose(got, expected_grad, rtol=1e-7, atol=1e-8)


def test_full_rank_assumption_still_reports_singular(rng):
    matrix = rank_deficient(rng, 12, 7, rank=4)
    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.asarray(rng.normal(size=12))
    for solver in [
        SparseNormalEquations(min_norm=False),
        asdex.SparseLinearSolver(well_posed=True),
    ]:
        solution = lx.linear_solve(operator, b, solver, throw=False)
        assert solution.result == lx.RESULTS.singular


def test_numerically_singular_square_is_reported(rng):
    # Collinear up to rounding: SuperLU meets a pivot of 1e-17, not an exact zero,
    # and used to return a solution of size 1e16 as a success.
    matrix = rng.normal(size=(6, 6)) * (rng.random((6, 6)) < 0.6) + 4 * np.eye(6)
    matrix[5] = matrix[0] / 3.0 + matrix[1] / 7.0
    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.asarray(rng.normal(size=6))
    for solver in [SparseLU(), asdex.SparseLinearSolver()]:
        solution = lx.linear_solve(operator, b, solver, throw=False)
        assert solution.result == lx.RESULTS.singular, type(solver).__name__
    # Symmetric values go through L D Lᵀ first, checked the same way.
    symmetric = matrix.T @ matrix
    solution = lx.linear_solve(
        SparseMatrixOperator.from_dense(symmetric), b, SparseLU(), throw=False
    )
    assert solution.result == lx.RESULTS.singular


def test_host_failure_is_a_result_not_a_callback_error(rng, monkeypatch):
    def fail(*args, **kwargs):
        raise MemoryError("not enough memory to factorise")

    monkeypatch.setattr(_superlu, "_factorise", fail)
    _superlu.factor_cache.clear()
    operator = SparseMatrixOperator.from_dense(rng.normal(size=(5, 5)) + 5 * np.eye(5))
    solve = jax.jit(lambda b: lx.linear_solve(operator, b, SparseLU(), throw=False))
    with pytest.warns(RuntimeWarning, match="MemoryError: not enough memory"):
        solution = solve(jnp.ones(5))
        jax.block_until_ready(solution.value)
    assert solution.result == lx.RESULTS.singular
    assert np.all(np.isnan(solution.value))


def _fit(solver, dtype=jnp.float64, **kwargs):
    p0 = network_p0(dtype)
    args = (X.astype(dtype), Y.astype(dtype))
    return optx.least_squares(
        network, solver, p0, args, max_steps=100, throw=False, **kwargs
    )


def test_network_fit_dense_oracle_needs_svd():
    # The premise: the stock default fails on this fit, the SVD solve does not.
    assert np.linalg.matrix_rank(jitted.jacfwd(network)(network_p0(), (X, Y))) == 7
    assert _fit(optx.GaussNewton(1e-8, 1e-8)).result != optx.RESULTS.successful


@pytest.mark.parametrize(
    "solver",
    [
        aox.SparseGaussNewton(1e-8, 1e-8),
        optx.GaussNewton(1e-8, 1e-8, linear_solver=asdex.SparseLinearSolver()),
    ],
    ids=["dedicated", "drop-in"],
)
def test_gauss_newton_on_rank_deficient_fit(solver):
    oracle = _fit(optx.GaussNewton(1e-8, 1e-8, linear_solver=SVD))
    sol = _fit(solver)
    assert sol.result == optx.RESULTS.successful
    assert int(sol.stats["num_steps"]) == int(oracle.stats["num_steps"])
    # The same minimum-norm steps: the same point, dead units untouched.
    np.testing.assert_allclose(sol.value, oracle.value, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sol.value[5:8], network_p0()[5:8], atol=1e-12)


def test_gauss_newton_rank_deficient_float32():
    sol = _fit(aox.SparseGaussNewton(1e-5, 1e-5), dtype=jnp.float32)
    oracle = _fit(optx.GaussNewton(1e-5, 1e-5, linear_solver=SVD), dtype=jnp.float32)
    assert sol.result == optx.RESULTS.successful
    assert sol.value.dtype == jnp.float32
    loss = lambda p: 0.5 * jnp.sum(network(p, (X, Y)) ** 2)  # noqa: E731
    np.testing.assert_allclose(loss(sol.value), loss(oracle.value), rtol=1e-3)


def test_assuming_full_rank_is_not_silent():
    # Asking for the plain normal equations on this fit fails loudly.
    solver = aox.SparseGaussNewton(
        1e-8, 1e-8, linear_solver=asdex.SparseLinearSolver(well_posed=True)
    )
    assert _fit(solver).result != optx.RESULTS.successful


def test_gradient_through_rank_deficient_fit():
    p_star = _fit(optx.GaussNewton(1e-8, 1e-8, linear_solver=SVD)).value

    def loss(y, solver, adjoint):
        sol = optx.least_squares(
            network, solver, p_star, (X, y), max_steps=100, adjoint=adjoint, throw=False
        )
        return jnp.sum(sol.value**2)

    expected = jax.grad(loss)(
        Y, optx.GaussNewton(1e-8, 1e-8, linear_solver=SVD), optx.ImplicitAdjoint(SVD)
    )
    got = jax.grad(loss)(
        Y, aox.SparseGaussNewton(1e-8, 1e-8), aox.sparse_adjoint(well_posed=False)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
    # Assuming a nonsingular Hessian: reported (Lineax's singular error), never a
    # silently wrong gradient.
    with pytest.raises(Exception, match="non-finite"):
        g = jax.grad(loss)(Y, aox.SparseGaussNewton(1e-8, 1e-8), aox.sparse_adjoint())
        jax.block_until_ready(g)


def chain(p, target):
    """A sparse residual with a zero column in J: p[3] enters only through a ReLU
    that is never active (stored zeros: the hard case for the solvers)."""
    used = jnp.concatenate([p[:3], p[4:]])
    anchor = used[:1] - target[:1] + jax.nn.relu(p[3] - 10.0)
    # Tall (78×40): with more residuals than parameters, JᵀJ is singular. (A wide
    # J would be solved through the nonsingular JJᵀ, zero column or not.)
    prior = 0.1 * (used - 0.2)
    return jnp.concatenate([used[1:] - used[:-1] ** 2 - target[1:], anchor, prior])


def chain_structural(p, target):
    """The same, with p[3] never read (no entry in the pattern at all)."""
    used = jnp.concatenate([p[:3], p[4:]])
    prior = 0.1 * (used - 0.2)
    return jnp.concatenate(
        [used[1:] - used[:-1] ** 2 - target[1:], used[:1] - target[:1], prior]
    )


@pytest.mark.parametrize(
    "solver, residual",
    [
        (aox.SparseGaussNewton(1e-10, 1e-10), chain),
        (aox.SparseLevenbergMarquardt(1e-10, 1e-10), chain),
        (
            optx.GaussNewton(1e-10, 1e-10, linear_solver=asdex.SparseLinearSolver()),
            chain,
        ),
        (
            optx.LevenbergMarquardt(
                1e-10, 1e-10, linear_solver=asdex.SparseLinearSolver()
            ),
            chain,
        ),
        (aox.SparseGaussNewton(1e-10, 1e-10), chain_structural),
    ],
    ids=["dedicated-GN", "dedicated-LM", "drop-in-GN", "drop-in-LM", "structural"],
)
def test_unused_parameter(solver, residual):
    n = 40
    target = jnp.linspace(0.01, 0.2, n - 1)
    pattern = asdex.jacobian_sparsity(residual, jnp.ones(n), target)
    assert pattern.nnz < pattern.shape[0] * n / 4  # a sparse problem
    jac = jitted.jacfwd(residual)(jnp.full(n, 0.3), target)
    assert not jnp.any(jac[:, 3])  # the zero column
    p0 = jnp.full(n, 0.3)
    sol = optx.least_squares(residual, solver, p0, target, max_steps=100, throw=False)
    assert sol.result == optx.RESULTS.successful
    # The oracle: the stock solver with a dense SVD.
    oracle = optx.least_squares(
        residual, optx.GaussNewton(1e-10, 1e-10, linear_solver=SVD), p0, target
    )
    np.testing.assert_allclose(sol.value, oracle.value, rtol=1e-8, atol=1e-10)
    # Untouched: minimum-norm steps have no component along a zero column.
    np.testing.assert_allclose(sol.value[3], 0.3, atol=1e-12)
