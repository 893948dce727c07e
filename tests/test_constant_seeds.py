"""Inside the caller's `jit`, `vmap` and loops, products run from constant seed
matrices (see `asdex.ad._compressed.constant_seeds`); called from Python, from
seeds computed in the program. Both give dense AD's derivative."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
import jitted
from asdex.ad import _compressed, _cpu


def _stencil(x):
    return jnp.sin(x[2:]) * x[:-2] - x[1:-1] ** 2


def _tree(p):
    return {"a": p["u"][1:] * p["v"][:-1], "b": jnp.exp(p["u"][:2]).sum()[None]}


def _energy(x):
    return jnp.sum((x[1:] - x[:-1] ** 2) ** 2) + jnp.sum(jnp.cos(x))


X = jnp.asarray(np.random.default_rng(0).standard_normal(12))
P = {"u": X[:6], "v": X[6:]}

CASES = [
    ("fwd", lambda: asdex.jacobian(_stencil, X, mode="fwd"), _stencil, X),
    ("rev", lambda: asdex.jacobian(_stencil, X, mode="rev"), _stencil, X),
    ("bidirectional", lambda: asdex.jacobian(_tree, P, mode="bidirectional"), _tree, P),
    ("pytree", lambda: asdex.jacobian(_tree, P), _tree, P),
    ("star", lambda: asdex.hessian(_energy, X), _energy, X),
    ("acyclic", lambda: asdex.hessian(_energy, X, mode="acyclic"), _energy, X),
    (
        "dense_output",
        lambda: asdex.jacobian(_stencil, X, output_format="dense"),
        _stencil,
        X,
    ),
]


def _dense_blocks(result) -> list:
    """Every block of a derivative (BCOO or dense, nested as `jax.jacobian`
    nests them), densified."""
    leaves = jax.tree_util.tree_leaves(result, is_leaf=lambda a: hasattr(a, "todense"))
    return [a.todense() if hasattr(a, "todense") else a for a in leaves]


def _flat(result) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(b)) for b in _dense_blocks(result)])


def _spy_seeds(monkeypatch) -> list:
    used = []
    original = _compressed.constant_seeds

    def spy(*args):
        seeds = original(*args)
        used.append(seeds is not None)
        return seeds

    monkeypatch.setattr(_compressed, "constant_seeds", spy)
    return used


@pytest.mark.parametrize("name,build,f,x", CASES, ids=[c[0] for c in CASES])
def test_every_call_site_matches(name, build, f, x, monkeypatch):
    used = _spy_seeds(monkeypatch)
    derivative = build()
    dense_ad = jitted.hessian if name in ("star", "acyclic") else jitted.jacfwd
    expected = _flat(dense_ad(f)(x))
    np.testing.assert_allclose(_flat(derivative(x)), expected, rtol=1e-12, atol=1e-12)
    used.clear()
    closure = jax.jit(lambda v: derivative(v))(x)
    assert used and all(used), "the closed-over derivative did not use constant seeds"
    np.testing.assert_allclose(_flat(closure), expected, rtol=1e-12, atol=1e-12)
    argument = jax.jit(lambda d, v: d(v))(derivative, x)
    np.testing.assert_allclose(_flat(argument), expected, rtol=1e-12, atol=1e-12)
    pair = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), x)
    batched = jax.vmap(lambda v: _dense_blocks(derivative(v)))(pair)
    at_second = _flat(dense_ad(f)(jax.tree_util.tree_map(lambda a: 2 * a, x)))
    second = np.concatenate([np.ravel(b[1]) for b in batched])
    np.testing.assert_allclose(second, at_second, rtol=1e-12, atol=1e-12)


def test_python_calls_keep_computed_seeds(monkeypatch):
    """Called from Python, the program compiles with seeds computed from the
    colors (fast to compile); inside `jit`, with constant ones."""
    used = []
    original = _compressed.constant_seeds
    monkeypatch.setattr(
        _compressed,
        "constant_seeds",
        lambda *args: used.append(original(*args) is not None) or original(*args),
    )
    derivative = asdex.jacobian(_stencil, X + 0.5)
    derivative(X + 0.5)
    assert used == [False]
    used.clear()
    jax.jit(lambda v: derivative(v).data)(X + 0.5)
    assert used == [True]


def test_above_the_size_limit_and_with_chunks(monkeypatch):
    expected = np.asarray(jitted.jacfwd(_stencil)(X))
    monkeypatch.setattr(_cpu, "MAX_CONSTANT_SEEDS", 0)
    derivative = asdex.jacobian(_stencil, X, output_format="dense")
    np.testing.assert_allclose(jax.jit(lambda v: derivative(v))(X), expected)
    monkeypatch.undo()
    chunked = asdex.jacobian(_stencil, X, output_format="dense", chunk_size=1)
    np.testing.assert_allclose(jax.jit(lambda v: chunked(v))(X), expected)


def test_float32_and_complex():
    x32 = X.astype(jnp.float32)
    derivative = asdex.jacobian(_stencil, x32, output_format="dense")
    np.testing.assert_allclose(
        jax.jit(lambda v: derivative(v))(x32), jitted.jacfwd(_stencil)(x32), rtol=1e-5
    )
    z = X + 1j * X[::-1]
    holo = asdex.jacobian(_stencil, z, output_format="dense", holomorphic=True)
    np.testing.assert_allclose(
        jax.jit(lambda v: holo(v))(z),
        jitted.jacfwd(_stencil, holomorphic=True)(z),
        rtol=1e-12,
    )


@pytest.mark.benchmark
def test_call_sites_benchmark_quick_run():
    pytest.importorskip("sparsejac")
    from helpers import load_script

    module = load_script("benchmarks/call_sites.py")
    (row,) = module.main(["--quick", "--repeats", "1", "--cases", "bratu"])
    assert row["colors"] == 5 and all(row[s][0] > 0 for s in ("jit", "vmap"))


def test_strict_dtype_promotion():
    derivative = asdex.hessian(_energy, X.astype(jnp.float32))
    with jax.numpy_dtype_promotion("strict"):
        got = jax.jit(lambda v: derivative(v).todense())(X.astype(jnp.float32))
    np.testing.assert_allclose(
        got, jitted.hessian(_energy)(X.astype(jnp.float32)), rtol=1e-4
    )


@pytest.mark.parametrize("mode", ["fwd", "rev", "bidirectional"])
def test_jacobian_operator_shares_the_engine(mode, monkeypatch):
    # The operators compute their nonzeros with the same engine as
    # `asdex.jacobian`: constant seeds inside `jit`, the same values.
    used = _spy_seeds(monkeypatch)
    fn = lambda p, args: _tree(p)  # noqa: E731
    coloring = asdex.jacobian_coloring(fn, P, None, mode=mode)
    expected = lx.JacobianLinearOperator(fn, P, None).as_matrix()

    def dense(p):
        operator = asdex.SparseJacobianOperator(fn, p, None, coloring=coloring)
        return operator.as_matrix()

    np.testing.assert_allclose(jax.jit(dense)(P), expected, rtol=1e-12)
    assert used and all(used)


@pytest.mark.parametrize("mode", ["star", "acyclic"])
def test_hessian_operator_shares_the_engine(mode, monkeypatch):
    used = _spy_seeds(monkeypatch)
    fn = lambda x, args: _energy(x)  # noqa: E731
    coloring = asdex.hessian_coloring(fn, X, None, mode=mode)

    def dense(x):
        return asdex.SparseHessianOperator(fn, x, None, coloring=coloring).as_matrix()

    np.testing.assert_allclose(
        jax.jit(dense)(X), jitted.hessian(_energy)(X), rtol=1e-10, atol=1e-12
    )
    assert used and all(used)


def test_solver_operators_have_a_lower_limit(monkeypatch):
    # Solvers compile a loop once per solve and run a few steps: their
    # operators build constant seeds up to a lower size than derivatives do.
    used = _spy_seeds(monkeypatch)
    monkeypatch.setattr(_cpu, "MAX_CONSTANT_SEEDS_IN_SOLVERS", 0)
    fn = lambda x, args: _stencil(x)  # noqa: E731
    coloring = asdex.jacobian_coloring(fn, X, None)

    def dense(x):
        return asdex.SparseJacobianOperator(fn, x, None, coloring=coloring).as_matrix()

    np.testing.assert_allclose(
        jax.jit(dense)(X), jitted.jacfwd(_stencil)(X), rtol=1e-12
    )
    assert used and not any(used)
    used.clear()
    jax.jit(lambda v: asdex.jacobian(_stencil, X)(v).data)(X)
    assert used and all(used)
