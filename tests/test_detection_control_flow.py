import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from helpers import (
    CONTROL_FLOW_CASES,
    assert_exact,
    assert_sound,
    assert_within,
    band,
    check_case,
    empty,
    eye,
    full,
    ids,
    kron_eye,
    rows_of,
    structural,
)


@pytest.mark.parametrize("case", CONTROL_FLOW_CASES, ids=ids(CONTROL_FLOW_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c
    for c in CONTROL_FLOW_CASES
    if c.name in {"scan_xs", "cond_union", "fori_const_trip"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


# ---------------------------------------------------------------------------- cond


def test_cond_unknown_predicate_is_union_of_branches():
    def f(x):
        return lax.cond(x[0] > 0, lambda v: v[::-1], lambda v: v * 2.0, x)

    assert_exact(f, jnp.arange(4.0), eye(4) | eye(4)[::-1])


def test_cond_predicate_from_constants_takes_one_branch():
    def f(x):
        pred = jnp.sum(jnp.arange(3.0)) > 1.0  # known: True
        return lax.cond(pred, lambda v: v[::-1], lambda v: v * 2.0, x)

    assert_exact(f, jnp.arange(4.0), eye(4)[::-1])


@pytest.mark.parametrize("index", [0, 1, 2, 5, -1])
def test_switch_on_constant_index_is_that_branch(index):
    branches = [lambda v: v[::-1], lambda v: jnp.roll(v, 1), lambda v: v * 0.0]
    expected = [eye(4)[::-1], structural(lambda i: np.roll(i, 1), (4,)), empty(4, 4)]
    # lax.switch clamps the index into range.
    k = int(np.clip(index, 0, 2))
    assert_exact(lambda x: lax.switch(index, branches, x), jnp.arange(4.0), expected[k])


def test_switch_on_traced_index_is_union():
    branches = [lambda v: v[::-1], lambda v: jnp.roll(v, 1), lambda v: v * 0.0]
    f = lambda x: lax.switch(jnp.argmax(x[:3]), branches, x)
    expected = eye(4)[::-1] | structural(lambda i: np.roll(i, 1), (4,))
    assert_exact(f, jnp.arange(4.0), expected)


def test_cond_with_operands_of_different_kinds():
    def f(x, n):
        return lax.cond(
            n > 0, lambda v, m: v * m, lambda v, m: v + 1.0, x, n.astype(x.dtype)
        )

    p = assert_sound(f, jnp.arange(3.0), np.int32(2))
    np.testing.assert_array_equal(p.todense(), eye(3))


# ---------------------------------------------------------------------------- loops


def test_fori_loop_constant_trip_is_exact():
    # Each iteration shifts by one and adds: after k iterations, a band of width k.
    def f(x):
        return lax.fori_loop(0, 2, lambda i, c: c + jnp.roll(c, 1) * 0.5, x)

    expected = np.zeros((6, 6), bool)
    for r in range(6):
        expected[r, [(r - s) % 6 for s in range(3)]] = True
    assert_exact(f, jnp.arange(6.0), expected)


def test_fori_loop_with_index_dependent_updates_is_exact():
    def f(x):
        def body(i, c):
            return c.at[i + 1].add(c[i])

        return lax.fori_loop(0, 4, body, x)

    assert_exact(f, jnp.arange(5.0), np.tril(full(5, 5)))


def test_fori_loop_array_bounds_is_exact():
    # Bounds that are arrays make a while loop, but they are still known.
    def f(x):
        return lax.fori_loop(
            jnp.int32(0), jnp.int32(3), lambda i, c: c.at[i].set(c[i + 1]), x
        )

    assert_exact(f, jnp.arange(5.0), rows_of([1, 2, 3, 3, 4], 5))


def test_fori_loop_unrolled_flag():
    f = lambda x: lax.fori_loop(0, 3, lambda i, c: jnp.roll(c, 1), x, unroll=True)
    assert_exact(f, jnp.arange(5.0), structural(lambda i: np.roll(i, 3), (5,)))


def test_while_loop_data_dependent_stop_is_sound():
    def f(x):
        def cond(c):
            return c[1] < 5.0

        def body(c):
            v, t = c
            return jnp.roll(v, 1) + 0.1 * v, t + 1.0 + v[0] ** 2

        return lax.while_loop(cond, body, (x, 0.0))[0]

    p = assert_sound(f, jnp.arange(5.0), n_points=4)
    # Nothing bounds the number of shifts, so the fixed point is dense.
    np.testing.assert_array_equal(p.todense(), full(5, 5))


def test_while_loop_fixed_point_stays_local():
    # A data-dependent number of elementwise steps never mixes elements.
    def f(x):
        return lax.while_loop(lambda c: jnp.max(c) < 10.0, lambda c: c * 1.5 + 0.1, x)

    assert_exact(f, jnp.linspace(1.0, 2.0, 4), eye(4), positive=True)


def test_while_loop_traced_trip_count_sound():
    def f(x, n):
        return lax.fori_loop(0, n, lambda i, c: c + c[::-1] * 0.5, x)

    p = assert_sound(f, jnp.arange(4.0), np.int32(2))
    assert_within(p, eye(4) | eye(4)[::-1])


# ---------------------------------------------------------------------------- scan


def test_scan_without_xs_is_exact():
    def f(x):
        def body(c, _):
            return c.at[1:].add(c[:-1]), c[0]

        carry, ys = lax.scan(body, x, None, length=3)
        return jnp.concatenate([carry, ys])

    expected = np.concatenate(
        [np.tril(full(4, 4)) & band(4, 4, 3, 0), rows_of([0, 0, 0], 4)]
    )
    assert_exact(f, jnp.arange(4.0), expected)


def test_scan_with_xs_is_exact():
    def f(x):
        def body(c, xi):
            return c * 0.5 + xi, c

        carry, ys = lax.scan(body, x[0], x[1:])
        return jnp.concatenate([carry[None], ys])

    expected = np.zeros((5, 5), bool)
    expected[0, :] = True
    for i in range(4):
        expected[1 + i, : i + 1] = True
    assert_exact(f, jnp.arange(5.0), expected)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_reverse(reverse):
    def f(x):
        return lax.scan(lambda c, xi: (c + xi, c + xi), 0.0, x, reverse=reverse)[1]

    expected = np.triu(full(4, 4)) if reverse else np.tril(full(4, 4))
    assert_exact(f, jnp.arange(4.0), expected)


def test_scan_with_consts_and_multiple_carries():
    w = np.array([1.0, 0.0, 2.0])

    def f(x):
        def body(c, xi):
            a, b = c
            return (b, a * w + xi), a

        (a, b), ys = lax.scan(body, (x[:3], x[3:6]), x[6:].reshape(2, 3))
        return jnp.concatenate([a, b, ys.reshape(-1)])

    # Inputs: a0 = x[0:3], b0 = x[3:6], xs[0] = x[6:9], xs[1] = x[9:12].
    # a_final = a0 * w + xs[0], b_final = b0 * w + xs[1], ys = [a0, b0]; the zero
    # in w drops a0[1] and b0[1].
    expected = np.zeros((12, 12), bool)
    for k in range(3):
        expected[k, [6 + k] + ([k] if w[k] else [])] = True
        expected[3 + k, [9 + k] + ([3 + k] if w[k] else [])] = True
        expected[6 + k, k] = True
        expected[9 + k, 3 + k] = True
    assert_exact(f, jnp.arange(12.0), expected)


def test_scan_long_carry_fixed_point_is_sound():
    # Past the unrolling limit, scans iterate to a fixed point; both must be sound.
    def f(x):
        return lax.scan(lambda c, _: (jnp.roll(c, 1) * 0.9, c[0]), x, None, length=50)[
            1
        ]

    assert_sound(f, jnp.arange(5.0))


def test_lax_map():
    assert_exact(
        lambda x: lax.map(lambda r: r[::-1] * 2, x.reshape(3, 2)).reshape(-1),
        jnp.arange(6.0),
        kron_eye(3, eye(2)[::-1]),
    )


# ---------------------------------------------------------------------------- calls


def test_nested_jit_and_closed_call():
    @jax.jit
    def inner(v):
        return v[1:] - v[:-1]

    def f(x):
        y = jax.jit(lambda v: inner(v) * 2.0)(x)
        return jax.named_call(lambda v: jnp.sin(v), name="named")(y)

    assert_exact(f, jnp.arange(5.0), eye(4, 5) | eye(4, 5, 1))


def test_closed_call_primitive():
    # `closed_call` is what JAX stages for an inlined jaxpr; there is no public
    # constructor, so use the private `eval_jaxpr_p` and skip if it moves.
    eval_jaxpr = pytest.importorskip("jax._src.lax.eval_jaxpr")
    inner = jax.make_jaxpr(lambda v: v[::-1] * 3.0)(jnp.zeros(4))

    def f(x):
        return eval_jaxpr.eval_jaxpr_p.bind(x, jaxpr=inner)[0]

    assert "closed_call" in str(jax.make_jaxpr(f)(jnp.zeros(4)))
    assert_exact(f, jnp.arange(4.0), eye(4)[::-1])


@pytest.mark.parametrize("policy", [None, jax.checkpoint_policies.nothing_saveable])
def test_checkpoint_remat(policy):
    g = jax.checkpoint(lambda v: jnp.cumsum(v[::-1]), policy=policy)

    f = lambda x: jax.remat(lambda v: g(v) * v)(x)
    expected = np.triu(full(4, 4))[::-1] | eye(4)
    assert_exact(f, jnp.arange(4.0), expected)


def test_eqx_filter_jit_and_checkpoint():
    f = eqx.filter_jit(eqx.filter_checkpoint(lambda x: x[::-1] + x))
    assert_exact(f, jnp.arange(4.0), eye(4) | eye(4)[::-1])


def test_vmap_of_function_with_loop():
    def single(v):
        return lax.fori_loop(0, 2, lambda i, c: jnp.roll(c, 1), v)

    f = jax.vmap(single)
    assert_exact(
        f, jnp.ones((3, 4)), kron_eye(3, structural(lambda i: np.roll(i, 2), (4,)))
    )


def test_vmap_of_while_with_batched_predicate_is_sound():
    def single(v):
        return lax.while_loop(lambda c: c[0] < 3.0, lambda c: c * 1.5 + 0.2, v)

    f = jax.vmap(single)
    p = assert_sound(f, jnp.ones((3, 2)), positive=True)
    # Lanes of one batch element may couple through the loop; batches stay apart.
    assert_within(p, kron_eye(3, full(2, 2)))


def test_grad_inside_function():
    # The gradient of a separable function is elementwise.
    f = lambda x: jax.grad(lambda v: jnp.sum(jnp.sin(v) * v))(x)
    assert_exact(f, jnp.arange(4.0), eye(4))
