"""The acyclic substitution sweep on the CPU host against the XLA sweep.

On CPU, acyclic Hessian colorings are decompressed by a numba sweep wrapped in
`jax.lax.custom_linear_solve` (`asdex/ad/_host_substitution.py`); on GPU by the
vectorised XLA sweep `SubstitutionPlan.solve`. Both must agree on the unknowns,
on their transposes (reverse mode), their JVPs and under `vmap`.
"""

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import asdex
import jitted
from asdex.ad._host_substitution import HostPlan, solve_on_host

jax.config.update("jax_enable_x64", True)


def bratu_like(u):
    n = int(np.sqrt(u.size))
    w = jnp.pad(u.reshape(n, n), 1)
    gx = w[1:, 1:-1] - w[:-1, 1:-1]
    gy = w[1:-1, 1:] - w[1:-1, :-1]
    return jnp.sum(gx**2) + jnp.sum(gy**2) - jnp.sum(jnp.exp(u))


def banded(x):
    return sum(jnp.sum(jnp.sin(x[k:] * x[:-k])) for k in (1, 2, 3, 5))


def arrowhead(x):
    return jnp.sum(x[0] * x[1:] ** 2) + jnp.sum(jnp.cos(x[1:] * x[:-1]))


CASES = [
    (bratu_like, 36),
    pytest.param(bratu_like, 144, marks=pytest.mark.slow),
    pytest.param(banded, 60, marks=pytest.mark.slow),
    (arrowhead, 30),
]


@pytest.mark.parametrize("fn, n", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_host_sweep_matches_xla_sweep(fn, n):
    x = jnp.asarray(np.random.default_rng(0).uniform(size=n))
    hess_fn = asdex.hessian(fn, x, mode="acyclic")
    dec = hess_fn.decompression
    plan = dec.plan
    assert plan is not None
    host = HostPlan(jtu.tree_map(np.asarray, plan))
    has_pred = jnp.asarray(host.has_pred)

    def on_host(flat):
        return solve_on_host(host, plan, has_pred, flat)

    on_xla = jax.jit(lambda flat: plan.solve(flat))  # eager: seconds of small ops

    rng = np.random.default_rng(1)
    flat = jnp.asarray(rng.standard_normal(dec.num_slots))
    expected = on_xla(flat)
    # The same sums, associated differently (XLA sums tiles of a path first).
    np.testing.assert_allclose(jax.jit(on_host)(flat), expected, rtol=1e-13, atol=1e-13)
    cotangent = jnp.asarray(rng.standard_normal(expected.shape))
    np.testing.assert_allclose(
        jax.linear_transpose(on_host, flat)(cotangent)[0],
        jax.jit(jax.linear_transpose(on_xla, flat))(cotangent)[0],
        rtol=1e-12,
        atol=1e-12,
    )
    tangent = jnp.asarray(rng.standard_normal(flat.shape))
    np.testing.assert_allclose(
        jax.jvp(on_host, (flat,), (tangent,))[1], on_xla(tangent), rtol=1e-12
    )
    batch = jnp.stack([flat, tangent])
    np.testing.assert_allclose(
        jax.vmap(on_host)(batch), jax.jit(jax.vmap(on_xla))(batch), rtol=1e-12
    )


@pytest.mark.parametrize(
    "dtype", [pytest.param(jnp.float32, marks=pytest.mark.slow), jnp.float64]
)
def test_acyclic_hessian_on_cpu(dtype):
    """End to end: value, jit, vmap and grad of an acyclic Hessian, against dense."""
    x = jnp.asarray(np.random.default_rng(2).uniform(size=36), dtype)
    hess_fn = asdex.hessian(bratu_like, x, mode="acyclic")
    assert hess_fn.decompression.host_plan is not None
    rtol = 1e-5 if dtype == jnp.float32 else 1e-12
    expected = jitted.hessian(bratu_like)(x)
    np.testing.assert_allclose(hess_fn(x).todense(), expected, rtol=rtol, atol=rtol)
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_allclose(
        jax.vmap(hess_fn)(xs).todense(),
        jax.vmap(jitted.hessian(bratu_like))(xs),
        rtol=rtol,
        atol=rtol,
    )

    if dtype == jnp.float32:
        return  # reverse mode is checked once, in float64

    def loss(x):
        return jnp.sum(hess_fn(x).data ** 2)

    def dense_loss(x):
        return jnp.sum(jitted.hessian(bratu_like)(x) ** 2)

    np.testing.assert_allclose(
        jax.grad(loss)(x), jax.grad(dense_loss)(x), rtol=10 * rtol, atol=10 * rtol
    )


def test_plans_of_few_blocks_stay_in_xla():
    # A tridiagonal Hessian's plan is one block of two paths: XLA compiles it as
    # fast as the host sweep and runs it faster, so it has no host plan.
    def chain(x):
        return jnp.sum((1 - x[:-1]) ** 2 + 10 * (x[1:] - x[:-1] ** 2) ** 2)

    x = jnp.asarray(np.random.default_rng(3).uniform(size=40))
    hess_fn = asdex.hessian(chain, x, mode="acyclic")
    plan = hess_fn.decompression.plan
    assert plan is not None
    assert sum(len(level) for level in plan.blocks) < 4
    assert hess_fn.decompression.host_plan is None
    np.testing.assert_allclose(
        hess_fn(x).todense(), jitted.hessian(chain)(x), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda v: jnp.sum(hess_fn(v).data ** 2)))(x),
        jax.grad(lambda v: jnp.sum(jitted.hessian(chain)(v) ** 2))(x),
        rtol=1e-10,
    )
