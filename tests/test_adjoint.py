"""Gradients through solves with `asdex.optimistix.sparse_adjoint()` (issue 11, §7).

Optimistix's default `ImplicitAdjoint()` solves the backward system with
`lineax.AutoLinearSolver`, materialising the Jacobian at the solution densely
(836 ms against 58 ms at 4,608 unknowns, 43 GB at 73,728). The oracle is that
default adjoint, on problems small enough for it; the checks also make sure that no
dense solve runs at all (`lineax.AutoLinearSolver` is made to fail).
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

N = 12


def bratu(u, lam):
    w = jnp.pad(u, 1)
    lap = w[2:, 1:-1] + w[:-2, 1:-1] + w[1:-1, 2:] + w[1:-1, :-2] - 4 * u
    return -lap - lam * jnp.exp(u) / (N + 1) ** 2


def residuals(p, data):
    return {"fit": p[1:] - p[:-1] ** 2 - data, "anchor": p[:1] - 0.1}


def energy(p, data):
    return jnp.sum((p[1:] - p[:-1]) ** 2) + jnp.sum((p - data) ** 4) + jnp.sum(p**2)


@pytest.fixture
def no_dense_solves(monkeypatch):
    def refuse(self, operator, options):
        raise AssertionError("a dense Lineax solve ran")

    monkeypatch.setattr(lx.AutoLinearSolver, "init", refuse)


def test_sparse_adjoint_is_implicit_with_the_sparse_solver():
    adjoint = aox.sparse_adjoint()
    assert isinstance(adjoint, optx.ImplicitAdjoint)
    assert adjoint.linear_solver == asdex.SparseLinearSolver()
    assert aox.sparse_adjoint(well_posed=False).linear_solver == (
        asdex.SparseLinearSolver(well_posed=False)
    )


def _grad(problem, solver, adjoint):
    return jax.grad(lambda a: jnp.sum(problem(solver, a, adjoint) ** 2))


def _root(solver, lam, adjoint):
    return optx.root_find(bratu, solver, jnp.zeros((N, N)), lam, adjoint=adjoint).value


def _fit(solver, data, adjoint):
    p0 = jnp.full(16, 0.2)
    return optx.least_squares(residuals, solver, p0, data, adjoint=adjoint).value


def _min(solver, data, adjoint):
    return optx.minimise(energy, solver, jnp.zeros(16), data, adjoint=adjoint).value


# These problems are below `SparseLinearSolver`'s `small_size`, where it solves
# densely on purpose; `small_size=0` keeps them on the sparse path under test.
SPARSE = asdex.SparseLinearSolver(small_size=0)
SPARSE_ADJOINT = optx.ImplicitAdjoint(linear_solver=SPARSE)

CASES = [
    (
        _root,
        optx.Newton(1e-10, 1e-10),
        aox.SparseNewton(1e-10, 1e-10, linear_solver=SPARSE),
        2.0,
    ),
    (
        _fit,
        optx.LevenbergMarquardt(1e-10, 1e-10),
        aox.SparseLevenbergMarquardt(1e-10, 1e-10, linear_solver=SPARSE),
        jnp.linspace(0.01, 0.1, 15),
    ),
    (
        _min,
        optx.BFGS(1e-10, 1e-10),
        aox.SparseNewtonMinimiser(1e-10, 1e-10, linear_solver=SPARSE),
        jnp.linspace(-0.3, 0.3, 16),
    ),
]


@pytest.mark.parametrize(
    "problem, dense, sparse, args", CASES, ids=["root", "lsq", "min"]
)
def test_gradients_match_the_dense_adjoint(problem, dense, sparse, args, monkeypatch):
    expected = _grad(problem, dense, optx.ImplicitAdjoint())(args)

    def refuse(self, operator, options):
        raise AssertionError("a dense Lineax solve ran")

    monkeypatch.setattr(lx.AutoLinearSolver, "init", refuse)
    got = _grad(problem, sparse, SPARSE_ADJOINT)(args)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-10)


def test_drop_in_newton_gradient_without_dense_solves(no_dense_solves):
    solver = optx.Newton(1e-10, 1e-10, linear_solver=SPARSE)
    got = _grad(_root, solver, SPARSE_ADJOINT)(2.0)
    # The oracle: the implicit function theorem by hand, dense.
    u = _root(solver, 2.0, SPARSE_ADJOINT)
    jac = jitted.jacfwd(bratu)(u, 2.0).reshape(N * N, N * N)
    du = -np.linalg.solve(jac, jitted.jacfwd(bratu, argnums=1)(u, 2.0).ravel())
    np.testing.assert_allclose(got, 2 * np.dot(np.asarray(u).ravel(), du), rtol=1e-8)
