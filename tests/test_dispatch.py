"""One compiled program per product on CPU (`dispatch_per_product`).

Called with concrete arguments on CPU, a large sparse Jacobian with five or more
products linearizes `f` in one program and runs each product in a program of its
own. The tests lower the size threshold so that small problems take that path,
and compare every such call with the single-program path (the same derivative
under `jit`) and with dense AD, for every mode, output format, PyTrees, `has_aux`
and `with_value`; `f` still runs once per call. Hessians do not dispatch by
default; their per-product path is checked with the switch turned on.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

import asdex
import jitted
from asdex.ad import _cpu, _sparse_derivative

jax.config.update("jax_enable_x64", True)


def wide_band(x):
    """Each output couples five neighbours: 5 column or row colors."""
    return (
        jnp.sin(x[4:]) * x[:-4]
        + x[1:-3] ** 2 * jnp.cos(x[2:-2])
        + jnp.exp(0.1 * x[3:-1]) * x[2:-2]
    )


def arrow_band(x):
    """A band of five, one dense row and one dense column: bidirectional."""
    band = wide_band(x)
    return jnp.concatenate([band + x[0] * x[4:] ** 2, jnp.sum(jnp.sin(x))[None]])


def hess_band(x):
    return jnp.sum(jnp.sin(x[4:]) * x[:-4] * x[2:-2]) + jnp.sum(jnp.cos(x[1:]) * x[:-1])


def _dense(J):
    if isinstance(J, jsparse.BCOO):
        return np.asarray(J.todense())
    if sp.issparse(J):
        return J.toarray()
    return np.asarray(J)


def _jitted(derivative, *args):
    return eqx.filter_jit(lambda d, *a: d(*a))(derivative, *args)


@pytest.fixture
def count_dispatch(monkeypatch):
    """Counts the calls that took the one-program-per-product path; any size."""
    monkeypatch.setattr(_cpu, "DISPATCH_FROM_SIZE", 0)
    calls = []
    original = _sparse_derivative._products_one_by_one

    def spy(derivative, leaves):
        calls.append(None)
        return original(derivative, leaves)

    monkeypatch.setattr(_sparse_derivative, "_products_one_by_one", spy)
    return calls


@pytest.mark.parametrize(
    "output_format",
    [
        "bcoo",
        pytest.param("dense", marks=pytest.mark.slow),
        pytest.param("scipy_csr", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize(
    "fn, mode", [(wide_band, "fwd"), (wide_band, "rev"), (arrow_band, "bidirectional")]
)
def test_jacobian_dispatched_matches(fn, mode, output_format, count_dispatch):
    x = jnp.asarray(np.random.default_rng(0).standard_normal(40))
    jac_fn = asdex.jacobian(fn, x, mode=mode, output_format=output_format)
    coloring = jac_fn.coloring
    assert coloring.num_jvps + coloring.num_vjps >= 5
    if fn is arrow_band:
        assert coloring.mode == "bidirectional"
    expected = jitted.jacfwd(fn)(x)
    J = jac_fn(x)
    assert len(count_dispatch) == 1
    np.testing.assert_allclose(_dense(J), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        jac_fn.nonzeros(x),
        expected[coloring.pattern.rows, coloring.pattern.cols],
        rtol=1e-12,
    )
    assert len(count_dispatch) == 2
    if output_format != "scipy_csr":  # scipy results leave `jit` as host arrays
        np.testing.assert_allclose(_dense(_jitted(jac_fn, x)), _dense(J), rtol=1e-12)
        assert len(count_dispatch) == 2  # traced: one program


def test_hessian_dispatched_matches(count_dispatch, monkeypatch):
    monkeypatch.setattr(asdex.SparseHessian, "dispatch_on_cpu", True)
    x = jnp.asarray(np.random.default_rng(1).standard_normal(30))
    expected = jitted.hessian(hess_band)(x)
    for mode in ("star", "acyclic"):
        hess_fn = asdex.value_and_hessian(hess_band, x, mode=mode)
        assert hess_fn.coloring.num_colors >= 5
        value, H = hess_fn(x)
        np.testing.assert_allclose(value, hess_band(x), rtol=1e-14)
        np.testing.assert_allclose(H.todense(), expected, rtol=1e-12, atol=1e-12)
        value_jit, H_jit = _jitted(hess_fn, x)
        np.testing.assert_allclose(H_jit.todense(), H.todense(), rtol=1e-12, atol=1e-14)
    assert len(count_dispatch) == 2


def test_pytrees_aux_and_value(count_dispatch):
    def f(params, scale):
        a, b = params["a"], params["b"]
        out = {"y": wide_band(a) * scale, "z": wide_band(b) + a[4:]}
        return out, {"norm": jnp.sum(a**2)}

    rng = np.random.default_rng(2)
    params = {
        "a": jnp.asarray(rng.standard_normal(20)),
        "b": jnp.asarray(rng.standard_normal(20)),
    }
    value_fn = asdex.value_and_jacobian(f, params, 2.0, has_aux=True)
    (out, aux), J = value_fn(params, 2.0)
    assert len(count_dispatch) == 1
    expected_out, expected_aux = f(params, 2.0)
    np.testing.assert_allclose(out["y"], expected_out["y"])
    np.testing.assert_allclose(aux["norm"], expected_aux["norm"])
    dense = jitted.jacfwd(lambda p: f(p, 2.0)[0])(params)
    for o in ("y", "z"):
        for i in ("a", "b"):
            np.testing.assert_allclose(
                J[o][i].todense(), dense[o][i], rtol=1e-12, atol=1e-12
            )


def test_f_runs_once_per_call(count_dispatch):
    runs, traces = [], []

    def f(x):
        traces.append(None)
        jax.debug.callback(lambda: runs.append(None))
        return wide_band(x)

    x = jnp.linspace(0.1, 1.0, 30)
    value_fn = asdex.value_and_jacobian(f, x)
    runs.clear()
    traces.clear()
    value, J = value_fn(x)
    jax.effects_barrier()
    assert len(count_dispatch) == 1
    assert len(runs) == 1 and len(traces) == 1
    value_fn(2 * x)
    jax.effects_barrier()
    assert len(runs) == 2 and len(traces) == 1  # no retrace
    np.testing.assert_allclose(J.todense(), jitted.jacfwd(wide_band)(x), rtol=1e-12)


def test_few_products_and_traced_calls_keep_one_program(count_dispatch):
    x = jnp.linspace(0.1, 1.0, 30)
    asdex.jacobian(lambda x: (x[1:] - x[:-1]) ** 2, x)(x)  # 2 JVPs
    jac_fn = asdex.jacobian(wide_band, x)
    jax.vmap(jac_fn)(jnp.stack([x, 2 * x]))
    jax.grad(lambda x: jnp.sum(jac_fn(x).data ** 2))(x)
    assert count_dispatch == []


def test_small_problems_and_hessians_do_not_dispatch():
    x = jnp.linspace(0.1, 1.0, 30)
    leaves = [x]
    assert not _sparse_derivative.dispatch_per_product(
        asdex.jacobian(wide_band, x), leaves
    )
    big = jnp.linspace(0.1, 1.0, 2**17)
    assert _sparse_derivative.dispatch_per_product(
        asdex.jacobian(wide_band, big), [big]
    )
    hess_fn = asdex.hessian(hess_band, big, mode="star")
    assert hess_fn.coloring.num_colors >= 5
    assert not _sparse_derivative.dispatch_per_product(hess_fn, [big])


def test_bcoo_by_slot_matches(count_dispatch):
    """Mostly-padding direct colorings gather the nonzeros product by product."""

    def stencil(x):  # one coupling per row but a dozen colors: slots ≫ nonzeros
        n = x.shape[0]
        idx = (7 * jnp.arange(n)) % n
        return x * x[idx] + jnp.roll(x, 5) * jnp.roll(x, -11)

    x = jnp.asarray(np.random.default_rng(4).standard_normal(64))
    jac_fn = asdex.jacobian(stencil, x, mode="fwd")
    assert jac_fn.format.by_slot and jac_fn.coloring.num_jvps >= 5
    J = jac_fn(x)
    assert len(count_dispatch) == 1 and not J.indices_sorted
    expected = jitted.jacfwd(stencil)(x)
    np.testing.assert_allclose(J.todense(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_jitted(jac_fn, x).todense(), expected, rtol=1e-12)
