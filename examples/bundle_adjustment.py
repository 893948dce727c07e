"""Bundle adjustment: sparse Levenberg–Marquardt on a synthetic BAL-style problem.

Run with `uv run python examples/bundle_adjustment.py` (a few seconds), or pick
the size with `--cameras 50 --points 10000 --observations 40000`.

The problem has the shape of the public BAL problems ("Bundle Adjustment in the
Large", Agarwal et al. 2010): each camera has 9 parameters (a Rodrigues rotation
vector, a translation, a focal length and two radial distortion coefficients),
each point 3, and each observation gives a 2-D reprojection residual

    r = f · (1 + k₁‖p‖² + k₂‖p‖⁴) · p − observed,   p = −P_xy / P_z,   P = R X + t.

Cameras stand on a ring around a cloud of points, looking at its centre; each
point is seen by a few of the cameras on its side of the ring, so the Jacobian
has 9 + 3 nonzeros per row, and `JᵀJ` couples only cameras that see common
points.

The residual gathers cameras and points with index arrays. They are passed as
`args`, so that they enter the compiled program as arguments; the coloring is
detected before the solve, where they are constants (inside Optimistix's `jit`
they are traced, and a pattern detected there would be dense).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

import asdex
import asdex.optimistix as aox


@dataclasses.dataclass(frozen=True)
class BundleProblem:
    """Index arrays, observations and the starting point; `true_*` generated them."""

    cam_idx: np.ndarray  # (observations,) camera of each observation
    pt_idx: np.ndarray  # (observations,) point of each observation
    observed: np.ndarray  # (observations, 2) pixel coordinates
    cams0: np.ndarray  # (cameras, 9) starting camera parameters
    pts0: np.ndarray  # (points, 3) starting points
    true_cams: np.ndarray
    true_pts: np.ndarray

    @property
    def args(self):
        """The residual's `args`: the index arrays and observations as JAX arrays."""
        return (
            jnp.asarray(self.cam_idx),
            jnp.asarray(self.pt_idx),
            jnp.asarray(self.observed),
        )

    @property
    def y0(self):
        return (jnp.asarray(self.cams0), jnp.asarray(self.pts0))

    @property
    def x0(self) -> np.ndarray:
        """The starting point as one flat vector (cameras first), for scipy."""
        return np.concatenate([self.cams0.ravel(), self.pts0.ravel()])


def rotate(rvec, points, xp=jnp):
    """Rotate `points` by Rodrigues vectors `rvec` (row by row); numpy or JAX."""
    # The small offset keeps the angle differentiable at a zero rotation.
    theta = xp.sqrt(xp.sum(rvec**2, axis=-1, keepdims=True) + 1e-20)
    k = rvec / theta
    cos, sin = xp.cos(theta), xp.sin(theta)
    dot = xp.sum(k * points, axis=-1, keepdims=True)
    return points * cos + xp.cross(k, points) * sin + k * dot * (1 - cos)


def project(cams, pts, cam_idx, pt_idx, xp=jnp):
    """The pixel coordinates of every observation, `(observations, 2)`."""
    c, x = cams[cam_idx], pts[pt_idx]
    p = rotate(c[:, :3], x, xp) + c[:, 3:6]
    p = -p[:, :2] / p[:, 2:3]
    r2 = xp.sum(p**2, axis=1)
    scale = c[:, 6] * (1 + c[:, 7] * r2 + c[:, 8] * r2**2)
    return p * scale[:, None]


def residual(params, args):
    """Reprojection errors, flat: the residual of `optx.least_squares`."""
    cams, pts = params
    cam_idx, pt_idx, observed = args
    return (project(cams, pts, cam_idx, pt_idx) - observed).reshape(-1)


def make_problem(
    cameras: int, points: int, observations: int, seed: int = 0
) -> BundleProblem:
    """A synthetic problem: cameras on a ring around a cloud of points, each point
    seen by a few of the cameras on its side of the ring."""
    if observations < points:
        raise ValueError(
            f"`observations={observations}` must be at least `points={points}`: "
            "every point needs to be seen."
        )
    rng = np.random.default_rng(seed)
    # Camera k stands at azimuth φ_k in the x–z plane, 10 units from the origin,
    # looking at it: R is the rotation by −φ_k about y (Rodrigues vector
    # (0, −φ_k, 0)) and t = −R c = (0, 0, −10).
    azimuths = np.linspace(-np.pi, np.pi, cameras, endpoint=False) + np.pi / cameras
    cams = np.zeros((cameras, 9))
    cams[:, 1] = -azimuths
    cams[:, :3] += 0.01 * rng.standard_normal((cameras, 3))
    cams[:, 3:5] = 0.1 * rng.standard_normal((cameras, 2))
    cams[:, 5] = -10.0 + 0.1 * rng.standard_normal(cameras)
    cams[:, 6] = 500.0 + 10.0 * rng.standard_normal(cameras)
    cams[:, 7:] = 1e-3 * rng.standard_normal((cameras, 2))
    pts = rng.uniform(-2.0, 2.0, (points, 3))
    # Each point is seen by `per` (or `per + 1`) cameras chosen at random among
    # the nearest quarter of the ring, or the nearest 4 · per cameras if fewer,
    # as a scene is seen from its own side, in a run of consecutive views.
    per, extra = divmod(observations, points)
    counts = np.full(points, per)
    counts[rng.choice(points, extra, replace=False)] += 1
    window = max(int(counts.max()), min(cameras // 4, 4 * per))
    counts = np.minimum(counts, cameras)
    point_azimuth = np.arctan2(pts[:, 0], pts[:, 2])
    gap = np.angle(np.exp(1j * (point_azimuth[:, None] - azimuths[None, :])))
    nearest = np.argsort(np.abs(gap), axis=1)[:, :window]
    picks = np.argsort(rng.random(nearest.shape), axis=1)
    chosen = np.take_along_axis(nearest, picks, axis=1)
    cam_idx = np.concatenate([chosen[i, : counts[i]] for i in range(points)])
    pt_idx = np.repeat(np.arange(points), counts)
    order = np.argsort(cam_idx, kind="stable")  # as BAL files: by camera
    cam_idx, pt_idx = cam_idx[order].astype(np.int32), pt_idx[order].astype(np.int32)
    observed = project(cams, pts, cam_idx, pt_idx, xp=np)
    observed = observed + 0.5 * rng.standard_normal(observed.shape)
    cams0 = cams.copy()
    cams0[:, :3] += 1e-3 * rng.standard_normal((cameras, 3))
    cams0[:, 3:6] += 1e-2 * rng.standard_normal((cameras, 3))
    pts0 = pts + 0.02 * rng.standard_normal(pts.shape)
    return BundleProblem(cam_idx, pt_idx, observed, cams0, pts0, cams, pts)


def cost(problem: BundleProblem, params) -> float:
    """½‖r‖², as `scipy.optimize.least_squares` reports it."""
    r = residual(params, problem.args)
    return 0.5 * float(jnp.sum(r**2))


def solve(problem: BundleProblem, rtol: float = 1e-10, atol: float = 1e-10):
    """Detect the Jacobian's coloring, then solve with `SparseLevenbergMarquardt`.

    Returns `(solution, coloring, detect_seconds)`.
    """
    start = time.perf_counter()
    # Closed over, the index arrays are constants: detection sees which camera and
    # point each observation gathers.
    args = problem.args
    coloring = asdex.jacobian_coloring(lambda y: residual(y, args), problem.y0)
    detect = time.perf_counter() - start
    solver = aox.SparseLevenbergMarquardt(rtol, atol, coloring=coloring)
    sol = least_squares(solver, problem.y0, args)
    return sol, coloring, detect


@eqx.filter_jit
def least_squares(solver, y0, args):
    # The solver and the index arrays are arguments: its coloring's index arrays
    # and the observations enter the compiled program as arguments, not constants.
    return optx.least_squares(residual, solver, y0, args, max_steps=200)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--observations", type=int, default=2000)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    problem = make_problem(args.cameras, args.points, args.observations)
    unknowns = 9 * args.cameras + 3 * args.points
    print(
        f"bundle adjustment: {args.cameras} cameras, {args.points} points, "
        f"{args.observations} observations ({unknowns:,} unknowns, "
        f"{2 * args.observations:,} residuals)"
    )
    start = time.perf_counter()
    sol, coloring, detect = solve(problem)
    jax.block_until_ready(sol.value)
    total = time.perf_counter() - start
    print(f"Jacobian coloring ({detect:.2f} s):")
    print(coloring)
    final = cost(problem, sol.value)
    print(
        f"SparseLevenbergMarquardt: {int(sol.stats['num_steps'])} steps, cost "
        f"{cost(problem, problem.y0):.6e} -> {final:.6e}, {total:.2f} s with "
        "detection and compilation"
    )
    return {"cost": final, "seconds": total, "num_colors": coloring.num_colors}


if __name__ == "__main__":
    main()
