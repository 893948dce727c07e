import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
import jitted
from helpers import (
    CUSTOM_CASES,
    assert_exact,
    assert_sound,
    check_case,
    empty,
    eye,
    full,
    ids,
    kron_eye,
    no_unknown_primitives,
    structural,
)


@pytest.mark.parametrize("case", CUSTOM_CASES, ids=ids(CUSTOM_CASES))
def test_table(case):
    check_case(case)


@pytest.mark.parametrize("case", CUSTOM_CASES[:2], ids=ids(CUSTOM_CASES[:2]))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


# ---------------------------------------------------------------------------- custom_jvp


@jax.custom_jvp
def straight_through_round(x):
    return jnp.round(x)


@straight_through_round.defjvp
def _ste_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.round(x), t


def test_straight_through_estimator_is_identity_not_empty():
    # The primal (round) has a zero derivative, but the declared JVP is the identity.
    p = assert_exact(straight_through_round, jnp.linspace(-2, 2, 6), eye(6))
    assert p.nnz == 6
    # Without the custom rule, round alone is empty.
    assert asdex.jacobian_sparsity(jnp.round, jnp.ones(6)).nnz == 0


@jax.custom_jvp
def _jvp_mixes(x):
    return x * 1.0


@_jvp_mixes.defjvp
def _jvp_mixes_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # A (wrong on purpose) rule whose tangent reverses: detection must follow it.
    return x, t[::-1]


def test_custom_jvp_follows_the_rule_not_the_primal():
    assert_exact(_jvp_mixes, jnp.arange(4.0), eye(4)[::-1])


@jax.custom_jvp
def _scaled(x, scale):
    return x * scale


@_scaled.defjvp
def _scaled_jvp(primals, tangents):
    (x, s), (tx, ts) = primals, tangents
    return x * s, tx * s + x * ts


def test_custom_jvp_with_two_inputs_and_known_operand():
    f = lambda x: _scaled(x[:3], x[3:])
    assert_exact(f, jnp.arange(1.0, 7.0), eye(3, 6) | eye(3, 6, 3))
    # A known zero scale: JVP rule tx * 0 + x * 0 is exactly zero.
    g = lambda x: _scaled(x, jnp.zeros(3))
    assert_exact(g, jnp.arange(1.0, 4.0), empty(3, 3))


@jax.custom_jvp
def _self_calling(x):
    return jnp.sin(x)


@_self_calling.defjvp
def _self_calling_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # The primal output is computed by calling the function itself, as
    # `jnp.logaddexp` and many library functions do.
    y = _self_calling(x)
    return y, jnp.cos(x) * t + 0.0 * y


def test_custom_jvp_whose_rule_calls_itself():
    with no_unknown_primitives():
        assert_exact(_self_calling, jnp.arange(4.0), eye(4))


def test_logaddexp_recursive_custom_jvp():
    f = lambda x: jnp.logaddexp(x[:3], x[3:])
    with no_unknown_primitives():
        assert_exact(f, jnp.arange(6.0), eye(3, 6) | eye(3, 6, 3))


def test_custom_jvp_with_integer_argument():
    @jax.custom_jvp
    def f(x, n):
        return x * n

    @f.defjvp
    def f_jvp(primals, tangents):
        (x, n), (t, _) = primals, tangents
        return x * n, t * n

    g = lambda x: f(x, jnp.arange(3))
    assert_exact(g, jnp.ones(3), np.diag([0, 1, 1]).astype(bool))


def test_jax_nn_custom_jvps():
    with no_unknown_primitives():
        assert_exact(jax.nn.relu, jnp.linspace(-1, 1, 4), eye(4))
        assert_exact(jax.nn.silu, jnp.linspace(-1, 1, 4), eye(4))
        assert_exact(jax.nn.softplus, jnp.linspace(-1, 1, 4), eye(4))
        assert_exact(jax.nn.gelu, jnp.linspace(-1, 1, 4), eye(4))


# ---------------------------------------------------------------------------- custom_vjp


@jax.custom_vjp
def _clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(_, g):
    return (jnp.clip(g, -1.0, 1.0),)


_clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@jax.custom_vjp
def _vjp_reverse(x):
    return x * 2.0


def _vjp_reverse_fwd(x):
    return x * 2.0, None


def _vjp_reverse_bwd(_, g):
    # The declared cotangent map reverses; detection must follow the VJP.
    return (g[::-1] * 2.0,)


_vjp_reverse.defvjp(_vjp_reverse_fwd, _vjp_reverse_bwd)


def test_custom_vjp_identity():
    assert_exact(_clip_gradient, jnp.arange(4.0), eye(4), rev=True)


def test_custom_vjp_follows_the_backward_rule():
    assert_exact(_vjp_reverse, jnp.arange(4.0), eye(4)[::-1], rev=True)


@jax.custom_vjp
def _two_in_two_out(a, b):
    return a * b, a + jnp.sum(b)


def _tito_fwd(a, b):
    return _two_in_two_out(a, b), (a, b)


def _tito_bwd(res, g):
    a, b = res
    ga, gb = g
    return ga * b + gb, ga * a + jnp.sum(gb)


_two_in_two_out.defvjp(_tito_fwd, _tito_bwd)


def test_custom_vjp_several_inputs_and_outputs():
    def f(x):
        p, q = _two_in_two_out(x[:3], x[3:])
        return jnp.concatenate([p, q])

    expected = np.concatenate(
        [eye(3, 6) | eye(3, 6, 3), eye(3, 6) | (np.arange(6) >= 3)[None]]
    )
    assert_exact(f, jnp.arange(1.0, 7.0), expected, rev=True)


def test_custom_vjp_with_nondiff_argnums():
    from functools import partial

    @partial(jax.custom_vjp, nondiff_argnums=(1,))
    def shift(x, k):
        return jnp.roll(x, k)

    def shift_fwd(x, k):
        return jnp.roll(x, k), None

    def shift_bwd(k, _, g):
        return (jnp.roll(g, -k),)

    shift.defvjp(shift_fwd, shift_bwd)
    f = lambda x: shift(x, 2)
    assert_exact(
        f, jnp.arange(5.0), structural(lambda i: np.roll(i, 2), (5,)), rev=True
    )


def test_checkpointed_custom_vjp_inside_vmap():
    f = jax.vmap(_vjp_reverse)
    assert_exact(f, jnp.ones((2, 3)), kron_eye(2, eye(3)[::-1]), rev=True)


# ---------------------------------------------------------------------------- Equinox


def test_eqx_error_if():
    def f(x):
        y = eqx.error_if(x, jnp.any(x > 1e6), "too big")
        return y[::-1] * 2.0

    with no_unknown_primitives():
        assert_exact(f, jnp.arange(4.0), eye(4)[::-1])


def test_eqxi_branched_error_if():
    def f(x):
        y = eqxi.branched_error_if(x, x[0] > 1e6, 0, ["big"])
        return jnp.cumsum(y)

    with no_unknown_primitives():
        assert_exact(f, jnp.arange(4.0), np.tril(full(4, 4)))


def test_eqxi_nondifferentiable_backward():
    # Forward derivatives pass through; only reverse mode is blocked.
    f = lambda x: eqxi.nondifferentiable_backward(x)[::-1] * 2.0
    with no_unknown_primitives():
        assert_exact(f, jnp.arange(4.0), eye(4)[::-1])


def test_eqxi_unvmap_any_is_discrete():
    f = lambda x: jnp.where(eqxi.unvmap_any(x > 0), x[::-1], x)
    with no_unknown_primitives():
        assert_exact(f, jnp.arange(4.0), eye(4) | eye(4)[::-1])


def _eqxi_loop(kind):
    def f(x):
        def body(c):
            v, i = c
            return v[::-1] * 2.0, i + 1

        return eqxi.while_loop(
            lambda c: c[1] < 3, body, (x, 0), max_steps=5, kind=kind
        )[0]

    return f


@pytest.mark.parametrize("kind", ["lax", "bounded", "checkpointed"])
def test_eqxi_while_loop_is_sound(kind):
    f = _eqxi_loop(kind)
    rev = kind == "checkpointed"
    with no_unknown_primitives():
        p = assert_sound(f, jnp.arange(5.0), rev=rev)
    # Three reversals of x: odd, so at most the reversal, possibly unioned with x.
    assert not np.any(p.todense() & ~(eye(5) | eye(5)[::-1]))


@pytest.mark.parametrize("kind", ["lax", "bounded", "checkpointed"])
def test_eqxi_while_loop_known_trip_count_is_exact(kind):
    # The counter starts at a constant and steps by one: the trip count is known.
    with no_unknown_primitives():
        assert_exact(
            _eqxi_loop(kind), jnp.arange(5.0), eye(5)[::-1], rev=kind == "checkpointed"
        )


def _eqxi_scan(kind):
    def f(x):
        return eqxi.scan(
            lambda c, xi: (c + xi, c * xi), 0.0, x, kind=kind, checkpoints="all"
        )[1]

    return f


def test_eqxi_scan_lax_is_exact():
    expected = np.tril(full(5, 5)) & (np.arange(5)[:, None] > 0)
    with no_unknown_primitives():
        assert_exact(_eqxi_scan("lax"), jnp.arange(5.0), expected)


def test_eqxi_scan_checkpointed_is_sound():
    # The checkpointed scan is a custom_vjp around a while loop; its backward pass
    # reads the checkpoints at traced positions, so only soundness is asked for.
    with no_unknown_primitives():
        assert_sound(_eqxi_scan("checkpointed"), jnp.arange(5.0), rev=True)


def test_eqx_module_method_and_filter_transforms():
    class Shift(eqx.Module):
        k: int = eqx.field(static=True)

        def __call__(self, x):
            return jnp.roll(x, self.k)

    f = eqx.filter_jit(Shift(1))
    assert_exact(f, jnp.arange(4.0), structural(lambda i: np.roll(i, 1), (4,)))


def test_eqxi_noinline_is_conservative():
    # `noinline` hides its function from the jaxpr; asdex documents it as
    # intentionally conservative (all-to-all), without a warning.
    f = eqxi.noinline(lambda x: x[::-1] * 2.0)
    assert "noinline" in asdex.detection.INTENTIONALLY_CONSERVATIVE
    with no_unknown_primitives():
        assert_sound(f, jnp.arange(4.0))
        p = asdex.jacobian_sparsity(f, jnp.arange(4.0))
    np.testing.assert_array_equal(p.todense(), full(4, 4))


# ---------------------------------------------------------------------------- Lineax


def test_lineax_linear_solve_inside_function():
    def f(x):
        op = lx.MatrixLinearOperator(jnp.diag(2.0 + x**2) + 0.1 * jnp.ones((4, 4)))
        return lx.linear_solve(op, x, solver=lx.LU()).value

    with no_unknown_primitives():
        p = assert_sound(f, jnp.arange(4.0))
    np.testing.assert_array_equal(p.todense(), full(4, 4))


def test_lineax_diagonal_solve_sound():
    def f(x):
        op = lx.DiagonalLinearOperator(3.0 + x**2)
        return lx.linear_solve(op, x, solver=lx.Diagonal()).value

    with no_unknown_primitives():
        assert_sound(f, jnp.arange(4.0))


def test_linear_solve_is_intentionally_conservative():
    assert "linear_solve" in asdex.detection.INTENTIONALLY_CONSERVATIVE
    assert "pure_callback" in asdex.detection.INTENTIONALLY_CONSERVATIVE


# ---------------------------------------------------------------------------- callbacks


def test_pure_callback_is_dense_without_warning():
    def f(x):
        y = jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x[:3].shape, x.dtype), x[:3])
        return jnp.concatenate([y, x[3:] * 2.0])

    with no_unknown_primitives():
        p = asdex.jacobian_sparsity(f, jnp.arange(5.0))
    expected = np.zeros((5, 5), bool)
    expected[:3, :3] = True
    expected[3:, 3:] = eye(2)
    np.testing.assert_array_equal(p.todense(), expected)


def test_debug_print_and_callback_do_not_change_pattern():
    def f(x):
        jax.debug.print("x = {}", x)
        jax.debug.callback(lambda v: None, x)
        return x[::-1]

    with no_unknown_primitives():
        p = asdex.jacobian_sparsity(f, jnp.arange(3.0))
    np.testing.assert_array_equal(p.todense(), eye(3)[::-1])


# ---------------------------------------------------------------------------- Optimistix


def test_optimistix_root_find_inside_function():
    import optimistix as optx

    def f(x):
        fn = lambda y, args: y - jnp.tanh(args + 0.5 * y)
        solver = optx.Newton(rtol=1e-10, atol=1e-10)
        return optx.root_find(fn, solver, jnp.zeros_like(x), args=x).value

    with no_unknown_primitives():
        assert_sound(f, jnp.linspace(0.5, 1.5, 3))


# ---------------------------------------------------------------------------- custom_lin


@jax.custom_vjp
def _shifted_product(x):
    return jnp.sin(x[1:]) * x[:-1]


def _shifted_product_fwd(x):
    return _shifted_product(x), x


def _shifted_product_bwd(x, g):
    grad = jnp.zeros_like(x).at[:-1].add(g * jnp.sin(x[1:]))
    return (grad.at[1:].add(g * jnp.cos(x[1:]) * x[:-1]),)


_shifted_product.defvjp(_shifted_product_fwd, _shifted_product_bwd)


def _plain_shifted_product(x):
    return jnp.sin(x[1:]) * x[:-1]


def test_custom_lin_of_a_linearized_custom_vjp_is_exact():
    """`jax.linearize` of a custom_vjp function leaves a `custom_lin` in the jaxpr.

    Its pattern is the transpose of the backward rule's. JAX cannot differentiate
    the linearized function (neither mode), so the oracle is `jax.jacrev` of the
    function itself, which is the linear map's matrix.
    """
    x0 = jnp.linspace(0.1, 1.0, 6)
    _, linear = jax.linearize(_shifted_product, x0)
    jaxpr = jax.make_jaxpr(linear)(x0)
    assert "custom_lin" in {e.primitive.name for e in jaxpr.jaxpr.eqns}
    with no_unknown_primitives():
        pattern = asdex.jacobian_sparsity(linear, x0)
    expected = eye(5, 6) | eye(5, 6, 1)
    np.testing.assert_array_equal(pattern.todense(), expected)
    for point in (x0, jnp.asarray(np.random.default_rng(0).standard_normal(6))):
        dense = np.asarray(jitted.jacrev(_shifted_product)(point)) != 0
        assert not np.any(dense & ~pattern.todense())


def test_custom_lin_reads_residuals_that_depend_on_the_input():
    """Residuals computed from the input: the map's output depends on them too."""
    tangent = jnp.ones(6)

    def g(x):
        return jax.linearize(_shifted_product, x)[1](tangent)

    def plain(x):
        return jax.jvp(_plain_shifted_product, (x,), (tangent,))[1]

    x = jnp.linspace(0.1, 1.0, 6)
    with no_unknown_primitives():
        pattern = asdex.jacobian_sparsity(g, x)
    # Sound against the same map written without custom_vjp, and banded: the
    # residual part is the union over the two tangent elements each output reads.
    assert_sound(plain, x, pattern=pattern)
    assert pattern.nnz <= 4 * 5 and not pattern.todense()[0, 3:].any()
