"""The 2-D Bratu problem solved by Newton's method with sparse Jacobians.

Run with `uv run python examples/bratu_newton.py` (N = 256, about 5 s), or pick the
grid with `--N 512`. The problem is

    Δu + λ eᵘ = 0  on the unit square,  u = 0 on its boundary,

with λ = 1, discretised by the 5-point Laplacian on an N × N interior grid (N²
unknowns). The residual is written as F(u) = −Δₕu − λeᵘ, whose Jacobian −Δₕ − λ
diag(eᵘ) is symmetric and positive definite on the lower solution branch.

The script solves it twice:

1. with stock `optimistix.Newton` and `linear_solver=asdex.SparseLinearSolver()`:
   Optimistix linearises the residual, and asdex detects the pattern of that
   linear map, colors it, and factorises the sparse Jacobian;
2. with `asdex.optimistix.SparseNewton`, reusing a coloring detected once, and
   telling Optimistix that the Jacobian is positive definite, so that it is
   factorised by sparse Cholesky.

Neither ever forms the dense N² × N² Jacobian (550 GB at N = 512).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

import asdex
import asdex.optimistix as aox


def bratu_residual(u, lam):
    """F(u) = −Δₕu − λ eᵘ on the N × N interior grid, zero Dirichlet boundary."""
    n = u.shape[0]
    h = 1.0 / (n + 1)
    w = jnp.pad(u, 1)
    laplacian = (w[2:, 1:-1] + w[:-2, 1:-1] + w[1:-1, 2:] + w[1:-1, :-2] - 4 * u) / h**2
    return -laplacian - lam * jnp.exp(u)


def bratu3d_residual(u, lam):
    """The 3-D problem on an N × N × N interior grid: 7-point Laplacian."""
    n = u.shape[0]
    h = 1.0 / (n + 1)
    w = jnp.pad(u, 1)
    inner = w[1:-1, 1:-1, 1:-1]
    neighbours = (
        w[2:, 1:-1, 1:-1]
        + w[:-2, 1:-1, 1:-1]
        + w[1:-1, 2:, 1:-1]
        + w[1:-1, :-2, 1:-1]
        + w[1:-1, 1:-1, 2:]
        + w[1:-1, 1:-1, :-2]
    )
    return -(neighbours - 6 * inner) / h**2 - lam * jnp.exp(u)


def solve_drop_in(u0, lam, rtol=1e-8, atol=1e-8):
    """Stock `optx.Newton`, with asdex's sparse linear solver as a drop-in."""
    solver = optx.Newton(rtol=rtol, atol=atol, linear_solver=asdex.SparseLinearSolver())
    return optx.root_find(bratu_residual, solver, u0, lam, max_steps=50)


def solve_dedicated(solver, u0, lam):
    """`SparseNewton` with a precomputed coloring; the Jacobian is declared SPD."""
    return optx.root_find(
        bratu_residual,
        solver,
        u0,
        lam,
        max_steps=50,
        tags=frozenset({lx.positive_semidefinite_tag}),
    )


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out.value)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--N", type=int, default=256, help="interior grid points a side"
    )
    parser.add_argument("--lam", type=float, default=1.0, help="the Bratu parameter λ")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    n, lam = args.N, args.lam
    u0 = jnp.zeros((n, n))
    size = n * n
    print(f"2-D Bratu, λ = {lam}, N = {n}: {size:,} unknowns")
    print(
        f"a dense Jacobian would take {size**2 * 8 / 1e9:,.1f} GB; the sparse one "
        f"has {5 * size - 4 * n:,} nonzeros ({(5 * size - 4 * n) * 12 / 1e6:.1f} MB "
        "with its indices)"
    )

    # ------------------------------------------------------------ 1. drop-in
    drop_in = eqx.filter_jit(solve_drop_in)
    sol, first = _timed(drop_in, u0, lam)
    _, again = _timed(drop_in, u0, lam)
    res_drop_in = float(jnp.max(jnp.abs(bratu_residual(sol.value, lam))))
    print(
        f"\noptx.Newton + asdex.SparseLinearSolver(): {int(sol.stats['num_steps'])} "
        f"steps, max |F(u)| = {res_drop_in:.2e}, {first:.2f} s with detection and "
        f"compilation, {again:.2f} s after"
    )

    # ------------------------------------------------------------ 2. dedicated
    start = time.perf_counter()
    coloring = asdex.jacobian_coloring(bratu_residual, u0, lam)
    detect = time.perf_counter() - start
    print(f"\nJacobian coloring (detected once, {detect:.2f} s):")
    print(coloring)
    # 1e-8, not 1e-10: the residual's rounding floor grows like 1/h² (about
    # 1.4e-10 at N = 1000), and Newton stops only when max |F| < atol.
    solver = aox.SparseNewton(rtol=1e-8, atol=1e-8, coloring=coloring)
    # The solver is an argument, so the coloring's index arrays enter the compiled
    # program as arguments rather than as constants.
    dedicated = eqx.filter_jit(solve_dedicated)
    sol2, first2 = _timed(dedicated, solver, u0, lam)
    _, again2 = _timed(dedicated, solver, u0, lam)
    res_dedicated = float(jnp.max(jnp.abs(bratu_residual(sol2.value, lam))))
    difference = float(jnp.max(jnp.abs(sol.value - sol2.value)))
    print(
        f"asdex.optimistix.SparseNewton (Cholesky): {int(sol2.stats['num_steps'])} "
        f"steps, max |F(u)| = {res_dedicated:.2e}, {first2:.2f} s with compilation, "
        f"{again2:.2f} s after; max |u - u_drop_in| = {difference:.1e}"
    )
    print(f"max u = {float(jnp.max(sol2.value)):.6f} (lower branch)")
    return {
        "N": n,
        "residual_drop_in": res_drop_in,
        "residual_dedicated": res_dedicated,
        "difference": difference,
        "seconds_drop_in": first,
        "seconds_dedicated": first2 + detect,
        "num_colors": coloring.num_colors,
        "u": sol2.value,
    }


if __name__ == "__main__":
    main()
