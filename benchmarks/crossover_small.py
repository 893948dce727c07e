"""Where sparse solves start to beat dense ones: the thresholds of `SparseLinearSolver`.

Run with `uv run python benchmarks/crossover_small.py` (a few minutes), or add
`--quick` for a smoke run (seconds).

The operator is what Optimistix hands a linear solver: a matrix-free
`lineax.FunctionLinearOperator` of `v ↦ A v`, with `A` sparse (a tridiagonal, or a
random pattern of a given density plus the diagonal). For each size `n` and
density the script times, in steady state under `jax.jit` (best of `--repeats`),
`lineax.linear_solve` of a square system and of a tall least-squares problem
(`2n × n`) with:

- `sparse`: `asdex.SparseLinearSolver` with the dense fallbacks switched off
  (sparsify, then a host SuperLU/LDLᵀ solve through a callback);
- `dense`: `lineax.AutoLinearSolver(well_posed=None)` (materialise, LU or QR in XLA),
  the default of Optimistix.

It prints the ratio sparse / dense: above 1, the dense path is faster.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from _timing import best_of

import asdex

SIZES = (25, 50, 100, 200, 400, 800)
DENSITIES = ("tridiagonal", 0.02, 0.1, 0.3)


def pattern(n: int, m: int, density, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of an `m × n` pattern that holds the diagonal."""
    diagonal = np.arange(n)
    if density == "tridiagonal":
        rows = np.concatenate([diagonal, diagonal[1:], diagonal[:-1]])
        cols = np.concatenate([diagonal, diagonal[:-1], diagonal[1:]])
    else:
        mask = rng.random((n, n)) < density
        mask[diagonal, diagonal] = True
        rows, cols = np.nonzero(mask)
    # Tall problems stack a second copy below, shifted by n rows.
    rows = np.concatenate([rows + k * n for k in range(m // n)])
    cols = np.tile(cols, m // n)
    return rows, cols


def _best_on_new_values(fn, b, repeats: int) -> float:
    # New values each call: no factorisation cache hit.
    return best_of(lambda k: fn(b + 1e-3 * k), repeats, warm=True, vary=True)


def case(n: int, m: int, density, repeats: int, rng) -> tuple[float, float, int]:
    rows, cols = pattern(n, m, density, rng)
    values = rng.standard_normal(rows.size) + 4.0 * (rows % n == cols)

    def solve_with(solver):
        @jax.jit
        def run(b):
            # The values scale with `b[0]` so that each call is a new matrix.
            vals = jnp.asarray(values) * (1.0 + 1e-3 * b[0])

            def mv(v):
                return jax.ops.segment_sum(vals * v[cols], rows, num_segments=m)

            operator = lx.FunctionLinearOperator(
                mv, jax.ShapeDtypeStruct((n,), jnp.float64)
            )
            return lx.linear_solve(operator, b, solver).value

        return run

    b = jnp.asarray(rng.standard_normal(m))
    sparse = asdex.SparseLinearSolver(small_size=0, dense_fraction=1.1)
    dense = lx.AutoLinearSolver(well_posed=None)
    return (
        _best_on_new_values(solve_with(sparse), b, repeats),
        _best_on_new_values(solve_with(dense), b, repeats),
        rows.size,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    opts = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    sizes = (25, 100) if opts.quick else SIZES
    densities = ("tridiagonal", 0.3) if opts.quick else DENSITIES
    print(
        f"{'shape':>10} {'density':>11} {'nnz':>7} {'sparse ms':>10} "
        f"{'dense ms':>9} {'ratio':>6}"
    )
    for n in sizes:
        for tall in (False, True):
            m = 2 * n if tall else n
            for density in densities:
                sparse, dense, nnz = case(n, m, density, opts.repeats, rng)
                print(
                    f"{f'{m}x{n}':>10} {str(density):>11} {nnz:>7} "
                    f"{1e3 * sparse:>10.3f} {1e3 * dense:>9.3f} "
                    f"{sparse / dense:>6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
