"""`benchmarks/run.py --quick` writes a Markdown report with its tables and figures.

The report script runs in a subprocess at tiny sizes, so that it cannot rot
unnoticed; its timings are not checked. sparsejac is only in the `benchmark`
dependency group: where it is missing, the report must leave its curves out and
say so, and the re-rendering test below checks that path in any environment.
"""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys

import pytest

# Smoke runs of the benchmark scripts: `uv run pytest -m benchmark`.
pytestmark = pytest.mark.benchmark

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"

# The quick grid of the scaling section: case -> (heading, sizes n).
QUICK_CASES = {
    "diff": ("Jacobian of `(x[1:]-x[:-1])**2`", [10, 100]),
    "brusselator": ("Jacobian of the 2-D Brusselator", [8, 32]),
    "rosenbrock": ("Hessian of chained Rosenbrock", [10, 100]),
}
HAVE_SPARSEJAC = importlib.util.find_spec("sparsejac") is not None


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"run.py failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _section(report: str, heading: str) -> str:
    """The text under `### heading`, up to the next heading."""
    start = report.index(f"### {heading}\n")
    end = report.find("\n#", start + 4)
    return report[start : end if end >= 0 else None]


def _sizes(section: str) -> list[int]:
    return [
        int(m.replace(",", "")) for m in re.findall(r"^\| ([\d,]+) \|", section, re.M)
    ]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark_report")
    proc = _run("--quick", "--out", str(out))
    return out, proc.stdout


def test_quick_report(quick):
    out, stdout = quick
    report = (out / "report.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert data["failures"] == []

    # Progress: one `[i/N] ... s` line per step, all N of them.
    steps = re.findall(r"^\[(\d+)/(\d+)\] .+ \.\.\. [\d.]+ s", stdout, re.M)
    assert steps, stdout
    total = int(steps[0][1])
    assert [int(i) for i, _ in steps] == list(range(1, total + 1))

    # Where and how it ran.
    for row in ("| date |", "| command |", "| CPU |", "| versions |"):
        assert row in report, row
    assert "benchmarks/run.py --quick" in report
    assert "jax " in report

    # One figure and one table per case, with a row per size.
    for name, (heading, sizes) in QUICK_CASES.items():
        figure = out / f"{name}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        section = _section(report, heading)
        assert f"]({name}.png)" in section
        assert _sizes(section) == sizes, section
    assert "### Crossover" in report

    # The tables of the other benchmarks, without verdicts at quick sizes.
    for heading in (
        "## Targets: sparse Jacobians and Hessians",
        "## Targets: sparsity detection",
        "## Targets: sparse solvers",
    ):
        assert heading in report, heading
    assert "(quick)" in report
    assert "PASS" not in report and "MISS" not in report

    methods = {r["method"] for r in data["scaling"]}
    if HAVE_SPARSEJAC:
        assert methods == {"dense", "asdex", "sparsejac"}
        assert "### asdex and sparsejac" in report
        assert "sparsejac is left out" not in report
    else:
        assert methods == {"dense", "asdex"}
        assert "sparsejac is left out: it is not installed" in report


def test_report_without_sparsejac(quick, tmp_path):
    # Redraw the quick run's report as if sparsejac were not installed.
    out, _ = quick
    data = json.loads((out / "results.json").read_text())
    data["scaling"] = [r for r in data["scaling"] if r["method"] != "sparsejac"]
    data["sparsejac"] = {"available": False, "used": False}
    source = tmp_path / "results.json"
    source.write_text(json.dumps(data))
    _run("--from-json", str(source), "--out", str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "sparsejac is left out: it is not installed" in report
    assert "### asdex and sparsejac" not in report
    for name, (heading, sizes) in QUICK_CASES.items():
        assert (tmp_path / f"{name}.png").exists()
        assert _sizes(_section(report, heading)) == sizes


def test_report_merges_a_later_run(quick, tmp_path):
    # A later run of one section replaces it, and the report says which run.
    out, _ = quick
    base = json.loads((out / "results.json").read_text())
    later = {
        "sections": ["detection"],
        "detection": base["detection"],
        "machine": {**base["machine"], "git": "later-commit", "command": "later"},
        "elapsed_s": 1.0,
        "failures": [],
    }
    for name, data in (("base.json", base), ("later.json", later)):
        (tmp_path / name).write_text(json.dumps(data))
    _run(
        "--from-json",
        str(tmp_path / "base.json"),
        str(tmp_path / "later.json"),
        "--out",
        str(tmp_path),
    )
    report = (tmp_path / "report.md").read_text()
    assert "- `detection`: " in report and "asdex commit later-commit" in report
    merged = json.loads((tmp_path / "results.json").read_text())
    assert merged["measured"]["detection"]["command"] == "later"
    assert merged["detection"] == base["detection"]
