"""Cold start: the first pattern, coloring, Jacobian and Hessian in a new process.

Run with `uv run python benchmarks/cold_start.py`. Each run starts a fresh Python
process whose numba cache directory is new and empty (`NUMBA_CACHE_DIR`), as after
a fresh install, and times, after `import asdex`:

1. `asdex.jacobian_sparsity` of `(x[1:] - x[:-1])**2` (n = 100);
2. `asdex.jacobian_coloring` of the same;
3. the first `asdex.jacobian(f, x)(x)`;
4. the first `asdex.hessian(g, x)(x)` of the chained Rosenbrock function.

`--warm` reuses one cache directory for all runs, so that runs after the first show
the start with numba's cache filled. The target is 3 s in all for the four steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_STAGES = r"""
import json, time
t0 = time.perf_counter()
import jax, jax.numpy as jnp
import asdex
t_import = time.perf_counter() - t0

def f(x):
    return (x[1:] - x[:-1]) ** 2

def g(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

x = jnp.linspace(0.0, 1.0, 100)
times = {"import": t_import}
start = time.perf_counter()
asdex.jacobian_sparsity(f, x)
times["pattern"] = time.perf_counter() - start
start = time.perf_counter()
asdex.jacobian_coloring(f, x)
times["coloring"] = time.perf_counter() - start
start = time.perf_counter()
jax.block_until_ready(asdex.jacobian(f, x)(x).data)
times["jacobian"] = time.perf_counter() - start
start = time.perf_counter()
jax.block_until_ready(asdex.hessian(g, x)(x).data)
times["hessian"] = time.perf_counter() - start
print(json.dumps(times))
"""


def run_once(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", _STAGES], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="share one numba cache")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as shared:
        for _ in range(args.runs):
            if args.warm:
                rows.append(run_once(shared))
            else:
                with tempfile.TemporaryDirectory() as fresh:
                    rows.append(run_once(fresh))
    print(
        "| run | import asdex (s) | pattern | coloring | Jacobian | Hessian | total after import |"
    )
    print("|---|---|---|---|---|---|---|")
    for k, r in enumerate(rows):
        total = r["pattern"] + r["coloring"] + r["jacobian"] + r["hessian"]
        print(
            f"| {k + 1} | {r['import']:.2f} | {r['pattern']:.2f} | {r['coloring']:.2f} "
            f"| {r['jacobian']:.2f} | {r['hessian']:.2f} | {total:.2f} |"
        )
    return rows


if __name__ == "__main__":
    main()
