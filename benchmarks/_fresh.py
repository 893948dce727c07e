"""Measurements in a fresh Python process: peak memory, and running one function.

A benchmark that reports memory, or that must not see what an earlier case left
compiled or cached, runs each case in a new process started from here.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_gb() -> float:
    """This process's peak resident set size, in GB.

    `VmHWM`, not `getrusage`: Linux carries `ru_maxrss` across `exec`, so a case
    started from a large parent (`benchmarks/run.py`) would report the parent's.
    """
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # not Linux


# glibc told to keep freed memory in the process (no `mmap` for large blocks, no
# trimming): on a virtual machine whose host takes freed guest memory back, this
# is what the same work costs where memory stays with the process.
KEEP_FREED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}


def call(module: str, function: str, *args, env: dict | None = None) -> dict:
    """`module.function(*args)` (a script of `benchmarks/`) in a new Python
    process, with `env` added to its environment; its result must be JSON,
    printed as the process's last line. A `module` named `*.py` is loaded from
    that file of `benchmarks/` (for a script whose name an import would take
    elsewhere)."""
    if module.endswith(".py"):
        path = os.path.join(HERE, module)
        load = (
            "import importlib.util as u; "
            f"spec = u.spec_from_file_location('_script', {path!r}); "
            "script = u.module_from_spec(spec); spec.loader.exec_module(script)"
        )
    else:
        load = f"import {module} as script"
    code = (
        f"import sys, json; sys.path.insert(0, {HERE!r}); {load}; "
        f"print(json.dumps(script.{function}(*{args!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{module}.{function}{args!r} failed:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])
