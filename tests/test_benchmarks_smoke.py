"""`benchmarks/detection.py` runs, and its problems have the patterns dense AD finds.

The benchmark is run in quick mode, in this process, at small sizes, so that the
script cannot rot unnoticed. Its timings are not checked here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import asdex
from helpers import load_script

# Smoke runs of the benchmark scripts: `uv run pytest -m benchmark`.
pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/detection.py")


def test_quick_run(bench, capsys):
    report = bench.main(["--quick", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "| case |" in out and "Slope of log t against log n" in out
    results = {r["name"]: r for r in report["cases"]}
    assert set(results) == set(bench.CASES)
    # Exact pattern sizes at the quick sizes: band, 5-point stencils, saturation.
    expected_nnz = {
        "diff": 2 * 1000 - 2,  # 999 rows, two entries each
        "brusselator": 2 * 8 * 8 * 6,  # own u and v, four periodic neighbours
        "rosenbrock": 3 * 1000 - 2,  # tridiagonal
        "bratu": 5 * 8 * 8 - 4 * 8,  # 5-point stencil, Dirichlet boundary
        "scan": 10 * 10,  # 1000 steps couple all 10 states
    }
    for name, nnz in expected_nnz.items():
        r = results[name]
        assert r["nnz"] == nnz, name
        assert r["best_s"] > 0 and r["warmup_s"] > 0
        assert r["py_peak_mb"] >= 0 and r["rss_delta_mb"] >= 0
    assert len(report["scaling"]["rows"]) == len(bench.QUICK_SCALING_SIZES)


def _dense_nonzeros(matrix):
    return np.asarray(matrix).reshape(matrix.shape[0], -1) != 0


@pytest.mark.parametrize("shape", [(2, 5, 5), (50,)])
def test_brusselator_pattern(bench, shape):
    from problems import brusselator

    x = jax.random.uniform(jax.random.key(0), shape, minval=0.5, maxval=2.0)
    pattern = asdex.jacobian_sparsity(brusselator, x)
    dense = jax.jit(jax.jacfwd(brusselator))(x).reshape(x.size, x.size)
    assert brusselator(x).shape == x.shape
    assert np.array_equal(pattern.todense(), _dense_nonzeros(dense))
    # Forcing is a constant: it does not change the pattern.
    forced = asdex.jacobian_sparsity(lambda y: brusselator(y, t=2.0), x)
    assert forced == pattern


@pytest.mark.parametrize(
    "name, x",
    [
        ("bratu_energy", jnp.linspace(0.1, 0.9, 16).reshape(4, 4)),
        ("chained_rosenbrock", jnp.linspace(-1.0, 2.0, 7)),
    ],
)
def test_hessian_patterns(bench, name, x):
    import problems

    f = getattr(problems, name)
    pattern = asdex.hessian_sparsity(f, x)
    dense = jax.jit(jax.hessian(f))(x).reshape(x.size, x.size)
    assert np.array_equal(pattern.todense(), _dense_nonzeros(dense))


def test_scan_pattern(bench):
    from problems import euler_diffusion_reaction

    x = jnp.linspace(0.1, 0.9, 6)
    f = lambda y: euler_diffusion_reaction(y, steps=2)  # noqa: E731
    pattern = asdex.jacobian_sparsity(f, x)
    dense = jax.jit(jax.jacfwd(f))(x)
    # Two steps of a 3-point stencil: a pentadiagonal band.
    assert np.array_equal(pattern.todense(), _dense_nonzeros(dense))
    assert pattern.nnz == 6 * 5 - 2 * 3
