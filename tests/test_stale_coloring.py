"""A precomputed coloring used with other constants than it was detected with.

`asdex.jacobian` refuses a non-array argument that differs from its sample; the
solvers and operators that take `coloring=` refuse it the same way (issue 11,
section 7). Before, `jnp.roll(u, shift)` with a changed `shift` gave an operator
off by 2.5 and a Newton solve that ran to `max_steps`.
"""

import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.optimistix as aox
import jitted


def rolled(u, shift):
    return jnp.roll(u, shift) - 2 * u + u**3 / 10 - 0.1


def energy(u, shift):
    return jnp.sum((jnp.roll(u, shift) - u) ** 2) + jnp.sum(u**4)


U = jnp.linspace(0.0, 1.0, 30)


def test_same_constant_is_accepted():
    coloring = asdex.jacobian_coloring(rolled, U, 1)
    operator = asdex.SparseJacobianOperator(rolled, U, 1, coloring)
    np.testing.assert_allclose(operator.as_matrix(), jitted.jacfwd(rolled)(U, 1))
    solver = aox.SparseNewton(1e-10, 1e-10, coloring=coloring)
    sol = optx.root_find(rolled, solver, U, 1)
    assert float(jnp.max(jnp.abs(rolled(sol.value, 1)))) < 1e-9


@pytest.mark.parametrize(
    "build",
    [
        lambda c: asdex.SparseJacobianOperator(rolled, U, 3, c),
        lambda c: optx.root_find(
            rolled, aox.SparseNewton(1e-10, 1e-10, coloring=c), U, 3
        ),
        lambda c: optx.least_squares(
            rolled, aox.SparseGaussNewton(1e-10, 1e-10, coloring=c), U, 3
        ),
        lambda c: optx.least_squares(
            rolled, aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=c), U, 3
        ),
    ],
    ids=["operator", "newton", "gauss-newton", "levenberg-marquardt"],
)
def test_changed_constant_is_refused(build):
    coloring = asdex.jacobian_coloring(rolled, U, 1)
    with pytest.raises(ValueError, match=r"argument 1 = 1, but it is now used with 3"):
        build(coloring)


def test_changed_constant_is_refused_for_hessians():
    coloring = asdex.hessian_coloring(energy, U, 1)
    asdex.SparseHessianOperator(energy, U, 1, coloring)  # the same constant: fine
    with pytest.raises(ValueError, match="asdex.SparseHessianOperator"):
        asdex.SparseHessianOperator(energy, U, 4, coloring)
    solver = aox.SparseNewtonMinimiser(1e-8, 1e-8, coloring=coloring)
    with pytest.raises(ValueError, match="hessian_coloring"):
        optx.minimise(energy, solver, U, 4)


def test_array_constants_are_not_checked():
    # An array argument is an input of the pattern, not a constant: reusing the
    # coloring with other values is what it is for.
    def scaled(u, lam):
        return u[1:] - lam * u[:-1] ** 2

    coloring = asdex.jacobian_coloring(scaled, U, jnp.asarray(1.0))
    operator = asdex.SparseJacobianOperator(scaled, U, jnp.asarray(2.0), coloring)
    np.testing.assert_allclose(operator.as_matrix(), jitted.jacfwd(scaled)(U, 2.0))
