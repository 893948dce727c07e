"""Least squares whose residuals gather with index arrays: graphs and bundle adjustment.

The residuals index `y` with constant integer arrays (`y[src] - y[dst]`,
`cams[cam_idx]`). Inside `optx.least_squares` these arrays are traced values, so a
pattern detected there is dense; the solvers say so, and with a coloring detected
before the solve (`coloring=`, on the dedicated solvers and on
`asdex.SparseLinearSolver` for the stock ones) they solve sparsely. Oracle: the
same Optimistix solver with its dense default.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.optimistix as aox


def graph_problem(points=60, extra_edges=60, anchors=6, seed=0, reach=None):
    """2-D positions from edge lengths and a few anchored points (dict residuals).

    Each point is joined to the two before it (a generically rigid framework, so
    the positions are determined), plus `extra_edges` edges: between random points,
    or with `reach`, between points fewer than `reach` apart in the numbering (as in
    a sensor network, where only neighbours measure distances). Random edges make
    `JᵀJ` an expander, whose sparse factor fills in to nearly dense: at 10,000
    unknowns 5.3·10⁶ nonzeros in `L` and 8 s per factorisation, against 2.3·10⁵ and
    0.03 s with `reach=30`.
    """
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.0, 10.0, size=(points, 2))
    chain, skip = np.arange(points - 1), np.arange(points - 2)
    extra_src = rng.integers(0, points, extra_edges)
    if reach is None:
        extra_dst = rng.integers(0, points, extra_edges)
    else:
        extra_dst = (extra_src + rng.integers(3, reach, extra_edges)) % points
    src = np.concatenate([chain, skip, extra_src])
    dst = np.concatenate([chain + 1, skip + 2, extra_dst])
    dst = np.where(dst == src, (dst + 1) % points, dst)
    lengths = np.linalg.norm(true[src] - true[dst], axis=1)
    anchored = rng.choice(points, anchors, replace=False)

    def residual(y, args):
        d = y[src] - y[dst]
        return {
            "edges": jnp.sqrt(jnp.sum(d**2, axis=1)) - lengths,
            "anchors": y[anchored] - true[anchored],
        }

    y0 = jnp.asarray(true + 0.05 * rng.standard_normal(true.shape))
    return residual, y0, true


def _rotate(rvec, points):
    # Rodrigues' formula (the small offset keeps the angle differentiable at 0).
    theta = jnp.sqrt(jnp.sum(rvec**2, axis=-1, keepdims=True) + 1e-20)
    k = rvec / theta
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    dot = jnp.sum(k * points, axis=-1, keepdims=True)
    return points * cos + jnp.cross(k, points) * sin + k * dot * (1 - cos)


def bundle_problem(cameras=4, points=40, observations=160, seed=0, gauge=False):
    """Cameras of 9 parameters (rotation, translation, focal, 2 distortions).

    Reprojections alone leave the similarity gauge free (J is rank-deficient);
    `gauge=True` adds priors on the first camera and point, which fix it.
    """
    rng = np.random.default_rng(seed)
    cams = np.zeros((cameras, 9))
    cams[:, :3] = 0.1 * rng.standard_normal((cameras, 3))
    cams[:, 3:6] = 0.5 * rng.standard_normal((cameras, 3)) + np.array([0, 0, -10.0])
    cams[:, 6] = 1000 + 10 * rng.standard_normal(cameras)
    cams[:, 7:] = 1e-3 * rng.standard_normal((cameras, 2))
    pts = rng.standard_normal((points, 3))
    cam_idx = np.arange(observations) % cameras
    pt_idx = np.concatenate(
        [np.arange(points), rng.integers(0, points, observations - points)]
    )

    def project(cams, pts):
        c, p = cams[cam_idx], pts[pt_idx]
        q = _rotate(c[:, :3], p) + c[:, 3:6]
        q = -q[:, :2] / q[:, 2:3]
        r2 = jnp.sum(q**2, axis=1)
        scale = c[:, 6] * (1 + c[:, 7] * r2 + c[:, 8] * r2**2)
        return q * scale[:, None]

    observed = np.asarray(project(jnp.asarray(cams), jnp.asarray(pts)))
    observed = observed + 0.5 * rng.standard_normal(observed.shape)

    def residual(y, args):
        reprojection = (project(*y) - observed).reshape(-1)
        if not gauge:
            return reprojection
        priors = jnp.concatenate([y[0][0] - cams[0], y[1][0] - pts[0]])
        return jnp.concatenate([reprojection, priors])

    noise = np.concatenate(
        [1e-3 * rng.standard_normal((cameras, 6)), np.zeros((cameras, 3))], axis=1
    )
    y0 = (
        jnp.asarray(cams + noise),
        jnp.asarray(pts + 0.01 * rng.standard_normal(pts.shape)),
    )
    return residual, y0


def _cost(residual, y):
    return float(sum(jnp.sum(r**2) for r in jax.tree.leaves(residual(y, None))))


def _coloring(residual, y0):
    return asdex.jacobian_coloring(lambda y: residual(y, None), y0)


def test_graph_residual_dedicated_solvers_match_dense():
    residual, y0, true = graph_problem()
    coloring = _coloring(residual, y0)
    assert coloring.num_colors < 20  # the gather pattern, not a dense one
    reference = optx.least_squares(
        residual, optx.LevenbergMarquardt(1e-10, 1e-10), y0, max_steps=100
    )
    for cls in (aox.SparseLevenbergMarquardt, aox.SparseGaussNewton):
        solver = cls(1e-10, 1e-10, coloring=coloring)
        sol = optx.least_squares(residual, solver, y0, max_steps=100)
        assert sol.result == optx.RESULTS.successful
        np.testing.assert_allclose(sol.value, reference.value, atol=1e-7)
    np.testing.assert_allclose(reference.value, true, atol=1e-6)


def test_detection_inside_the_solve_warns_with_the_fix():
    """Without `coloring=`, the pattern is detected inside Optimistix's trace,
    where the index arrays are traced: the solver says so and names the fix."""
    residual, y0, _ = graph_problem(points=30, extra_edges=20, anchors=3)
    with pytest.warns(asdex.DenseColoringWarning, match="coloring="):
        optx.least_squares(
            residual, aox.SparseGaussNewton(1e-8, 1e-8), y0, max_steps=3, throw=False
        )
    # With a coloring from before the solve: no warning.
    solver = aox.SparseGaussNewton(1e-8, 1e-8, coloring=_coloring(residual, y0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", asdex.DenseColoringWarning)
        optx.least_squares(residual, solver, y0, max_steps=3, throw=False)


@pytest.mark.slow  # 54 s on the shared 2-core machine: the dense oracle compiles slowly
def test_bundle_adjustment_matches_dense():
    residual, y0 = bundle_problem()
    coloring = _coloring(residual, y0)
    assert coloring.pattern.nnz == 160 * 2 * 12  # 9 camera + 3 point columns
    reference = optx.least_squares(
        residual, optx.LevenbergMarquardt(1e-9, 1e-9), y0, max_steps=50, throw=False
    )
    solver = aox.SparseLevenbergMarquardt(1e-9, 1e-9, coloring=coloring)
    sol = optx.least_squares(residual, solver, y0, max_steps=50, throw=False)
    np.testing.assert_allclose(
        _cost(residual, sol.value), _cost(residual, reference.value), rtol=1e-6
    )


@pytest.mark.slow
def test_graph_residual_with_ten_thousand_unknowns():
    residual, y0, true = graph_problem(points=5000, extra_edges=5000, anchors=50)
    coloring = _coloring(residual, y0)
    solver = aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=coloring)
    sol = optx.least_squares(residual, solver, y0, max_steps=50)
    assert sol.result == optx.RESULTS.successful
    assert _cost(residual, sol.value) < 1e-12
    np.testing.assert_allclose(sol.value, true, atol=1e-5)


# ---------------------------------------------------------------- drop-ins

# `max_dense_size=0` and `small_size=0` leave the drop-in no dense way out: a
# solve that succeeds went through the sparse form.
_STOCK = {
    "LevenbergMarquardt": optx.LevenbergMarquardt,
    "GaussNewton": optx.GaussNewton,
    "Dogleg": optx.Dogleg,
    "IndirectLevenbergMarquardt": optx.IndirectLevenbergMarquardt,
}


def _sparse_only(coloring=None):
    return asdex.SparseLinearSolver(coloring=coloring, max_dense_size=0, small_size=0)


@pytest.mark.parametrize(
    "name",
    [
        name
        if name in ("LevenbergMarquardt", "IndirectLevenbergMarquardt")
        else pytest.param(name, marks=pytest.mark.slow)
        for name in _STOCK
    ],
)
def test_stock_solvers_solve_graph_residuals_sparsely(name):
    residual, y0, _ = graph_problem(points=40, extra_edges=80, anchors=4)
    cls = _STOCK[name]
    reference = optx.least_squares(residual, cls(1e-9, 1e-9), y0, max_steps=60)
    solver = cls(1e-9, 1e-9, linear_solver=_sparse_only(_coloring(residual, y0)))
    sol = optx.least_squares(residual, solver, y0, max_steps=60)
    assert sol.result == optx.RESULTS.successful
    assert int(sol.stats["num_steps"]) == int(reference.stats["num_steps"])
    np.testing.assert_allclose(sol.value, reference.value, atol=1e-7)


def test_stock_solver_without_coloring_names_the_fix():
    residual, y0, _ = graph_problem(points=40, extra_edges=80, anchors=4)
    solver = optx.LevenbergMarquardt(1e-9, 1e-9, linear_solver=_sparse_only())
    with pytest.raises(ValueError, match=r"SparseLinearSolver\(coloring="):
        optx.least_squares(residual, solver, y0, max_steps=3)
    # Where the dense fallback is allowed, it is taken with a warning that says so.
    solver = optx.LevenbergMarquardt(
        1e-9, 1e-9, linear_solver=asdex.SparseLinearSolver(small_size=0)
    )
    with pytest.warns(asdex.DenseColoringWarning, match="coloring="):
        optx.least_squares(residual, solver, y0, max_steps=3, throw=False)


def test_coloring_of_another_graph_is_refused_at_run_time():
    """Same shapes, other edges: the probe product catches the misfit."""
    residual, y0, _ = graph_problem(points=40, extra_edges=80, anchors=4)
    other, _, _ = graph_problem(points=40, extra_edges=80, anchors=4, seed=1)
    solver = optx.GaussNewton(
        1e-9, 1e-9, linear_solver=_sparse_only(_coloring(other, y0))
    )
    with pytest.raises(Exception, match="does not fit"):
        optx.least_squares(residual, solver, y0, max_steps=3, throw=False)


def test_stock_levenberg_marquardt_on_a_small_bundle_adjustment():
    residual, y0 = bundle_problem(cameras=3, points=20, observations=60, gauge=True)
    reference = optx.least_squares(
        residual, optx.LevenbergMarquardt(1e-6, 1e-6), y0, max_steps=50
    )
    linear_solver = _sparse_only(_coloring(residual, y0))
    solver = optx.LevenbergMarquardt(1e-6, 1e-6, linear_solver=linear_solver)
    sol = optx.least_squares(residual, solver, y0, max_steps=50)
    assert sol.result == optx.RESULTS.successful
    np.testing.assert_allclose(
        _cost(residual, sol.value), _cost(residual, reference.value), rtol=1e-6
    )


def test_stock_levenberg_marquardt_with_ten_thousand_unknowns():
    # 15 steps, 0.7 s once compiled (2.3 s with compilation) on 2 cores.
    residual, y0, true = graph_problem(
        points=5000, extra_edges=5000, anchors=50, reach=30
    )
    solver = optx.LevenbergMarquardt(
        1e-10,
        1e-10,
        linear_solver=asdex.SparseLinearSolver(coloring=_coloring(residual, y0)),
    )
    sol = optx.least_squares(residual, solver, y0, max_steps=50)
    assert sol.result == optx.RESULTS.successful
    np.testing.assert_allclose(sol.value, true, atol=1e-5)
