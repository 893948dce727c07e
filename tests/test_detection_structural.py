import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import asdex
from helpers import (
    STRUCTURAL_CASES,
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


@pytest.mark.parametrize("case", STRUCTURAL_CASES, ids=ids(STRUCTURAL_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c
    for c in STRUCTURAL_CASES
    if c.name
    in {"transpose3", "lax_pad_interior", "roll", "dynamic_update_slice_const"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


def test_old_style_reshape_with_dimensions():
    x = jnp.arange(12.0).reshape(3, 4)
    assert_exact(
        lambda x: lax.reshape(x, (12,), dimensions=(1, 0)),
        x,
        structural(lambda i: i.T.reshape(-1), (3, 4)),
    )


@pytest.mark.parametrize("n_split", [2, 3])
def test_split_pieces(n_split):
    x = jnp.arange(6.0)
    pieces_expected = np.split(np.arange(6), n_split)
    for k in range(n_split):
        assert_exact(
            lambda x, k=k: jnp.split(x, n_split)[k], x, rows_of(pieces_expected[k], 6)
        )


def test_lax_split():
    x = jnp.arange(10.0).reshape(2, 5)
    assert_exact(
        lambda x: lax.split(x, (2, 3), axis=1)[1],
        x,
        structural(lambda i: i[:, 2:], (2, 5)),
    )


@pytest.mark.parametrize(
    "config",
    [[(0, 0, 0)], [(2, -1, 1)], [(-2, -2, 0)], [(-1, 3, 2)], [(3, -4, 1)]],
    ids=str,
)
def test_lax_pad_configs(config):
    x = jnp.arange(1.0, 6.0)
    # The expected copy map comes from padding the element ids in lax itself.
    ids_ = lax.pad(jnp.arange(5), -1, config)
    assert_exact(lambda x: lax.pad(x, 0.0, config), x, rows_of(np.asarray(ids_), 5))


def test_lax_pad_2d_mixed():
    config = [(1, -1, 1), (0, 2, 0)]
    x = jnp.ones((3, 2))
    ids_ = lax.pad(jnp.arange(6).reshape(3, 2), -1, config)
    assert_exact(lambda x: lax.pad(x, 0.0, config), x, rows_of(np.asarray(ids_), 6))


@pytest.mark.parametrize("start", [0, 2, 5, 100, -3])
def test_dynamic_slice_known_start_is_exact(start):
    x = jnp.arange(7.0)
    # Negative starts count from the end, then the start is clamped into range.
    begin = int(np.clip(start + 7 if start < 0 else start, 0, 7 - 3))
    assert_exact(lambda x: lax.dynamic_slice_in_dim(x, start, 3), x, eye(3, 7, begin))


def test_dynamic_slice_start_from_constant_arithmetic():
    # The start is traced but computed from constants only, so it is known.
    def f(x):
        start = jnp.argmax(jnp.array([0.0, 3.0, 1.0]))  # 1
        return lax.dynamic_slice(x, (start * 2,), (3,))

    assert_exact(f, jnp.arange(7.0), eye(3, 7, 2))


def test_dynamic_slice_traced_start_is_sound_and_keeps_other_axes():
    # Rows are picked by a traced start; columns stay apart.
    def f(x):
        i = jnp.argmax(x[:, 0])
        return lax.dynamic_slice(x, (i, 0), (1, 4)).reshape(-1)

    x = jnp.arange(12.0).reshape(3, 4)
    p = assert_sound(f, x)
    assert_within(p, structural(lambda i: i.T, (3, 4)).reshape(4, 3, 12).any(1))


def test_dynamic_update_slice_known_start_is_exact():
    def f(x):
        return lax.dynamic_update_slice(x, jnp.zeros((2, 2)), (1, 1))

    ids_ = np.arange(12).reshape(3, 4)
    ids_[1:3, 1:3] = -1
    assert_exact(f, jnp.ones((3, 4)), rows_of(ids_, 12))


def test_dynamic_update_slice_traced_start_is_sound():
    def f(x):
        i = jnp.argmin(x)
        return lax.dynamic_update_slice(x[:5], x[5:] * 2.0, (i,))

    p = assert_sound(f, jnp.arange(7.0))
    # Each element keeps itself and may receive any update element, nothing else.
    bound = np.concatenate([eye(5), full(5, 2)], axis=1)
    assert_within(p, bound)


def test_dynamic_slice_traced_start_is_sound():
    f = lambda x: lax.dynamic_slice(x, (jnp.argmax(x),), (3,))
    assert_sound(f, jnp.arange(7.0), n_points=5)


def test_roll_traced_shift_is_sound():
    f = lambda x: jnp.roll(x[1:], jnp.argmax(x).astype(jnp.int32))
    assert_sound(f, jnp.arange(6.0), n_points=5)


@pytest.mark.parametrize("shift", [0, 1, -2, 7])
def test_roll_known_shift(shift):
    assert_exact(
        lambda x: jnp.roll(x, shift),
        jnp.arange(5.0),
        structural(lambda i: np.roll(i, shift), (5,)),
    )


def test_squeeze_expand_dims_broadcast_chain():
    def f(x):
        y = jnp.expand_dims(x, 0)  # (1, 3)
        y = jnp.broadcast_to(y, (2, 3))
        return jnp.squeeze(y[:1], 0)

    assert_exact(f, jnp.arange(3.0), eye(3))


def test_transpose_of_vmapped_function():
    f = jax.vmap(lambda r: r[::-1], in_axes=1, out_axes=1)
    x = jnp.arange(12.0).reshape(3, 4)
    assert_exact(f, x, structural(lambda i: i[::-1], (3, 4)))


def test_large_structural_chain_is_exact_and_fast():
    n = 100_000

    def f(x):
        y = x.reshape(100, 1000).T.reshape(-1)
        return jnp.concatenate([y[1:], y[:1]])[::-1]

    p = asdex.jacobian_sparsity(f, input_shape=n)
    assert p.nnz == n
    ids_ = np.arange(n).reshape(100, 1000).T.reshape(-1)
    expected_cols = np.concatenate([ids_[1:], ids_[:1]])[::-1]
    np.testing.assert_array_equal(p.cols, expected_cols)
