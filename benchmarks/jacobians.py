"""Speed of sparse Jacobians and Hessians, as ratios to the function's own cost.

Run with `uv run python benchmarks/jacobians.py` (a few minutes on 2 cores), or
add `--quick` for a smoke run at small sizes (seconds). Everything runs in one
process, each case measured side by side with its own baseline:

- `t_f`: one jitted call of `f` (Jacobians), or `t_grad`: one jitted call of
  `jax.grad(f)` (Hessians); best of `--repeats`, `block_until_ready`.
- preparation: `asdex.jacobian(f, x)` / `asdex.hessian(f, x)` end to end (detect
  + color + build), best of `--prep-repeats`, after a warm-up at a tiny size that
  loads the numba kernels. It is also split into detection
  (`asdex.jacobian_sparsity`), coloring (`asdex.coloring.color_jacobian` wrapped in
  an `asdex.ColoredPattern`) and build (`asdex.jacobian_from_coloring`, which
  traces `f` again for its layout), each timed on its own.
- compile + first call: the first `jac_fn(x)`, after `jax.clear_caches()`; the
  best of two such cold calls (one with `--quick`).
- steady state: the best of `--repeats` calls of `jac_fn(x)`, interleaved with the
  baseline's calls so that both see the same machine load. The call is the plain
  `jac_fn(x)`: the module runs its work in an inner compiled program that gets
  the index arrays as arguments, so they are never folded into the program as
  constants (see `asdex.SparseJacobian`).
- dense `jax.jacfwd` / `jax.hessian` (jitted) where the dense matrix fits in
  memory (`m·n·4` bytes ≤ 2 GiB); skipped, and said so, otherwise.
- for Hessians, the other symmetric coloring (star if the default picked
  acyclic, and vice versa), compiled and timed the same way, for comparison;
- a correctness check, `asdex.check_jacobian` / `asdex.check_hessian` (entry by
  entry against dense AD at small sizes, random products at large ones).

Then the crossover: over a grid of sizes, the smallest `n` at which the sparse
Jacobian beats dense `jax.jacfwd`, for `(x[1:]-x[:-1])**2` and the Brusselator,

- excluding preparation: steady-state time per evaluation;
- including preparation: the first Jacobian from scratch, that is preparation +
  compile + first call, against `jax.jacfwd`'s compile + first call.

With `--call-sites`, `call_sites.py` runs last: each derivative inside `jax.jit`
(closed over and as an argument), in a `lax.while_loop` and under `jax.vmap`,
against sparsejac given the same pattern, each case in a fresh process (it needs
the `benchmark` group). With
`--cold-start`, `cold_start.py` runs last: the first pattern, coloring, Jacobian and
Hessian after `import asdex`, each run in a new process with an empty numba cache
(target: 3 s in all).

The last table lists every figure against its target with PASS or MISS. This machine is shared and noisy: run it with nothing else running, and
repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable

import _examples  # noqa: F401  (puts examples/ on sys.path)
import jax
import jax.numpy as jnp
from _timing import best_in_turns, best_of, ready, timed
from problems import bratu_energy, brusselator, chained_rosenbrock

import asdex

# Dense references are built only up to this many bytes (m·n float32 entries).
DENSE_LIMIT_BYTES = 2 * 2**30


def dense_fits(m: int, n: int) -> bool:
    """Whether the dense `(m, n)` reference is built (float32 entries)."""
    return m * n * 4 <= DENSE_LIMIT_BYTES


def difference_squared(x):
    return (x[1:] - x[:-1]) ** 2


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    description: str
    hessian: bool
    f: Callable
    shape: Callable[[int], tuple[int, ...]]  # size parameter -> input shape
    size: int  # full-run size parameter
    quick_size: int
    target_ratio: float  # steady state, in units of t_f or t_grad
    target_prep_s: float
    target_first_s: float


CASES = {
    case.name: case
    for case in [
        Case(
            "diff",
            "`(x[1:]-x[:-1])**2`",
            False,
            difference_squared,
            lambda n: (n,),
            10**6,
            1_000,
            12.0,
            0.5,
            1.0,
        ),
        Case(
            "brusselator",
            "2-D Brusselator",
            False,
            brusselator,
            lambda side: (2 * side * side,),
            512,
            8,
            14.0,
            1.5,
            2.0,
        ),
        Case(
            "rosenbrock",
            "chained Rosenbrock Hessian",
            True,
            chained_rosenbrock,
            lambda n: (n,),
            10**6,
            1_000,
            8.0,
            3.0,
            2.0,
        ),
        Case(
            "bratu",
            "2-D Bratu energy Hessian",
            True,
            bratu_energy,
            lambda side: (side, side),
            512,
            8,
            3.0,
            1.0,
            1.0,
        ),
    ]
}

CROSSOVER_SIZES = [10, 30, 100, 300, 1_000, 3_000, 10_000]
QUICK_CROSSOVER_SIZES = [10, 30, 100]


# --------------------------------------------------------------------- measuring


def _point(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    # Away from 0 so that no product happens to vanish, and in the Brusselator's
    # and Bratu's usual range.
    return jax.random.uniform(jax.random.key(seed), shape, minval=0.5, maxval=1.5)


def _builders(hessian: bool):
    if hessian:
        return (
            asdex.hessian,
            asdex.hessian_sparsity,
            asdex.coloring.color_hessian,
            asdex.hessian_from_coloring,
        )
    return (
        asdex.jacobian,
        asdex.jacobian_sparsity,
        asdex.coloring.color_jacobian,
        asdex.jacobian_from_coloring,
    )


def warm_up() -> float:
    """Load the numba kernels and fill JAX's tracing caches at a tiny size."""
    start = time.perf_counter()
    for case in CASES.values():
        build, *_ = _builders(case.hessian)
        x = _point(case.shape(4))
        ready(build(case.f, x)(x))
    return time.perf_counter() - start


def measure(
    case: Case, size: int, repeats: int, prep_repeats: int, first_repeats: int = 2
) -> dict:
    build, detect, color, from_coloring = _builders(case.hessian)
    f = case.f
    x = _point(case.shape(size))
    n = x.size
    print(f"{case.name}: {case.description}, n = {n:,}", flush=True)

    # Preparation, end to end and split.
    prep_s = math.inf
    derivative = None
    for _ in range(prep_repeats):
        gc.collect()
        seconds, derivative = timed(lambda: build(f, x))
        prep_s = min(prep_s, seconds)
    assert derivative is not None
    detect_s = best_of(lambda: detect(f, x), prep_repeats)
    pattern = detect(f, x)
    color_s = best_of(lambda: asdex.ColoredPattern(color(pattern)), prep_repeats)
    coloring = asdex.ColoredPattern(color(pattern))
    build_s = best_of(lambda: from_coloring(f, coloring, x), prep_repeats)
    m = pattern.shape[0]
    print(
        f"  {coloring.mode} mode, {coloring.num_colors} colors, nnz = {pattern.nnz:,}; "
        f"preparation {prep_s:.3f} s (detection {detect_s:.3f} s, coloring "
        f"{color_s:.3f} s, build {build_s:.3f} s)",
        flush=True,
    )

    # Compile + first call, cold.
    first_s = math.inf
    for _ in range(first_repeats):
        jax.clear_caches()
        first_s = min(first_s, timed(lambda: derivative(x))[0])

    # Steady state, side by side with the baseline.
    baseline = jax.jit(jax.grad(f) if case.hessian else f)
    ready(baseline(x))
    ready(derivative(x))
    best = best_in_turns(
        {"baseline": lambda: baseline(x), "sparse": lambda: derivative(x)}, repeats
    )
    t_base, t_sparse = best["baseline"], best["sparse"]
    label = "t_grad" if case.hessian else "t_f"
    print(
        f"  compile + first call {first_s:.3f} s; steady state {t_sparse * 1e3:.3f} ms "
        f"= {t_sparse / t_base:.1f} × {label} ({label} = {t_base * 1e3:.3f} ms)",
        flush=True,
    )

    # Dense AD, where it fits.
    dense_bytes = m * n * 4
    dense = None
    if dense_fits(m, n):
        dense_fn = jax.jit(jax.hessian(f) if case.hessian else jax.jacfwd(f))
        dense_first, _ = timed(lambda: dense_fn(x))
        dense_s = best_of(lambda: dense_fn(x), max(1, min(repeats, 5)))
        dense = {"first_s": dense_first, "steady_s": dense_s}
        name = "jax.hessian" if case.hessian else "jax.jacfwd"
        print(
            f"  dense {name}: compile + first call {dense_first:.3f} s, steady state "
            f"{dense_s * 1e3:.3f} ms = {dense_s / t_base:.1f} × {label}",
            flush=True,
        )
    else:
        print(
            f"  dense: skipped, the {m:,}×{n:,} matrix would take "
            f"{dense_bytes / 2**30:,.0f} GiB",
            flush=True,
        )

    # The other symmetric coloring, for comparison: direct decompression needs
    # more HVPs but no substitution sweep.
    other = None
    if case.hessian:
        other_mode = "star" if coloring.mode == "acyclic" else "acyclic"
        alternative = asdex.hessian(f, x, mode=other_mode)
        other_first, _ = timed(lambda: alternative(x))
        best = best_in_turns(
            {"baseline": lambda: baseline(x), "sparse": lambda: alternative(x)},
            repeats,
        )
        other = {
            "mode": other_mode,
            "colors": alternative.coloring.num_colors,
            "first_s": other_first,
            "steady_s": best["sparse"],
            "ratio": best["sparse"] / best["baseline"],
        }
        print(
            f"  for comparison, mode={other_mode!r}: {other['colors']} colors, "
            f"compile + first call {other_first:.3f} s, steady state "
            f"{other['steady_s'] * 1e3:.3f} ms = {other['ratio']:.1f} × {label}",
            flush=True,
        )

    check = asdex.check_hessian if case.hessian else asdex.check_jacobian
    report = check(derivative, x, raise_on_failure=False)
    print(f"  check: {report}", flush=True)

    return {
        "name": case.name,
        "n": int(n),
        "m": int(m),
        "nnz": int(pattern.nnz),
        "mode": coloring.mode,
        "colors": coloring.num_colors,
        "baseline_s": t_base,
        "steady_s": t_sparse,
        "ratio": t_sparse / t_base,
        "prep_s": prep_s,
        "detect_s": detect_s,
        "color_s": color_s,
        "build_s": build_s,
        "first_s": first_s,
        "dense": dense,
        "dense_bytes": int(dense_bytes),
        "other_mode": other,
        "check_passed": report.passed,
        "check": str(report),
    }


# --------------------------------------------------------------------- crossover


def _brusselator_shape(n: int) -> tuple[int]:
    side = max(2, round(math.sqrt(n / 2)))
    return (2 * side * side,)


CROSSOVER_CASES = {
    "diff": ("`(x[1:]-x[:-1])**2`", difference_squared, lambda n: (n,)),
    "brusselator": ("2-D Brusselator", brusselator, _brusselator_shape),
}


def crossover_point(f: Callable, shape: tuple[int, ...], repeats: int) -> dict:
    """Sparse against dense `jax.jacfwd` at one size: one-off and per-call costs."""
    x = _point(shape)
    jax.clear_caches()
    dense_fn = jax.jit(jax.jacfwd(f))
    dense_first, _ = timed(lambda: dense_fn(x))
    gc.collect()
    prep, jac_fn = timed(lambda: asdex.jacobian(f, x))
    sparse_first, _ = timed(lambda: jac_fn(x))
    best = best_in_turns(
        {"dense": lambda: dense_fn(x), "sparse": lambda: jac_fn(x)}, repeats
    )
    return {
        "n": int(x.size),
        "colors": jac_fn.coloring.num_colors,
        "dense_first_s": dense_first,
        "dense_s": best["dense"],
        "prep_s": prep,
        "sparse_first_s": sparse_first,
        "sparse_s": best["sparse"],
        "wins_steady": best["sparse"] < best["dense"],
        "wins_total": prep + sparse_first < dense_first,
    }


def _smallest_win(rows: list[dict], key: str) -> int | None:
    """The smallest grid size from which sparse wins at every larger grid size."""
    winner = None
    for row in reversed(rows):
        if not row[key]:
            break
        winner = row["n"]
    return winner


def crossover(sizes: list[int], repeats: int) -> dict:
    out = {}
    for name, (description, f, shape) in CROSSOVER_CASES.items():
        rows = []
        for n in sizes:
            row = crossover_point(f, shape(n), repeats)
            rows.append(row)
            print(
                f"crossover {name}: n = {row['n']:,}: sparse {row['sparse_s'] * 1e6:.0f} µs "
                f"vs dense {row['dense_s'] * 1e6:.0f} µs; first Jacobian from scratch "
                f"{row['prep_s'] + row['sparse_first_s']:.3f} s vs "
                f"{row['dense_first_s']:.3f} s",
                flush=True,
            )
        out[name] = {
            "description": description,
            "rows": rows,
            "excluding_prep": _smallest_win(rows, "wins_steady"),
            "including_prep": _smallest_win(rows, "wins_total"),
        }
    return out


# --------------------------------------------------------------------- reporting


def _verdict(ok: bool, quick: bool) -> str:
    return "(quick)" if quick else ("PASS" if ok else "MISS")


def cases_table(results: list[dict], quick: bool) -> str:
    lines = [
        "| case | n | mode, colors | baseline (ms) | steady (ms) | steady / baseline "
        "| target | result | preparation (s): detect + color + build | target | result "
        "| compile + first call (s) | target | result | dense steady (ms) "
        "| dense / baseline | check |",
        "|---|---:|---|---:|---:|---:|---|---|---|---|---|---:|---|---|---:|---:|---|",
    ]
    for r in results:
        case = CASES[r["name"]]
        label = "t_grad" if case.hessian else "t_f"
        if r["dense"] is None:
            dense_ms = f"skipped ({r['dense_bytes'] / 2**30:,.0f} GiB)"
            dense_ratio = "—"
        else:
            dense_ms = f"{r['dense']['steady_s'] * 1e3:.3f}"
            dense_ratio = f"{r['dense']['steady_s'] / r['baseline_s']:.1f}×"
        lines.append(
            f"| {case.description} | {r['n']:,} | {r['mode']}, {r['colors']} "
            f"| {label} = {r['baseline_s'] * 1e3:.3f} | {r['steady_s'] * 1e3:.3f} "
            f"| {r['ratio']:.1f}× | ≤ {case.target_ratio:g}× "
            f"| {_verdict(r['ratio'] <= case.target_ratio, quick)} "
            f"| {r['prep_s']:.3f} ({r['detect_s']:.3f} + {r['color_s']:.3f} + "
            f"{r['build_s']:.3f}) | ≤ {case.target_prep_s:g} "
            f"| {_verdict(r['prep_s'] <= case.target_prep_s, quick)} "
            f"| {r['first_s']:.3f} | ≤ {case.target_first_s:g} "
            f"| {_verdict(r['first_s'] <= case.target_first_s, quick)} "
            f"| {dense_ms} | {dense_ratio} "
            f"| {'passed' if r['check_passed'] else 'FAILED'} |"
        )
    others = [r for r in results if r.get("other_mode")]
    if others:
        lines.append("")
        lines.append("For comparison (no target), the other symmetric coloring:")
        lines.append("")
        for r in others:
            o = r["other_mode"]
            lines.append(
                f"- {CASES[r['name']].description}, mode={o['mode']!r}: "
                f"{o['colors']} colors, steady state {o['steady_s'] * 1e3:.3f} ms = "
                f"{o['ratio']:.1f}× t_grad, compile + first call {o['first_s']:.3f} s"
            )
    return "\n".join(lines)


def crossover_table(cross: dict) -> str:
    lines = [
        "| function | n | colors | sparse steady (µs) | dense steady (µs) "
        "| sparse from scratch (s) | dense from scratch (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for data in cross.values():
        for r in data["rows"]:
            steady = "**" if r["wins_steady"] else ""
            total = "**" if r["wins_total"] else ""
            lines.append(
                f"| {data['description']} | {r['n']:,} | {r['colors']} "
                f"| {steady}{r['sparse_s'] * 1e6:.0f}{steady} | {r['dense_s'] * 1e6:.0f} "
                f"| {total}{r['prep_s'] + r['sparse_first_s']:.3f}{total} "
                f"| {r['dense_first_s']:.3f} |"
            )
    lines.append("")
    lines.append(
        "Bold: sparse wins. From scratch = preparation + compile + first call for "
        "sparse, compile + first call for dense `jax.jacfwd`."
    )
    lines.append("")
    lines.append(
        "| function | crossover, excluding preparation | including preparation |"
    )
    lines.append("|---|---:|---:|")
    largest = max(r["n"] for d in cross.values() for r in d["rows"])

    def fmt(n):
        return f"n = {n:,}" if n is not None else f"> {largest:,} (not in the grid)"

    for data in cross.values():
        lines.append(
            f"| {data['description']} | {fmt(data['excluding_prep'])} "
            f"| {fmt(data['including_prep'])} |"
        )
    return "\n".join(lines)


def _call_sites(quick: bool) -> list[dict]:
    """`call_sites.py`'s table: the derivatives inside `jit`, a `while_loop` and
    `vmap`, against sparsejac, each case in a fresh process."""
    print()
    return importlib.import_module("call_sites").main(["--quick"] if quick else [])


def _cold_start(runs: int) -> list[dict]:
    """`cold_start.py`'s table: each run in a new process, its numba cache empty."""
    print()
    return importlib.import_module("cold_start").main(["--runs", str(runs)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls (default 20; quick 3)"
    )
    parser.add_argument(
        "--prep-repeats",
        type=int,
        default=None,
        help="timed preparations (default 3; quick 1)",
    )
    parser.add_argument(
        "--crossover-sizes",
        type=int,
        nargs="*",
        default=None,
        help=f"grid of n (default {CROSSOVER_SIZES}; quick {QUICK_CROSSOVER_SIZES})",
    )
    parser.add_argument("--no-crossover", action="store_true")
    parser.add_argument(
        "--call-sites",
        action="store_true",
        help="also time every call site against sparsejac (`call_sites.py`)",
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="also time the first calls in fresh processes (`cold_start.py`)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 20)
    prep_repeats = args.prep_repeats or (1 if args.quick else 3)

    print(
        f"asdex {asdex.__version__}, jax {jax.__version__}, "
        f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
        f"{os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} run, "
        f"steady state best of {repeats}, preparation best of {prep_repeats}\n",
        flush=True,
    )
    jnp.zeros(()).block_until_ready()
    print(
        f"warm-up at tiny sizes (loads the numba kernels): {warm_up():.2f} s\n",
        flush=True,
    )

    results = []
    with warnings.catch_warnings():
        # Tiny quick sizes can color densely; that is expected there.
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        for name in args.cases:
            case = CASES[name]
            size = case.quick_size if args.quick else case.size
            results.append(
                measure(case, size, repeats, prep_repeats, 1 if args.quick else 2)
            )
            print(flush=True)

        cross = None
        if not args.no_crossover:
            sizes = args.crossover_sizes or (
                QUICK_CROSSOVER_SIZES if args.quick else CROSSOVER_SIZES
            )
            cross = crossover(sizes, repeats)
            print()

    print(cases_table(results, args.quick))
    if cross is not None:
        print()
        print(crossover_table(cross))

    report = {"cases": results, "crossover": cross}
    if args.call_sites:
        report["call_sites"] = _call_sites(args.quick)
    if args.cold_start:
        report["cold_start"] = _cold_start(1 if args.quick else 3)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
