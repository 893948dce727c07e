"""`asdex.lineax.SparseAMG` and the automatic choice of it, against direct solves."""

import warnings

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import asdex
from asdex.lineax import (
    SparseAMG,
    SparseCholesky,
    SparseLinearSolver,
    SparseMatrixOperator,
    _amg,
)
from asdex.lineax._superlu import factor_cache


@pytest.fixture(autouse=True)
def _fresh_caches():
    _amg.clear()
    factor_cache.clear()
    yield
    _amg.clear()
    factor_cache.clear()


def laplacian(n: int, shift: float = 0.5) -> sp.csr_array:
    """The shifted 5-point Laplacian on an n × n grid: symmetric positive definite."""
    t = sp.diags_array(
        [-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1]
    )
    eye = sp.eye_array(n)
    return (sp.kron(t, eye) + sp.kron(eye, t) + shift * sp.eye_array(n * n)).tocsr()


def convection_diffusion(n: int) -> sp.csr_array:
    """A nonsymmetric M-matrix: the Laplacian plus an upwinded convection term."""
    upwind = sp.diags_array([-np.ones(n - 1), np.ones(n)], offsets=[-1, 0])
    eye = sp.eye_array(n)
    return (laplacian(n) + 2.0 * sp.kron(upwind, eye)).tocsr()


def as_operator(matrix: sp.sparray, tags=(), dtype=np.float64) -> SparseMatrixOperator:
    pattern = asdex.SparsityPattern.from_any(matrix)
    values = np.asarray(sp.csr_array(matrix)[pattern.rows, pattern.cols]).ravel()
    return SparseMatrixOperator(jnp.asarray(values, dtype), pattern, tags=tags)


def test_matches_a_direct_solve_under_jit(rng):
    matrix = laplacian(40)
    b = rng.normal(size=matrix.shape[0])
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    solve = jax.jit(lambda op, b: lx.linear_solve(op, b, SparseAMG()))
    solution = solve(operator, jnp.asarray(b))
    assert solution.result == lx.RESULTS.successful
    expected = spla.spsolve(matrix.tocsc(), b)
    np.testing.assert_allclose(solution.value, expected, rtol=1e-8, atol=1e-10)
    # The stopping test: the normwise backward error is below rtol = 1e-10.
    x = np.asarray(solution.value)
    residual = np.max(np.abs(b - matrix @ x))
    a_norm = abs(matrix).sum(axis=1).max()
    assert residual <= 1e-10 * (a_norm * np.max(np.abs(x)) + np.max(np.abs(b)))


def test_float32_and_negative_definite(rng):
    matrix = laplacian(30)
    b = rng.normal(size=matrix.shape[0]).astype(np.float32)
    operator = as_operator(-matrix, lx.negative_semidefinite_tag, dtype=np.float32)
    solution = lx.linear_solve(operator, jnp.asarray(b), SparseAMG(rtol=1e-6))
    assert solution.value.dtype == jnp.float32
    expected = spla.spsolve(-matrix.tocsc(), b.astype(np.float64))
    np.testing.assert_allclose(solution.value, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ruge_stuben", "smoothed_aggregation"])
def test_gmres_on_a_nonsymmetric_matrix_and_its_transpose(rng, method):
    matrix = convection_diffusion(30)
    b = rng.normal(size=matrix.shape[0])
    operator = as_operator(matrix)
    solver = SparseAMG(method=method)  # untagged: GMRES
    solution = lx.linear_solve(operator, jnp.asarray(b), solver)
    np.testing.assert_allclose(
        solution.value, spla.spsolve(matrix.tocsc(), b), rtol=1e-7, atol=1e-9
    )
    transposed = lx.linear_solve(operator.T, jnp.asarray(b), solver)
    np.testing.assert_allclose(
        transposed.value, spla.spsolve(matrix.T.tocsc(), b), rtol=1e-7, atol=1e-9
    )


def test_derivatives_match_the_dense_solve(rng):
    matrix = laplacian(12)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    dense = jnp.asarray(matrix.toarray())

    def loss(values, b, solver):
        op = SparseMatrixOperator(values, operator.pattern, tags=operator.tags)
        return jnp.sum(lx.linear_solve(op, b, solver).value ** 2)

    def dense_loss(matrix, b):
        return jnp.sum(jnp.linalg.solve(matrix, b) ** 2)

    g_values, g_b = jax.grad(loss, argnums=(0, 1))(operator.values, b, SparseAMG())
    d_matrix, d_b = jax.grad(dense_loss, argnums=(0, 1))(dense, b)
    pattern = operator.pattern
    np.testing.assert_allclose(g_b, d_b, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(
        g_values, d_matrix[pattern.rows, pattern.cols], rtol=1e-7, atol=1e-10
    )


def test_vmap_over_matrices_and_right_hand_sides(rng):
    matrix = laplacian(20)
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    shifts = jnp.asarray([0.0, 1.0, 3.0])
    diagonal = jnp.asarray(operator.pattern.rows == operator.pattern.cols, jnp.float64)
    bs = jnp.asarray(rng.normal(size=(3, matrix.shape[0])))

    def solve(shift, b):
        values = operator.values + shift * diagonal
        op = SparseMatrixOperator(values, operator.pattern, tags=operator.tags)
        return lx.linear_solve(op, b, SparseAMG()).value

    batched = jax.jit(jax.vmap(solve))(shifts, bs)
    for k in range(3):
        shifted = matrix + float(shifts[k]) * sp.eye_array(matrix.shape[0])
        expected = spla.spsolve(shifted.tocsc(), np.asarray(bs[k]))
        np.testing.assert_allclose(batched[k], expected, rtol=1e-8, atol=1e-10)


def test_the_hierarchy_is_reused_for_a_new_matrix_on_the_pattern(rng):
    matrix = laplacian(40)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    first = as_operator(matrix, lx.positive_semidefinite_tag)
    lx.linear_solve(first, b, SparseAMG())
    (hierarchy,) = _amg._hierarchies.values()
    shifted = matrix + 0.3 * sp.eye_array(matrix.shape[0])
    second = as_operator(shifted, lx.positive_semidefinite_tag)
    solution = lx.linear_solve(second, b, SparseAMG())
    # The second matrix reused the first's hierarchy, and is still solved exactly.
    assert list(_amg._hierarchies.values()) == [hierarchy]
    np.testing.assert_allclose(
        solution.value,
        spla.spsolve(shifted.tocsc(), np.asarray(b)),
        rtol=1e-8,
        atol=1e-10,
    )
    # Without reuse, each matrix builds its own.
    lx.linear_solve(first, b, SparseAMG(reuse=False))
    (rebuilt,) = _amg._hierarchies.values()
    assert rebuilt is not hierarchy


def test_one_matrix_builds_one_hierarchy_for_all_its_solves(rng, monkeypatch):
    builds = []
    build = _amg._build
    monkeypatch.setattr(_amg, "_build", lambda *a: builds.append(1) or build(*a))
    matrix = laplacian(20)
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    bs = jnp.asarray(rng.normal(size=(4, matrix.shape[0])))
    solver = SparseAMG(reuse=False)
    solve = jax.vmap(lambda b: lx.linear_solve(operator, b, solver).value)
    xs = solve(bs)
    assert len(builds) == 1
    for x, b in zip(xs, bs, strict=True):
        np.testing.assert_allclose(
            x, spla.spsolve(matrix.tocsc(), np.asarray(b)), rtol=1e-8, atol=1e-10
        )


def test_no_convergence_is_reported_with_its_residual(rng):
    matrix = laplacian(40)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    solver = SparseAMG(rtol=1e-14, max_steps=1)
    with pytest.warns(
        RuntimeWarning, match=r"did not converge in 1 iteration: max \|b - A x\| = "
    ):
        solution = jax.jit(lambda op, b: lx.linear_solve(op, b, solver, throw=False))(
            operator, b
        )
    assert solution.result == lx.RESULTS.max_steps_reached
    assert bool(jnp.all(jnp.isnan(solution.value)))
    with pytest.warns(RuntimeWarning), pytest.raises(Exception, match="maximum number"):
        jax.block_until_ready(lx.linear_solve(operator, b, solver).value)


def test_fallback_factorises_and_remembers_the_pattern(rng):
    matrix = laplacian(40)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    solver = SparseAMG(rtol=1e-14, max_steps=1, fallback=True)
    with pytest.warns(RuntimeWarning, match="factorising it directly instead"):
        solution = lx.linear_solve(operator, b, solver)
    expected = spla.spsolve(matrix.tocsc(), np.asarray(b))
    np.testing.assert_allclose(solution.value, expected, rtol=1e-10)
    # A new matrix on the same pattern goes straight to the factorisation.
    shifted = as_operator(
        matrix + sp.eye_array(matrix.shape[0]), lx.positive_semidefinite_tag
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = lx.linear_solve(shifted, b, solver)
    assert again.result == lx.RESULTS.successful


def test_sparse_linear_solver_picks_multigrid_for_large_grids():
    tags = lx.positive_semidefinite_tag
    grid = as_operator(laplacian(150), tags)  # 22,500 unknowns
    assert isinstance(SparseLinearSolver().select_solver(grid), SparseAMG)
    assert SparseLinearSolver().select_solver(grid).fallback
    # Below the threshold, untagged, or a narrow band: direct.
    assert isinstance(
        SparseLinearSolver().select_solver(as_operator(laplacian(100), tags)),
        SparseCholesky,
    )
    assert not isinstance(
        SparseLinearSolver().select_solver(as_operator(laplacian(150))), SparseAMG
    )
    n = 30_000
    band = sp.diags_array(
        [-np.ones(n - 1), 3 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1]
    )
    assert isinstance(
        SparseLinearSolver().select_solver(as_operator(band, tags)), SparseCholesky
    )


def test_sparse_linear_solver_solves_a_large_grid_like_cholesky(rng):
    matrix = laplacian(150)
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    operator = as_operator(matrix, lx.positive_semidefinite_tag)
    auto = lx.linear_solve(operator, b, SparseLinearSolver())
    direct = lx.linear_solve(operator, b, SparseCholesky())
    np.testing.assert_allclose(auto.value, direct.value, rtol=1e-8, atol=1e-10)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="method"):
        SparseAMG(method="geometric")
    with pytest.raises(ValueError, match="krylov"):
        SparseAMG(krylov="minres")
    with pytest.raises(ValueError, match="rtol"):
        SparseAMG(rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        SparseAMG(max_steps=0)
    one_way = sp.lil_array(laplacian(5))
    one_way[0, 10] = 1.0
    operator = as_operator(one_way)
    with pytest.raises(ValueError, match="symmetric"):
        lx.linear_solve(operator, jnp.ones(25), SparseAMG(krylov="cg"))
    complex_op = as_operator(laplacian(5), dtype=np.complex128)
    with pytest.raises(ValueError, match="real systems"):
        lx.linear_solve(complex_op, jnp.ones(25, jnp.complex128), SparseAMG())
