"""`benchmarks/jacobians.py` runs, and its sparse derivatives match dense AD.

The benchmark is run in quick mode, in this process, at small sizes, so that the
script cannot rot unnoticed. Its timings are not checked here; its correctness
checks (`asdex.check_jacobian` / `asdex.check_hessian`) are.
"""

import pytest

from helpers import load_script

# Smoke runs of the benchmark scripts: `uv run pytest -m benchmark`.
pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/jacobians.py")


def test_quick_run(bench, capsys):
    report = bench.main(["--quick", "--repeats", "1", "--crossover-sizes", "10", "100"])
    out = capsys.readouterr().out
    assert "| case |" in out and "| function | crossover" in out
    results = {r["name"]: r for r in report["cases"]}
    assert set(results) == set(bench.CASES)
    # Modes and colors at the quick sizes: 2 bands, tridiagonal, 5-point stencils.
    expected = {
        "diff": ("fwd", 2, 1_000),
        "rosenbrock": ("star", 3, 1_000),
        "bratu": ("star", None, 64),
        "brusselator": ("fwd", None, 128),
    }
    for name, (mode, colors, n) in expected.items():
        r = results[name]
        assert r["mode"] == mode, name
        assert r["n"] == n, name
        if colors is not None:
            assert r["colors"] == colors, name
        assert r["check_passed"], r["check"]
        assert r["dense"] is not None  # small enough for the dense reference
        for key in ("baseline_s", "steady_s", "prep_s", "first_s"):
            assert r[key] > 0, (name, key)
    assert "PASS" not in out and "MISS" not in out  # no verdicts in quick mode
    cross = report["crossover"]
    assert set(cross) == {"diff", "brusselator"}
    for data in cross.values():
        assert [r["n"] for r in data["rows"]][0] <= 10
        assert len(data["rows"]) == 2


def test_dense_reference_is_skipped_when_too_large(bench):
    # 10⁶ × 10⁶ float32 entries would take terabytes; 10³ × 10³ take 4 MB.
    assert not bench.dense_fits(10**6, 10**6)
    assert bench.dense_fits(1_000, 1_000)


def test_call_sites_section(bench, capsys):
    pytest.importorskip("sparsejac")
    rows = bench._call_sites(quick=True)
    assert {r["name"] for r in rows} == {"diff2", "brusselator", "rosenbrock", "bratu"}
    assert "while_loop" in capsys.readouterr().out


def test_cold_start_section(bench, capsys):
    (row,) = bench._cold_start(runs=1)
    assert {"import", "pattern", "coloring", "jacobian", "hessian"} <= set(row)
    assert all(t > 0 for t in row.values())
    assert "total after import" in capsys.readouterr().out
