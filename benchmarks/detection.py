"""Speed and memory of sparsity detection on large problems.

Run with `uv run python benchmarks/detection.py` (a few minutes), or add `--quick`
for a smoke run at small sizes (seconds).

For each case the script reports:

- the warm-up: one untimed-in-the-best call, which also loads or compiles the numba
  kernels and fills JAX's tracing caches;
- the best of 3 further calls;
- the peak of Python-level allocations during one call (`tracemalloc`; this
  includes numpy buffers but not memory that numba-compiled code allocates);
- the growth of the peak resident set size during the timed calls (`resource`;
  on Linux the peak is reset after the warm-up through `/proc/self/clear_refs`).
  Memory that the allocator kept from the warm-up is reused without growing the
  RSS, so this can read lower than the Python peak; the memory target is checked
  against the larger of the two.

In a full run each case runs in a fresh Python process, so that the memory of one
case does not hide or inflate another's.

Then it times `(x[1:] - x[:-1])**2` and the Brusselator from n = 10³ to 10⁶ and
fits `log t = a + s log n` by least squares over the larger sizes: a slope `s`
close to 1 means detection time grows linearly with the problem size.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tracemalloc
from collections.abc import Callable

import _examples  # noqa: F401  (puts examples/ on sys.path)
import jax
import numpy as np
from _timing import best_of, timed
from problems import (
    bratu_energy,
    brusselator,
    chained_rosenbrock,
    euler_diffusion_reaction,
)

import asdex

MB = 2**20


def difference_squared(x):
    return (x[1:] - x[:-1]) ** 2


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    description: str
    run: Callable[[int], asdex.SparsityPattern]  # size parameter -> pattern
    size: int  # full-run size parameter
    quick_size: int
    n_inputs: Callable[[int], int]
    target_s: float
    target_mb: float | None = None


def _diff(n):
    return asdex.jacobian_sparsity(difference_squared, input_shape=n)


def _brusselator(side):
    return asdex.jacobian_sparsity(brusselator, input_shape=(2, side, side))


def _rosenbrock(n):
    return asdex.hessian_sparsity(chained_rosenbrock, input_shape=n)


def _bratu(side):
    return asdex.hessian_sparsity(bratu_energy, input_shape=(side, side))


def _scan(states, steps=1000):
    return asdex.jacobian_sparsity(
        lambda x: euler_diffusion_reaction(x, steps), input_shape=states
    )


CASES = {
    case.name: case
    for case in [
        Case(
            "diff",
            "Jacobian of `(x[1:]-x[:-1])**2`",
            _diff,
            10**6,
            1_000,
            lambda n: n,
            0.3,
            500.0,
        ),
        Case(
            "brusselator",
            "Jacobian of the 2-D Brusselator",
            _brusselator,
            512,
            8,
            lambda s: 2 * s * s,
            1.0,
        ),
        Case(
            "rosenbrock",
            "Hessian of chained Rosenbrock",
            _rosenbrock,
            10**6,
            1_000,
            lambda n: n,
            2.0,
        ),
        Case(
            "bratu",
            "Hessian of the 2-D Bratu energy",
            _bratu,
            512,
            8,
            lambda s: s * s,
            1.0,
        ),
        Case(
            "scan",
            "Jacobian through `lax.scan`, 1,000 Euler steps",
            _scan,
            100,
            10,
            lambda n: n,
            0.5,
        ),
    ]
}

SCALING_SIZES = [10**3, 3 * 10**3, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6]
QUICK_SCALING_SIZES = [100, 300, 1_000]
# Below this, fixed costs (tracing, Python dispatch) dominate; fit above it.
SCALING_FIT_FROM = 3 * 10**4


# --------------------------------------------------------------------- measuring


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(case: Case, size: int, repeats: int = 3) -> dict:
    """Warm-up, best of `repeats`, tracemalloc peak and RSS growth of one case."""
    call = lambda: case.run(size)  # noqa: E731
    rss_before = _peak_rss_mb()
    warmup = timed(call)[0]
    reset = _reset_peak_rss()
    rss_base = _peak_rss_mb() if reset else rss_before
    best = best_of(call, repeats)
    rss_delta = _peak_rss_mb() - rss_base
    gc.collect()
    tracemalloc.start()
    try:
        pattern = call()
        py_peak = tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
    return {
        "name": case.name,
        "n": case.n_inputs(size),
        "m": pattern.shape[0],
        "nnz": pattern.nnz,
        "warmup_s": warmup,
        "best_s": best,
        "py_peak_mb": py_peak,
        "rss_delta_mb": rss_delta,
        "rss_reset": reset,
    }


def measure_isolated(name: str, quick: bool, repeats: int = 3) -> dict:
    """`measure` in a fresh Python process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name]
    cmd += ["--repeats", str(repeats)]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {name!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scaling(sizes: list[int], fit_from: int, repeats: int = 3) -> dict:
    """Best-of-`repeats` times over `sizes`, and the slopes of log t against log n."""
    rows = []
    for n in sizes:
        side = max(2, round(math.sqrt(n / 2)))
        rows.append(
            {
                "n": n,
                "diff_s": best_of(lambda n=n: _diff(n), repeats),
                "brusselator_n": 2 * side * side,
                "brusselator_s": best_of(lambda s=side: _brusselator(s), repeats),
            }
        )
    fit = [r for r in rows if r["n"] >= fit_from] or rows
    slopes = {
        "diff": _slope([r["n"] for r in fit], [r["diff_s"] for r in fit]),
        "brusselator": _slope(
            [r["brusselator_n"] for r in fit], [r["brusselator_s"] for r in fit]
        ),
    }
    return {"rows": rows, "slopes": slopes, "fit_from": fit[0]["n"]}


def _slope(ns, ts) -> float:
    if len(ns) < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(ns), np.log(ts), 1)
    return float(slope)


# --------------------------------------------------------------------- reporting


def verdict(case: Case, result: dict) -> str:
    ok = result["best_s"] <= case.target_s
    if case.target_mb is not None:
        ok = ok and max(result["py_peak_mb"], result["rss_delta_mb"]) <= case.target_mb
    return "PASS" if ok else "MISS"


def table(results: list[dict], quick: bool, repeats: int = 3) -> str:
    lines = [
        f"| case | n | nnz | warm-up (s) | best of {repeats} (s) | Python peak (MB) "
        "| RSS growth (MB) | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        case = CASES[r["name"]]
        target = f"≤ {case.target_s:g} s"
        if case.target_mb is not None:
            target += f", ≤ {case.target_mb:g} MB"
        result = "(quick)" if quick else verdict(case, r)
        lines.append(
            f"| {case.description} | {r['n']:,} | {r['nnz']:,} | {r['warmup_s']:.3f} "
            f"| {r['best_s']:.3f} | {r['py_peak_mb']:.1f} | {r['rss_delta_mb']:.1f} "
            f"| {target} | {result} |"
        )
    return "\n".join(lines)


def scaling_table(scale: dict) -> str:
    lines = [
        "| n | `(x[1:]-x[:-1])**2` (s) | Brusselator n | Brusselator (s) |",
        "|---:|---:|---:|---:|",
    ]
    for r in scale["rows"]:
        lines.append(
            f"| {r['n']:,} | {r['diff_s']:.4f} | {r['brusselator_n']:,} "
            f"| {r['brusselator_s']:.4f} |"
        )
    s = scale["slopes"]
    lines.append("")
    lines.append(
        f"Slope of log t against log n for n ≥ {scale['fit_from']:,}: "
        f"`(x[1:]-x[:-1])**2` {s['diff']:.2f}, Brusselator {s['brusselator']:.2f} "
        "(1 = linear)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run each case in a fresh process (default: yes, except with --quick)",
    )
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case")
    parser.add_argument("--no-scaling", action="store_true", help="skip the slope fit")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        case = CASES[args.worker]
        size = case.quick_size if args.quick else case.size
        print(json.dumps(measure(case, size, args.repeats)))
        return {}

    isolate = (not args.quick) if args.isolate is None else args.isolate
    print(
        f"asdex {asdex.__version__}, jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"{'quick' if args.quick else 'full'} run, "
        f"{'one process per case' if isolate else 'one process'}\n",
        flush=True,
    )
    results = []
    for name in args.cases:
        case = CASES[name]
        size = case.quick_size if args.quick else case.size
        if isolate:
            r = measure_isolated(name, args.quick, args.repeats)
        else:
            r = measure(case, size, args.repeats)
        results.append(r)
        print(
            f"{name}: n={r['n']:,} warm-up {r['warmup_s']:.3f} s, best {r['best_s']:.3f} s, "
            f"Python peak {r['py_peak_mb']:.1f} MB, RSS growth {r['rss_delta_mb']:.1f} MB",
            flush=True,
        )
    if results and not all(r["rss_reset"] for r in results):
        print(
            "(the peak RSS could not be reset after the warm-up on this system: "
            "RSS growth is measured from before the warm-up)"
        )
    print()
    print(table(results, args.quick, args.repeats))

    scale = None
    if not args.no_scaling:
        sizes = QUICK_SCALING_SIZES if args.quick else SCALING_SIZES
        fit_from = sizes[-2] if args.quick else SCALING_FIT_FROM
        scale = scaling(sizes, fit_from, args.repeats)
        print()
        print(scaling_table(scale))

    report = {"cases": results, "scaling": scale}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
