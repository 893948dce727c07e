import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import asdex
from helpers import (
    ELEMENTWISE_CASES,
    assert_exact,
    check_case,
    empty,
    eye,
    ids,
)


@pytest.mark.parametrize("case", ELEMENTWISE_CASES, ids=ids(ELEMENTWISE_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c
    for c in ELEMENTWISE_CASES
    if c.name in {"sin", "mul_const_mask", "where_dynamic_pred", "round", "div_xy"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


def test_mul_by_constant_mask_drops_zeros_exactly():
    mask = np.zeros(8)
    mask[[1, 4, 6]] = [2.0, -1.0, 0.5]
    assert_exact(lambda x: x * mask, jnp.ones(8), np.diag(mask != 0))
    # The mask on the left, broadcast from a row.
    assert_exact(
        lambda x: mask[None, :4] * x,
        jnp.ones((2, 4)),
        np.diag(np.tile(mask[:4] != 0, 2)),
    )


def test_mul_by_zeros_computed_from_constants():
    # The mask is built by traced operations on constants, so it is known.
    def f(x):
        mask = jnp.zeros(5).at[2].set(1.0) + jnp.arange(5.0) * 0.0
        return mask * x

    assert_exact(f, jnp.ones(5), np.diag([0, 0, 1, 0, 0]).astype(bool))


def test_mul_two_inputs_keeps_both():
    assert_exact(lambda x: x[:3] * x[3:], jnp.ones(6), eye(3, 6) | eye(3, 6, 3))


def test_div():
    # d(a/b)/db vanishes where a is a known zero.
    num = np.array([0.0, 1.0, 0.0, 2.0])
    assert_exact(lambda x: num / (1.0 + x**2), jnp.ones(4), np.diag(num != 0))
    assert_exact(lambda x: x / 2.0, jnp.ones(4), eye(4))
    assert_exact(lambda x: 1.0 / (1.0 + x**2), jnp.ones(4), eye(4))


@pytest.mark.parametrize("dynamic", [False, True])
def test_where(dynamic):
    pred_const = np.array([True, False, True, False])

    def f(x):
        pred = x[:4] > 0 if dynamic else pred_const
        return jnp.where(pred, x[:4], x[4:])

    if dynamic:
        expected = eye(4, 8) | eye(4, 8, 4)
    else:
        expected = np.where(pred_const[:, None], eye(4, 8), eye(4, 8, 4))
    assert_exact(f, jnp.ones(8), expected)


def test_select_n_three_cases():
    which = np.array([0, 1, 2, 1])
    assert_exact(
        lambda x: lax.select_n(which, x[:4], x[4:8], x[8:]),
        jnp.ones(12),
        np.stack([eye(4, 12, 4 * k) for k in range(3)])[which, np.arange(4)],
    )


def test_where_with_scalar_branch():
    assert_exact(lambda x: jnp.where(x > 0, x, 0.0), jnp.ones(5), eye(5))


@pytest.mark.parametrize("power", [1, 2, 3, -1, -2])
def test_integer_pow(power):
    assert_exact(
        lambda x: lax.integer_pow(x, power), jnp.ones(4), eye(4), positive=True
    )


def test_integer_pow_zero_is_empty():
    assert_exact(lambda x: lax.integer_pow(x, 0), jnp.ones(4), empty(4, 4))


def test_clamp():
    assert_exact(lambda x: lax.clamp(-1.0, x, 1.0), jnp.ones(4), eye(4))
    assert_exact(
        lambda x: jnp.clip(x[:2], x[2:], None), jnp.ones(4), eye(2, 4) | eye(2, 4, 2)
    )


@pytest.mark.parametrize(
    "fn",
    [jnp.sign, jnp.floor, jnp.ceil, jnp.round, jnp.trunc, jnp.rint],
    ids=lambda f: f.__name__,
)
def test_piecewise_constant_is_empty(fn):
    assert_exact(fn, jnp.linspace(-2, 2, 5), empty(5, 5))


@pytest.mark.parametrize("to", [jnp.int32, jnp.int64, jnp.bool_, jnp.uint8])
def test_convert_to_int_is_empty(to):
    assert_exact(lambda x: x.astype(to).astype(x.dtype) * 2.0, jnp.ones(5), empty(5, 5))


def test_float_to_float_conversion_keeps_pattern():
    assert_exact(
        lambda x: x.astype(jnp.float32).astype(jnp.float64), jnp.ones(3), eye(3)
    )


def test_stop_gradient_is_empty():
    assert_exact(lambda x: lax.stop_gradient(x) + 1.0, jnp.ones(3), empty(3, 3))


def test_comparisons_and_bool_logic_are_empty():
    def f(x):
        b = (x > 0) & ~(x < -1) | (x == 2.0)
        return b.astype(x.dtype)

    assert_exact(f, jnp.ones(4), empty(4, 4))


def test_broadcasting_binary():
    # (3, 1) + (1, 4): output (i, j) depends on a[i] and b[j].
    def f(x):
        return (x[:3, None] * x[None, 3:]).reshape(-1)

    expected = np.zeros((12, 7), bool)
    for i in range(3):
        for j in range(4):
            expected[4 * i + j, [i, 3 + j]] = True
    assert_exact(f, jnp.ones(7), expected)


def test_complex_intermediates():
    def f(x):
        z = x[:3] + 1j * x[3:]
        return jnp.real(z * jnp.conj(z)) + jnp.angle(z)

    assert_exact(f, jnp.arange(1.0, 7.0), eye(3, 6) | eye(3, 6, 3))


def test_chain_of_unary_stays_diagonal_at_scale():
    n = 20_000
    p = asdex.jacobian_sparsity(
        lambda x: jnp.tanh(jnp.exp(jnp.sin(x)) * 2.0 + x), input_shape=n
    )
    assert p.shape == (n, n)
    assert p.nnz == n
    np.testing.assert_array_equal(p.rows, np.arange(n))
    np.testing.assert_array_equal(p.cols, np.arange(n))


def test_special_functions_are_diagonal():
    import jax.scipy.special as jss

    def f(x):
        return (
            jss.digamma(x) + jss.erfc(x) + jss.expit(x) + jss.xlogy(x, x) + jss.i0e(x)
        )

    assert_exact(f, jnp.linspace(0.5, 1.5, 4), eye(4), positive=True)
