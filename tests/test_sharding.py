"""Sharded colorings (`ColoredPattern.shard`) on four CPU devices.

The cases live in `sharded_cases.py` and run in one subprocess: XLA fixes the
number of host devices when JAX starts, and this process has one. Each case
checks values against dense JAX or the same computation on one device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

CASES = [
    "jacobian_formats",
    "jacobian_modes",
    "hessian_modes",
    "nonzeros_stay_sharded",
    "products_are_not_gathered",
    "pytrees_value_and_aux",
    "transformations",
    "meshes",
    "complex_holomorphic",
    "float32",
    "operators",
    "solvers",
    "sharded_unknowns",
    "levenberg_marquardt_operator",
    "sharded_batches",
    "errors",
]


def test_sharded_cases():
    # One test, so that the subprocess (about 25 s) runs once: parametrized cases
    # sharing a module fixture ran it up to three times under xdist's worksteal,
    # once for each stretch of the module's tests that a worker took.
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env.pop("JAX_ENABLE_X64", None)
    script = Path(__file__).with_name("sharded_cases.py")
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(report) == sorted(CASES)
    failed = {name: outcome for name, outcome in report.items() if outcome != "ok"}
    assert not failed, failed
