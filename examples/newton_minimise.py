"""Minimising the chained Rosenbrock function with Newton's method and the exact sparse Hessian.

Run with `uv run python examples/newton_minimise.py` (n = 100,000, a few seconds),
or pick the size with `--n`.

    f(x) = Σᵢ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²

Its Hessian is tridiagonal: a star coloring needs 3 Hessian-vector products for
all of it, whatever n (each entry read directly from one product). `asdex.optimistix.SparseNewtonMinimiser` computes the
gradient and the exact sparse Hessian at every accepted step, and solves the damped
Newton system `(H + λI) δ = −g` by a sparse factorisation, with λ set by a trust
region. Optimistix itself has only quasi-Newton minimisers (BFGS keeps a dense
n × n matrix: 80 GB here).

The default start is `x = 0.5` everywhere, from which Newton's method needs some
thirty steps whatever n. From the classic start `(−1.2, 1, −1.2, 1, …)` (choose
it with `--start classic`) every Newton-type method needs a number of steps that
grows with n (the iterates settle one link of the chain after another: about 250
steps at n = 100, 2,400 at n = 1,000), so keep n small there.
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx

import asdex
import asdex.optimistix as aox


def chained_rosenbrock(x, args=None):
    """`Σᵢ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²`; its Hessian is tridiagonal."""
    del args
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@eqx.filter_jit
def minimise(solver, x0):
    return optx.minimise(chained_rosenbrock, solver, x0, max_steps=5000)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--start", choices=("half", "classic"), default="half")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    n = args.n
    if args.start == "half":
        x0 = jnp.full(n, 0.5)
    else:
        x0 = jnp.tile(jnp.array([-1.2, 1.0]), (n + 1) // 2)[:n]
    print(f"chained Rosenbrock, n = {n:,}, start {args.start}")

    start = time.perf_counter()
    coloring = asdex.hessian_coloring(chained_rosenbrock, x0)
    detect = time.perf_counter() - start
    print(coloring)
    solver = aox.SparseNewtonMinimiser(rtol=1e-12, atol=1e-12, coloring=coloring)
    start = time.perf_counter()
    sol = minimise(solver, x0)
    x = jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(minimise(solver, x0).value)
    again = time.perf_counter() - start
    gradient_norm = float(jnp.linalg.norm(jax.grad(chained_rosenbrock)(x)))
    error = float(jnp.max(jnp.abs(x - 1.0)))
    print(
        f"{int(sol.stats['num_steps'])} steps "
        f"({int(sol.stats['num_accepted_steps'])} accepted): f = "
        f"{float(chained_rosenbrock(x)):.3e}, |∇f| = {gradient_norm:.2e}, "
        f"max |x − 1| = {error:.1e}"
    )
    print(
        f"{seconds + detect:.2f} s end to end (detection and coloring {detect:.2f} s, "
        f"compilation included), {again:.2f} s for a second solve"
    )
    return {
        "n": n,
        "gradient_norm": gradient_norm,
        "error": error,
        "seconds": seconds + detect,
        "steps": int(sol.stats["num_steps"]),
        "num_colors": coloring.num_colors,
    }


if __name__ == "__main__":
    main()
