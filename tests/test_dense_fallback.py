"""The dedicated solvers on residuals forward mode cannot differentiate, and the
dense path for systems too small or too dense for a sparse solve to win.

Oracles: Optimistix's own solvers with their dense defaults.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.optimistix as aox
from asdex.lineax import SparseLinearSolver

# ---------------------------------------------------------------- custom_vjp


@jax.custom_vjp
def _shifted_square(x):
    return x**2 - 2.0


def _shifted_square_fwd(x):
    return _shifted_square(x), x


def _shifted_square_bwd(x, cotangent):
    return (2 * x * cotangent,)


_shifted_square.defvjp(_shifted_square_fwd, _shifted_square_bwd)


def custom_vjp_residual(y, args):
    # A chain: each residual couples two neighbours, so the Jacobian is sparse.
    return _shifted_square(y) + 0.1 * jnp.concatenate([y[1:] - y[:-1], y[:1]])


@pytest.mark.parametrize(
    "solver_cls", [aox.SparseLevenbergMarquardt, aox.SparseGaussNewton]
)
def test_custom_vjp_residual_uses_reverse_mode(solver_cls):
    y0 = jnp.linspace(1.0, 2.0, 12)
    reference = optx.least_squares(
        custom_vjp_residual,
        optx.LevenbergMarquardt(1e-10, 1e-10),
        y0,
        options=dict(jac="bwd"),
    )
    sol = optx.least_squares(custom_vjp_residual, solver_cls(1e-10, 1e-10), y0)
    assert sol.result == optx.RESULTS.successful
    np.testing.assert_allclose(sol.value, reference.value, rtol=1e-8)
    assert sol.state.compression.coloring.mode == "rev"


def plain_residual(y, args):
    return y**2 - 2.0 + 0.1 * jnp.concatenate([y[1:] - y[:-1], y[:1]])


def test_custom_vjp_root_find_uses_reverse_mode():
    # `optx.Newton` cannot linearise a custom_vjp: the oracle is the same
    # function written without one.
    y0 = jnp.linspace(1.0, 2.0, 12)
    reference = optx.root_find(plain_residual, optx.Newton(1e-10, 1e-10), y0)
    sol = optx.root_find(custom_vjp_residual, aox.SparseNewton(1e-10, 1e-10), y0)
    np.testing.assert_allclose(sol.value, reference.value, rtol=1e-8)


def test_jac_bwd_option_and_given_coloring():
    """`options=dict(jac="bwd")` asks for VJPs, as in Optimistix; a given column
    coloring is recolored by rows from its own pattern."""

    def residual(y, args):
        return jnp.concatenate([y[1:] - y[:-1] ** 2, y[:1] - 0.5])

    y0 = jnp.full(10, 0.3)
    coloring = asdex.jacobian_coloring(lambda y: residual(y, None), y0, mode="fwd")
    reference = optx.least_squares(residual, optx.LevenbergMarquardt(1e-10, 1e-10), y0)
    for given in (None, coloring):
        solver = aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=given)
        sol = optx.least_squares(residual, solver, y0, options=dict(jac="bwd"))
        assert sol.state.compression.coloring.mode == "rev"
        np.testing.assert_allclose(sol.value, reference.value, rtol=1e-8)
    with pytest.raises(ValueError, match="options\\['jac'\\]"):
        optx.least_squares(
            residual, aox.SparseGaussNewton(1e-8, 1e-8), y0, options=dict(jac="x")
        )


# ---------------------------------------------------------------- dense fallback


def _chain_operator(n):
    def mv(v):
        return 2 * v - jnp.concatenate([v[1:], jnp.zeros(1)])

    return lx.FunctionLinearOperator(mv, jax.ShapeDtypeStruct((n,), jnp.float64))


def test_small_systems_are_solved_densely():
    small = _chain_operator(20)
    solver = SparseLinearSolver()
    assert isinstance(solver.select_solver(small), lx.AutoLinearSolver)
    b = jnp.arange(20.0)
    x = lx.linear_solve(small, b, solver).value
    np.testing.assert_allclose(small.mv(x), b, rtol=1e-12)
    # Above the threshold, the sparse solver.
    large = _chain_operator(solver.small_size + 1)
    assert isinstance(solver.select_solver(large), asdex.lineax.SparseLU)
    # The thresholds are fields, shown in the repr, and can be switched off.
    assert "small_size" in repr(solver) and "dense_fraction" in repr(solver)
    forced = SparseLinearSolver(small_size=0)
    assert isinstance(forced.select_solver(small), asdex.lineax.SparseLU)


def test_small_damped_stack_is_solved_by_qr():
    """Levenberg–Marquardt's `v ↦ (J v, √λ v)` has full column rank: a small one
    goes to Lineax's QR, as in stock Optimistix, not to the SVD that other
    rectangular operators get (their rank is unknown)."""
    n = 6
    J = jnp.asarray(np.random.default_rng(0).standard_normal((9, n)))
    struct = jax.ShapeDtypeStruct((n,), jnp.float64)
    damped = lx.FunctionLinearOperator(lambda v: (J @ v, 0.1 * v), struct)
    plain = lx.FunctionLinearOperator(lambda v: J @ v, struct)
    chosen = SparseLinearSolver().select_solver(damped)
    assert chosen == lx.AutoLinearSolver(well_posed=None)
    assert SparseLinearSolver().select_solver(plain) == lx.AutoLinearSolver(
        well_posed=False
    )
    b = (jnp.arange(9.0), jnp.zeros(n))
    x = lx.linear_solve(damped, b, SparseLinearSolver()).value
    expected = np.linalg.lstsq(np.vstack([J, 0.1 * np.eye(n)]), np.concatenate(b))[0]
    np.testing.assert_allclose(x, expected, rtol=1e-10)


def test_nearly_dense_systems_are_solved_densely():
    """Two dense diagonal blocks: half the entries are nonzero, and a coloring needs
    half as many products as columns, so a sparse form exists but cannot win."""
    n = 300  # above `small_size`
    rng = np.random.default_rng(0)
    block = jnp.asarray(rng.standard_normal((n // 2, n // 2)) + n * np.eye(n // 2))

    def mv(v):
        return jnp.concatenate([block @ v[: n // 2], block.T @ v[n // 2 :]])

    operator = lx.FunctionLinearOperator(mv, jax.ShapeDtypeStruct((n,), jnp.float64))
    assert isinstance(SparseLinearSolver().select_solver(operator), lx.AutoLinearSolver)
    forced = SparseLinearSolver(dense_fraction=1.1)
    assert isinstance(forced.select_solver(operator), asdex.lineax.SparseLU)
    b = jnp.arange(float(n))
    x = lx.linear_solve(operator, b, SparseLinearSolver()).value
    np.testing.assert_allclose(operator.mv(x), b, rtol=1e-10, atol=1e-12)


def network_fit():
    """A one-hidden-layer network, 25 parameters: its Jacobian is dense."""
    rng = np.random.default_rng(0)
    x = jnp.linspace(-2.0, 2.0, 40)
    target = jnp.tanh(1.5 * x) + 0.05 * jnp.asarray(rng.standard_normal(40))

    def residual(params, args):
        w1, b1, w2 = params[:8], params[8:16], params[16:24]
        hidden = jnp.tanh(x[:, None] * w1 + b1)
        return hidden @ w2 + params[24] - target

    return residual, jnp.asarray(0.5 * rng.standard_normal(25))


def test_dedicated_lm_on_dense_fit_uses_dense_path():
    residual, p0 = network_fit()
    reference = optx.least_squares(
        residual, optx.LevenbergMarquardt(1e-9, 1e-9), p0, max_steps=200, throw=False
    )
    sol = optx.least_squares(
        residual,
        aox.SparseLevenbergMarquardt(1e-9, 1e-9),
        p0,
        max_steps=200,
        throw=False,
    )
    np.testing.assert_allclose(
        jnp.sum(residual(sol.value, None) ** 2),
        jnp.sum(residual(reference.value, None) ** 2),
        rtol=1e-6,
    )
    # The damped system [J; √λ I] of this fit goes to Lineax's dense solver.
    jac = asdex.SparseJacobianOperator(residual, p0, None)
    damped = asdex.lineax.damped_operator(jac, 1.0)
    assert isinstance(SparseLinearSolver().select_solver(damped), lx.AutoLinearSolver)
