"""Integer value ranges: indices computed from the inputs (an `argmax`, and the
arithmetic `jnp` wraps around it) are confined to intervals, and the rules that
consume indices read only the positions those intervals reach.

The oracle is the union of dense `jax.jacfwd` Jacobians at points chosen so that
every `argmax` takes every value it can (`_forced_points`), plus random points.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, strategies as st
from jax import lax

import asdex
import jitted
from asdex.detection._abstract import Abstract
from asdex.detection._deps import Deps
from asdex.detection._interpreter import Interpreter
from helpers import (
    assert_pattern_equal,
    assert_within,
    band,
    dense_jacobians,
    eye,
    no_unknown_primitives,
    rows_of,
)
from properties import REPRODUCIBLE, property_tests

# Each index source is an `argmax` over its own block of the input, so that the
# test points can steer every source to every value independently.
_BLOCK = 4


def _forced_points(n: int, sources: int, seed: int = 0, extra: int = 4):
    """Points at which `argmax(x[s*4 : s*4 + k])` takes every value `< k` for each
    source `s`, in every combination, plus `extra` random points."""
    rng = np.random.default_rng(seed)
    points = []
    for combo in itertools.product(range(_BLOCK), repeat=sources):
        x = rng.standard_normal(n)
        for s, v in enumerate(combo):
            x[s * _BLOCK + v] = 10.0 + s
        points.append(x)
    points += [rng.standard_normal(n) for _ in range(extra)]
    return [(jnp.asarray(p),) for p in points]


def _dense_union(f, n: int, sources: int = 1) -> np.ndarray:
    jacs = dense_jacobians(f, _forced_points(n, sources))
    return np.any([j != 0 for j in jacs], axis=0)


def assert_exact_over_indices(f, n: int, expected, sources: int = 1):
    """The pattern is `expected`, and it holds every dense nonzero at every index
    value the sources can take."""
    pattern = asdex.jacobian_sparsity(f, jnp.zeros(n))
    assert_pattern_equal(pattern, expected)
    missed = _dense_union(f, n, sources) & ~pattern.todense()
    assert not missed.any(), f"unsound: dense nonzeros at {np.argwhere(missed)}"
    return pattern


def _window(starts, size: int, n: int) -> np.ndarray:
    """Output `o` may read `start + o` for each possible start."""
    out = np.zeros((size, n), bool)
    for s in starts:
        out |= eye(size, n, s)
    return out


def _idx(x, k: int = 2, source: int = 0):
    return jnp.argmax(x[source * _BLOCK : source * _BLOCK + k])


# ----------------------------------------------------------- the minimal cases


def test_dynamic_slice_at_argmax():
    # 6 entries, not 15: the start is 0 or 1.
    f = lambda x: lax.dynamic_slice(x, (_idx(x),), (3,))
    p = assert_exact_over_indices(f, 5, _window([0, 1], 3, 5))
    assert p.nnz == 6


def test_dynamic_update_slice_at_argmax():
    f = lambda x: lax.dynamic_update_slice(x, 2.0 * x[3:5], (_idx(x),))
    expected = eye(5)
    expected[0, 3] = expected[1, 3] = expected[1, 4] = expected[2, 4] = True
    expected[1, 1] = False  # overwritten whether the start is 0 or 1
    p = assert_exact_over_indices(f, 5, expected)
    assert p.nnz == 8


def test_gather_at_argmax():
    f = lambda x: x[_idx(x) + jnp.arange(3)]
    assert_exact_over_indices(f, 5, _window([0, 1], 3, 5))


def test_gather_at_negative_index_wraps_exactly():
    # `x[i - 3]` with i in [0, 2]: jnp wraps the negative index to 2, 3 or 4.
    f = lambda x: x[_idx(x, 3) - 3][None] * 2.0
    assert_exact_over_indices(f, 5, rows_of([2], 5) | rows_of([3], 5) | rows_of([4], 5))


def test_batched_gather_with_elementwise_intervals():
    # One argmax per row: each row's index has its own interval [0, 1].
    def f(x):
        rows = x.reshape(2, _BLOCK)
        i = jnp.argmax(rows[:, :2], axis=1)
        return rows[jnp.arange(2), i + 2]

    expected = rows_of([2, 6], 8) | rows_of([3, 7], 8)
    assert_exact_over_indices(f, 8, expected, sources=2)


def test_scatter_at_argmax():
    set_ = lambda x: x.at[_idx(x)].set(2.0 * x[4])
    add = lambda x: x.at[_idx(x)].add(2.0 * x[4])
    expected = eye(5)
    expected[[0, 1], 4] = True
    assert_exact_over_indices(set_, 5, expected)
    assert_exact_over_indices(add, 5, expected)


def test_scatter_set_removes_only_certain_overwrites():
    # Two updates land at i in {0, 1} and at j in {1, 2}, independently: element 1
    # survives when i = 0 and j = 2, so it keeps its own dependency.
    def f(x):
        i, j = _idx(x), _idx(x, source=1) + 1
        return x[:3].at[jnp.stack([i, j])].set(x[8:10])

    expected = eye(3, 10) | rows_of([8, 8, -1], 10) | rows_of([-1, 9, 9], 10)
    pattern = assert_exact_over_indices(f, 10, expected, sources=2)
    assert pattern.todense()[1, 1]


def test_floor_divide():
    f = lambda x: lax.dynamic_slice(x, (_idx(x, 4) // 2,), (3,))
    assert_exact_over_indices(f, 5, _window([0, 1], 3, 5))


def test_integer_pow_zero_minus_one():
    # integer_pow(i, 0) - 1 == 0 for every i: the start is known.
    f = lambda x: lax.dynamic_slice(x, (lax.integer_pow(_idx(x, 4), 0) - 1,), (3,))
    assert_exact_over_indices(f, 5, eye(3, 5))


def test_where_decided_by_range():
    f = lambda x: jnp.where(_idx(x, 3) < 3, x[6:7], x[7:8])
    assert_exact_over_indices(f, 8, rows_of([6], 8))


# ------------------------------------------------------------ more index arithmetic


@pytest.mark.parametrize(
    "start, starts",
    [
        (lambda i: jnp.clip(i + 1, 1, 2), [1, 2]),
        (lambda i: lax.clamp(0, 2 * i - 1, 5), [0, 1, 3, 5]),
        (lambda i: jnp.minimum(i, 1) + jnp.maximum(i, 2), [2, 3, 4]),
        (lambda i: i % 2, [0, 1]),
        (lambda i: (i + 1) % 3, [0, 1, 2]),
        (lambda i: jnp.abs(i - 2), [0, 1, 2]),
        (lambda i: (i >= 2).astype(jnp.int32) * 3, [0, 3]),
    ],
)
def test_index_arithmetic(start, starts):
    # Starts are clamped into [0, 8 - 3]; the interval hull may add starts in
    # between, so the expectation is the hull of the reachable starts.
    def f(x):
        return lax.dynamic_slice(x, (start(_idx(x, 4)),), (3,))

    hull = range(min(starts), max(starts) + 1)
    assert_exact_over_indices(f, 8, _window(hull, 3, 8))


def test_switch_on_argmax_runs_reachable_branches_only():
    branches = [lambda x: x[0:1], lambda x: x[1:2], lambda x: x[2:3] * x[3:4]]
    f = lambda x: lax.switch(_idx(x), branches, x)
    assert_exact_over_indices(f, 4, rows_of([0], 4) | rows_of([1], 4))


def test_two_indices_combine():
    # i in [0, 1], j in [0, 2]: i + j in [0, 3].
    f = lambda x: lax.dynamic_slice(x, (_idx(x) + _idx(x, 3, source=1),), (2,))
    assert_exact_over_indices(f, 9, _window(range(4), 2, 9), sources=2)


def test_wide_interval_falls_back_to_reachable_window():
    # 100 possible starts is too many to replay one by one; every output may then
    # read anywhere in the reachable window [0, 103), but nothing beyond it.
    def f(x):
        return lax.dynamic_slice(x, (jnp.argmax(x[:100]),), (4,))

    pattern = asdex.jacobian_sparsity(f, jnp.zeros(110))
    expected = np.zeros((4, 110), bool)
    expected[:, :103] = True
    assert_pattern_equal(pattern, expected)


def test_unknown_integer_argument_stays_sound():
    # An integer argument has no interval: every position stays possible.
    def f(x, i):
        return lax.dynamic_slice(x, (i,), (2,))

    pattern = asdex.jacobian_sparsity(f, jnp.zeros(4), np.int32(1))
    assert pattern.nnz == 2 * 3


def test_loop_counter_interval_is_widened():
    # A while loop whose counter is bounded by the data: the fixed point must not
    # creep up one value per round, and stays sound.
    def f(x):
        def body(c):
            i, acc = c
            return i + 1, acc + lax.dynamic_slice(x, (jnp.minimum(i, 3),), (2,))

        return lax.while_loop(lambda c: c[0] < _idx(x, 4), body, (0, jnp.zeros(2)))[1]

    pattern = asdex.jacobian_sparsity(f, jnp.zeros(5))
    missed = _dense_union(f, 5) & ~pattern.todense()
    assert not missed.any()


# ------------------------------------------------------------ the remaining loose rules


def test_conv_batch_group_count_is_exact():
    # The lhs batch splits into two blocks; output feature o reads block o // 1.
    kernel = jnp.ones((2, 1, 2, 2))
    f = lambda x: lax.conv_general_dilated(
        x, kernel, (1, 1), "VALID", batch_group_count=2
    )
    x = jnp.zeros((4, 1, 3, 3))
    ids = np.arange(36).reshape(4, 1, 3, 3)
    expected = np.zeros((2, 2, 2, 2, 36), bool)
    for nb, o, r, c in itertools.product(range(2), range(2), range(2), range(2)):
        block = ids[o * 2 + nb, 0, r : r + 2, c : c + 2]
        expected[nb, o, r, c, block.reshape(-1)] = True
    pattern = asdex.jacobian_sparsity(f, x)
    assert_pattern_equal(pattern, expected.reshape(16, 36))
    rng = np.random.default_rng(0)
    points = [(jnp.asarray(rng.standard_normal(x.shape)),) for _ in range(3)]
    for jac in dense_jacobians(f, points):
        assert not ((jac != 0) & ~pattern.todense()).any()


def _qr_expected(m: int, n: int):
    """Q[:, i] reads A[:, :i+1]; R[i, j] (i <= j) reads A[:, :j+1]; R's strict lower
    triangle is empty. (Square or tall A.)"""
    cols = np.arange(m * n).reshape(m, n)
    q = np.zeros((m, n, m * n), bool)
    r = np.zeros((n, n, m * n), bool)
    for i in range(n):
        q[:, i, cols[:, : i + 1].reshape(-1)] = True
        for j in range(i, n):
            r[i, j, cols[:, : j + 1].reshape(-1)] = True
    return q.reshape(m * n, m * n), r.reshape(n * n, m * n)


@pytest.mark.parametrize("m, n", [(3, 3), (5, 3)])
def test_qr_is_column_causal(m, n):
    q_expected, r_expected = _qr_expected(m, n)
    fq = lambda x: jnp.linalg.qr(x.reshape(m, n))[0].reshape(-1)
    fr = lambda x: jnp.linalg.qr(x.reshape(m, n))[1].reshape(-1)
    rng = np.random.default_rng(1)
    points = [(jnp.asarray(rng.standard_normal(m * n)),) for _ in range(6)]
    for f, expected in ((fq, q_expected), (fr, r_expected)):
        pattern = asdex.jacobian_sparsity(f, jnp.zeros(m * n))
        assert_pattern_equal(pattern, expected)
        for jac in dense_jacobians(f, points):
            assert not ((jac != 0) & ~pattern.todense()).any()
    # The case: the strict lower triangle of R is structurally zero.
    rows = asdex.jacobian_sparsity(fr, jnp.zeros(m * n)).todense().reshape(n, n, -1)
    assert not rows[np.tril_indices(n, -1)].any()


def test_qr_pivoting_stays_coupled():
    f = lambda x: jax.scipy.linalg.qr(x.reshape(3, 3), pivoting=True)[1].reshape(-1)
    assert asdex.jacobian_sparsity(f, jnp.zeros(9)).nnz == 81


_KEY = np.array([0.3, -1.0, 2.0, 0.0, 1.5])


@jax.custom_jvp
def _sort_with_permutation(x):
    perm = jnp.argsort(_KEY)
    return x[perm], perm


@_sort_with_permutation.defjvp
def _sort_with_permutation_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y, perm = _sort_with_permutation(x)
    return (y, perm), (t[perm], np.zeros(perm.shape, jax.dtypes.float0))


@jax.custom_jvp
def _pick(x):
    return jnp.argmax(x[:2])


@_pick.defjvp
def _pick_jvp(primals, tangents):
    return _pick(*primals), np.zeros((), jax.dtypes.float0)


def test_custom_jvp_index_output_keeps_permutation():
    def f(x):
        y, perm = _sort_with_permutation(x)
        return y[perm]

    perm = np.argsort(_KEY)
    assert_exact_over_indices(f, 5, rows_of(perm[perm], 5))


def test_custom_jvp_index_output_keeps_interval():
    f = lambda x: lax.dynamic_slice(x, (_pick(x),), (3,))
    assert_exact_over_indices(f, 5, _window([0, 1], 3, 5))


# ---------------------------------------------------------------- random arithmetic

# Integer operations on an index `i` (and a second index `j`); constants are drawn.
_INT_OPS = [
    lambda i, j, c: i + c,
    lambda i, j, c: i - c,
    lambda i, j, c: i * (c - 2),
    lambda i, j, c: i // (c + 1),
    lambda i, j, c: i // (-c - 1),
    lambda i, j, c: i % (c + 1),
    lambda i, j, c: lax.rem(i, jnp.asarray(c + 1, i.dtype)),  # lax: one dtype
    lambda i, j, c: lax.div(i - c, jnp.asarray(2, i.dtype)),
    lambda i, j, c: -i,
    lambda i, j, c: jnp.abs(i - c),
    lambda i, j, c: jnp.sign(i - c),
    lambda i, j, c: jnp.clip(i, c - 2, c),
    lambda i, j, c: jnp.minimum(i, c),
    lambda i, j, c: jnp.maximum(i, j),
    lambda i, j, c: lax.integer_pow(i, c % 4),
    lambda i, j, c: jnp.where(i < c, i, j),
    lambda i, j, c: jnp.where(i != j, i + j, c),
    lambda i, j, c: (i > c).astype(i.dtype) + j,
    lambda i, j, c: i.astype(jnp.int32) * j.astype(jnp.int32),
    lambda i, j, c: i.astype(jnp.int8) + jnp.int8(c),
    lambda i, j, c: (i & c) + (i == c),
    lambda i, j, c: i - j,
]

# Ways to consume the final index `k` with data from `x[8:16]`.
_CONSUMERS = [
    lambda x, k: lax.dynamic_slice(x[8:16], (k,), (3,)),
    lambda x, k: lax.dynamic_update_slice(x[8:16], jnp.sin(x[:2]), (k,)),
    lambda x, k: x[8:16][k] * x[8:16][k - 1],
    lambda x, k: x[8:16].at[k].get(mode="fill", fill_value=0.5),
    lambda x, k: x[8:16].at[k].add(x[0]),
    lambda x, k: x[8:16].at[k].set(x[1]),
    lambda x, k: x[8:16].at[jnp.stack([k, k + 1, -k])].set(x[:3]),
    lambda x, k: jnp.where(k > 1, x[8:12], x[12:16]),
    lambda x, k: lax.switch(k, [lambda v: v[8:10], lambda v: v[10:12] ** 2], x),
]


@st.composite
def index_programs(draw):
    k1, k2 = draw(st.integers(1, _BLOCK)), draw(st.integers(1, _BLOCK))
    steps = draw(
        st.lists(
            st.tuples(st.integers(0, len(_INT_OPS) - 1), st.integers(-3, 4)),
            min_size=1,
            max_size=4,
        )
    )
    consumer = draw(st.integers(0, len(_CONSUMERS) - 1))

    def index(x):
        i = jnp.argmax(x[:k1])
        j = jnp.argmin(-x[_BLOCK : _BLOCK + k2])
        for op, c in steps:
            i = _INT_OPS[op](i, j, c)
        return i

    def program(x):
        return _CONSUMERS[consumer](x, index(x))

    return index, program, f"k=({k1}, {k2}) steps={steps} consumer={consumer}"


def _bounds_of(index, n: int):
    """The interval detection gives the (integer) result of `index`."""
    closed = jax.make_jaxpr(index)(jnp.zeros(n))
    interp = Interpreter(n)
    (out,) = interp.run_closed(
        closed, [Abstract((n,), jnp.float64, Deps.identity(n, 0, n))]
    )
    return out.bounds()


def _random_index_arithmetic_is_sound(program):
    index, f, description = program
    n = 16
    points = _forced_points(n, sources=2, extra=2)
    bounds = _bounds_of(index, n)
    for (x,) in points:
        value = int(index(x))
        if bounds is not None:
            lo, hi = int(bounds[0]), int(bounds[1])
            assert lo <= value <= hi, f"{description}: {value} not in [{lo}, {hi}]"
    with no_unknown_primitives():
        pattern = asdex.jacobian_sparsity(f, jnp.zeros(n))
    for jac in dense_jacobians(f, points):
        missed = (jac != 0) & ~pattern.todense()
        assert not missed.any(), f"{description}: unsound at {np.argwhere(missed)}"


(
    test_random_index_arithmetic_is_sound,
    test_random_index_arithmetic_is_sound_thoroughly,
) = property_tests(
    _random_index_arithmetic_is_sound,
    index_programs(),
    default=25,
    thorough=120,
    **REPRODUCIBLE,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_hessian_through_slice_at_argmax():
    # The gradient puts the slice back with a dynamic_update_slice at the same
    # traced start. The true Hessian is diagonal on the reachable window [0, 4);
    # intervals do not tie the two starts together, so neighbours within it may
    # be added, but nothing outside it.
    f = lambda x: jnp.sum(lax.dynamic_slice(x, (_idx(x),), (3,)) ** 2)
    pattern = asdex.hessian_sparsity(f, jnp.zeros(5))
    assert_within(pattern, band(5, 5, 1, 1) & np.outer(*[np.arange(5) < 4] * 2))
    for (x,) in _forced_points(5, sources=1):
        missed = (np.asarray(jitted.hessian(f)(x)) != 0) & ~pattern.todense()
        assert not missed.any()


def test_integer_division_of_narrow_minimum_matches_xla():
    # Known integer arithmetic is evaluated in numpy; int8's minimum must divide as
    # XLA divides it (rounding towards zero), not as numpy floors it.
    a = np.array([-128, -7, 7], dtype=np.int8)
    b = np.array([3, 2, -2], dtype=np.int8)
    f = lambda x: x[jnp.clip(lax.div(a, b)[0] + 43, 0, 4)][None]
    # trunc(-128 / 3) = -42, so the index is 1 (floor division would give 0).
    assert int(lax.div(a, b)[0]) == -42
    assert_pattern_equal(asdex.jacobian_sparsity(f, jnp.zeros(5)), rows_of([1], 5))
