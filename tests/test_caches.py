"""`asdex.clear_caches` empties every cache asdex keeps; results never depend on
them."""

import jax.numpy as jnp
import numpy as np

import asdex
import jitted
from asdex.lineax import _damping, _pattern_data
from asdex.lineax._derivative_operators import _compression


def _residual(y, args):
    return y[1:] ** 2 - y[:-1]


def test_clear_caches_empties_them_and_results_stay():
    y = jnp.linspace(0.5, 1.5, 12)
    coloring = asdex.jacobian_coloring(_residual, y, None)
    first = asdex.SparseJacobianOperator(_residual, y, None, coloring=coloring)
    jac_fn = asdex.jacobian(lambda v: _residual(v, None), y)
    jac_fn(y)
    stacked = _damping.damped_pattern(coloring.pattern)
    assert _compression.cache_info().currsize > 0
    assert _pattern_data.pattern_data.cache_info().currsize > 0

    asdex.clear_caches()
    assert _compression.cache_info().currsize == 0
    assert _pattern_data.pattern_data.cache_info().currsize == 0
    assert _damping.damped_pattern.cache_info().currsize == 0

    again = asdex.SparseJacobianOperator(_residual, y, None, coloring=coloring)
    np.testing.assert_array_equal(again.as_matrix(), first.as_matrix())
    np.testing.assert_array_equal(
        jac_fn(y).todense(), jitted.jacfwd(lambda v: _residual(v, None))(y)
    )
    assert _damping.damped_pattern(coloring.pattern) == stacked


def test_compressions_are_shared_per_coloring():
    y = jnp.linspace(0.5, 1.5, 12)
    coloring = asdex.jacobian_coloring(_residual, y, None)
    assert asdex.lineax.compression(coloring) is asdex.lineax.compression(coloring)
