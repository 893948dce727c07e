"""`asdex.lineax.SparseSchur` against dense least-squares solves.

The block elimination is found from the pattern alone, so it is checked on
bundle-adjustment patterns (points eliminated, cameras left), on independent
blocks (nothing left), and on random patterns, where blocks are whatever the
search finds. Every solve is compared with `numpy.linalg.solve` of the dense
normal equations.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, strategies as st

import asdex
import asdex.optimistix as aox
from asdex.lineax import (
    SparseLinearSolver,
    SparseMatrixOperator,
    SparseSchur,
    damped_operator,
)
from asdex.lineax._schur_plan import schur_plan
from properties import property_tests


def operator_of(matrix: np.ndarray, dtype=np.float64) -> SparseMatrixOperator:
    csr = sp.csr_array(matrix)
    csr.sort_indices()
    pattern = asdex.SparsityPattern.from_scipy(csr)
    return SparseMatrixOperator(jnp.asarray(csr.data, dtype), pattern)


def bundle_matrix(rng, cameras=6, points=40, per_point=3, cam_size=9, pt_size=3):
    """A BA-shaped Jacobian: 2 rows per observation, a camera's and a point's
    columns (cameras first)."""
    rows = []
    for point in range(points):
        for cam in rng.choice(cameras, per_point, replace=False):
            for _ in range(2):
                row = np.zeros(cameras * cam_size + points * pt_size)
                row[cam * cam_size : (cam + 1) * cam_size] = rng.normal(size=cam_size)
                start = cameras * cam_size + point * pt_size
                row[start : start + pt_size] = rng.normal(size=pt_size)
                rows.append(row)
    return np.array(rows)


def dense_damped(matrix, b, damping):
    n = matrix.shape[1]
    return np.linalg.solve(matrix.T @ matrix + damping * np.eye(n), matrix.T @ b)


def solve(operator, vector, solver=None):
    solver = SparseSchur() if solver is None else solver
    return jax.jit(lambda o, v: lx.linear_solve(o, v, solver, throw=False))(
        operator, vector
    )


def test_plan_eliminates_the_points_of_bundle_adjustment(rng):
    matrix = bundle_matrix(rng)
    op = damped_operator(operator_of(matrix), 1e-3)
    plan = schur_plan(op.pattern, 16, 2000)
    assert plan is not None
    assert (plan.num_blocks, plan.block_size) == (40, 3)
    assert (plan.reduced_size, plan.group_size) == (6 * 9, 9)
    assert sorted(plan.reduced_cols.tolist()) == list(range(54))


@pytest.mark.parametrize("damping", [1e-3, 10.0])
@pytest.mark.parametrize("reduced", ["dense", "sparse"])
def test_damped_bundle_adjustment_matches_dense(rng, damping, reduced):
    matrix = bundle_matrix(rng)
    b = rng.normal(size=matrix.shape[0])
    op = damped_operator(operator_of(matrix), damping)
    # The 54 camera parameters left: a dense S, or a sparse one on the host.
    solver = SparseSchur(max_reduced=2000 if reduced == "dense" else 10)
    plan = schur_plan(op.pattern, solver.max_block, solver.max_reduced)
    assert (plan.s_pattern is None) == (reduced == "dense")
    sol = solve(op, (jnp.asarray(b), jnp.zeros(matrix.shape[1])), solver)
    assert sol.result == lx.RESULTS.successful
    expected = dense_damped(matrix, b, damping)
    np.testing.assert_allclose(sol.value, expected, rtol=1e-9, atol=1e-11)


def test_full_rank_undamped_matches_lstsq(rng):
    matrix = bundle_matrix(rng, per_point=4)
    # Fix the gauge freedom of the random model: a few rows on the cameras alone.
    anchors = np.zeros((54, matrix.shape[1]))
    anchors[:, :54] = rng.normal(size=(54, 54))
    matrix = np.vstack([matrix, anchors])
    b = rng.normal(size=matrix.shape[0])
    sol = solve(operator_of(matrix), jnp.asarray(b))
    assert sol.result == lx.RESULTS.successful
    expected = np.linalg.lstsq(matrix, b, rcond=None)[0]
    np.testing.assert_allclose(sol.value, expected, rtol=1e-8, atol=1e-10)


def test_independent_blocks_leave_no_reduced_system(rng):
    # Five independent fits of 4 parameters each: block diagonal.
    matrix = sp.block_diag([rng.normal(size=(10, 4)) for _ in range(5)]).toarray()
    op = operator_of(matrix)
    plan = schur_plan(op.pattern, 16, 2000)
    assert plan.reduced_size == 0 and plan.num_blocks == 5
    b = rng.normal(size=50)
    sol = solve(op, jnp.asarray(b))
    expected = np.linalg.lstsq(matrix, b, rcond=None)[0]
    np.testing.assert_allclose(sol.value, expected, rtol=1e-9, atol=1e-11)


def _random_patterns_match_dense(m, n, density, max_block, sparse_reduced, seed):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
    b = rng.normal(size=m)
    op = damped_operator(operator_of(matrix), 0.5)
    solver = SparseSchur(max_block=max_block, max_reduced=0 if sparse_reduced else n)
    sol = solve(op, (jnp.asarray(b), jnp.zeros(n)), solver)
    assert sol.result == lx.RESULTS.successful
    expected = dense_damped(matrix, b, 0.5)
    np.testing.assert_allclose(sol.value, expected, rtol=1e-9, atol=1e-10)


(
    test_random_patterns_match_dense,
    test_random_patterns_match_dense_thoroughly,
) = property_tests(
    _random_patterns_match_dense,
    default=6,
    thorough=30,
    given_kwargs=dict(
        m=st.integers(1, 30),
        n=st.integers(1, 20),
        density=st.floats(0.05, 0.6),
        max_block=st.sampled_from([1, 3, 16]),
        sparse_reduced=st.booleans(),
        seed=st.integers(0, 2**31 - 1),
    ),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def test_transposed_solve_is_minimum_norm(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    m, n = matrix.shape
    dense = matrix + np.vstack([np.zeros((m - n, n)), np.eye(n)])  # full rank
    op = operator_of(dense)
    solver = SparseSchur()

    @jax.jit
    def transposed_solve(op, b):
        state, options = solver.transpose(solver.init(op, {}), {})
        return solver.compute(state, b, options)[:2]

    b = rng.normal(size=n)
    x, result = transposed_solve(op, jnp.asarray(b))
    assert result == lx.RESULTS.successful
    np.testing.assert_allclose(x, np.linalg.pinv(dense.T) @ b, rtol=1e-8, atol=1e-10)


def test_gradients_through_the_solve_match_dense(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    op = damped_operator(operator_of(matrix), 0.1)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    zeros = jnp.zeros(matrix.shape[1])

    def loss(values):
        stacked = SparseMatrixOperator(
            values, op.pattern, op.in_structure(), op.out_structure()
        )
        x = lx.linear_solve(stacked, (b, zeros), SparseSchur()).value
        return jnp.sum(jnp.sin(x))

    def dense_loss(values):
        a = SparseMatrixOperator(values, op.pattern).as_matrix()
        x = jnp.linalg.solve(a.T @ a, a.T @ jnp.concatenate([b, zeros]))
        return jnp.sum(jnp.sin(x))

    np.testing.assert_allclose(
        jax.grad(loss)(op.values), jax.grad(dense_loss)(op.values), rtol=1e-7, atol=1e-9
    )


def test_vmap_over_values_matches_each_solve(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    base = operator_of(matrix)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    scales = jnp.asarray([0.5, 1.0, 2.0])

    def one(scale):
        op = SparseMatrixOperator(base.values * scale, base.pattern)
        op = damped_operator(op, 0.1)
        return lx.linear_solve(op, (b, jnp.zeros(matrix.shape[1])), SparseSchur()).value

    batched = jax.jit(jax.vmap(one))(scales)
    for i, scale in enumerate(np.asarray(scales)):
        expected = dense_damped(matrix * scale, np.asarray(b), 0.1)
        np.testing.assert_allclose(batched[i], expected, rtol=1e-9, atol=1e-11)


def test_float32(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    b = rng.normal(size=matrix.shape[0])
    op = damped_operator(operator_of(matrix, np.float32), np.float32(0.1))
    with jax.numpy_dtype_promotion("strict"):
        sol = solve(
            op, (jnp.asarray(b, jnp.float32), jnp.zeros(matrix.shape[1], jnp.float32))
        )
    assert sol.value.dtype == jnp.float32
    expected = dense_damped(matrix, b, 0.1)
    np.testing.assert_allclose(sol.value, expected, rtol=2e-4, atol=2e-4)


def test_rank_deficiency_falls_back_to_minimum_norm(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    matrix[:, 5] = 0.0  # a camera parameter that no residual sees
    b = rng.normal(size=matrix.shape[0])
    sol = solve(operator_of(matrix), jnp.asarray(b))
    assert sol.result == lx.RESULTS.successful
    np.testing.assert_allclose(
        sol.value, np.linalg.pinv(matrix) @ b, rtol=1e-7, atol=1e-9
    )
    # Without the fallback, the negligible pivot is reported, not solved through.
    strict = solve(operator_of(matrix), jnp.asarray(b), SparseSchur(fallback=False))
    assert strict.result == lx.RESULTS.singular


def test_errors_name_the_fix(rng):
    matrix = bundle_matrix(rng, cameras=3, points=10)
    with pytest.raises(ValueError, match="tall least-squares"):
        SparseSchur().init(operator_of(matrix.T), {})
    complex_op = SparseMatrixOperator(
        operator_of(matrix).values.astype(jnp.complex128), operator_of(matrix).pattern
    )
    with pytest.raises(ValueError, match="real operators"):
        SparseSchur().init(complex_op, {})


def test_sparse_linear_solver_picks_it_for_damped_stacks_only(rng):
    # 654 unknowns, 600 of them eliminated: above the small-size and 90% bars.
    matrix = bundle_matrix(rng, points=200)
    op = operator_of(matrix)
    auto = SparseLinearSolver()
    assert isinstance(auto.select_solver(damped_operator(op, 1e-3)), SparseSchur)
    # Undamped, rank is unknown: minimum-norm normal equations, unless promised.
    assert not isinstance(auto.select_solver(op), SparseSchur)
    assert isinstance(
        SparseLinearSolver(well_posed=True).select_solver(op), SparseSchur
    )


def test_reduced_groups_of_unequal_size_are_padded(rng):
    # Camera 0's last parameter is seen by half its rows only: its groups are 8
    # and 1 columns, the others 9, padded to 9 slots each. The padding's unit
    # pivots must not count as negligible next to the values' 10¹⁴.
    matrix = 1e7 * bundle_matrix(rng, cameras=6, points=40)
    seen = np.flatnonzero(matrix[:, 0])
    matrix[seen[::2], 8] = 0.0
    op = damped_operator(operator_of(matrix), 1e-3)
    plan = schur_plan(op.pattern, 16, 2000)
    assert plan.group_size == 9 and plan.reduced_size > 54
    b = rng.normal(size=matrix.shape[0])
    solver = SparseSchur(fallback=False)
    sol = solve(op, (jnp.asarray(b), jnp.zeros(matrix.shape[1])), solver)
    assert sol.result == lx.RESULTS.successful
    expected = dense_damped(matrix, b, 1e-3)
    np.testing.assert_allclose(sol.value, expected, rtol=1e-8, atol=1e-12)


def test_products_in_bounded_batches_match(rng, monkeypatch):
    # Large problems gather W V⁻¹ Wᵀ's pieces a batch of chunks at a time.
    import asdex.lineax._solver.schur as schur

    monkeypatch.setattr(schur, "_GATHERED", 200)
    matrix = bundle_matrix(rng)
    b = rng.normal(size=matrix.shape[0])
    op = damped_operator(operator_of(matrix), 1e-2)
    sol = solve(op, (jnp.asarray(b), jnp.zeros(matrix.shape[1])))
    expected = dense_damped(matrix, b, 1e-2)
    np.testing.assert_allclose(sol.value, expected, rtol=1e-9, atol=1e-11)


def test_levenberg_marquardt_under_vmap_matches_each_solve(rng):
    # A mildly nonlinear residual on a bundle-adjustment pattern, fitted to two
    # data sets at once: SparseLevenbergMarquardt's default solver is SparseSchur.
    matrix = bundle_matrix(rng, points=200)
    coo = sp.coo_array(matrix)
    rows, cols, vals = (jnp.asarray(a) for a in (coo.row, coo.col, coo.data))
    m, n = matrix.shape

    def residual(y, data):
        x = y[cols]
        return jax.ops.segment_sum(vals * (x + 0.1 * jnp.sin(x)), rows, m) - data

    coloring = asdex.jacobian_coloring(
        lambda y: residual(y, jnp.zeros(m)), jnp.zeros(n)
    )
    jac = asdex.SparseJacobianOperator(residual, jnp.zeros(n), jnp.zeros(m), coloring)
    assert isinstance(
        SparseLinearSolver().select_solver(damped_operator(jac, 1.0)), SparseSchur
    )
    solver = aox.SparseLevenbergMarquardt(1e-10, 1e-10, coloring=coloring)

    def fit(data):
        sol = optx.least_squares(residual, solver, jnp.zeros(n), data, throw=False)
        return sol.value, sol.result

    data = jnp.asarray(rng.normal(size=(2, m)))
    values, results = jax.jit(jax.vmap(fit))(data)
    for i in range(2):
        value, result = jax.jit(fit)(data[i])
        assert result == optx.RESULTS.successful
        np.testing.assert_allclose(values[i], value, rtol=1e-7, atol=1e-9)
