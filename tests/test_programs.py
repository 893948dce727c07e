"""The per-derivative program cache (`asdex.ad._programs`): same results as
`equinox.filter_jit`, no stale entries, and transformations still work."""

import gc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import asdex
from asdex.ad import _programs


def diff_squared(x):
    return (x[1:] - x[:-1]) ** 2


def _x(n=12, seed=0):
    return jax.random.normal(jax.random.key(seed), (n,))


def test_result_matches_dense_and_entry_is_cached():
    x = _x()
    jac_fn = asdex.jacobian(diff_squared, x)
    expected = jax.jacfwd(diff_squared)(x)
    np.testing.assert_allclose(jac_fn(x).todense(), expected, rtol=1e-6)
    entry = _programs._ENTRIES[id(jac_fn)]
    assert entry.owner() is jac_fn
    # A second call at another point reuses the same compiled program.
    programs = dict(entry.programs)
    y = _x(seed=1)
    np.testing.assert_allclose(
        jac_fn(y).todense(), jax.jacfwd(diff_squared)(y), rtol=1e-6
    )
    assert entry.programs == programs


def test_entry_is_dropped_with_its_derivative():
    x = _x()
    jac_fn = asdex.jacobian(diff_squared, x)
    jac_fn(x)
    key = id(jac_fn)
    assert key in _programs._ENTRIES
    del jac_fn
    gc.collect()
    assert key not in _programs._ENTRIES


def test_a_new_derivative_never_sees_another_ones_arrays():
    # `eqx.tree_at` copies a derivative with other arrays (here: the closed-over
    # matrix of `f`); each copy computes with its own.
    x = _x(4)

    class Linear(eqx.Module):
        A: jax.Array

        def __call__(self, v):
            return self.A @ v

    first = asdex.jacobian(Linear(jnp.eye(4)), x, output_format="dense")
    np.testing.assert_allclose(first(x), np.eye(4))
    second = eqx.tree_at(lambda d: d.fn_dynamic.A, first, 2 * jnp.eye(4))
    np.testing.assert_allclose(second(x), 2 * np.eye(4))
    np.testing.assert_allclose(first(x), np.eye(4))


def test_derivative_passed_into_jit_as_an_argument():
    # Inside `jax.jit` the derivative's leaves are tracers: not cached, same result.
    x = _x()
    jac_fn = asdex.jacobian(diff_squared, x, output_format="dense")
    before = len(_programs._ENTRIES)
    out = jax.jit(lambda d, v: d(v))(jac_fn, x)
    np.testing.assert_allclose(out, jax.jacfwd(diff_squared)(x), rtol=1e-6)
    assert len(_programs._ENTRIES) == before  # the traced copy got no entry
    jac_fn(x)  # from Python, with concrete leaves: one entry, for `jac_fn`
    assert len(_programs._ENTRIES) == before + 1


def test_under_vmap_grad_and_jit():
    x = _x()
    jac_fn = asdex.jacobian(diff_squared, x, output_format="dense")
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_allclose(
        jax.vmap(jac_fn)(xs), jax.vmap(jax.jacfwd(diff_squared))(xs), rtol=1e-6
    )

    def total(v):
        return jac_fn(v).sum()

    def dense_total(v):
        return jax.jacfwd(diff_squared)(v).sum()

    np.testing.assert_allclose(
        jax.jit(jax.grad(total))(x), jax.grad(dense_total)(x), rtol=1e-6
    )


def test_static_arguments_and_non_array_outputs():
    # A static (non-array) argument and a non-array auxiliary output pass through.
    def f(x, scale, *, label):
        return scale * jnp.sin(x), {"label": label, "norm": jnp.sum(x**2)}

    x = _x(5)
    jac_fn = asdex.jacobian(f, x, 3.0, label="a", has_aux=True)
    jac, aux = jac_fn(x, 3.0, label="a")
    np.testing.assert_allclose(jac.todense(), np.diag(3.0 * np.cos(x)), rtol=1e-6)
    assert aux["label"] == "a"
    np.testing.assert_allclose(aux["norm"], jnp.sum(x**2), rtol=1e-6)


def test_copies_share_compiled_programs():
    # A copy with the same structure (here by `tree_map`, as `jax.device_put` or a
    # parameter update would make one) reuses the compiled program: `f` is traced
    # once for both.
    traces = []

    def f(x):
        traces.append(None)
        return (x[1:] - x[:-1]) ** 2

    x = _x()
    jac_fn = asdex.jacobian(f, x)
    traced_at_build = len(traces)
    jac_fn(x)
    assert len(traces) == traced_at_build + 1
    copy = jax.tree_util.tree_map(lambda leaf: leaf, jac_fn)
    assert copy is not jac_fn
    y = _x(seed=2)
    np.testing.assert_allclose(copy(y).todense(), jax.jacfwd(f)(y), rtol=1e-6)
    assert len(traces) == traced_at_build + 2  # `jax.jacfwd` above, not `copy`
