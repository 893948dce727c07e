"""Local sparsity patterns (`local=True`): the pattern at one point.

The guarantee: at the point, the local pattern contains every nonzero of the dense
Jacobian (Hessian), and it lies within the global pattern. It is checked on every
function of the detection tables, on random compositions, at random points, and on
the cases where it pays (ReLU networks, piecewise-linear models, `maximum`
penalties). Derivatives built from a local pattern refuse other points.
"""

import pickle

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from hypothesis import HealthCheck, strategies as st
from jax import lax
from problems import (
    pair_penalty_energy,
    piecewise_neighbour_map,
    relu_convolution_net,
)

import asdex
import jitted
from helpers import (
    HESSIAN_CASES,
    JACOBIAN_CASES as JACOBIAN_TABLES,
    dense_hessian,
    dense_jacobian,
    ids,
    load_script,
    random_like,
)
from properties import REPRODUCIBLE, property_tests
from test_detection_hypothesis import programs


def _guarantee(local, global_, dense, what):
    """Every nonzero of `dense` is in `local`, and `local` is within `global_`."""
    assert local.local and not global_.local
    missed = np.argwhere((dense != 0) & ~np.isnan(dense) & ~local.todense())
    assert missed.size == 0, f"{what}: local pattern misses {missed[:5].tolist()}"
    assert (local & global_) == local, f"{what}: local pattern outside the global one"


def _point(case, seed):
    if seed == 0:
        return case.args
    rng = np.random.default_rng(seed)
    return random_like(case.args, rng, positive=case.positive)


def _check_jacobian_case(case, seed):
    args = _point(case, seed)
    local = asdex.jacobian_sparsity(case.f, *args, local=True)
    global_ = asdex.jacobian_sparsity(case.f, *args)
    dense = dense_jacobian(case.f, *args, rev=case.rev)
    _guarantee(local, global_, dense, case.name)


# A quarter of the tables runs by default; all of it with `-m slow`.
_DEFAULT = JACOBIAN_TABLES[::4]
_REST = [c for k, c in enumerate(JACOBIAN_TABLES) if k % 4]


@pytest.mark.parametrize("case", _DEFAULT, ids=ids(_DEFAULT))
def test_local_jacobian_guarantee(case):
    _check_jacobian_case(case, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("case", _REST, ids=ids(_REST))
def test_local_jacobian_guarantee_rest(case):
    _check_jacobian_case(case, seed=1)


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=ids(HESSIAN_CASES))
def test_local_hessian_guarantee(case):
    args = _point(case, seed=2)
    local = asdex.hessian_sparsity(case.f, *args, local=True)
    global_ = asdex.hessian_sparsity(case.f, *args)
    _guarantee(local, global_, dense_hessian(case.f, *args), case.name)
    assert local.is_symmetric()


def _local_random_compositions(program, seed):
    shape, f, description = program
    x = jnp.asarray(np.random.default_rng(seed).standard_normal(shape))
    local = asdex.jacobian_sparsity(f, x, local=True)
    global_ = asdex.jacobian_sparsity(f, x)
    _guarantee(local, global_, dense_jacobian(f, x), f"program: {description}")


test_local_random_compositions, test_local_random_compositions_thoroughly = (
    property_tests(
        _local_random_compositions,
        programs(),
        st.integers(0, 2**16),
        default=6,
        thorough=40,
        **REPRODUCIBLE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
)


# ---------------------------------------------------------------- value decisions


def _x(n=12, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n))


def _sign_pattern_x():
    # Alternating signs, so that every decision below has both outcomes.
    return jnp.asarray([1.5, -0.5, 2.0, -1.0, 0.25, -2.0, 3.0, -0.75])


DECISIONS = [
    ("relu", jax.nn.relu, lambda x: np.diag(x > 0)),
    ("maximum", lambda x: jnp.maximum(x, 0.0), lambda x: np.diag(x > 0)),
    ("minimum", lambda x: jnp.minimum(x, 0.0), lambda x: np.diag(x < 0)),
    (
        "where_flip",
        lambda x: jnp.where(x > 0, x, x[::-1]),
        lambda x: np.where((x > 0)[:, None], np.eye(8), np.eye(8)[::-1]).astype(bool),
    ),
    (
        "clip",
        lambda x: jnp.clip(x, -0.8, 1.8),
        lambda x: np.diag(np.abs(x - 0.5) < 1.3),
    ),
    (
        "argmax_gather",
        lambda x: x[jnp.argmax(x)][None],
        lambda x: np.eye(8, dtype=bool)[[np.argmax(x)]],
    ),
    (
        "max_reduce",
        lambda x: jnp.max(x)[None],
        lambda x: np.eye(8, dtype=bool)[[np.argmax(x)]],
    ),
    (
        "sort",
        jnp.sort,
        lambda x: np.eye(8, dtype=bool)[np.argsort(x)],
    ),
    (
        "cond",
        lambda x: lax.cond(x[0] > 0, lambda v: v[1:3], lambda v: v[5:7], x),
        lambda x: np.eye(8, dtype=bool)[1:3],
    ),
    (
        "abs_at_zero",
        lambda x: jnp.abs(x.at[4].set(0.0)),
        lambda x: np.diag(np.arange(8) != 4),
    ),
]


@pytest.mark.parametrize("name,f,expected", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_local_decisions_are_exact(name, f, expected):
    x = _sign_pattern_x()
    local = asdex.jacobian_sparsity(f, x, local=True)
    np.testing.assert_array_equal(local.todense(), expected(np.asarray(x)))
    _guarantee(local, asdex.jacobian_sparsity(f, x), dense_jacobian(f, x), name)


def test_local_pytree_and_extra_arguments():
    """The point includes arguments that are not differentiated: they decide too."""

    def f(params, x, *, shift):
        return {"a": jnp.maximum(params["w"] * x - shift, 0.0), "b": params["w"][:2]}

    params = {"w": jnp.asarray([1.0, -1.0, 2.0, -2.0])}
    x, shift = jnp.asarray([1.0, 1.0, -1.0, -1.0]), jnp.asarray(0.5)
    local = asdex.jacobian_sparsity(f, params, x, shift=shift, local=True)
    # w * x - shift = [0.5, -1.5, -2.5, 1.5]: only w[0] and w[3] are active.
    expected = np.zeros((6, 4), bool)
    expected[0, 0] = expected[3, 3] = expected[4, 0] = expected[5, 1] = True
    np.testing.assert_array_equal(local.todense(), expected)


# ---------------------------------------------------------------- payoff cases


def _banded_relu_net(n=64, depth=6):
    return relu_convolution_net(n, depth)


def _piecewise_linear(n=60):
    return piecewise_neighbour_map(n)


def _penalty(n=80, window=8):
    return pair_penalty_energy(n, window)


def _colors(make, f, x, local):
    return make(f, x, local=local).num_colors


@pytest.mark.parametrize(
    "case",
    [
        ("relu_net", _banded_relu_net, asdex.jacobian_coloring, dense_jacobian),
        (
            "piecewise_linear",
            _piecewise_linear,
            asdex.jacobian_coloring,
            dense_jacobian,
        ),
        ("maximum_penalty", _penalty, asdex.hessian_coloring, dense_hessian),
    ],
    ids=lambda c: c[0],
)
def test_local_pattern_saves_colors(case):
    name, build, make, dense_of = case
    f, x = build()
    local, global_ = make(f, x, local=True), make(f, x, local=False)
    assert local.num_colors < global_.num_colors, (local, global_)
    _guarantee(local.pattern, global_.pattern, dense_of(f, x), name)


# ---------------------------------------------------------------- derivatives


def test_local_jacobian_matches_dense_and_refuses_other_points():
    f, x = _banded_relu_net(n=32, depth=4)
    jac_fn = asdex.jacobian(f, x, local=True)
    assert "local: at one point only" in repr(jac_fn)
    np.testing.assert_allclose(jac_fn(x).todense(), jitted.jacfwd(f)(x), atol=1e-12)
    np.testing.assert_allclose(
        jax.jit(lambda j, v: j(v).todense())(jac_fn, x), jitted.jacfwd(f)(x), atol=1e-12
    )
    with pytest.raises(ValueError, match="called at other arguments"):
        jac_fn(x + 1.0)
    with pytest.raises(Exception, match="called at other arguments"):
        jax.block_until_ready(jax.jit(lambda j, v: j(v).data)(jac_fn, x + 1.0))


def test_local_hessian_value_and_nonzeros():
    f, x = _penalty(n=30, window=4)
    hess_fn = asdex.value_and_hessian(f, x, local=True)
    value, H = hess_fn(x)
    np.testing.assert_allclose(value, f(x))
    np.testing.assert_allclose(H.todense(), jitted.hessian(f)(x), atol=1e-12)
    p = hess_fn.coloring.pattern
    np.testing.assert_allclose(
        hess_fn.nonzeros(x),
        np.asarray(jitted.hessian(f)(x))[p.rows, p.cols],
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="called at other arguments"):
        hess_fn.nonzeros(x * 2)


def test_local_coloring_carries_its_point():
    f, x = _piecewise_linear(n=20)
    coloring = asdex.jacobian_coloring(f, x, local=True)
    jac_fn = asdex.jacobian_from_coloring(f, coloring, x)
    np.testing.assert_allclose(jac_fn(x).todense(), jitted.jacfwd(f)(x))
    with pytest.raises(ValueError, match="called at other arguments"):
        jac_fn(-x)


def test_local_float32():
    f, x = _banded_relu_net(n=32, depth=3)
    x = x.astype(jnp.float32)
    local = asdex.jacobian_sparsity(f, x, local=True)
    _guarantee(
        local, asdex.jacobian_sparsity(f, x), np.asarray(jitted.jacfwd(f)(x)), "f32"
    )
    np.testing.assert_allclose(
        asdex.jacobian(f, x, local=True)(x).todense(), jitted.jacfwd(f)(x), rtol=1e-6
    )


# ---------------------------------------------------------------- the pattern object


def test_local_pattern_repr_save_and_pickle(tmp_path):
    f, x = _piecewise_linear(n=10)
    local = asdex.jacobian_sparsity(f, x, local=True)
    assert "local: at one point only" in repr(local)
    assert local.T.local and (local | local).local and (local & local).local
    assert not asdex.jacobian_sparsity(f, x).local
    local.save(tmp_path / "p.npz")
    loaded = asdex.SparsityPattern.load(tmp_path / "p.npz")
    assert loaded == local and loaded.local
    assert pickle.loads(pickle.dumps(local)).local


def test_intersection():
    a = asdex.SparsityPattern([0, 1, 2], [0, 1, 2], (3, 3))
    b = asdex.SparsityPattern([0, 2, 2], [0, 1, 2], (3, 3))
    assert a & b == asdex.SparsityPattern([0, 2], [0, 2], (3, 3))
    with pytest.raises(ValueError, match="same shape"):
        a & asdex.SparsityPattern([], [], (3, 4))


# ---------------------------------------------------------------- errors


def test_local_needs_concrete_values():
    f = jax.nn.relu
    with pytest.raises(TypeError, match="concrete array"):
        asdex.jacobian_sparsity(f, jax.ShapeDtypeStruct((3,), jnp.float32), local=True)
    with pytest.raises(TypeError, match="concrete array"):
        asdex.jacobian_sparsity(f, input_shape=3, local=True)
    with pytest.raises(TypeError, match="concrete array"):
        jax.jit(lambda x: asdex.jacobian_sparsity(f, x, local=True).nnz)(jnp.ones(3))
    with pytest.raises(TypeError, match="local="):
        asdex.jacobian_sparsity(f, jnp.ones(3), local="yes")


def test_operators_and_solvers_refuse_local_colorings():
    f, x = _piecewise_linear(n=10)
    coloring = asdex.jacobian_coloring(f, x, local=True)
    with pytest.raises(ValueError, match="local pattern"):
        asdex.SparseLinearSolver(coloring=coloring)
    with pytest.raises(ValueError, match="local pattern"):
        asdex.SparseJacobianOperator(lambda y, args: f(y), x, None, coloring=coloring)
    with pytest.raises(ValueError, match="local pattern"):
        asdex.jacobian_from_pattern(f, coloring.pattern, x)
    # A global coloring is still accepted.
    operator = asdex.SparseJacobianOperator(lambda y, args: f(y), x, None)
    assert isinstance(operator, lx.AbstractLinearOperator)


def test_module_function():
    class Model(eqx.Module):
        w: jax.Array

        def __call__(self, x):
            return jax.nn.relu(self.w * x)

    model = Model(jnp.asarray([1.0, -1.0, 1.0]))
    local = asdex.jacobian_sparsity(model, jnp.asarray([1.0, 1.0, -1.0]), local=True)
    np.testing.assert_array_equal(local.todense(), np.diag([True, False, False]))


@pytest.mark.benchmark
def test_benchmark_quick_run():
    module = load_script("benchmarks/local_sparsity.py")
    rows = module.main(["--quick"])
    assert {r["name"] for r in rows} == set(module.PROBLEMS)
    assert all(r["colors_local"] < r["colors_global"] for r in rows)


# 9 s; strict promotion of every other path is in `test_strict_promotion.py`.
@pytest.mark.slow
def test_strict_dtype_promotion():
    f, x = _banded_relu_net(n=24, depth=3)
    energy, y = _penalty(n=20, window=3)
    with jax.numpy_dtype_promotion("strict"):
        jac = asdex.jacobian(f, x, local=True)(x)
        hess = asdex.hessian(energy, y, local=True)(y)
    np.testing.assert_allclose(jac.todense(), jitted.jacfwd(f)(x), atol=1e-12)
    np.testing.assert_allclose(hess.todense(), jitted.hessian(energy)(y), atol=1e-12)
