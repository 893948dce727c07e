"""Nonlinear least squares with sparse Levenberg–Marquardt: many curves, and a surface.

Run with `uv run python examples/curve_fitting.py` (about 15 s), or smaller with
`--curves 1000 --grid 32`.

1. **10,000 independent damped sinusoids**, `y(t) = a e^(−b t) sin(ω t + φ)`, 100
   noisy samples each, fitted all at once: 40,000 parameters and 1,000,000
   residuals. A dense Jacobian would take 320 GB; this one has 4,000,000 nonzeros
   and is computed with 4 JVPs (one per parameter of a curve: the curves share no
   residual). The joint fit is checked against fitting every curve on its own with
   Optimistix's dense Levenberg–Marquardt.
2. **A coupled fit**: a surface `u` on a G × G grid, observed at scattered points
   through bilinear interpolation and a nonlinear link (`exp`), with a smoothness
   penalty `μ Δₕu`. Every residual couples a few neighbouring grid values, so the
   Jacobian is sparse but not block diagonal.
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

import asdex
import asdex.optimistix as aox

# ---------------------------------------------------------------- 1. many curves


def damped_sinusoid(params, t):
    """`a e^(−b t) sin(ω t + φ)` for each row `(a, b, ω, φ)` of `params`."""
    a, b, omega, phi = (params[..., k : k + 1] for k in range(4))
    return a * jnp.exp(-b * t) * jnp.sin(omega * t + phi)


def curve_residuals(params, data):
    """Residuals of all curves: `params` is `(K, 4)`, the result `(K, samples)`."""
    t, observed = data
    return damped_sinusoid(params, t) - observed


def make_curves(num_curves: int, samples: int, seed: int = 0):
    """Noisy samples of random damped sinusoids, and a starting guess within 5%."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 10.0, samples)
    true = np.stack(
        [
            rng.uniform(0.5, 2.0, num_curves),  # amplitude a
            rng.uniform(0.1, 0.5, num_curves),  # decay rate b
            rng.uniform(1.0, 3.0, num_curves),  # angular frequency ω
            rng.uniform(-1.0, 1.0, num_curves),  # phase φ
        ],
        axis=1,
    )
    clean = np.asarray(damped_sinusoid(jnp.asarray(true), jnp.asarray(t)))
    observed = clean + 0.01 * rng.normal(size=clean.shape)
    guess = true * (1 + 0.05 * rng.normal(size=true.shape))
    return jnp.asarray(t), jnp.asarray(observed), jnp.asarray(guess), true


@eqx.filter_jit
def fit_jointly(solver, params0, data):
    return optx.least_squares(curve_residuals, solver, params0, data, max_steps=200)


@jax.jit
def fit_individually(params0, t, observed):
    """Each curve on its own (4 parameters, dense), with Optimistix's own LM."""
    solver = optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10)

    def one(p0, y):
        return optx.least_squares(
            curve_residuals, solver, p0, (t, y), max_steps=200, throw=False
        ).value

    return jax.vmap(one)(params0, observed)


# ---------------------------------------------------------------- 2. a surface


def make_surface(grid: int, num_points: int, seed: int = 1):
    """A surface-fitting problem: `(residuals, truth)`.

    `residuals(u, mu)` returns the data misfit `exp(u(p)) - observed` at scattered
    points `p` (bilinear interpolation on the `grid × grid` nodes of the unit
    square) and the smoothness penalty `mu Δₕu` on the interior nodes. The
    interpolation's indices and weights are numpy constants closed over by the
    function, so detection sees the gather's indices and finds the four nodes each
    observation touches. (Passed in `args` instead, they would be unknown values to
    detection, and every observation would seem to depend on every node.)
    """
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 1.0, (num_points, 2))

    def truth(p):
        return 0.5 * np.sin(2 * np.pi * p[..., 0]) * np.cos(np.pi * p[..., 1])

    observed = np.exp(truth(points)) + 0.01 * rng.normal(size=num_points)
    scaled = points * (grid - 1)
    cell = np.clip(np.floor(scaled).astype(np.int32), 0, grid - 2)
    fx, fy = (scaled - cell).T
    i, j = cell.T
    corners = [(i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)]
    weights = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]

    def residuals(u, mu):
        value = sum(w * u[a, b] for (a, b), w in zip(corners, weights, strict=True))
        misfit = jnp.exp(value) - observed
        lap = (
            u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
        )
        return misfit, mu * lap.reshape(-1)

    x = np.linspace(0.0, 1.0, grid)
    grid_truth = truth(np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1))
    return residuals, grid_truth


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--grid", type=int, default=128, help="surface grid side G")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    out: dict = {}

    # ------------------------------------------------------------ many curves
    t, observed, guess, _ = make_curves(args.curves, args.samples)
    data = (t, observed)
    m, n = observed.size, guess.size
    print(
        f"{args.curves:,} damped sinusoids: {n:,} parameters, {m:,} residuals; a "
        f"dense Jacobian would take {m * n * 8 / 1e9:,.1f} GB"
    )
    start = time.perf_counter()
    coloring = asdex.jacobian_coloring(curve_residuals, guess, data)
    detect = time.perf_counter() - start
    print(coloring)
    solver = aox.SparseLevenbergMarquardt(rtol=1e-10, atol=1e-10, coloring=coloring)
    start = time.perf_counter()
    sol = fit_jointly(solver, guess, data)
    joint = jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    print(
        f"joint sparse LM: {int(sol.stats['num_steps'])} steps, {seconds:.2f} s "
        f"(with compilation; detection and coloring {detect:.2f} s)"
    )
    start = time.perf_counter()
    individual = jax.block_until_ready(fit_individually(guess, t, observed))
    seconds_individual = time.perf_counter() - start
    difference = float(jnp.max(jnp.abs(joint - individual)))
    print(
        f"{args.curves:,} individual dense LM fits (vmapped): "
        f"{seconds_individual:.2f} s; max |joint - individual| = {difference:.1e}"
    )
    out.update(
        curves=args.curves,
        curve_seconds=seconds + detect,
        curve_steps=int(sol.stats["num_steps"]),
        curve_difference=difference,
        curve_colors=coloring.num_colors,
    )

    # ------------------------------------------------------------ a surface
    g = args.grid
    surface_residuals, grid_truth = make_surface(g, num_points=4 * g * g)
    # The penalty weight balances curvature against the data at this spacing.
    mu = 0.05 * g
    u0 = jnp.zeros((g, g))
    start = time.perf_counter()
    surface_coloring = asdex.jacobian_coloring(surface_residuals, u0, mu)
    solver = aox.SparseLevenbergMarquardt(
        rtol=1e-8, atol=1e-8, coloring=surface_coloring
    )
    fit_surface = eqx.filter_jit(
        lambda solver, u0, mu: optx.least_squares(
            surface_residuals, solver, u0, mu, max_steps=100
        )
    )
    sol = fit_surface(solver, u0, mu)
    u = jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    misfit, _ = surface_residuals(u, mu)
    error = float(np.max(np.abs(np.asarray(u) - grid_truth)))
    print(
        f"\nsurface on a {g}×{g} grid from {4 * g * g:,} scattered points: "
        f"{surface_coloring.num_colors} colors, {int(sol.stats['num_steps'])} steps, "
        f"{seconds:.2f} s with detection and compilation; rms misfit {float(jnp.sqrt(jnp.mean(misfit**2))):.4f} "
        f"(noise 0.01), max |u - truth| = {error:.3f}"
    )
    out.update(
        surface_seconds=seconds,
        surface_rms=float(jnp.sqrt(jnp.mean(misfit**2))),
        surface_error=error,
        surface_u=u,
        surface_residuals=surface_residuals,
        surface_mu=mu,
    )
    return out


if __name__ == "__main__":
    main()
