"""`asdex.SparseFunction`: a function of PyTrees with its colorings, as an `eqx.Module`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from jax.flatten_util import ravel_pytree

import asdex
import asdex.optimistix as aox
import jitted
from asdex._function import SparseFunction
from asdex.lineax import SparseHessianOperator, SparseJacobianOperator


class Decay(eqx.Module):
    """Parameters of `K` exponential decays: the `y` of a fit is a module."""

    amplitude: jax.Array
    rate: jax.Array

    def __call__(self, t):
        return self.amplitude[:, None] * jnp.exp(-self.rate[:, None] * t)


def residuals(model, data):
    t, observed = data
    return model(t) - observed


def problem(k=5, samples=7):
    rng = np.random.default_rng(0)
    t = jnp.linspace(0.0, 2.0, samples)
    true = Decay(jnp.asarray(rng.uniform(1, 2, k)), jnp.asarray(rng.uniform(0.5, 1, k)))
    observed = true(t) + 0.01 * jnp.asarray(rng.normal(size=(k, samples)))
    return Decay(jnp.ones(k), jnp.full(k, 0.7)), (t, observed)


def energy(y, args):
    return jnp.sum((y["u"][1:] - y["u"][:-1]) ** 2) + jnp.sum(
        jnp.cosh(y["u"] * y["s"] - args)
    )


def dense_jacobian(fn, y, args):
    flat, unravel = ravel_pytree(y)
    return jitted.jacfwd(lambda v: ravel_pytree(fn(unravel(v), args))[0])(flat)


def test_operators_at_any_point():
    guess, data = problem()
    fn = SparseFunction(residuals, guess, data)
    assert fn.jacobian_coloring.num_colors == 2 and fn.hessian_coloring is None
    for model in (guess, Decay(guess.amplitude * 2, guess.rate / 3)):
        out, J = fn.value_and_jacobian_operator(model, data)
        assert isinstance(J, SparseJacobianOperator)
        np.testing.assert_allclose(out, residuals(model, data))
        np.testing.assert_allclose(
            J.as_matrix(), dense_jacobian(residuals, model, data), atol=1e-12
        )
        structure = jax.tree.map(lambda s: (s.shape, s.dtype), J.in_structure())
        assert structure == jax.tree.map(lambda a: (a.shape, a.dtype), model)
    np.testing.assert_allclose(fn(guess, data), residuals(guess, data))
    # A scalar function: the Hessian (and no Jacobian coloring by default).
    y = {"u": jnp.linspace(0.0, 1.0, 6), "s": jnp.ones(6)}
    fe = SparseFunction(energy, y, 0.2)
    assert fe.jacobian_coloring is None and fe.hessian_coloring is not None
    value, grad, H = fe.value_grad_and_hessian_operator(y, 0.2, lx.symmetric_tag)
    assert isinstance(H, SparseHessianOperator) and lx.is_symmetric(H)
    flat, unravel = ravel_pytree(y)
    np.testing.assert_allclose(value, energy(y, 0.2))
    np.testing.assert_allclose(
        ravel_pytree(grad)[0], jax.grad(lambda v: energy(unravel(v), 0.2))(flat)
    )
    np.testing.assert_allclose(
        fe.hessian_operator(y, 0.2).as_matrix(),
        jitted.hessian(lambda v: energy(unravel(v), 0.2))(flat),
        atol=1e-12,
    )


def test_filter_jit_and_storage_in_modules():
    guess, data = problem()
    fn = SparseFunction(residuals, guess, data)
    traces = []

    @eqx.filter_jit
    def jacobian_values(fn, model, data):
        traces.append(None)
        return fn.jacobian_operator(model, data).values

    a = jacobian_values(fn, guess, data)
    b = jacobian_values(fn, Decay(guess.amplitude + 1, guess.rate), data)
    assert len(traces) == 1 and not np.allclose(a, b)
    # The index arrays are leaves: arguments of the compiled program.
    leaves = jax.tree.leaves(fn)
    assert any(leaf.dtype.kind in "iu" for leaf in leaves)

    class Fitter(eqx.Module):
        fn: SparseFunction
        solver: aox.SparseLevenbergMarquardt

        def __call__(self, guess, data):
            return optx.least_squares(self.fn, self.solver, guess, data).value

    fitter = Fitter(
        fn,
        aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=fn.jacobian_coloring),
    )
    fitted = eqx.filter_jit(fitter.__call__)(guess, data)
    reference = optx.least_squares(
        residuals, optx.LevenbergMarquardt(1e-10, 1e-10), guess, data
    ).value
    assert isinstance(fitted, Decay)
    np.testing.assert_allclose(fitted.rate, reference.rate, atol=1e-8)
    np.testing.assert_allclose(fitted.amplitude, reference.amplitude, atol=1e-8)


def test_module_valued_function_and_save_load(tmp_path):
    """`fn` may itself be a module with parameters; colorings and leaves round-trip."""

    class Model(eqx.Module):
        weights: jax.Array
        activation: object = eqx.field(static=True)

        def __call__(self, y, args):
            return self.activation(self.weights * y + jnp.roll(y, 1)) - args

    model = Model(jnp.linspace(1.0, 2.0, 8), jnp.tanh)
    fn = SparseFunction(model, jnp.zeros(8), jnp.zeros(8))
    fn.save(tmp_path / "colorings.npz")
    eqx.tree_serialise_leaves(tmp_path / "leaves.eqx", fn)

    like = SparseFunction.load(
        tmp_path / "colorings.npz",
        Model(jnp.zeros(8), jnp.tanh),
        jnp.zeros(8),
        0.0 * jnp.ones(8),
    )
    loaded = eqx.tree_deserialise_leaves(tmp_path / "leaves.eqx", like)
    assert loaded.jacobian_coloring == fn.jacobian_coloring
    np.testing.assert_array_equal(loaded.fn.weights, model.weights)
    y = jnp.linspace(-1.0, 1.0, 8)
    np.testing.assert_allclose(
        loaded.jacobian_operator(y, jnp.ones(8)).as_matrix(),
        jitted.jacfwd(lambda v: model(v, jnp.ones(8)))(y),
        atol=1e-12,
    )
    # A Hessian coloring (star) round-trips too, and a reverse-mode one.
    y = {"u": jnp.zeros(6), "s": jnp.ones(6)}
    # A gradient: one VJP, as dense AD, so no DenseColoringWarning.
    fe = SparseFunction(energy, y, 0.0, jacobian=True, mode="rev")
    fe.save(tmp_path / "energy.npz")
    again = SparseFunction.load(tmp_path / "energy.npz", energy, y, 0.0)
    assert again.hessian_coloring == fe.hessian_coloring
    assert again.jacobian_coloring == fe.jacobian_coloring
    # An acyclic coloring, asked for by name, round-trips as acyclic.
    acyclic = asdex.hessian_coloring(energy, y, 0.0, mode="acyclic")
    fa = SparseFunction(energy, y, 0.0, hessian_coloring=acyclic)
    fa.save(tmp_path / "acyclic.npz")
    loaded = SparseFunction.load(tmp_path / "acyclic.npz", energy, y, 0.0)
    assert loaded.hessian_coloring.mode == "acyclic"
    assert loaded.hessian_coloring == acyclic


def test_errors(tmp_path):
    guess, data = problem()
    fn = SparseFunction(residuals, guess, data)
    with pytest.raises(ValueError, match="Build a new"):
        fn.jacobian_operator(Decay(jnp.ones(3), jnp.ones(3)), data)
    with pytest.raises(ValueError, match="hessian=True"):
        fn.hessian_operator(guess, data)
    with pytest.raises(TypeError, match="one real scalar"):
        SparseFunction(residuals, guess, data, hessian=True)
    with pytest.raises(TypeError, match="fn"):
        SparseFunction("residuals", guess, data)
    with pytest.raises(ValueError, match="symmetric"):
        fn.jacobian_operator(guess, data, lx.symmetric_tag)
    (tmp_path / "junk.npz").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="readable"):
        SparseFunction.load(tmp_path / "junk.npz", residuals, guess, data)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not written by"):
        SparseFunction.load(tmp_path / "other.npz", residuals, guess, data)
    fn.save(tmp_path / "fn.npz")
    small_guess, small_data = problem(k=3)
    with pytest.raises(ValueError, match="other shapes"):
        SparseFunction.load(tmp_path / "fn.npz", residuals, small_guess, small_data)
