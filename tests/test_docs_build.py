"""The documentation builds without warnings (`mkdocs build --strict`)."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

import asdex.detection

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # the parent package is missing
        return True


_MISSING = [
    name
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    if _missing(name)
]


@pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the docs toolchain is not installed (missing: {', '.join(_MISSING)}); "
    "it comes with the dev dependency group: `uv sync --group dev`",
)
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    )

    api = (tmp_path / "api" / "detection" / "index.html").read_text()
    for name in (
        "asdex.jacobian_sparsity",
        "asdex.hessian_sparsity",
        "asdex.SparsityPattern",
        "asdex.UnknownPrimitiveWarning",
        "asdex.PatternTooDenseError",
    ):
        assert f'id="{name}"' in api, f"the API page lacks an entry for {name}"

    # The table of intentionally conservative primitives is generated from the code.
    explanation = (tmp_path / "explanation" / "detection" / "index.html").read_text()
    assert "asdex:intentionally-conservative" not in explanation
    for name in asdex.detection.INTENTIONALLY_CONSERVATIVE:
        assert f"<code>{name}</code>" in explanation, name
