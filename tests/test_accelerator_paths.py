"""The code paths that run on GPUs and other accelerators, exercised on CPU.

asdex picks some implementations by platform with `jax.lax.platform_dependent`:
on CPU the products are unrolled or looped and decompression is kept apart from
them, with large substitution sweeps on the host; elsewhere the products are one
`jax.vmap` and the sweep is XLA's. The test suite runs on CPU, so here that
choice is patched to always take the `default` (accelerator) branch, and the
results are compared with dense JAX as everywhere else.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import bratu_energy, brusselator

import asdex
import jitted
from asdex.ad import _compressed, _cpu
from asdex.lineax import SparseHessianOperator, SparseJacobianOperator
from helpers import (
    HESSIAN_CASES,
    JACOBIAN_CASES,
    as_matrix,
    dense_hessian,
    dense_jacobian,
    ids,
)


@pytest.fixture
def accelerator_branches(monkeypatch):
    """Make `jax.lax.platform_dependent` take its `default` branch; count its calls.

    Each test builds its derivative from a function object of its own, so none of
    the programs it compiles is shared with a test that ran the CPU branches.
    """
    calls = []

    def default_branch(*args, default, **per_platform):
        assert "cpu" in per_platform  # the patch replaces a real CPU choice
        calls.append(default)
        return default(*args)

    monkeypatch.setattr(jax.lax, "platform_dependent", default_branch)
    # Inside `jit`, products from constant seeds take no platform branch: turn
    # them off here, so that the computed seeds' branches run.
    monkeypatch.setattr(_cpu, "MAX_CONSTANT_SEEDS", 0)
    jax.clear_caches()
    yield calls
    jax.clear_caches()


def _fresh(f):
    """A new function object that calls `f`: its programs are compiled anew."""
    return lambda *args: f(*args)


JACOBIAN_SELECTION = [
    c
    for c in JACOBIAN_CASES
    if c.name in {"concatenate", "softmax", "conv2d_stencil", "scan_xs", "at_add"}
]


@pytest.mark.parametrize(
    "output_format", ["bcoo", pytest.param("dense", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("mode", ["fwd", "rev", "bidirectional"])
@pytest.mark.parametrize("case", JACOBIAN_SELECTION, ids=ids(JACOBIAN_SELECTION))
def test_jacobians_match_as_matrix(accelerator_branches, case, mode, output_format):
    f = _fresh(case.f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        jac_fn = asdex.jacobian(f, *case.args, mode=mode, output_format=output_format)
    got = as_matrix(jac_fn(*case.args), jac_fn.coloring.shape)
    np.testing.assert_allclose(
        got, dense_jacobian(case.f, *case.args), rtol=1e-10, atol=1e-12
    )
    nonzeros = jac_fn.nonzeros(*case.args)
    p = jac_fn.coloring.pattern
    np.testing.assert_allclose(nonzeros, got[p.rows, p.cols], rtol=1e-12)
    assert accelerator_branches  # the batched products ran


@pytest.mark.parametrize(
    "mode", ["star", pytest.param("acyclic", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("case", HESSIAN_CASES, ids=ids(HESSIAN_CASES))
def test_hessians_match_as_matrix(accelerator_branches, case, mode):
    f = _fresh(case.f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        hess_fn = asdex.hessian(f, *case.args, mode=mode)
    got = as_matrix(hess_fn(*case.args), hess_fn.coloring.shape)
    np.testing.assert_allclose(
        got, dense_hessian(case.f, *case.args), rtol=1e-10, atol=1e-10
    )
    # A zero Hessian (`f` linear) needs no products at all.
    assert accelerator_branches or hess_fn.coloring.num_colors == 0


def test_many_block_sweep_runs_in_xla(accelerator_branches, monkeypatch):
    """A Bratu plan has enough blocks to run on the host on CPU; not here."""

    def no_host_sweep(*args):
        raise AssertionError("the host sweep ran on the accelerator path")

    monkeypatch.setattr(_compressed, "solve_on_host", no_host_sweep)
    u = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (12, 12)))
    hess_fn = asdex.hessian(_fresh(bratu_energy), u, mode="acyclic")
    assert hess_fn.decompression.host_plan is not None  # the host sweep on CPU
    got = as_matrix(hess_fn(u), (144, 144))
    np.testing.assert_allclose(
        got, jitted.hessian(bratu_energy)(u).reshape(144, 144), rtol=1e-10, atol=1e-12
    )


def test_vmap_jit_and_chunks(accelerator_branches):
    x = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, 2 * 6 * 6))
    f = _fresh(brusselator)
    expected = jax.vmap(jitted.jacfwd(brusselator))(jnp.stack([x, 2 * x]))
    for chunk_size in (None, 5):
        jac_fn = asdex.jacobian(f, x, chunk_size=chunk_size, output_format="dense")
        got = jax.jit(jax.vmap(lambda j, y: j(y), in_axes=(None, 0)))(
            jac_fn, jnp.stack([x, 2 * x])
        )
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert accelerator_branches


def test_operators_match_as_matrix(accelerator_branches):
    y = jnp.asarray(np.random.default_rng(2).uniform(0.5, 1.5, 2 * 5 * 5))
    op = SparseJacobianOperator(lambda y, args: brusselator(y) * args, y, 1.5)
    np.testing.assert_allclose(
        op.as_matrix(), jitted.jacfwd(brusselator)(y) * 1.5, rtol=1e-10, atol=1e-12
    )
    u = jnp.asarray(np.random.default_rng(3).uniform(0.5, 1.5, (6, 6)))
    hop = SparseHessianOperator(lambda u, args: bratu_energy(u, args), u, 0.8)
    expected = jitted.hessian(bratu_energy)(u, 0.8).reshape(36, 36)
    np.testing.assert_allclose(hop.as_matrix(), expected, rtol=1e-10, atol=1e-12)
    assert accelerator_branches
