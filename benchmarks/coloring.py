"""Speed of the coloring stage on large patterns.

Run with `uv run python benchmarks/coloring.py` (about a minute), or add `--quick`
for a smoke run at n = 10⁴ (seconds). `--n` sets the size of the large cases.

For each case the script reports the number of colors and the best of 3 calls,
each from the `SparsityPattern` to the finished result (graphs, vertex order,
coloring, checks and the decompression plan). Building the pattern itself is not
timed. Then it times decompression of a compressed matrix, in numpy and in JAX
(jitted, after its compilation).

numba compiles the kernels once and caches them on disk (`cache=True`); the first
table reports that one-time cost, measured in a fresh process with an empty
cache directory, separately from the timings.

Targets on a 2-core machine, n = 10⁶: column coloring of a 3-band pattern
≤ 0.3 s, star coloring of a tridiagonal Hessian ≤ 0.5 s, acyclic ≤ 1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _timing import best_of, timed

from asdex import SparsityPattern
from asdex.coloring import (
    color_acyclic,
    color_bidirectional,
    color_columns,
    color_rows,
    color_star,
)


def banded(n: int, offsets, m: int | None = None) -> SparsityPattern:
    m = n if m is None else m
    rows, cols = [], []
    for o in offsets:
        i = np.arange(max(0, -o), min(m, n - o))
        rows.append(i)
        cols.append(i + o)
    return SparsityPattern(np.concatenate(rows), np.concatenate(cols), (m, n))


def laplacian_2d(side: int) -> SparsityPattern:
    """The 5-point stencil on a `side × side` grid."""
    n = side * side
    idx = np.arange(n).reshape(side, side)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    for a, b in [
        (idx[1:, :], idx[:-1, :]),
        (idx[:-1, :], idx[1:, :]),
        (idx[:, 1:], idx[:, :-1]),
        (idx[:, :-1], idx[:, 1:]),
    ]:
        rows.append(a.ravel())
        cols.append(b.ravel())
    return SparsityPattern(np.concatenate(rows), np.concatenate(cols), (n, n))


def random_jacobian(n: int, per_row: int, seed: int = 0) -> SparsityPattern:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, n, size=n * per_row)
    return SparsityPattern(rows, cols, (n, n))


def arrowhead(n: int) -> SparsityPattern:
    i = np.arange(n)
    rows = np.concatenate([i, np.zeros(n, int), i])
    cols = np.concatenate([i, i, np.zeros(n, int)])
    return SparsityPattern(rows, cols, (n, n))


def compile_times() -> None:
    """Run in a fresh process with an empty numba cache: first-call minus second-call time."""
    small_sym = banded(20, [-2, -1, 0, 1, 2])
    small = random_jacobian(30, 3)
    print(f"{'one-time numba compilation':<34} {'seconds':>8}")
    total = 0.0
    for name, fn, arg in [
        ("column coloring", color_columns, small),
        ("row coloring", color_rows, small),
        ("star coloring", color_star, small_sym),
        ("acyclic coloring + plan", color_acyclic, small_sym),
        ("bicoloring", color_bidirectional, small),
    ]:
        first = time.perf_counter()
        fn(arg)
        first = time.perf_counter() - first
        second = timed(lambda fn=fn, arg=arg: fn(arg))[0]
        total += first - second
        print(f"{name:<34} {first - second:8.2f}")
    result = color_acyclic(small_sym)
    B = np.zeros(result.compressed_shape)
    start = time.perf_counter()
    result.decompress(B)
    print(f"{'(decompression, numpy)':<34} {time.perf_counter() - start:8.2f}")
    print(f"{'total':<34} {total:8.2f}")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return `{case name: (colors, seconds)}`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6)
    parser.add_argument("--quick", action="store_true", help="n = 10⁴")
    parser.add_argument(
        "--skip-compile", action="store_true", help="do not measure compilation"
    )
    parser.add_argument("--compile-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_only:
        compile_times()
        return {}
    n = 10**4 if args.quick else args.n

    if not args.skip_compile:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            subprocess.run(
                [sys.executable, __file__, "--compile-only"], env=env, check=True
            )
        print()

    side = int(round(np.sqrt(n)))
    tri = banded(n, [-1, 0, 1])
    penta = banded(n, [-2, -1, 0, 1, 2])
    lap = laplacian_2d(side)
    rand = random_jacobian(n // 10, 5)
    arrow = arrowhead(min(n, 2000))
    # Warm up: load the cached kernels.
    for fn in (color_columns, color_rows, color_star, color_acyclic):
        fn(banded(10, [-1, 0, 1]))
    color_bidirectional(arrowhead(10))

    cases = [
        ("column, 3 bands", tri, color_columns, {}),
        ("row, 3 bands", tri, color_rows, {}),
        (
            "column, 3 bands, smallest-last",
            tri,
            color_columns,
            {"order": "smallest_last"},
        ),
        ("column, 5 bands", penta, color_columns, {}),
        ("column, random 5/row", rand, color_columns, {}),
        (
            "column, random 5/row, largest-first",
            rand,
            color_columns,
            {"order": "largest_first"},
        ),
        ("star, tridiagonal", tri, color_star, {}),
        ("acyclic, tridiagonal", tri, color_acyclic, {}),
        ("star, pentadiagonal", penta, color_star, {}),
        ("acyclic, pentadiagonal", penta, color_acyclic, {}),
        ("star, 2-D Laplacian", lap, color_star, {}),
        ("acyclic, 2-D Laplacian", lap, color_acyclic, {}),
        ("bidirectional, arrowhead", arrow, color_bidirectional, {}),
    ]
    print(f"{'case':<38} {'shape':>17} {'nnz':>9} {'colors':>7} {'seconds':>8}")
    results, report = {}, {}
    for name, pattern, fn, kwargs in cases:
        result = fn(pattern, **kwargs)
        seconds = best_of(lambda p=pattern, f=fn, k=kwargs: f(p, **k), 3)
        results[name] = result
        report[name] = (result.num_colors, seconds)  # pyright: ignore
        shape = "×".join(str(s) for s in pattern.shape)
        colors = result.num_colors  # pyright: ignore[reportAttributeAccessIssue]
        print(f"{name:<38} {shape:>17} {pattern.nnz:>9} {colors:>7} {seconds:8.3f}")

    print()
    import equinox as eqx
    import jax.numpy as jnp

    print(
        f"{'decompression':<38} {'numpy':>8} {'jax jit':>8} {'compile':>8} {'levels':>7}"
    )
    rng = np.random.default_rng(0)
    for name in ("column, 3 bands", "star, tridiagonal", "acyclic, tridiagonal"):
        result = results[name]
        B = rng.standard_normal(result.compressed_shape)  # pyright: ignore
        t_np = best_of(lambda r=result, B=B: r.decompress(B), 3)  # pyright: ignore
        # The result is an argument, so its index arrays enter as arrays.
        fn = eqx.filter_jit(lambda r, B: r.decompress(B))
        Bj = jnp.asarray(B)
        start = time.perf_counter()
        fn(result, Bj).block_until_ready()
        t_compile = time.perf_counter() - start
        t_jax = best_of(lambda fn=fn, r=result, Bj=Bj: fn(r, Bj), 3)
        plan = getattr(result, "plan", None)
        levels = plan.num_levels if plan is not None else 0
        print(f"{name:<38} {t_np:8.3f} {t_jax:8.3f} {t_compile:8.2f} {levels:>7}")
    return report


if __name__ == "__main__":
    main()
