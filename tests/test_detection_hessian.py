import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import asdex
from helpers import (
    HESSIAN_CASES,
    assert_hessian_exact,
    assert_hessian_sound,
    band,
    check_hessian_case,
    empty,
    eye,
    full,
    ids,
)


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=ids(HESSIAN_CASES))
def test_table(case):
    check_hessian_case(case)


@pytest.mark.parametrize("case", HESSIAN_CASES[:3], ids=ids(HESSIAN_CASES[:3]))
def test_table_float32(case):
    check_hessian_case(case, dtype=jnp.float32)


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [2, 5, 30])
def test_extended_rosenbrock_is_tridiagonal(n):
    p = assert_hessian_exact(_rosenbrock, jnp.zeros(n), band(n, n, 1, 1))
    assert p.nnz == 3 * n - 2


def test_rosenbrock_at_scale():
    n = 10_000
    p = asdex.hessian_sparsity(_rosenbrock, input_shape=n)
    assert p.shape == (n, n)
    assert p.nnz == 3 * n - 2
    assert p.is_symmetric()
    assert np.all(np.abs(p.rows.astype(np.int64) - p.cols) <= 1)


def test_neighbour_products_have_no_diagonal():
    f = lambda x: jnp.sum(x[1:] * x[:-1])
    p = assert_hessian_exact(f, jnp.ones(6), eye(6, 6, 1) | eye(6, 6, -1))
    assert not np.any(np.diag(p.todense()))


@pytest.mark.parametrize(
    "f",
    [
        lambda x: jnp.sum(x),
        lambda x: 3.0 * x[0] - x[2],
        lambda x: jnp.dot(jnp.arange(4.0), x) + 1.0,
        lambda x: jnp.sum(jnp.cumsum(x[::-1])),
    ],
)
def test_linear_function_is_empty(f):
    assert_hessian_exact(f, jnp.ones(4), empty(4, 4))


@pytest.mark.parametrize("lower,upper", [(1, 1), (0, 2), (2, 0)])
def test_quadratic_form_with_banded_matrix(lower, upper):
    n = 7
    A = np.where(band(n, n, lower, upper), np.arange(1.0, n * n + 1).reshape(n, n), 0.0)
    expected = band(n, n, lower, upper) | band(n, n, lower, upper).T
    p = assert_hessian_exact(lambda x: x @ A @ x, jnp.ones(n), expected)
    assert p.is_symmetric()


def test_symmetric_even_when_gradient_pattern_is_not():
    # The Jacobian of grad of x0 * x1**2 is symmetric anyway; a cubic coupling checks
    # that the union with the transpose is taken.
    f = lambda x: x[0] * x[1] ** 2 + jnp.sin(x[2]) * x[3]
    p = assert_hessian_sound(f, jnp.ones(4))
    assert p.is_symmetric()
    expected = np.zeros((4, 4), bool)
    expected[[0, 1, 1], [1, 0, 1]] = True
    expected[[2, 2, 3], [2, 3, 2]] = True
    np.testing.assert_array_equal(p.todense(), expected)


def test_hessian_of_scalar_output_only():
    with pytest.raises(TypeError, match="scalar"):
        asdex.hessian_sparsity(lambda x: x**2, jnp.ones(3))


def test_hessian_of_pytree_input():
    def f(d):
        return jnp.sum(d["a"] * d["b"]) + jnp.sum(d["a"] ** 3)

    p = asdex.hessian_sparsity(f, {"b": jnp.ones(2), "a": jnp.ones(2)})
    # Columns: a0 a1 b0 b1.
    expected = np.block([[eye(2), eye(2)], [eye(2), empty(2, 2)]])
    np.testing.assert_array_equal(p.todense(), expected)


def test_hessian_through_control_flow():
    def f(x):
        y = lax.fori_loop(0, 3, lambda i, c: c + 0.1 * jnp.roll(c, 1) ** 2, x)
        return jnp.sum(jnp.where(x > 0, y, 2 * y))

    assert_hessian_sound(f, jnp.arange(1.0, 6.0), n_points=3)


def test_hessian_of_scan_and_cond():
    def f(x):
        c, _ = lax.scan(lambda c, xi: (c * xi + jnp.sin(c), None), 1.0, x)
        return lax.cond(x[0] > 0, lambda v: v**2, lambda v: -v, c)

    p = assert_hessian_sound(f, jnp.linspace(0.5, 1.5, 4))
    assert p.shape == (4, 4)


def test_hessian_of_dense_coupling():
    f = lambda x: jnp.log(jnp.sum(jnp.exp(x)))
    assert_hessian_exact(f, jnp.ones(4), full(4, 4))


@pytest.mark.parametrize("seed", range(3))
def test_containment_random_separable_plus_coupling(seed):
    rng = np.random.default_rng(seed)
    n = 8
    pairs = rng.choice(n, size=(4, 2))
    w = rng.standard_normal(4)

    def f(x):
        return jnp.sum(jnp.cos(x)) + jnp.sum(w * x[pairs[:, 0]] * x[pairs[:, 1]])

    expected = eye(n).copy()
    for i, j in pairs:
        expected[i, j] = expected[j, i] = True
    assert_hessian_exact(f, jnp.asarray(rng.standard_normal(n)), expected)


def test_hessian_with_custom_jvp_inside():
    # softplus is a custom_jvp; its second derivative is elementwise.
    f = lambda x: jnp.sum(jax.nn.softplus(x[1:] - x[:-1]))
    assert_hessian_exact(f, jnp.arange(5.0), band(5, 5, 1, 1))
