"""The sparse linear solvers of `asdex.lineax` against dense `jnp.linalg` solves.

Every solve is compared with `jnp.linalg.solve` (square) or `jnp.linalg.lstsq`
(rectangular) on the dense matrix, and every derivative with `jax.grad` of the
dense solve.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from optimistix._search import FunctionInfo
from optimistix._solver.levenberg_marquardt import damped_newton_step

import asdex.lineax as alx
from asdex.lineax import (
    SparseCholesky,
    SparseKrylov,
    SparseLinearSolver,
    SparseLU,
    SparseMatrixOperator,
    SparseNormalEquations,
    jacobi_preconditioner,
)
from asdex.lineax._superlu import factor_cache
from helpers import load_script


def random_sparse(rng, m, n, density=0.3, diagonal=0.0, dtype=np.float64):
    matrix = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
    k = min(m, n)
    matrix[np.arange(k), np.arange(k)] += diagonal
    return matrix.astype(dtype)


def random_spd(rng, n, dtype=np.float64):
    a = random_sparse(rng, n, n, density=0.2)
    return (a @ a.T + n * np.eye(n)).astype(dtype)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def krylov(inner):
    return SparseKrylov(inner)


TOL = {np.float64: 1e-9, np.float32: 2e-4}

# (name, solver, kind of matrix): "general" square, "spd" square and tagged,
# "tall" / "wide" rectangular of full rank.
CASES = [
    ("lu", SparseLU(), "general"),
    ("cholesky", SparseCholesky(), "spd"),
    ("normal-square", SparseNormalEquations(), "general"),
    ("normal-tall", SparseNormalEquations(), "tall"),
    ("normal-wide", SparseNormalEquations(), "wide"),
    ("auto-spd", SparseLinearSolver(), "spd"),
    ("auto-tall", SparseLinearSolver(), "tall"),
    ("gmres", krylov(lx.GMRES(rtol=1e-10, atol=1e-10)), "general"),
    ("bicgstab", krylov(lx.BiCGStab(rtol=1e-10, atol=1e-10)), "general"),
    ("cg", krylov(lx.CG(rtol=1e-10, atol=1e-10)), "spd"),
    ("normal-cg", krylov(lx.Normal(lx.CG(rtol=1e-12, atol=1e-12))), "tall"),
    ("lsmr", krylov(lx.LSMR(rtol=1e-12, atol=1e-12)), "tall"),
]


def make_matrix(rng, kind, dtype=np.float64, n=12):
    if kind == "spd":
        return random_spd(rng, n, dtype), lx.positive_semidefinite_tag
    shape = {"general": (n, n), "tall": (n + 5, n), "wide": (n - 4, n)}[kind]
    return random_sparse(rng, *shape, diagonal=4.0, dtype=dtype), ()


def reference(matrix, b):
    m, n = matrix.shape
    if m == n:
        return np.linalg.solve(matrix, b)
    return np.linalg.lstsq(matrix, b, rcond=None)[0]


@pytest.mark.parametrize("name, solver, kind", CASES, ids=[c[0] for c in CASES])
def test_against_dense(rng, name, solver, kind):
    matrix, tags = make_matrix(rng, kind)
    operator = SparseMatrixOperator.from_dense(matrix, tags=tags)
    b = rng.normal(size=matrix.shape[0])
    solution = lx.linear_solve(operator, jnp.asarray(b), solver)
    assert solution.result == lx.RESULTS.successful
    np.testing.assert_allclose(
        solution.value, reference(matrix, b), atol=TOL[np.float64]
    )
    if isinstance(solver, SparseKrylov):
        return  # Lineax's own transposition rules; the wrapper only forwards them.
    # The transposed system, with the transposed operator.
    c = rng.normal(size=matrix.shape[1])
    transposed = lx.linear_solve(operator.T, jnp.asarray(c), solver).value
    np.testing.assert_allclose(transposed, reference(matrix.T, c), atol=TOL[np.float64])


@pytest.mark.parametrize(
    "solver", [SparseLU(), SparseCholesky(), SparseNormalEquations()]
)
def test_float32(rng, solver):
    matrix, tags = make_matrix(rng, "spd", np.float32)
    operator = SparseMatrixOperator.from_dense(matrix, tags=tags)
    b = rng.normal(size=12).astype(np.float32)
    x = lx.linear_solve(operator, jnp.asarray(b), solver).value
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(
        x,
        np.linalg.solve(matrix.astype(np.float64), b),
        rtol=TOL[np.float32],
        atol=TOL[np.float32],
    )


def test_complex_lu(rng):
    matrix = random_sparse(rng, 8, 8, diagonal=4.0) + 1j * random_sparse(rng, 8, 8)
    operator = SparseMatrixOperator.from_dense(matrix)
    b = rng.normal(size=8) + 1j * rng.normal(size=8)
    x = lx.linear_solve(operator, jnp.asarray(b), SparseLU()).value
    np.testing.assert_allclose(x, np.linalg.solve(matrix, b), atol=1e-10)


def test_cholesky_backends(rng):
    """Real matrices go to LAPACK's banded Cholesky when their band is compact
    after reordering (these 10 × 10 ones are), complex ones to SuperLU's symmetric
    mode; both solve, and the factor cache keeps each kind of factor."""
    from asdex.lineax._banded import BandedCholesky

    real = random_sparse(rng, 10, 10, diagonal=4.0)
    real = real + real.T + 20 * np.eye(10)
    complex_ = real + 1j * np.diag(rng.normal(size=10))
    for matrix in (real, complex_):
        operator = SparseMatrixOperator.from_dense(
            matrix, tags=lx.positive_semidefinite_tag
        )
        b = jnp.asarray(rng.normal(size=10).astype(matrix.dtype))
        factor_cache.clear()
        x = lx.linear_solve(operator, b, SparseCholesky()).value
        np.testing.assert_allclose(x, np.linalg.solve(matrix, b), rtol=1e-10)
        (entry,) = factor_cache._entries
        assert isinstance(entry.factor, BandedCholesky) == np.isrealobj(matrix)


@pytest.mark.parametrize(
    "name, matrix, uses_ldl",
    [
        (
            "definite",
            np.diag([4.0, 5, 6, 7]) - 0.5 * (np.eye(4, k=1) + np.eye(4, k=-1)),
            True,
        ),
        (
            "indefinite",
            np.diag([4.0, -5, 6, -7]) + np.eye(4, k=1) + np.eye(4, k=-1),
            True,
        ),
        (
            "zero pivot",
            np.diag([1.0, 2, 3], k=1) + np.diag([1.0, 2, 3], k=-1),
            False,
        ),
        ("unstable pivot", np.kron(np.eye(2), [[1e-20, 1], [1, 1]]), False),
    ],
)
def test_symmetric_values_try_ldl_then_lu(name, matrix, uses_ldl, monkeypatch):
    """An untagged matrix with symmetric values is tried as L D Lᵀ; a zero pivot or
    a large backward error falls back to pivoted LU, and the answer is right."""
    import asdex.lineax._superlu as superlu
    from asdex.lineax._ldl import CheckedLDLFactor

    # These small matrices are banded (and tridiagonal, or blocks); the banded LU
    # is tested in test_banded.py, the solves in XLA in test_small_structure.py.
    monkeypatch.setattr(superlu, "band_widths", lambda pattern: None)
    monkeypatch.setattr(superlu, "solve_in_xla", lambda *args: None)

    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.asarray([1.0, 2.0, 3.0, 4.0])
    factor_cache.clear()
    for solver in (SparseLU(), SparseLinearSolver()):
        x = lx.linear_solve(operator, b, solver).value
        np.testing.assert_allclose(matrix @ x, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x, np.linalg.solve(matrix, b), rtol=1e-10)
        (entry,) = factor_cache._entries
        assert isinstance(entry.factor, CheckedLDLFactor), name
        assert entry.factor.uses_ldl == uses_ldl, name
    # The transposed solve (reverse mode) reuses the factor.
    grad = jax.grad(lambda b: jnp.sum(lx.linear_solve(operator, b, SparseLU()).value))(
        b
    )
    np.testing.assert_allclose(grad, np.linalg.solve(matrix.T, np.ones(4)), rtol=1e-10)


@pytest.mark.parametrize(
    "solver, kind", [(SparseLU(), "general"), (SparseNormalEquations(), "tall")]
)
def test_solver_transpose_state(rng, solver, kind):
    """`solver.transpose(solver.init(A))` solves with Aᵀ, as Lineax requires."""
    matrix, tags = make_matrix(rng, kind)
    operator = SparseMatrixOperator.from_dense(matrix, tags=tags)
    state = solver.init(operator, {})
    state_t, _ = solver.transpose(state, {})
    state_c, _ = solver.conj(state_t, {})
    c = jnp.asarray(rng.normal(size=matrix.shape[1]))
    for s in (state_t, state_c):
        x, result, _ = solver.compute(s, c, {})
        assert result == lx.RESULTS.successful
        np.testing.assert_allclose(x, reference(matrix.T, np.asarray(c)), atol=1e-9)


def test_pytree_structures(rng):
    ins = {
        "a": jax.ShapeDtypeStruct((2, 3), jnp.float64),
        "b": jax.ShapeDtypeStruct((4,), jnp.float64),
    }
    outs = (
        jax.ShapeDtypeStruct((5,), jnp.float64),
        jax.ShapeDtypeStruct((5,), jnp.float64),
    )
    matrix = random_sparse(rng, 10, 10, diagonal=4.0)
    operator = SparseMatrixOperator.from_dense(matrix, ins, outs)
    b = rng.normal(size=10)
    vector = (jnp.asarray(b[:5]), jnp.asarray(b[5:]))
    for solver in (SparseLU(), SparseLinearSolver(), SparseNormalEquations()):
        x = lx.linear_solve(operator, vector, solver).value
        assert jax.tree.structure(x) == jax.tree.structure(ins)
        np.testing.assert_allclose(flat(x), np.linalg.solve(matrix, b), atol=1e-10)
    # A tall PyTree operator: least squares.
    outs_tall = (
        jax.ShapeDtypeStruct((9,), jnp.float64),
        jax.ShapeDtypeStruct((5,), jnp.float64),
    )
    tall = random_sparse(rng, 14, 10, diagonal=4.0)
    operator = SparseMatrixOperator.from_dense(tall, ins, outs_tall)
    b = rng.normal(size=14)
    x = lx.linear_solve(
        operator, (jnp.asarray(b[:9]), jnp.asarray(b[9:])), SparseLinearSolver()
    ).value
    np.testing.assert_allclose(flat(x), reference(tall, b), atol=1e-10)


def test_jit_and_vmap(rng):
    matrix = random_sparse(rng, 10, 10, diagonal=4.0)
    operator = SparseMatrixOperator.from_dense(matrix)
    pattern = operator.pattern
    scales = jnp.asarray([1.0, 2.0, 3.0])
    values = operator.values[None] * scales[:, None]
    bs = jnp.asarray(rng.normal(size=(4, 10)))

    def solve(v, b):
        op = SparseMatrixOperator(v, pattern, indices=operator.indices)
        return lx.linear_solve(op, b, SparseLU()).value

    factor_cache.clear()
    # Right-hand sides batched: one factorisation serves the batch.
    x = jax.jit(jax.vmap(solve, in_axes=(None, 0)))(operator.values, bs)
    np.testing.assert_allclose(
        x, np.linalg.solve(matrix, np.asarray(bs).T).T, atol=1e-10
    )
    assert factor_cache.misses == 1
    # Matrices batched, and both batched (nested vmap).
    x = jax.jit(jax.vmap(jax.vmap(solve, in_axes=(None, 0)), in_axes=(0, None)))(
        values, bs
    )
    expected = np.stack(
        [np.linalg.solve(s * matrix, np.asarray(bs).T).T for s in [1, 2, 3]]
    )
    np.testing.assert_allclose(x, expected, atol=1e-10)
    x = jax.vmap(solve)(values, bs[:3])
    np.testing.assert_allclose(
        x, np.stack([expected[i, i] for i in range(3)]), atol=1e-10
    )


def _loss(solver, pattern, tags, b_shape):
    def loss(values, b):
        op = SparseMatrixOperator(values, pattern, tags=tags)
        x = lx.linear_solve(op, b, solver).value
        return jnp.sum(jnp.sin(x))

    return loss


def _dense_loss(matrix, b):
    m, n = matrix.shape
    if m == n:
        x = jnp.linalg.solve(matrix, b)
    else:
        x = jnp.linalg.pinv(matrix) @ b
    return jnp.sum(jnp.sin(x))


@pytest.mark.parametrize(
    "solver, kind",
    [
        (SparseLU(), "general"),
        (SparseCholesky(), "spd"),
        (SparseNormalEquations(), "tall"),
        pytest.param(SparseNormalEquations(), "wide", marks=pytest.mark.slow),
    ],
    ids=["lu", "cholesky", "normal-tall", "normal-wide"],
)
def test_grad_against_dense(rng, solver, kind):
    matrix, tags = make_matrix(rng, kind)
    operator = SparseMatrixOperator.from_dense(matrix, tags=tags)
    pattern = operator.pattern
    b = jnp.asarray(rng.normal(size=matrix.shape[0]))
    loss = _loss(solver, pattern, tags, b.shape)
    factor_cache.clear()
    g_values, g_b = jax.jit(jax.grad(loss, argnums=(0, 1)))(operator.values, b)
    if kind != "spd":  # symmetric tags: only symmetric perturbations are meaningful
        # Solve and transposed solve share one factorisation.
        assert factor_cache.misses == 1
    d_matrix, d_b = jax.grad(_dense_loss, argnums=(0, 1))(jnp.asarray(matrix), b)
    np.testing.assert_allclose(g_b, d_b, rtol=1e-8, atol=1e-10)
    if kind == "spd":
        # Lineax differentiates along the operator's own tangents; for a symmetric
        # matrix compare directional derivatives along a symmetric perturbation.
        t = rng.normal(size=matrix.shape)
        t = (t + t.T) * (matrix != 0)
        tv = t[pattern.rows, pattern.cols]
        ours = float(jnp.vdot(g_values, tv))
        theirs = float(jnp.vdot(d_matrix, t))
        np.testing.assert_allclose(ours, theirs, rtol=1e-8)
    else:
        np.testing.assert_allclose(
            g_values, d_matrix[pattern.rows, pattern.cols], rtol=1e-8, atol=1e-10
        )
    if kind == "general":
        # Forward mode agrees too.
        tangent = jnp.asarray(rng.normal(size=pattern.nnz))
        _, jvp = jax.jvp(lambda v: loss(v, b), (operator.values,), (tangent,))
        np.testing.assert_allclose(jvp, jnp.vdot(g_values, tangent), rtol=1e-8)


def test_singular(rng):
    matrix = random_sparse(rng, 8, 8, diagonal=4.0)
    matrix[3] = 0.0  # an empty row: exactly singular
    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.ones(8)
    spd_singular = np.diag([1.0, 2.0, 0.0, 3.0])
    tall_rank_deficient = np.zeros((6, 3))
    tall_rank_deficient[:, 0] = 1.0
    tall_rank_deficient[:3, 1] = 2.0
    cases = [
        (operator, SparseLU(), b),
        (operator, SparseLinearSolver(), b),
        (
            SparseMatrixOperator.from_dense(
                spd_singular, tags=lx.positive_semidefinite_tag
            ),
            SparseCholesky(),
            jnp.ones(4),
        ),
        (
            # Only when full rank is assumed; by default this is a minimum-norm
            # solve (tests/test_rank_deficient.py).
            SparseMatrixOperator.from_dense(tall_rank_deficient),
            SparseNormalEquations(min_norm=False),
            jnp.ones(6),
        ),
    ]
    for op, solver, vector in cases:
        solution = lx.linear_solve(op, vector, solver, throw=False)
        assert solution.result == lx.RESULTS.singular, type(solver).__name__
        with pytest.raises(Exception, match="non-finite"):
            jax.block_until_ready(lx.linear_solve(op, vector, solver).value)
    # Under jit and vmap, per batch element.
    scales = jnp.asarray([1.0, 0.0])
    regular = SparseMatrixOperator.from_dense(random_sparse(rng, 8, 8, diagonal=4.0))

    def succeeded(scale):
        solution = lx.linear_solve(regular * scale, b, SparseLU(), throw=False)
        return solution.result == lx.RESULTS.successful

    assert jax.jit(jax.vmap(succeeded))(scales).tolist() == [True, False]
    # Non-finite values are reported, not factorised.
    nan = SparseMatrixOperator(operator.values.at[0].set(jnp.nan), operator.pattern)
    assert (
        lx.linear_solve(nan, b, SparseLU(), throw=False).result != lx.RESULTS.successful
    )


def test_factor_cache(rng):
    matrix = random_sparse(rng, 9, 9, diagonal=4.0)
    operator = SparseMatrixOperator.from_dense(matrix)
    b = jnp.ones(9)
    factor_cache.clear()
    solve = jax.jit(lambda op, b: lx.linear_solve(op, b, SparseLU()).value)
    solve(operator, b)
    solve(operator, 2 * b)
    assert (factor_cache.misses, factor_cache.hits) == (1, 1)
    changed = SparseMatrixOperator(operator.values * 2, operator.pattern)
    np.testing.assert_allclose(
        solve(changed, b), np.linalg.solve(2 * matrix, np.ones(9)), atol=1e-10
    )
    assert factor_cache.misses == 2
    previous = alx.set_factor_cache_size(0)
    try:
        solve(changed, b)
        solve(changed, b)
        assert factor_cache.misses == 4
    finally:
        alx.set_factor_cache_size(previous)
    with pytest.raises(ValueError, match="non-negative"):
        alx.set_factor_cache_size(-1)


def test_jacobi_preconditioner(rng):
    spd = random_spd(rng, 8)
    psd = SparseMatrixOperator.from_dense(spd, tags=lx.positive_semidefinite_tag)
    pre = jacobi_preconditioner(psd)
    assert lx.is_positive_semidefinite(pre)
    np.testing.assert_allclose(lx.diagonal(pre), 1 / np.diag(spd))
    nsd = jacobi_preconditioner(
        SparseMatrixOperator.from_dense(-spd, tags=lx.negative_semidefinite_tag)
    )
    np.testing.assert_allclose(lx.diagonal(nsd), 1 / np.diag(spd))
    general = random_sparse(rng, 6, 6)
    general[2, 2] = 0.0
    pre = jacobi_preconditioner(
        SparseMatrixOperator.from_dense(general + np.diag([1.0, 2, 0, 3, 4, 5]))
    )
    assert not lx.is_positive_semidefinite(pre)
    assert np.isfinite(lx.diagonal(pre)).all()
    tall = random_sparse(rng, 9, 4, diagonal=1.0)
    pre = jacobi_preconditioner(SparseMatrixOperator.from_dense(tall), normal=True)
    np.testing.assert_allclose(lx.diagonal(pre) ** 2, 1 / (tall**2).sum(axis=0))
    with pytest.raises(ValueError, match="normal=True"):
        jacobi_preconditioner(SparseMatrixOperator.from_dense(tall))
    # Passed explicitly, as an option to Lineax's own solvers.
    x = lx.linear_solve(
        psd,
        jnp.ones(8),
        lx.CG(rtol=1e-10, atol=1e-10),
        options={"preconditioner": jacobi_preconditioner(psd)},
    ).value
    np.testing.assert_allclose(x, np.linalg.solve(spd, np.ones(8)), atol=1e-9)


def test_auto_selection(rng):
    # Tiny operators, with the dense thresholds off (test_dense_fallback.py tests
    # them): the choice among the sparse solvers.
    auto = SparseLinearSolver(small_size=0, dense_fraction=1.1)
    general = SparseMatrixOperator.from_dense(random_sparse(rng, 6, 6, diagonal=3.0))
    spd = SparseMatrixOperator.from_dense(
        random_spd(rng, 6), tags=lx.positive_semidefinite_tag
    )
    tall = SparseMatrixOperator.from_dense(random_sparse(rng, 8, 6, diagonal=3.0))
    assert isinstance(auto.select_solver(general), SparseLU)
    assert isinstance(auto.select_solver(spd), SparseCholesky)
    assert isinstance(auto.select_solver(-spd), SparseCholesky)
    assert isinstance(auto.select_solver(tall), SparseNormalEquations)
    assert isinstance(
        auto.select_solver(general + lx.IdentityLinearOperator(general.in_structure())),
        SparseLU,
    )
    assert isinstance(
        auto.select_solver(lx.MatrixLinearOperator(jnp.eye(3))), lx.AutoLinearSolver
    )
    # Only `well_posed=True` promises full rank: rectangular operators get
    # minimum-norm solves by default.
    assert (
        SparseLinearSolver(well_posed=True).assume_full_rank()
        and not auto.assume_full_rank()
        and not SparseLinearSolver(well_posed=False).assume_full_rank()
    )
    # Dense fallback: Lineax's own solver, least squares by QR for well_posed=None.
    dense = np.asarray(tall.as_matrix())
    b = rng.normal(size=8)
    x = lx.linear_solve(
        lx.MatrixLinearOperator(jnp.asarray(dense)), jnp.asarray(b), auto
    ).value
    np.testing.assert_allclose(x, reference(dense, b), atol=1e-10)
    # A large matrix-free operator with a dense pattern is not densified.
    big = lx.FunctionLinearOperator(
        lambda v: 2 * v + jnp.sum(v), jax.ShapeDtypeStruct((3000,), jnp.float64)
    )
    with pytest.raises(ValueError, match="max_dense_size"):
        auto.init(big, {})
    # A large matrix-free operator with a sparse pattern is sparsified instead.
    diagonal = lx.FunctionLinearOperator(
        lambda v: 2 * v, jax.ShapeDtypeStruct((5000,), jnp.float64)
    )
    assert isinstance(auto.select_solver(diagonal), SparseLU)
    small = lx.FunctionLinearOperator(
        lambda v: 2 * v, jax.ShapeDtypeStruct((5,), jnp.float64)
    )
    np.testing.assert_allclose(lx.linear_solve(small, jnp.ones(5), auto).value, 0.5)


def test_levenberg_marquardt_damped_step(rng):
    """What `optx.LevenbergMarquardt`'s damped Newton descent passes: `H + λI`."""
    spd = random_spd(rng, 10)
    grad = jnp.asarray(rng.normal(size=10))
    for tags in (lx.symmetric_tag, lx.positive_semidefinite_tag):
        hessian = SparseMatrixOperator.from_dense(spd, tags=tags)
        f_info = FunctionInfo.EvalGradHessian(jnp.asarray(0.0), grad, hessian)
        step, result = jax.jit(damped_newton_step, static_argnums=2)(
            jnp.asarray(0.25), f_info, SparseLinearSolver()
        )
        assert result == optx.RESULTS.successful
        np.testing.assert_allclose(
            step, np.linalg.solve(spd + 4 * np.eye(10), grad), atol=1e-10
        )


def test_levenberg_marquardt_least_squares_step(rng):
    """The damped least-squares step of `optx.LevenbergMarquardt`, built sparsely
    with `damped_operator`, matches Optimistix's own (dense) step."""
    jac = random_sparse(rng, 15, 6, diagonal=1.0)
    residual = jnp.asarray(rng.normal(size=15))
    jacobian = SparseMatrixOperator.from_dense(jac)

    @jax.jit
    def sparse_step(jacobian, residual, damping):
        operator = alx.damped_operator(jacobian, damping)
        zeros = jnp.zeros(operator.in_size())
        return lx.linear_solve(operator, (residual, zeros), SparseLinearSolver()).value

    f_info = FunctionInfo.ResidualJac(
        residual, lx.MatrixLinearOperator(jnp.asarray(jac))
    )
    dense_step, _ = damped_newton_step(
        jnp.asarray(4.0), f_info, lx.AutoLinearSolver(well_posed=None)
    )
    np.testing.assert_allclose(
        sparse_step(jacobian, residual, 0.25), dense_step, atol=1e-10
    )
    np.testing.assert_allclose(
        dense_step,
        np.linalg.solve(jac.T @ jac + 0.25 * np.eye(6), jac.T @ np.asarray(residual)),
        atol=1e-10,
    )


def test_optimistix_newton_in_loop():
    """Drop-in use in `optx.Newton` (small dense Jacobian: Lineax fallback), and the
    sparse solvers inside a jitted loop with the operator in the carry."""

    def fn(y, args):
        return y**3 + 2 * y - args

    solver = optx.Newton(rtol=1e-10, atol=1e-10, linear_solver=SparseLinearSolver())
    sol = optx.root_find(fn, solver, jnp.ones(4), args=jnp.arange(4.0))
    np.testing.assert_allclose(fn(sol.value, jnp.arange(4.0)), 0, atol=1e-9)

    diagonal_plus = np.diag(np.full(6, 3.0)) + np.diag(np.ones(5), 1)
    operator = SparseMatrixOperator.from_dense(diagonal_plus)

    def body(carry):
        op, x, i = carry
        x = lx.linear_solve(op, x, SparseLU()).value
        op = SparseMatrixOperator(op.values * 1.5, op.pattern, indices=op.indices)
        return op, x, i + 1

    run = jax.jit(
        lambda op, x: jax.lax.while_loop(lambda c: c[2] < 3, body, (op, x, 0))
    )
    _, x, _ = run(operator, jnp.ones(6))
    expected = np.ones(6)
    for k in range(3):
        expected = np.linalg.solve(1.5**k * diagonal_plus, expected)
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-14)


def test_errors(rng):
    tall = SparseMatrixOperator.from_dense(random_sparse(rng, 6, 4, diagonal=1.0))
    square = SparseMatrixOperator.from_dense(random_sparse(rng, 4, 4, diagonal=1.0))
    with pytest.raises(ValueError, match="square"):
        SparseLU().init(tall, {})
    with pytest.raises(ValueError, match="positive_semidefinite_tag"):
        SparseCholesky().init(square, {})
    with pytest.raises(ValueError, match="no sparse form"):
        SparseLU().init(lx.MatrixLinearOperator(jnp.eye(3)), {})
    with pytest.raises(ValueError, match="pattern is not symmetric"):
        SparseCholesky().init(
            lx.TaggedLinearOperator(square, lx.positive_semidefinite_tag), {}
        )
    with pytest.raises(TypeError, match="Lineax solver"):
        SparseKrylov(solver="gmres")


@pytest.mark.benchmark
def test_benchmark_quick(capsys):
    module = load_script("benchmarks/linear_solvers.py")
    rows = module.main(["--sizes", "8", "--repeats", "1"])
    assert "| N |" in capsys.readouterr().out
    (row,) = rows
    assert row["unknowns"] == 64 and row["grad_factorisations"] == 1
    assert row["lu_residual"] < 1e-12 and row["cholesky_residual"] < 1e-12
