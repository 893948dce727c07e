"""Bundle adjustment against `scipy.optimize.least_squares`, in one process.

Run with `uv run python benchmarks/bundle_adjustment.py` (about three minutes on
2 cores), `--quick` for the small size only, or `--sizes medium large`.

The problem is `examples/bundle_adjustment.py`'s: BAL-shaped, 9 parameters per
camera, 3 per point, 2 residuals per observation, each point seen by the few
cameras nearest to it. Sizes (cameras / points / observations):

- `small`: 10 / 500 / 2,000;
- `medium`: 50 / 10,000 / 40,000 (30,450 unknowns): target ≥ 20× faster than
  scipy;
- `large`: 1,000 / 100,000 / 1,000,000 (309,000 unknowns): target ≤ 120 s.

Solvers, all from the same starting point:

- scipy, as Python users solve it today: `least_squares(fun, x0,
  jac_sparsity=..., method="trf", tr_solver="lsmr", x_scale="jac")` with a numpy
  residual; its Jacobian is by finite differences with grouped columns;
- `asdex.optimistix.SparseLevenbergMarquardt` with the coloring detected before
  the solve;
- stock `optx.LevenbergMarquardt` with
  `linear_solver=asdex.SparseLinearSolver(coloring=...)` (the drop-in).

asdex's times are end to end (detection, coloring, compilation and the solve)
and steady (the compiled solve again). The final costs ½‖r‖² must agree within
1e-6 relative. scipy runs at the large size only with `--scipy-large`: at the
medium size it already takes seconds. At the large size only the dedicated
solver runs, once, end to end.

Last, the Schur complement on the point blocks, the standard trick of dedicated
bundle adjusters, is measured against what the solvers do now (a sparse
Cholesky factorisation of the damped normal equations `JᵀJ + λI`, QDLDL with
an AMD ordering), on the Jacobian at the solution.
"""

from __future__ import annotations

import argparse
import sys
import time

import _examples  # noqa: F401  (puts examples/ on sys.path)
import bundle_adjustment as ba
import equinox as eqx
import jax
import numpy as np
import optimistix as optx
import scipy.sparse as sp
from scipy.optimize import least_squares

import asdex
import asdex.optimistix as aox

SIZES = {
    "small": (10, 500, 2_000),
    "medium": (50, 10_000, 40_000),
    "large": (1_000, 100_000, 1_000_000),
}
TARGETS = {"medium": "≥ 20× faster than scipy", "large": "≤ 120 s end to end"}
TOLERANCE = 1e-8  # rtol = atol of asdex's solves; scipy's ftol = xtol = gtol


# ---------------------------------------------------------------------- scipy


def scipy_problem(problem: ba.BundleProblem):
    """scipy's residual (numpy) and Jacobian sparsity, as its users write them."""
    cameras, points = len(problem.cams0), len(problem.pts0)
    cam_idx, pt_idx, observed = problem.cam_idx, problem.pt_idx, problem.observed

    def fun(x):
        cams = x[: 9 * cameras].reshape(cameras, 9)
        pts = x[9 * cameras :].reshape(points, 3)
        return (ba.project(cams, pts, cam_idx, pt_idx, xp=np) - observed).ravel()

    rows = np.repeat(np.arange(2 * len(cam_idx)), 12)
    obs = rows // 2
    slot = np.tile(np.arange(12), 2 * len(cam_idx))
    cols = np.where(
        slot < 9,
        9 * cam_idx[obs] + slot,
        9 * cameras + 3 * pt_idx[obs] + (slot - 9),
    )
    sparsity = sp.csr_array(
        (np.ones(rows.size, dtype=np.int8), (rows, cols)),
        shape=(2 * len(cam_idx), 9 * cameras + 3 * points),
    )
    return fun, sparsity


def run_scipy(problem: ba.BundleProblem) -> dict:
    fun, sparsity = scipy_problem(problem)
    start = time.perf_counter()
    result = least_squares(
        fun,
        problem.x0,
        jac_sparsity=sparsity,
        method="trf",
        tr_solver="lsmr",
        x_scale="jac",
        ftol=TOLERANCE,
        xtol=TOLERANCE,
        gtol=TOLERANCE,
    )
    return {
        "seconds": time.perf_counter() - start,
        "steps": int(result.njev),
        "nfev": int(result.nfev),
        "cost": float(result.cost),
    }


# ---------------------------------------------------------------------- asdex


@eqx.filter_jit
def _least_squares(solver, y0, args):
    return optx.least_squares(ba.residual, solver, y0, args, max_steps=500)


def run_asdex(problem: ba.BundleProblem, variant: str, steady: bool = True) -> dict:
    """End to end (a fresh detection and compilation), then steady if asked."""
    args = problem.args
    start = time.perf_counter()
    coloring = asdex.jacobian_coloring(lambda y: ba.residual(y, args), problem.y0)
    detect = time.perf_counter() - start
    if variant == "dedicated":
        solver = aox.SparseLevenbergMarquardt(TOLERANCE, TOLERANCE, coloring=coloring)
    else:
        linear = asdex.SparseLinearSolver(coloring=coloring)
        solver = optx.LevenbergMarquardt(TOLERANCE, TOLERANCE, linear_solver=linear)
    sol = _least_squares(solver, problem.y0, args)
    jax.block_until_ready(sol.value)
    end_to_end = time.perf_counter() - start
    again = None
    if steady:
        start = time.perf_counter()
        sol = _least_squares(solver, problem.y0, args)
        jax.block_until_ready(sol.value)
        again = time.perf_counter() - start
    return {
        "detect": detect,
        "seconds": end_to_end,
        "steady": again,
        "steps": int(sol.stats["num_steps"]),
        "cost": ba.cost(problem, sol.value),
        "colors": coloring.num_colors,
        "value": sol.value,
        "coloring": coloring,
    }


# ---------------------------------------------------------------------- Schur


def schur_comparison(problem: ba.BundleProblem, coloring, value, lam=1e-3) -> dict:
    """One damped Gauss–Newton system solved two ways, on the host.

    `A = JᵀJ + λI` with the cameras first: `[[U, W], [Wᵀ, V]]`, `V` block diagonal
    (3 × 3 per point). Direct: QDLDL on A (what the sparse solvers do). Schur:
    invert V's blocks, factorise `S = U − W V⁻¹ Wᵀ` (the reduced camera system),
    solve, and back-substitute for the points.
    """
    import qdldl

    args = problem.args
    jac = asdex.jacobian_from_coloring(
        lambda y: ba.residual(y, args), coloring, value, output_format="scipy_csr"
    )
    matrix = sp.csr_array(jac(value))
    b = matrix.T @ np.ones(matrix.shape[0])
    nc = 9 * len(problem.cams0)
    npts = len(problem.pts0)
    out = {}

    start = time.perf_counter()
    a = (matrix.T @ matrix + lam * sp.eye_array(matrix.shape[1])).tocsc()
    x_direct = qdldl.Solver(sp.triu(a, format="csc"), upper=True).solve(b)
    out["direct"] = time.perf_counter() - start

    start = time.perf_counter()
    jc, jp = matrix[:, :nc], matrix[:, nc:]
    u = (jc.T @ jc).toarray() + lam * np.eye(nc)
    w = (jc.T @ jp).tocsr()
    # V's 3 × 3 blocks, from the point columns (3 per point) of J.
    jp_coo = sp.coo_array(jp)
    point = jp_coo.col // 3
    v = np.zeros((npts, 3, 3))
    dense_rows = np.zeros((matrix.shape[0], 3))
    dense_rows[jp_coo.row, jp_coo.col % 3] = jp_coo.data
    rows_of_point = np.zeros(matrix.shape[0], dtype=np.int64)
    rows_of_point[jp_coo.row] = point
    np.add.at(v, rows_of_point, dense_rows[:, :, None] * dense_rows[:, None, :])
    v += lam * np.eye(3)
    v_inv = np.linalg.inv(v)
    v_inv_sparse = sp.block_diag(list(v_inv), format="csr")
    s = u - (w @ v_inv_sparse @ w.T).toarray()
    bc, bp = b[:nc], b[nc:]
    rhs = bc - w @ (v_inv_sparse @ bp)
    xc = np.linalg.solve(s, rhs)
    xp = v_inv_sparse @ (bp - w.T @ xc)
    x_schur = np.concatenate([xc, xp])
    out["schur"] = time.perf_counter() - start
    out["difference"] = float(
        np.max(np.abs(x_schur - x_direct)) / np.max(np.abs(x_direct))
    )
    return out


# ---------------------------------------------------------------------- main


def run_size(name: str, with_scipy: bool) -> dict:
    cameras, points, observations = SIZES[name]
    problem = ba.make_problem(cameras, points, observations)
    row: dict = {
        "size": name,
        "cameras": cameras,
        "points": points,
        "observations": observations,
        "unknowns": 9 * cameras + 3 * points,
        "initial_cost": ba.cost(problem, problem.y0),
    }
    # At the large size, one end-to-end solve with the dedicated solver only.
    full = name != "large"
    dedicated = run_asdex(problem, "dedicated", steady=full)
    row["dedicated"] = {
        k: v for k, v in dedicated.items() if k not in ("value", "coloring")
    }
    if full:
        drop_in = run_asdex(problem, "drop_in")
        row["drop_in"] = {
            k: v for k, v in drop_in.items() if k not in ("value", "coloring")
        }
    if with_scipy:
        row["scipy"] = run_scipy(problem)
    row["schur"] = schur_comparison(problem, dedicated["coloring"], dedicated["value"])
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| size (cameras / points / observations) | solver | steps | end to end "
        "| steady | final cost | cost vs scipy | scipy / asdex (end to end) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r['size']} ({r['cameras']} / {r['points']:,} / {r['observations']:,})"
        sc = r.get("scipy")
        for key, label in (
            ("dedicated", "SparseLevenbergMarquardt"),
            ("drop_in", "optx.LevenbergMarquardt + SparseLinearSolver"),
        ):
            if key not in r:
                continue
            v = r[key]
            again = "—" if v["steady"] is None else f"{v['steady']:.2f} s"
            if sc is None:
                versus = ratio = "—"
            else:
                versus = f"{(v['cost'] - sc['cost']) / sc['cost']:+.1e}"
                ratio = f"{sc['seconds'] / v['seconds']:.1f}×"
            lines.append(
                f"| {size} | {label} | {v['steps']} | {v['seconds']:.2f} s "
                f"| {again} | {v['cost']:.6e} | {versus} | {ratio} |"
            )
        if sc is not None:
            lines.append(
                f"| {size} | scipy least_squares (trf, lsmr) | {sc['steps']} "
                f"({sc['nfev']} evaluations) | {sc['seconds']:.2f} s | — "
                f"| {sc['cost']:.6e} | — | — |"
            )
    lines += [
        "",
        "One damped normal-equations solve at the solution (`JᵀJ + 10⁻³ I`):",
        "",
        "| size | sparse Cholesky (QDLDL, AMD) | Schur complement on the points "
        "| relative difference |",
        "|---|---|---|---|",
    ]
    for r in rows:
        s = r["schur"]
        lines.append(
            f"| {r['size']} | {s['direct']:.3f} s | {s['schur']:.3f} s "
            f"| {s['difference']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small size only")
    parser.add_argument("--sizes", nargs="*", choices=list(SIZES))
    parser.add_argument("--scipy-large", action="store_true")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    sizes = args.sizes or (["small"] if args.quick else ["small", "medium", "large"])
    rows = []
    for name in sizes:
        rows.append(run_size(name, name != "large" or args.scipy_large))
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
