"""The examples in `examples/` and the solver benchmark run, at small sizes.

Each example's `main` is called in this process with small arguments, so that the
scripts cannot rot unnoticed; the checks are on their results, not their timings.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def examples():
    return {
        name: load_script(f"examples/{name}.py")
        for name in ("bratu_newton", "curve_fitting", "newton_minimise")
    }


def test_bratu_newton(examples, capsys):
    out = examples["bratu_newton"].main(["--N", "16"])
    assert out["residual_drop_in"] < 1e-8 and out["residual_dedicated"] < 1e-8
    assert out["difference"] < 1e-12
    # The lower branch of Bratu at λ = 1: max u ≈ 0.078 on the unit square.
    assert 0.07 < float(jnp.max(out["u"])) < 0.08
    assert "SparseNewton" in capsys.readouterr().out


def test_curve_fitting(examples):
    out = examples["curve_fitting"].main(["--curves", "40", "--grid", "12"])
    assert out["curve_colors"] == 4
    assert out["curve_difference"] < 1e-6
    # The surface fit reaches the noise level of the data.
    assert out["surface_rms"] < 0.02
    misfit, smooth = out["surface_residuals"](out["surface_u"], out["surface_mu"])
    assert misfit.shape == (4 * 12 * 12,) and smooth.shape == (10 * 10,)


def test_newton_minimise(examples):
    out = examples["newton_minimise"].main(["--n", "1000"])
    assert out["gradient_norm"] <= 1e-8 and out["error"] < 1e-10
    assert out["num_colors"] == 3  # star, the default Hessian coloring
    out = examples["newton_minimise"].main(["--n", "20", "--start", "classic"])
    assert out["gradient_norm"] <= 1e-8


@pytest.mark.benchmark
def test_solver_benchmark_quick(capsys):
    bench = load_script("benchmarks/solvers.py")
    results = bench.main(["--quick", "--in-process", "--repeats", "1"])
    assert "| case |" in capsys.readouterr().out
    assert set(results) == set(bench.CASES)
    for name in ("curves", "rosenbrock"):
        assert results[name]["pass"], name
    assert results["bratu64"]["difference"] < 1e-8
    for name in ("bratu256", "bratu512"):
        for variant in ("drop_in", "dedicated"):
            row = results[name][variant]
            assert row["residual"] < 1e-8
            split = row["split"]
            assert split["factorisation"] > 0 and np.isfinite(split["rest"])
