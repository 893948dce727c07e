import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

import asdex
from helpers import (
    assert_exact,
    assert_sound,
    band,
    empty,
    eye,
    full,
    kron_eye,
    rows_of,
)


def _diff(x):
    return (x[1:] - x[:-1]) ** 2


_DIFF_50 = eye(49, 50) | eye(49, 50, 1)


# ---------------------------------------------------------------------------- sample args


@pytest.mark.parametrize(
    "sample",
    [
        jnp.zeros(50),
        np.zeros(50),
        jax.ShapeDtypeStruct((50,), jnp.float64),
        jax.ShapeDtypeStruct((50,), jnp.float32),
    ],
    ids=["jax", "numpy", "sds64", "sds32"],
)
def test_sample_kinds_give_the_same_pattern(sample):
    p = asdex.jacobian_sparsity(_diff, sample)
    np.testing.assert_array_equal(p.todense(), _DIFF_50)


@pytest.mark.parametrize("shape", [50, (50,)])
def test_input_shape(shape):
    p = asdex.jacobian_sparsity(_diff, input_shape=shape)
    assert p.shape == (49, 50)
    np.testing.assert_array_equal(p.todense(), _DIFF_50)


def test_input_shape_multi_dimensional():
    p = asdex.jacobian_sparsity(lambda x: x.T.reshape(-1), input_shape=(2, 3))
    np.testing.assert_array_equal(p.todense(), rows_of([0, 3, 1, 4, 2, 5], 6))


def test_input_shape_and_sample_args_are_exclusive():
    with pytest.raises(TypeError):
        asdex.jacobian_sparsity(_diff, jnp.zeros(3), input_shape=3)
    with pytest.raises(TypeError):
        asdex.jacobian_sparsity(_diff)


def test_dict_and_tuple_pytrees_layout():
    # Leaves in jax.tree_util order: dict keys sorted ("a" before "b"), then tuples.
    def f(d):
        a, b = d["a"], d["b"]
        return {"y": a[:2] * b, "z": (b[::-1], a[2])}

    sample = {"b": jnp.ones(2), "a": jnp.ones(3)}
    # Columns: a0 a1 a2 b0 b1. Rows: y0 y1, then z = (b[::-1], a[2]).
    expected = np.array(
        [
            [1, 0, 0, 1, 0],
            [0, 1, 0, 0, 1],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 1, 0],
            [0, 0, 1, 0, 0],
        ],
        bool,
    )
    assert_exact(f, sample, expected)


def test_tuple_argument_and_list_output():
    def f(pair):
        u, v = pair
        return [u * v[0], v[1:]]

    sample = (jnp.ones(2), jnp.ones(3))
    expected = np.array(
        [[1, 0, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]], bool
    )
    assert_exact(f, sample, expected)


class _Linear(eqx.Module):
    weight: jax.Array
    bias: jax.Array
    activation: str = eqx.field(static=True)

    def __call__(self, x):
        y = self.weight @ x + self.bias
        return jnp.tanh(y) if self.activation == "tanh" else y


def test_equinox_module_argument():
    model = _Linear(jnp.ones((2, 3)), jnp.zeros(2), "tanh")
    x = jnp.arange(3.0)

    def loss(m, x):
        return m(x)

    # Columns: weight (2x3, row-major) then bias (2).
    expected = np.zeros((2, 8), bool)
    expected[0, [0, 1, 2, 6]] = True
    expected[1, [3, 4, 5, 7]] = True
    p = assert_exact(loss, model, expected, more_args=(x,))
    # Differentiating the input instead: every output depends on every x.
    q = asdex.jacobian_sparsity(loss, model, x, argnums=1)
    np.testing.assert_array_equal(q.todense(), full(2, 3))
    assert p.shape == (2, 8)


def test_module_with_non_array_fields_via_filter():
    model = _Linear(jnp.ones((2, 2)), jnp.zeros(2), "none")
    params, static = eqx.partition(model, eqx.is_array)

    def f(params, x):
        return eqx.combine(params, static)(x)

    p = asdex.jacobian_sparsity(f, params, jnp.ones(2))
    assert p.shape == (2, 6)
    assert_sound(f, params, jnp.ones(2), pattern=p)


# ---------------------------------------------------------------------------- argnums


def _three(a, b, c):
    return jnp.concatenate([a * b[0], c[::-1] + b[1]])


_A3 = (jnp.ones(2), jnp.ones(2), jnp.ones(3))


@pytest.mark.parametrize(
    "argnums,expected",
    [
        (0, np.concatenate([eye(2), empty(3, 2)])),
        (1, np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], bool)),
        (-1, np.concatenate([empty(2, 3), eye(3)[::-1]])),
        (
            (0, 2),
            np.concatenate(
                [
                    np.concatenate([eye(2), empty(2, 3)], 1),
                    np.concatenate([empty(3, 2), eye(3)[::-1]], 1),
                ]
            ),
        ),
        # The order of argnums is the order of the columns, as in jax.jacobian.
        (
            (2, 0),
            np.concatenate(
                [
                    np.concatenate([empty(2, 3), eye(2)], 1),
                    np.concatenate([eye(3)[::-1], empty(3, 2)], 1),
                ]
            ),
        ),
    ],
    ids=str,
)
def test_argnums(argnums, expected):
    assert_exact(_three, _A3[0], expected, more_args=_A3[1:], argnums=argnums)


@pytest.mark.parametrize("argnums", [3, -4, (0, 3), (), (1, 1)], ids=str)
def test_argnums_errors(argnums):
    with pytest.raises(ValueError, match="argnums"):
        asdex.jacobian_sparsity(_three, *_A3, argnums=argnums)


def test_hessian_argnums():
    f = lambda a, b: jnp.sum(a**2 * b)
    p = asdex.hessian_sparsity(f, jnp.ones(3), jnp.ones(3), argnums=1)
    np.testing.assert_array_equal(p.todense(), empty(3, 3))
    p = asdex.hessian_sparsity(f, jnp.ones(3), jnp.ones(3), argnums=(0, 1))
    expected = np.block([[eye(3), eye(3)], [eye(3), empty(3, 3)]])
    np.testing.assert_array_equal(p.todense(), expected)


# ---------------------------------------------------------------------------- has_aux


def test_has_aux():
    def f(x):
        return x[::-1], {"norm": jnp.sum(x**2), "n": 3}

    p = assert_exact(f, jnp.ones(4), eye(4)[::-1], has_aux=True)
    assert p.shape == (4, 4)


def test_has_aux_requires_a_pair():
    with pytest.raises(TypeError, match="has_aux"):
        asdex.jacobian_sparsity(lambda x: x, jnp.ones(3), has_aux=True)


def test_hessian_has_aux():
    f = lambda x: (jnp.sum(x[1:] * x[:-1]), x)
    p = asdex.hessian_sparsity(f, jnp.ones(4), has_aux=True)
    np.testing.assert_array_equal(p.todense(), eye(4, 4, 1) | eye(4, 4, -1))


# ---------------------------------------------------------------------------- static args


def test_static_python_int_string_and_callable():
    def f(x, k, mode, fn):
        y = jnp.roll(x, k)
        return fn(y) if mode == "apply" else y

    x = jnp.arange(5.0)
    expected = rows_of(np.roll(np.arange(5), 2), 5)
    assert_exact(f, x, expected, more_args=(2, "apply", jnp.sin))
    p = asdex.jacobian_sparsity(f, x, 1, "skip", None)
    np.testing.assert_array_equal(p.todense(), rows_of(np.roll(np.arange(5), 1), 5))


def test_static_python_float_and_bool():
    def f(x, scale, flip):
        return x[::-1] * scale if flip else x * scale

    assert_exact(f, jnp.ones(3), eye(3)[::-1], more_args=(2.0, True))
    assert_exact(f, jnp.ones(3), empty(3, 3), more_args=(0.0, False))


def test_differentiating_a_python_float():
    p = asdex.jacobian_sparsity(lambda s, x: x * s, 2.0, jnp.ones(3))
    assert p.shape == (3, 1)
    np.testing.assert_array_equal(p.todense(), full(3, 1))


def test_kwargs_are_not_differentiated():
    def f(x, *, weights, offset=0, name="a"):
        return x * weights + offset

    w = np.array([1.0, 0.0, 2.0])
    p = asdex.jacobian_sparsity(
        f, jnp.ones(3), weights=jnp.asarray(w), offset=1, name="b"
    )
    # `weights` is a traced (unknown) array, so no entry is dropped.
    np.testing.assert_array_equal(p.todense(), eye(3))
    assert_sound(f, jnp.ones(3), pattern=p, kwargs={"weights": jnp.asarray(w)})


def test_integer_input_is_an_error():
    with pytest.raises(TypeError, match="dtype"):
        asdex.jacobian_sparsity(lambda x: x * 2, jnp.arange(3))
    with pytest.raises(TypeError, match="dtype"):
        asdex.jacobian_sparsity(lambda x: x, jax.ShapeDtypeStruct((3,), jnp.int32))
    with pytest.raises(TypeError):
        asdex.jacobian_sparsity(lambda x: x, jnp.array([True, False]))


def test_string_argument_differentiated_is_an_error():
    with pytest.raises(TypeError):
        asdex.jacobian_sparsity(lambda s, x: x, "a", jnp.ones(2))


def test_non_callable_is_an_error():
    with pytest.raises(TypeError):
        asdex.jacobian_sparsity(jnp.ones(3), jnp.ones(3))


def test_integer_array_non_differentiated_argument():
    def f(x, idx):
        return x[idx]

    p = asdex.jacobian_sparsity(f, jnp.ones(4), jnp.array([0, 2]))
    # The indices are traced: unknown values, so any element may be read.
    assert p.shape == (2, 4)
    assert_sound(f, jnp.ones(4), jnp.array([3, 1]), pattern=p)


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 3), (2, 1, 2, 2)], ids=str)
def test_inputs_of_zero_to_four_dimensions(shape):
    n = int(np.prod(shape))
    x = jnp.arange(1.0, n + 1).reshape(shape)
    # Elementwise: identity; sum: one dense row; reversal of the flat order.
    assert_exact(lambda x: jnp.sin(x) * 2, x, eye(n))
    assert_exact(lambda x: jnp.sum(x**2), x, full(1, n))
    assert_exact(lambda x: x.reshape(-1)[::-1], x, eye(n)[::-1])


def test_scalar_output_and_scalar_input():
    assert_exact(lambda x: x**2, jnp.array(3.0), full(1, 1))
    assert_exact(
        lambda x: jnp.stack([x, x * 0.0, 2 * x]),
        jnp.array(3.0),
        np.array([[1], [0], [1]], bool),
    )


def test_size_zero_arrays():
    p = asdex.jacobian_sparsity(lambda x: x * 2, jnp.zeros(0))
    assert p.shape == (0, 0) and p.nnz == 0
    p = asdex.jacobian_sparsity(lambda x: jnp.sum(x), jnp.zeros((0, 3)))
    assert p.shape == (1, 0)
    p = asdex.jacobian_sparsity(
        lambda x, y: jnp.concatenate([x, y]), jnp.zeros(0), jnp.ones(3), argnums=(0, 1)
    )
    np.testing.assert_array_equal(p.todense(), eye(3))
    p = asdex.jacobian_sparsity(lambda x: x[:0], jnp.ones(3))
    assert p.shape == (0, 3)


def test_integer_and_boolean_intermediates():
    def f(x):
        k = jnp.floor(x).astype(jnp.int32)  # integer: carries no derivative
        b = x > 0
        y = jnp.where(b, x, -x) * (k % 2).astype(x.dtype)
        return jnp.concatenate([y, k.astype(x.dtype), b.astype(x.dtype)])

    expected = np.concatenate([eye(3), empty(6, 3)])
    assert_exact(f, jnp.array([0.5, 1.5, -2.5]), expected)


def test_integer_output_leaves_are_empty_rows():
    def f(x):
        return x * 2, jnp.argmax(x), (x > 0)

    p = asdex.jacobian_sparsity(f, jnp.ones(3))
    np.testing.assert_array_equal(p.todense(), np.concatenate([eye(3), empty(4, 3)]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_float32_and_float64(dtype):
    x = jnp.arange(1.0, 7.0, dtype=dtype)
    assert_exact(_diff, x, eye(5, 6) | eye(5, 6, 1))
    A = band(6, 6, 1, 1) * 1.5
    assert_exact(lambda x: (A.astype(dtype) @ x) ** 2, x, band(6, 6, 1, 1))
    assert_exact(
        lambda x: jnp.cumsum(x.reshape(2, 3), axis=1).reshape(-1),
        x,
        kron_eye(2, np.tril(full(3, 3))),
    )


def test_mixed_precision_pytree():
    def f(a, b):
        return a.astype(jnp.float64) * b[0], b[1:].astype(jnp.float32)

    sample = (jnp.ones(2, jnp.float32), jnp.ones(3, jnp.float64))
    expected = np.array(
        [[1, 0, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]], bool
    )
    assert_exact(f, sample[0], expected, more_args=sample[1:], argnums=(0, 1))


def test_complex_input():
    f = lambda z: jnp.abs(z) ** 2
    p = asdex.jacobian_sparsity(f, jnp.ones(3, jnp.complex128))
    np.testing.assert_array_equal(p.todense(), eye(3))


@pytest.mark.parametrize("typed", [False, True], ids=["raw_key", "typed_key"])
def test_closed_over_prng_key(typed):
    key = jax.random.key(0) if typed else jax.random.PRNGKey(0)
    noise = lambda x: x * jax.random.uniform(key, x.shape)
    assert_exact(noise, jnp.ones(3), eye(3))


@pytest.mark.parametrize("typed", [False, True], ids=["raw_key", "typed_key"])
def test_prng_key_argument(typed):
    key = jax.random.key(0) if typed else jax.random.PRNGKey(0)
    g = lambda x, k: x + jax.random.normal(k, x.shape)
    p = asdex.jacobian_sparsity(g, jnp.ones(3), key)
    np.testing.assert_array_equal(p.todense(), eye(3))


def test_unknown_primitive_warns_and_is_dense():
    from jax.extend.core import Primitive

    mystery_p = Primitive("asdex_test_mystery")
    mystery_p.def_impl(lambda x: x[::-1])
    mystery_p.def_abstract_eval(lambda x: x)

    f = lambda x: mystery_p.bind(x[:3]) * 2.0
    with pytest.warns(asdex.UnknownPrimitiveWarning, match="asdex_test_mystery"):
        p = asdex.jacobian_sparsity(f, jnp.ones(4))
    expected = np.concatenate([full(3, 3), empty(3, 1)], axis=1)
    np.testing.assert_array_equal(p.todense(), expected)


# ---------------------------------------------------------------------------- pattern file


def test_save_load_round_trip(tmp_path):
    p = asdex.jacobian_sparsity(_diff, input_shape=50)
    path = tmp_path / "pattern.npz"
    p.save(path)
    q = asdex.SparsityPattern.load(path)
    assert q == p
    assert q.shape == (49, 50) and q.nnz == 98
    np.testing.assert_array_equal(q.rows, p.rows)
    np.testing.assert_array_equal(q.cols, p.cols)
    assert asdex.SparsityPattern.load(path, shape=(49, 50)) == p


def test_save_load_empty_pattern(tmp_path):
    p = asdex.jacobian_sparsity(jnp.round, jnp.ones(4))
    p.save(tmp_path / "empty.npz")
    q = asdex.SparsityPattern.load(tmp_path / "empty.npz")
    assert q == p and q.nnz == 0 and q.shape == (4, 4)


def test_load_refuses_mismatched_shape(tmp_path):
    p = asdex.jacobian_sparsity(_diff, input_shape=10)
    p.save(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="shape"):
        asdex.SparsityPattern.load(tmp_path / "p.npz", shape=(10, 10))


def test_load_refuses_edited_entries(tmp_path):
    p = asdex.jacobian_sparsity(_diff, input_shape=10)
    path = tmp_path / "p.npz"
    p.save(path)
    with np.load(path) as data:
        contents = {k: data[k] for k in data.files}
    # Move one entry to another (valid) column: only the checksum can tell.
    cols = contents["cols"].copy()
    cols[0] = 5
    contents["cols"] = cols
    np.savez(tmp_path / "edited.npz", **contents)
    with pytest.raises(ValueError, match="corrupt"):
        asdex.SparsityPattern.load(tmp_path / "edited.npz")


def test_load_refuses_flipped_bytes(tmp_path):
    p = asdex.jacobian_sparsity(_diff, input_shape=10)
    path = tmp_path / "p.npz"
    p.save(path)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    for k in range(middle, middle + 8):
        raw[k] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError):
        asdex.SparsityPattern.load(bad)


def test_load_refuses_foreign_files(tmp_path):
    np.savez(tmp_path / "other.npz", rows=np.arange(3))
    with pytest.raises(ValueError):
        asdex.SparsityPattern.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip file")
    with pytest.raises(ValueError):
        asdex.SparsityPattern.load(tmp_path / "text.npz")


# ---------------------------------------------------------------------------- display

# The picture of the seed README (49×50, (x[1:] - x[:-1]) ** 2).
_SEED_PICTURE = """\
⎡⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎤
⎢⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⎥
⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⎥
⎣⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠉⎦"""


def test_braille_str_of_seed_example():
    p = asdex.jacobian_sparsity(_diff, input_shape=50)
    assert repr(p) == "SparsityPattern(49×50, nnz=98, sparsity=96.0%)"
    lines = str(p).splitlines()
    assert lines[0] == repr(p)
    assert "\n".join(lines[1:]) == _SEED_PICTURE


def test_pattern_from_any_matrix():
    import scipy.sparse as sp
    from jax.experimental import sparse as jsparse

    dense = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    expected = asdex.SparsityPattern.from_dense(dense)
    for matrix in (
        expected,
        sp.csr_array(dense),
        jsparse.BCOO.fromdense(dense),
        dense,
        jnp.asarray(dense),
    ):
        assert asdex.SparsityPattern.from_any(matrix) == expected
    with pytest.raises(ValueError, match="two-dimensional array"):
        asdex.SparsityPattern.from_any(np.ones(3), argument="`f(pattern=...)`")
    with pytest.raises(TypeError, match=r"`f\(pattern=...\)` must be"):
        asdex.SparsityPattern.from_any([[1, 0]], argument="`f(pattern=...)`")


def test_from_csr_matches_the_constructor():
    rng = np.random.default_rng(0)
    dense = rng.random((7, 9)) < 0.3
    dense[3] = False  # an empty row
    csr = scipy.sparse.csr_array(dense)
    expected = asdex.SparsityPattern.from_dense(dense)
    for sorted_unique in (False, True):
        got = asdex.SparsityPattern.from_csr(
            csr.indptr, csr.indices, dense.shape, sorted_unique=sorted_unique
        )
        assert got == expected
        assert got.rows.dtype == np.int32
        np.testing.assert_array_equal(got.indptr, csr.indptr)
        assert not got.indptr.flags.writeable
