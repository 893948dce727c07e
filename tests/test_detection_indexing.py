import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import asdex
from helpers import (
    INDEXING_CASES,
    assert_exact,
    assert_sound,
    assert_within,
    check_case,
    eye,
    full,
    ids,
    rows_of,
    structural,
)


@pytest.mark.parametrize("case", INDEXING_CASES, ids=ids(INDEXING_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c for c in INDEXING_CASES if c.name in {"at_add", "index_2d_pairs", "at_set"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


def test_argsort_of_constant_is_exact_permutation():
    key = np.array([0.3, -1.0, 2.0, 0.0, 1.5, -0.5, 0.7])
    perm = np.argsort(key)
    p = assert_exact(lambda x: x[jnp.argsort(key)], jnp.arange(7.0), rows_of(perm, 7))
    assert p.nnz == 7


def test_gather_2d_constant_indices():
    rows = np.array([2, 0, 2])
    cols = np.array([1, 3, 0])
    assert_exact(
        lambda x: x[rows, cols], jnp.ones((3, 4)), rows_of(rows * 4 + cols, 12)
    )
    assert_exact(
        lambda x: x[:, cols], jnp.ones((3, 4)), structural(lambda i: i[:, cols], (3, 4))
    )
    assert_exact(
        lambda x: x[rows], jnp.ones((3, 4)), structural(lambda i: i[rows], (3, 4))
    )


def test_batched_gather_from_vmap():
    idx = np.array([[2, 0], [1, 1], [0, 3]])
    f = jax.vmap(lambda r, i: r[i], in_axes=(0, 0))
    x = jnp.ones((3, 4))
    expected = rows_of((np.arange(3)[:, None] * 4 + idx).reshape(-1), 12)
    assert_exact(lambda x: f(x, idx), x, expected)


def test_gather_traced_index_is_sound_and_keeps_windows_apart():
    def f(x):
        i = jnp.argmax(x[:, 0])
        return x[i, 1:]

    x = jnp.arange(12.0).reshape(3, 4)
    p = assert_sound(f, x, n_points=4)
    bound = structural(lambda i: i.T, (3, 4)).reshape(4, 3, 12).any(1)[1:]
    assert_within(p, bound)


def test_gather_traced_integer_input_index():
    # An integer argument is never differentiated; its value is unknown.
    def f(x, i):
        return x[i] * 2.0

    i = np.array([3, 0])
    p = assert_sound(f, jnp.arange(5.0), i)
    assert p.shape == (2, 5)


def test_scatter_traced_indices_sound():
    def f(x):
        i = jnp.argsort(x[:3])
        return jnp.zeros(4).at[i].add(x[3:])

    p = assert_sound(f, jnp.arange(6.0), n_points=4)
    assert_within(p, np.concatenate([np.zeros((4, 3), bool), full(4, 3)], axis=1))


def test_scatter_traced_set_keeps_operand():
    def f(x):
        i = jnp.argmax(x[:2])
        return x.at[i].set(-x[4])

    p = assert_sound(f, jnp.arange(5.0), n_points=4)
    assert_within(p, eye(5) | rows_of([4] * 5, 5))


def test_at_apply():
    # `scatter_apply` has no JVP in JAX, so the oracle is the equivalent gather/set.
    idx = np.array([1, 3])
    f = lambda x: x.at[idx].apply(jnp.sin)
    g = lambda x: x.at[idx].set(jnp.sin(x[idx]))
    x = jnp.arange(5.0)
    np.testing.assert_allclose(f(x), g(x))
    p = asdex.jacobian_sparsity(f, x)
    np.testing.assert_array_equal(p.todense(), eye(5))
    assert_sound(g, x, pattern=p)


def test_at_set_duplicates_last_write_wins_or_any():
    # Duplicate indices in `set`: the result is one of the updates; both must be in.
    idx = np.array([2, 2])
    f = lambda x: x[:4].at[idx].set(x[4:])
    p = assert_sound(f, jnp.arange(6.0))
    bound = eye(4, 6)
    bound[2] = False
    bound[2, 4:] = True
    assert_within(p, bound)


def test_at_get_out_of_bounds_modes():
    idx = np.array([0, 5, -1])
    x = jnp.arange(5.0)
    assert_exact(lambda x: x.at[idx].get(mode="clip"), x, rows_of([0, 4, 4], 5))
    assert_exact(
        lambda x: x.at[idx].get(mode="fill", fill_value=1.0), x, rows_of([0, -1, 4], 5)
    )


def test_scatter_out_of_bounds_dropped():
    idx = np.array([1, 9])
    f = lambda x: x[:4].at[idx].add(x[4:], mode="drop")
    assert_exact(f, jnp.arange(6.0), eye(4, 6) | rows_of([-1, 4, -1, -1], 6))


def test_dynamic_index_in_dim_known():
    assert_exact(
        lambda x: lax.dynamic_index_in_dim(x, 2, keepdims=False),
        jnp.arange(4.0),
        rows_of([2], 4),
    )


def test_segment_sum_constant_ids():
    seg = np.array([0, 0, 1, 2, 2, 2])
    f = lambda x: jax.ops.segment_sum(x, seg, num_segments=3)
    expected = np.zeros((3, 6), bool)
    expected[seg, np.arange(6)] = True
    assert_exact(f, jnp.arange(6.0), expected)
