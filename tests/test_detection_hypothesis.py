"""Random compositions of operations: the detected pattern must contain the nonzeros
of `jax.jacfwd` at random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, strategies as st
from jax import lax

import asdex
from helpers import assert_sound, no_unknown_primitives
from properties import REPRODUCIBLE, property_tests

# Each op builder takes (draw, shape) and returns a function of one array, or None
# when it does not apply to that shape. Constants are drawn here, so they are
# closed-over numpy arrays: detection sees them as known values.


def _axis(draw, shape):
    return draw(st.integers(0, len(shape) - 1)) if shape else None


def _unary(draw, shape):
    fn = draw(
        st.sampled_from(
            [
                jnp.sin,
                jnp.tanh,
                jnp.square,
                jnp.abs,
                lambda v: jnp.sqrt(1.0 + v**2),
                lambda v: jnp.log1p(v**2),
                lambda v: jnp.exp(-(v**2)),
                jnp.round,
                jnp.sign,
                lambda v: lax.integer_pow(v, 3),
                jax.nn.relu,
                lambda v: -v,
            ]
        )
    )
    return fn


def _binary_self(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    k = draw(st.integers(-3, 3))
    op = draw(
        st.sampled_from(
            [
                jnp.add,
                jnp.multiply,
                jnp.maximum,
                jnp.subtract,
                lambda a, b: a / (1.5 + b**2),
            ]
        )
    )
    other = draw(st.sampled_from(["flip", "roll"]))
    if other == "flip":
        return lambda v: op(v, jnp.flip(v, axis))
    return lambda v: op(v, jnp.roll(v, k, axis))


def _mul_sparse_const(draw, shape):
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(shape) * (rng.random(shape) < 0.5)
    return lambda v: v * c


def _where_const(draw, shape):
    seed = draw(st.integers(0, 2**16))
    pred = np.random.default_rng(seed).random(shape) < 0.5
    if not shape:
        return lambda v: jnp.where(pred, v, 2.0)
    axis = _axis(draw, shape)
    return lambda v: jnp.where(pred, v, jnp.flip(v, axis) * 2.0)


def _where_dynamic(draw, shape):
    return lambda v: jnp.where(v > 0.1, v, jnp.cos(v))


def _slice(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    n = shape[axis]
    start = draw(st.integers(0, n - 1))
    stop = draw(st.integers(start + 1, n))
    step = draw(st.integers(1, 2))
    index = [slice(None)] * len(shape)
    index[axis] = slice(start, stop, step)
    return lambda v: v[tuple(index)]


def _flip(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    return lambda v: jnp.flip(v, axis)


def _concat(draw, shape):
    if not shape:
        return lambda v: jnp.stack([v, v * 2.0])
    axis = _axis(draw, shape)
    return lambda v: jnp.concatenate([v, jnp.sin(jnp.flip(v, axis))], axis=axis)


def _roll(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    k = draw(st.integers(-4, 4))
    return lambda v: jnp.roll(v, k, axis)


def _reduce(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    op = draw(st.sampled_from([jnp.sum, jnp.max, jnp.prod, jnp.mean]))
    keepdims = draw(st.booleans())
    return lambda v: op(v, axis=axis, keepdims=keepdims)


def _cumulative(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    op = draw(
        st.sampled_from(
            [jnp.cumsum, jnp.cumprod, lambda v, axis: lax.cummax(v, axis=axis)]
        )
    )
    return lambda v: op(v, axis=axis)


def _reshape(draw, shape):
    size = int(np.prod(shape))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    d = draw(st.sampled_from(divisors))
    target = draw(st.sampled_from([(size,), (d, size // d), (size // d, 1, d)]))
    return lambda v: v.reshape(target)


def _transpose(draw, shape):
    if len(shape) < 2:
        return None
    perm = draw(st.permutations(range(len(shape))))
    return lambda v: jnp.transpose(v, perm)


def _broadcast(draw, shape):
    k = draw(st.integers(1, 3))
    return lambda v: (
        jnp.broadcast_to(v, (k, *shape))
        * np.arange(1.0, k + 1).reshape((k,) + (1,) * len(shape))
    )


def _matmul_const(draw, shape):
    size = int(np.prod(shape))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    k = draw(st.integers(1, 6))
    c = rng.standard_normal((k, size)) * (rng.random((k, size)) < 0.4)
    return lambda v: c @ v.reshape(-1)


def _gather_const(draw, shape):
    size = int(np.prod(shape))
    idx = np.array(draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=8)))
    return lambda v: v.reshape(-1)[idx]


def _scatter_const(draw, shape):
    size = int(np.prod(shape))
    idx = np.array(draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=5)))
    mode = draw(st.sampled_from(["add", "set", "mul", "max"]))

    def f(v):
        flat = v.reshape(-1)
        upd = (
            jnp.sin(flat[::-1][: len(idx)]) if len(idx) <= size else jnp.ones(len(idx))
        )
        if len(idx) > size:
            upd = jnp.resize(jnp.sin(flat), len(idx))
        ref = flat.at[idx]
        if mode == "mul":
            return ref.mul(upd, unique_indices=len(set(idx.tolist())) == len(idx))
        return getattr(ref, mode)(upd)

    if mode == "mul" and len(set(idx.tolist())) != len(idx):
        return None
    return f


def _pad(draw, shape):
    if not shape:
        return None
    config = [
        (draw(st.integers(-1, 2)), draw(st.integers(-1, 2)), draw(st.integers(0, 1)))
        for _ in shape
    ]
    for n, (lo, hi, interior) in zip(shape, config, strict=True):
        if n + (n - 1) * interior + lo + hi <= 0:
            return None
    return lambda v: lax.pad(v, jnp.zeros((), v.dtype), config)


def _sort(draw, shape):
    if not shape:
        return None
    axis = _axis(draw, shape)
    return lambda v: jnp.sort(v, axis=axis)


OPS = [
    _unary,
    _binary_self,
    _mul_sparse_const,
    _where_const,
    _where_dynamic,
    _slice,
    _flip,
    _concat,
    _roll,
    _reduce,
    _cumulative,
    _reshape,
    _transpose,
    _broadcast,
    _matmul_const,
    _gather_const,
    _scatter_const,
    _pad,
    _sort,
]


@st.composite
def programs(draw):
    ndim = draw(st.integers(0, 2))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    n_ops = draw(st.integers(1, 5))
    fns, names = [], []
    current = shape
    for _ in range(n_ops):
        if int(np.prod(current)) > 64:
            break
        builder = draw(st.sampled_from(OPS))
        fn = builder(draw, current)
        if fn is None:
            continue
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct(current, jnp.float64))
        if int(np.prod(out.shape)) == 0:
            continue
        fns.append(fn)
        names.append(f"{builder.__name__}{current}->{out.shape}")
        current = out.shape

    def program(x):
        for fn in fns:
            x = fn(x)
        return x

    return shape, program, " | ".join(names)


def _random_compositions_are_sound(program, seed):
    shape, f, description = program
    x = jnp.asarray(np.random.default_rng(seed).standard_normal(shape))
    with no_unknown_primitives():
        pattern = asdex.jacobian_sparsity(f, x)
    note = f"program: {description}"
    try:
        assert_sound(f, x, pattern=pattern, n_points=2, seed=seed)
    except AssertionError as err:
        raise AssertionError(f"{note}\n{err}") from None


test_random_compositions_are_sound, test_random_compositions_are_sound_thoroughly = (
    property_tests(
        _random_compositions_are_sound,
        programs(),
        st.integers(0, 2**16),
        default=40,
        thorough=200,
        **REPRODUCIBLE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
)
