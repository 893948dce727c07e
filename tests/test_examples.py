"""The examples in `examples/` and the solver benchmark run, at small sizes.

Each example's `main` is called in this process with small arguments, so that the
scripts cannot rot unnoticed; the checks are on their results, not their timings.
"""

import re

import jax.numpy as jnp
import numpy as np
import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def examples():
    return {
        name: load_script(f"examples/{name}.py")
        for name in (
            "bratu_newton",
            "bundle_adjustment",
            "curve_fitting",
            "newton_minimise",
            "optax_newton",
            "quickstart",
        )
    }


def test_quickstart(examples, capsys):
    # The README's first command; it exits with 1 when a check fails.
    examples["quickstart"].main()
    printed = capsys.readouterr().out
    assert "0 outside the pattern (OK)" in printed
    assert "): OK" in printed
    passes = re.search(r"AD passes: (\d+) JVPs instead of 2,048", printed)
    assert passes is not None and int(passes.group(1)) <= 12
    assert printed.count("max |residual|") == 2


def test_optax_newton(examples):
    out = examples["optax_newton"].main(["--n", "200", "--curves", "20"])
    value, steps = out["rosenbrock/sparse_newton"]
    assert value < 1e-12
    assert steps < out["rosenbrock/optax.lbfgs"][1]
    loss, steps = out["curves/sparse_gauss_newton"]
    assert loss <= out["curves/optax.lbfgs"][0] * (1 + 1e-6)
    assert steps < out["curves/optax.lbfgs"][1]


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


def test_bundle_adjustment_reaches_scipys_cost(examples):
    from scipy.optimize import least_squares

    ba = examples["bundle_adjustment"]
    out = ba.main(["--cameras", "6", "--points", "60", "--observations", "240"])
    assert out["num_colors"] == 12  # 9 camera + 3 point parameters per row
    # The oracle: scipy's trust-region least squares from the same start.
    problem = ba.make_problem(6, 60, 240)

    def fun(x):
        cams, pts = x[:54].reshape(6, 9), x[54:].reshape(60, 3)
        projected = ba.project(cams, pts, problem.cam_idx, problem.pt_idx, xp=np)
        return (projected - problem.observed).ravel()

    reference = least_squares(fun, problem.x0, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    assert abs(out["cost"] - reference.cost) <= 1e-6 * reference.cost
    assert out["cost"] < 0.5 * ba.cost(problem, problem.y0)
    with pytest.raises(ValueError, match="observations"):
        ba.make_problem(2, 10, 5)


@pytest.mark.benchmark
def test_large_solve_and_bundle_benchmarks_quick(capsys):
    large = load_script("benchmarks/large_solves.py")
    result = large.main(["--quick", "--cases", "bratu1000"])
    assert result["cases"][0]["residual"] <= 1e-8
    assert result["cases"][0]["linear_solver"] == "SparseAMG"
    bundle = load_script("benchmarks/bundle_adjustment.py")
    (row,) = bundle.main(["--quick"])
    for variant in bundle.VARIANTS:
        assert (
            abs(row[variant]["cost"] - row["scipy"]["cost"])
            <= 1e-6 * row["scipy"]["cost"]
        ), variant
    # The Schur complement and the host factorisation solve the same system.
    assert row["one_step"]["difference"] < 1e-8
    assert "| size" in capsys.readouterr().out


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


@pytest.mark.benchmark
def test_detection_scale_benchmark_quick(capsys):
    at_scale = load_script("benchmarks/detection_scale.py")
    rows = at_scale.main(["--quick"])
    assert {r["case"] for r in rows} == set(at_scale.CASES)
    assert all(r["colors"] in (2, 7) and r["warm_s"] > 0 for r in rows)
    assert "Log–log slope" in capsys.readouterr().out


@pytest.mark.benchmark
def test_device_check_quick(capsys):
    check = load_script("benchmarks/device_check.py")
    result = check.main(["--quick", "--repeats", "1"])
    assert {r["name"] for r in result["dense"]} == set(check.call_sites.CASES)
    out = capsys.readouterr().out
    assert "max error" in out and "| case | n | asdex |" in out
