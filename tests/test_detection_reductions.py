import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from helpers import (
    REDUCTION_CASES,
    assert_exact,
    assert_sound,
    check_case,
    full,
    ids,
    kron_eye,
    rows_of,
)


@pytest.mark.parametrize("case", REDUCTION_CASES, ids=ids(REDUCTION_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c for c in REDUCTION_CASES if c.name in {"sum_axis1", "cumsum", "sort_rows"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


def _fibers(shape, axes):
    """Exact pattern of a reduction of `shape` over `axes` (outputs row-major)."""
    n = int(np.prod(shape))
    idx = np.indices(shape).reshape(len(shape), -1)
    kept = [a for a in range(len(shape)) if a not in axes]
    kept_shape = [shape[a] for a in kept]
    target = (
        np.ravel_multi_index([idx[a] for a in kept], kept_shape)
        if kept
        else np.zeros(n, int)
    )
    m = int(np.prod(kept_shape)) if kept else 1
    out = np.zeros((m, n), bool)
    out[target, np.arange(n)] = True
    return out


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (0, 1, 2)], ids=str)
@pytest.mark.parametrize(
    "op", [jnp.sum, jnp.max, jnp.min, jnp.prod], ids=lambda f: f.__name__
)
def test_reduce_along_axes(op, axes):
    shape = (2, 3, 4)
    assert_exact(
        lambda x: op(x, axis=axes),
        jnp.arange(1.0, 25.0).reshape(shape),
        _fibers(shape, axes),
    )


def test_reduce_boolean_is_empty():
    f = lambda x: jnp.any(x > 0, axis=0).astype(x.dtype) + jnp.all(x > 0, axis=0)
    assert_exact(f, jnp.ones((3, 2)), np.zeros((2, 6), bool))


def test_argmax_argmin_are_empty():
    f = lambda x: jnp.stack([jnp.argmax(x), jnp.argmin(x)]).astype(x.dtype)
    assert_exact(f, jnp.arange(4.0), np.zeros((2, 4), bool))


def test_lax_reduce_custom_computation():
    def f(x):
        return lax.reduce(
            (x, x * 2), (0.0, 0.0), lambda a, b: (a[0] + b[0], a[1] * b[1]), (1,)
        )[1]

    assert_exact(f, jnp.ones((2, 3)), kron_eye(2, full(1, 3)))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "op", ["cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"]
)
def test_cumulative(op, reverse):
    fn = getattr(lax, op)
    expected = np.triu(full(4, 4)) if reverse else np.tril(full(4, 4))
    assert_exact(
        lambda x: fn(x, axis=0, reverse=reverse), jnp.arange(1.0, 5.0), expected
    )


def test_cumsum_2d_axis0():
    x = jnp.ones((3, 2))
    # Output (i, j) depends on inputs (k, j) with k <= i.
    expected = np.zeros((6, 6), bool)
    for i in range(3):
        for j in range(2):
            for k in range(i + 1):
                expected[2 * i + j, 2 * k + j] = True
    assert_exact(lambda x: jnp.cumsum(x, axis=0), x, expected)


def test_max_pool_2d_with_padding_and_strides():
    def f(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (2, 2), (2, 1), [(0, 1), (1, 0)])

    x = jnp.arange(16.0).reshape(4, 4)
    # Reference pattern: the windows of an id array, padding dropped.
    ids_ = np.pad(np.arange(16).reshape(4, 4), [(0, 1), (1, 0)], constant_values=-1)
    out = []
    for i in range(0, ids_.shape[0] - 1, 2):
        for j in range(0, ids_.shape[1] - 1):
            win = ids_[i : i + 2, j : j + 2].reshape(-1)
            out.append(win[win >= 0])
    expected = np.zeros((len(out), 16), bool)
    for r, w in enumerate(out):
        expected[r, w] = True
    assert_exact(f, x, expected)


def test_avg_pool_dilated_window():
    f = lambda x: lax.reduce_window(
        x, 0.0, lax.add, (2,), (1,), "VALID", window_dilation=(2,)
    )
    assert_exact(
        f, jnp.arange(5.0), np.eye(3, 5, dtype=bool) | np.eye(3, 5, 2, dtype=bool)
    )


def test_max_pool_gradient_via_jvp_is_sound():
    # The JVP of max pooling uses select_and_gather_add; its VJP select_and_scatter_add.
    pool = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2,), (2,), "VALID")
    f = lambda x: jax.grad(lambda y: jnp.sum(pool(y) ** 2))(x)
    assert_sound(f, jnp.arange(6.0), n_points=4)
    g = lambda x: jax.jvp(pool, (x,), (x**2,))[1]
    assert_sound(g, jnp.arange(6.0), n_points=4)


def test_sort_multiple_operands_traced_keys():
    # The permutation is piecewise constant in the keys: the values carry no
    # derivative with respect to the keys, only to the values themselves.
    f = lambda x: lax.sort((x[:4], x[4:]), num_keys=1)[1]
    expected = np.concatenate([np.zeros((4, 4), bool), full(4, 4)], axis=1)
    assert_exact(f, jnp.arange(8.0), expected)
    g = lambda x: lax.sort((x[:4], x[4:]), num_keys=1)[0]
    expected = np.concatenate([full(4, 4), np.zeros((4, 4), bool)], axis=1)
    assert_exact(g, jnp.arange(8.0), expected)


def test_sort_constant_keys_permutes_values_exactly():
    keys = np.array([[2.0, 1.0, 3.0], [0.0, -1.0, 5.0]])
    perm = np.argsort(keys, axis=1)
    f = lambda x: lax.sort((keys, x), dimension=1, num_keys=1)[1]
    expected = rows_of((np.arange(2)[:, None] * 3 + perm).reshape(-1), 6)
    assert_exact(f, jnp.ones((2, 3)), expected)


def test_top_k_values_and_indices():
    def f(x):
        v, i = lax.top_k(x, 2)
        return v + i.astype(x.dtype)

    assert_exact(f, jnp.arange(5.0), full(2, 5))


def test_argsort_of_traced_is_empty():
    f = lambda x: jnp.argsort(x).astype(x.dtype)
    assert_exact(f, jnp.arange(5.0), np.zeros((5, 5), bool))


def test_associative_scan():
    assert_exact(
        lambda x: lax.associative_scan(jnp.add, x), jnp.arange(6.0), np.tril(full(6, 6))
    )
