"""`asdex.optax`: every step against a dense Newton / Gauss–Newton step."""

import functools as ft

import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optax
import pytest

import asdex
import asdex.optax
import jitted


def rosenbrock(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def weighted(params, w):
    # A PyTree objective with an extra argument, coupling the two leaves.
    a, b = params["a"], params["b"]
    return (
        jnp.sum(w * (a[1:] - a[:-1] ** 2) ** 2)
        + jnp.sum((a - 1) ** 2)
        + jnp.sum(jnp.cosh(b - a[:3]))
    )


def residuals(params, t, y):
    amp, rate = params[:, 0:1], params[:, 1:2]
    return amp * jnp.exp(-rate * t) - y


def _flat(tree):
    return jfu.ravel_pytree(tree)[0]


# The dense oracles are jitted (per objective): eager `jax.hessian` dispatches
# every operation and takes seconds per call.
@ft.partial(jax.jit, static_argnums=0)
def dense_newton(fun, params, damping, **kwargs):
    flat, unravel = jfu.ravel_pytree(params)
    f = lambda v: fun(unravel(v), **kwargs)
    g, H = jax.grad(f)(flat), jitted.hessian(f)(flat)
    return -jnp.linalg.solve(H + damping * jnp.eye(flat.size), g)


@ft.partial(jax.jit, static_argnums=0)
def dense_gauss_newton(residual_fn, params, damping, **kwargs):
    flat, unravel = jfu.ravel_pytree(params)
    r = lambda v: _flat(residual_fn(unravel(v), **kwargs))
    J = jitted.jacfwd(r)(flat)
    return -jnp.linalg.solve(J.T @ J + damping * jnp.eye(flat.size), J.T @ r(flat))


def run(opt, fun, params, steps, jit=True, **kwargs):
    """Yield (params before, state before, updates, state after) for each step."""

    def step(params, state):
        value, grad = jax.value_and_grad(fun)(params, **kwargs)
        updates, new_state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=fun, **kwargs
        )
        return updates, new_state

    step = jax.jit(step) if jit else step
    state = opt.init(params)
    for _ in range(steps):
        updates, new_state = step(params, state)
        yield params, state, updates, new_state
        params, state = optax.apply_updates(params, updates), new_state


def test_adaptive_newton_matches_dense_every_step():
    x = jnp.full(12, 0.5)
    opt = asdex.optax.sparse_newton(rosenbrock, x)
    accepted = retried = 0
    for params, state, updates, new_state in run(opt, rosenbrock, x, 40):
        info = new_state.info
        if info.accepted:
            accepted += 1
            dense = dense_newton(rosenbrock, params, info.used_damping)
            np.testing.assert_allclose(updates, dense, rtol=1e-10, atol=1e-12)
            assert rosenbrock(params + updates) <= rosenbrock(params)
        else:
            np.testing.assert_array_equal(updates, 0)
        if info.num_solves == 1:
            assert info.used_damping == state.damping
        else:
            retried += 1
            # Each retry multiplies λ by 4.
            np.testing.assert_allclose(
                info.used_damping, state.damping * 4.0 ** (info.num_solves - 1)
            )
    assert accepted >= 20 and retried >= 1
    final = params + updates
    assert jnp.linalg.norm(jax.grad(rosenbrock)(final)) < 1e-8


def test_pytree_params_and_extra_args_not_jitted():
    params = {"a": jnp.linspace(0.2, 0.9, 6), "b": jnp.array([0.1, -0.3, 0.5])}
    w = jnp.linspace(1.0, 3.0, 5)
    opt = asdex.optax.sparse_newton(weighted, params, w=w)
    for p, _, updates, new_state in run(opt, weighted, params, 6, jit=False, w=w):
        assert new_state.info.accepted
        dense = dense_newton(weighted, p, new_state.info.used_damping, w=w)
        np.testing.assert_allclose(_flat(updates), dense, rtol=1e-10, atol=1e-12)
    assert jtu.tree_structure(updates) == jtu.tree_structure(params)


class Chain(eqx.Module):
    weights: jax.Array
    bias: jax.Array
    steps: int = eqx.field(static=True)
    activation: object

    def __call__(self, x):
        return self.activation(self.weights * x[:-1] + self.bias) - x[1:]


def test_equinox_module_params_under_filter_jit():
    model = Chain(jnp.linspace(0.5, 1.5, 7), jnp.zeros(7), 3, jnp.tanh)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jnp.linspace(-1.0, 1.0, 8)

    def loss(params, x):
        m = eqx.combine(params, static)
        return jnp.sum(m(x) ** 2) + 0.1 * jnp.sum(m.weights**2) + jnp.sum(m.bias**2)

    opt = asdex.optax.sparse_newton(loss, params, x=x)

    @eqx.filter_jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params, x)
        return opt.update(grad, state, params, value=value, value_fn=loss, x=x)

    state = opt.init(params)
    for _ in range(3):
        updates, new_state = step(params, state)
        dense = dense_newton(loss, params, new_state.info.used_damping, x=x)
        np.testing.assert_allclose(_flat(updates), dense, rtol=1e-10, atol=1e-12)
        params, state = eqx.apply_updates(params, updates), new_state
    assert isinstance(params, Chain)


def test_gauss_newton_matches_dense_every_step():
    t = jnp.linspace(0.0, 2.0, 9)
    true = jnp.array([[1.0, 0.5], [2.0, 1.5], [0.5, 0.2]])
    y = true[:, 0:1] * jnp.exp(-true[:, 1:2] * t)
    params = true * 1.6

    def loss(params, t, y):
        return 0.5 * jnp.sum(residuals(params, t, y) ** 2)

    opt = asdex.optax.sparse_gauss_newton(residuals, params, t=t, y=y)
    for p, _, updates, new_state in run(opt, loss, params, 12, t=t, y=y):
        if new_state.info.accepted:
            lam = new_state.info.used_damping
            dense = dense_gauss_newton(residuals, p, lam, t=t, y=y)
            np.testing.assert_allclose(_flat(updates), dense, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p + updates, true, rtol=1e-8)


def test_undamped_newton_with_zoom_linesearch():
    # A convex objective: the Newton step is a descent direction, the line search
    # scales it, and the chain's first transform returns exactly -H⁻¹g.
    def f(x):
        return jnp.sum(jnp.exp(x) - 2 * x) + 0.5 * jnp.sum((x[1:] - x[:-1]) ** 2)

    x = jnp.linspace(-2.0, 3.0, 10)
    # As `optax.lbfgs` builds its line search: Newton's step has length 1 at the
    # solution, so every search starts from 1.
    linesearch = optax.scale_by_zoom_linesearch(
        max_linesearch_steps=20, initial_guess_strategy="one"
    )
    opt = asdex.optax.sparse_newton(
        f, x, linesearch=linesearch, tags=lx.positive_semidefinite_tag
    )
    newton = asdex.optax.sparse_newton(f, x, damping=0.0, adaptive_damping=False)
    value_and_grad = optax.value_and_grad_from_state(f)

    @jax.jit
    def step(x, state):
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(x, updates), state, grad

    state = opt.init(x)
    for _ in range(8):
        direction, _ = newton.update(jax.grad(f)(x), newton.init(x), x)
        np.testing.assert_allclose(direction, dense_newton(f, x, 0.0), rtol=1e-10)
        x, state, grad = step(x, state)
    assert jnp.linalg.norm(jax.grad(f)(x)) < 1e-10
    assert optax.tree.get(state, "damping") == 0


def test_gauss_newton_with_linesearch_and_fixed_damping():
    t = jnp.linspace(0.0, 2.0, 7)
    y = 1.5 * jnp.exp(-0.7 * t)[None, :] * jnp.ones((2, 1))
    params = jnp.array([[1.0, 0.5], [2.0, 1.0]])

    def loss(params):
        return 0.5 * jnp.sum(residuals(params, t, y) ** 2)

    gn = asdex.optax.sparse_gauss_newton(
        lambda p: residuals(p, t, y),
        params,
        linesearch=optax.scale_by_backtracking_linesearch(20, store_grad=True),
    )
    fixed = asdex.optax.sparse_gauss_newton(
        lambda p: residuals(p, t, y), params, damping=0.5, adaptive_damping=False
    )
    direction, state = fixed.update(params, fixed.init(params), params)
    dense = dense_gauss_newton(lambda p: residuals(p, t, y), params, 0.5)
    np.testing.assert_allclose(_flat(direction), dense, rtol=1e-10)
    assert state.damping == 0.5
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = gn.update(
            grad, state, params, value=value, grad=grad, value_fn=loss
        )
        return optax.apply_updates(params, updates), state

    state = gn.init(params)
    for _ in range(10):
        params, state = step(params, state)
    np.testing.assert_allclose(params, jnp.array([[1.5, 0.7]] * 2), rtol=1e-8)


def test_chain_and_state_checkpoint():
    x = jnp.linspace(-1.2, 1.0, 8)
    opt = optax.chain(
        optax.clip_by_global_norm(1e9), asdex.optax.sparse_newton(rosenbrock, x)
    )
    steps = list(run(opt, rosenbrock, x, 4))
    _, _, _, state = steps[1]
    # The state round-trips through Equinox's serialisation into a fresh state.
    blank = opt.init(x)
    restored = eqx.tree_deserialise_leaves(_serialise(state), blank)
    assert jtu.tree_structure(restored) == jtu.tree_structure(state)
    for a, b in zip(jtu.tree_leaves(restored), jtu.tree_leaves(state)):
        np.testing.assert_array_equal(a, b)
    assert optax.tree.get(state, "count") == 2


def _serialise(tree):
    import io

    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    buffer.seek(0)
    return buffer


def test_float32():
    # Above `SparseLinearSolver`'s dense threshold: the sparse factorisation runs
    # in float64 on the host, and the step comes back in float32.
    x = jnp.linspace(-1.2, 1.0, 201, dtype=jnp.float32)
    opt = asdex.optax.sparse_newton(rosenbrock, x)
    for params, _, updates, new_state in run(opt, rosenbrock, x, 3):
        assert updates.dtype == jnp.float32
        assert new_state.damping.dtype == jnp.float32
        dense = dense_newton(
            rosenbrock, params.astype(jnp.float64), new_state.info.used_damping
        )
        np.testing.assert_allclose(updates, dense, rtol=2e-4, atol=1e-5)


def test_strict_dtype_promotion():
    t = jnp.linspace(0.0, 1.0, 5)
    y = jnp.exp(-t)[None, :] * jnp.ones((3, 1))
    params = jnp.full((3, 2), 1.3)

    def loss(params, t, y):
        return 0.5 * jnp.sum(residuals(params, t, y) ** 2)

    with jax.numpy_dtype_promotion("strict"):
        opt = asdex.optax.sparse_gauss_newton(residuals, params, t=t, y=y)
        newton = asdex.optax.sparse_newton(loss, params, t=t, y=y)
        for o in (opt, newton):
            steps = list(run(o, loss, params, 2, t=t, y=y))
            assert steps[-1][3].info.accepted


def test_stationary_point_takes_zero_step():
    # At an exact minimum the step and the predicted decrease are zero: one trial,
    # accepted, λ unchanged (not grown for `max_trials` rejections).
    opt = asdex.optax.sparse_newton(rosenbrock, jnp.ones(6), damping=0.5)
    state = opt.init(jnp.ones(6))
    updates, state = opt.update(jnp.zeros(6), state, jnp.ones(6), value_fn=rosenbrock)
    np.testing.assert_array_equal(updates, 0)
    assert state.info.accepted and state.info.num_solves == 1
    assert state.damping == 0.5


# ---------------------------------------------------------------- errors


def test_error_non_scalar_fun():
    with pytest.raises(
        TypeError, match=r"sparse_newton\(fun, \.\.\.\)`: `fun` must return one"
    ):
        asdex.optax.sparse_newton(lambda x: x**2, jnp.ones(4))


def test_error_params_structure():
    opt = asdex.optax.sparse_newton(rosenbrock, jnp.ones(4))
    state = opt.init(jnp.ones(4))
    with pytest.raises(ValueError, match=r"`params` has shape \(5,\)"):
        opt.update(jnp.ones(5), state, jnp.ones(5), value_fn=rosenbrock)
    with pytest.raises(ValueError, match="PyTree structure"):
        opt.init({"x": jnp.ones(4)})


def test_error_missing_value_fn():
    opt = asdex.optax.sparse_newton(rosenbrock, jnp.ones(4))
    with pytest.raises(ValueError, match="needs the keyword argument `value_fn`"):
        opt.update(jnp.ones(4), opt.init(jnp.ones(4)), jnp.ones(4))


def test_error_integer_params():
    with pytest.raises(TypeError, match="dtype int"):
        asdex.optax.sparse_newton(rosenbrock, jnp.arange(4))
    opt = asdex.optax.sparse_newton(rosenbrock, jnp.ones(4))
    with pytest.raises(TypeError, match=r"`params` has dtype int"):
        opt.update(
            jnp.ones(4), opt.init(jnp.ones(4)), jnp.arange(4), value_fn=rosenbrock
        )


def test_error_options():
    with pytest.raises(ValueError, match="adaptive_damping=False"):
        asdex.optax.sparse_newton(
            rosenbrock,
            jnp.ones(4),
            adaptive_damping=True,
            linesearch=optax.scale_by_zoom_linesearch(10),
        )
    with pytest.raises(TypeError, match="does not accept"):
        asdex.optax.sparse_newton(rosenbrock, jnp.ones(4), data=jnp.ones(3))
    with pytest.raises(TypeError, match="leaf of type"):
        asdex.optax.sparse_newton(
            rosenbrock, Chain(jnp.ones(3), jnp.ones(3), 1, jnp.tanh)
        )


def test_gauss_newton_model_needs_one_product():
    """The trust-region test of `sparse_gauss_newton` predicts ½(‖r + Jδ‖² − ‖r‖²),
    which equals the quadratic model gᵀδ + ½δᵀ(JᵀJ)δ with g = Jᵀr."""
    import optimistix as optx

    from asdex.optimistix._minimiser import _predicted_reduction

    rng = np.random.default_rng(3)
    J, r, d = rng.normal(size=(7, 3)), rng.normal(size=7), rng.normal(size=3)
    residual_form = optx.FunctionInfo.ResidualJac(
        jnp.asarray(r), lx.MatrixLinearOperator(jnp.asarray(J))
    )
    quadratic_form = optx.FunctionInfo.EvalGradHessian(
        jnp.asarray(0.5 * r @ r),
        jnp.asarray(J.T @ r),
        lx.MatrixLinearOperator(jnp.asarray(J.T @ J)),
    )
    np.testing.assert_allclose(
        _predicted_reduction(jnp.asarray(d), residual_form),
        _predicted_reduction(jnp.asarray(d), quadratic_form),
        rtol=1e-12,
    )
