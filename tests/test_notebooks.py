"""The notebooks in `notebooks/` run without errors and are committed with outputs."""

import json
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds per cell


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> list[str]:
    """A kernelspec that runs this interpreter, whatever kernels are installed.

    `kernel_name="python3"` would take the first `python3` kernelspec on the Jupyter
    path, which may belong to another environment without asdex.
    """
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / "asdex-tests"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "asdex tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    return [str(kernels)]


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert {
        "01_getting_started.ipynb",
        "02_sparse_newton_pde.ipynb",
        "03_least_squares_fit.ipynb",
        "04_optax.ipynb",
    } <= names


def _outputs(nb):
    return [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_with_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), (
        f"{path.name} was saved without running every cell; execute it and save it "
        "with its outputs."
    )
    outputs = _outputs(nb)
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), (
        f"{path.name} has no picture among its outputs."
    )
    assert path.stat().st_size < 400_000, f"{path.name} is too big to commit."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_executes(path, kernel_dirs, monkeypatch):
    # The kernel inherits the environment: JAX on the CPU, without probing for
    # accelerators.
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(
        kernel_name="asdex-tests",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs),
    )
    client = nbclient.NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(ROOT)}},
    )
    # Raises `CellExecutionError`, with the cell and its traceback, on any error.
    client.execute()
    outputs = _outputs(nb)
    assert any("image/png" in out.get("data", {}) for out in outputs)
