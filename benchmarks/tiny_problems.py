"""Small problems: asdex must cost no more than about 1.2x Optimistix's dense default.

Run with `uv run python benchmarks/tiny_problems.py` (about a minute). Each solve
runs inside `jax.jit` (the whole `optx.root_find` / `optx.least_squares`), and
steady state is the best of `--repeats` calls, taken in turns so that all routes
see the same load. Routes:

- `dense`: the stock solver with its default linear solver (dense, in XLA);
- `drop-in`: the stock solver with `linear_solver=asdex.SparseLinearSolver()`;
- `dedicated`: the matching `asdex.optimistix` solver with its default settings.

Below `small_size` (200) unknowns and residuals `SparseLinearSolver` hands the
system to Lineax's dense solvers, and the dedicated solvers take the dense
Jacobian, so each route should land near `dense`. Printed: milliseconds per solve
and the ratio to `dense`.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optimistix as optx

import asdex
import asdex.optimistix as aox


def heat(u, args):
    """Implicit heat step with a cubic source: a tridiagonal root problem."""
    n = u.shape[0]
    h2 = 1.0 / (n + 1) ** 2
    padded = jnp.pad(u, 1)
    lap = (padded[2:] - 2 * u + padded[:-2]) / h2
    return u - 1e-3 * (lap - u**3) - args


def curves(p, t):
    """Independent exponential decays, two parameters each: a block-diagonal fit."""
    a, k = p[:, :1], p[:, 1:]
    return (a * jnp.exp(-k * t) - 2.0 * jnp.exp(-0.5 * t)).reshape(-1)


def bowl(y, args):
    """A diagonal quadratic bowl, as a least-squares residual."""
    return jnp.sqrt(args) * (y - 1.0)


def cases(n: int):
    u_args = jnp.linspace(0.0, 1.0, n)
    t = jnp.linspace(0.0, 4.0, 6)
    p0 = jnp.ones((max(n // 2, 1), 2))
    weights = jnp.linspace(1.0, 10.0, n)
    tol = dict(rtol=1e-8, atol=1e-8)
    yield (
        f"heat Newton n={n}",
        "root",
        heat,
        jnp.zeros(n),
        u_args,
        {
            "dense": optx.Newton(**tol),
            "drop-in": optx.Newton(**tol, linear_solver=asdex.SparseLinearSolver()),
            "dedicated": aox.SparseNewton(**tol),
        },
    )
    yield (
        f"curves LM n={p0.size}",
        "lsq",
        curves,
        p0,
        t,
        {
            "dense": optx.LevenbergMarquardt(**tol),
            "drop-in": optx.LevenbergMarquardt(
                **tol, linear_solver=asdex.SparseLinearSolver()
            ),
            "dedicated": aox.SparseLevenbergMarquardt(**tol),
        },
    )
    yield (
        f"bowl Dogleg n={n}",
        "lsq",
        bowl,
        jnp.zeros(n),
        weights,
        {
            "dense": optx.Dogleg(**tol),
            "drop-in": optx.Dogleg(**tol, linear_solver=asdex.SparseLinearSolver()),
            "dedicated": aox.SparseGaussNewton(**tol),
        },
    )


def solve_fn(kind, fn, solver):
    run = optx.root_find if kind == "root" else optx.least_squares
    return jax.jit(lambda y0, args: run(fn, solver, y0, args, max_steps=100).value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeats", type=int, default=30)
    opts = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(f"{'case':24s} {'route':10s} {'ms':>8s} {'/ dense':>8s}")
    worst = 0.0
    for n in opts.sizes:
        for name, kind, fn, y0, args, solvers in cases(n):
            fns = {route: solve_fn(kind, fn, s) for route, s in solvers.items()}
            reference = None
            for route, f in fns.items():
                out = jax.block_until_ready(f(y0, args))
                if reference is None:
                    reference = out
                err = float(jnp.max(jnp.abs(out - reference)))
                if err > 1e-6:
                    raise AssertionError(f"{name} {route}: differs from dense by {err}")
            best = dict.fromkeys(fns, float("inf"))
            for _ in range(opts.repeats):
                for route, f in fns.items():
                    start = time.perf_counter()
                    jax.block_until_ready(f(y0, args))
                    best[route] = min(best[route], time.perf_counter() - start)
            for route, seconds in best.items():
                ratio = seconds / best["dense"]
                worst = max(worst, ratio)
                print(f"{name:24s} {route:10s} {1e3 * seconds:8.3f} {ratio:8.2f}")
    print(f"worst ratio to dense: {worst:.2f}")


if __name__ == "__main__":
    main()
