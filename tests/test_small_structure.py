"""Tridiagonal and small-block systems are solved inside XLA, with no host callback,
and agree with dense solves; singular ones are reported, never solved into garbage."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
from asdex.lineax import SparseMatrixOperator
from asdex.lineax._small_structure import gram_blocks, is_tridiagonal, square_blocks
from asdex.lineax._superlu import superlu_solve


def _tridiagonal(n, rng, symmetric=False):
    d = 4.0 + rng.random(n)
    lower, upper = rng.standard_normal(n - 1), rng.standard_normal(n - 1)
    if symmetric:
        upper = lower
    return np.diag(d) + np.diag(lower, -1) + np.diag(upper, 1)


def _block_diagonal(count, k, rng):
    a = np.zeros((count * k, count * k))
    for b in range(count):
        a[b * k : (b + 1) * k, b * k : (b + 1) * k] = rng.standard_normal(
            (k, k)
        ) + 3 * np.eye(k)
    return a


def _solve(kind, a, rhs, transpose=False):
    pattern = asdex.SparsityPattern.from_dense(a)
    values = jnp.asarray(a[pattern.rows, pattern.cols])
    jaxpr = jax.make_jaxpr(
        lambda v, b: superlu_solve(kind, pattern, v, b, transpose=transpose)
    )(values, jnp.asarray(rhs))
    assert "callback" not in str(jaxpr), "expected a solve inside XLA"
    x, info = superlu_solve(
        kind, pattern, values, jnp.asarray(rhs), transpose=transpose
    )
    return np.asarray(x), int(info)


@pytest.mark.parametrize("kind", ["lu", "symmetric"])
@pytest.mark.parametrize("transpose", [False, True])
def test_tridiagonal(kind, transpose, rng):
    a = _tridiagonal(50, rng, symmetric=kind == "symmetric")
    assert is_tridiagonal(asdex.SparsityPattern.from_dense(a))
    rhs = rng.standard_normal(50)
    x, info = _solve(kind, a, rhs, transpose)
    assert info == 0
    np.testing.assert_allclose(
        x, np.linalg.solve(a.T if transpose else a, rhs), rtol=1e-10
    )


@pytest.mark.parametrize("transpose", [False, True])
def test_block_diagonal(transpose, rng):
    a = _block_diagonal(7, 3, rng)
    assert square_blocks(asdex.SparsityPattern.from_dense(a)).size == 3
    rhs = rng.standard_normal(21)
    x, info = _solve("lu", a, rhs, transpose)
    assert info == 0
    np.testing.assert_allclose(
        x, np.linalg.solve(a.T if transpose else a, rhs), rtol=1e-10
    )


def test_gram_of_row_blocks(rng):
    """Independent fits: each row reads one block of 4 columns; rows per block
    differ, and the damping rows of Levenberg–Marquardt come last."""
    count, k = 5, 4
    rows = []
    for b in range(count):
        for _ in range(6 + b):
            row = np.zeros(count * k)
            row[b * k : (b + 1) * k] = rng.standard_normal(k)
            rows.append(row)
    a = np.vstack([np.array(rows), 0.3 * np.eye(count * k)])
    assert gram_blocks(asdex.SparsityPattern.from_dense(a)).size == k
    rhs = rng.standard_normal(count * k)
    x, info = _solve("gram_cols", a, rhs)
    assert info == 0
    np.testing.assert_allclose(x, np.linalg.solve(a.T @ a, rhs), rtol=1e-10)


def test_singular_is_reported(rng):
    a = _block_diagonal(4, 2, rng)
    a[2:4, 2:4] = [[1.0, 2.0], [2.0, 4.0]]  # a singular block
    _, info = _solve("lu", a, rng.standard_normal(8))
    assert info == 1
    t = _tridiagonal(6, rng)
    t[:, 3] = 0.0
    t[3, 3] = 0.0  # an empty row and column
    t[3, 3] = 0.0
    pattern = asdex.SparsityPattern.from_dense(_tridiagonal(6, rng))
    values = jnp.asarray(t[pattern.rows, pattern.cols])
    _, info = superlu_solve("lu", pattern, values, jnp.ones(6))
    assert int(info) == 1


def test_other_structures_go_to_the_host(rng):
    a = _tridiagonal(20, rng)
    a[0, 10] = 1.0
    pattern = asdex.SparsityPattern.from_dense(a)
    assert square_blocks(pattern) is None and not is_tridiagonal(pattern)
    values = jnp.asarray(a[pattern.rows, pattern.cols])
    jaxpr = jax.make_jaxpr(lambda v: superlu_solve("lu", pattern, v, jnp.ones(20)))(
        values
    )
    assert "callback" in str(jaxpr)


def test_linear_solve_jit_vmap_and_grad(rng):
    """Through `lineax.linear_solve` with asdex's solver: jitted, batched, and
    differentiated (Lineax's rules solve the transposed system)."""
    a = _block_diagonal(60, 4, rng)  # 240 unknowns: above the dense threshold
    pattern = asdex.SparsityPattern.from_dense(a)
    values = jnp.asarray(a[pattern.rows, pattern.cols])
    rhs = jnp.asarray(rng.standard_normal((3, 240)))

    def solve(v, b):
        op = SparseMatrixOperator(v, pattern)
        return lx.linear_solve(op, b, asdex.SparseLinearSolver()).value

    xs = jax.jit(jax.vmap(solve, in_axes=(None, 0)))(values, rhs)
    np.testing.assert_allclose(xs, np.linalg.solve(a, np.asarray(rhs).T).T, rtol=1e-10)
    grad = jax.grad(lambda v: jnp.sum(solve(v, rhs[0]) ** 2))(values)
    dense_grad = jax.grad(lambda m: jnp.sum(jnp.linalg.solve(m, rhs[0]) ** 2))(
        jnp.asarray(a)
    )
    np.testing.assert_allclose(
        grad, np.asarray(dense_grad)[pattern.rows, pattern.cols], rtol=1e-8
    )


def test_float32(rng):
    a = _tridiagonal(40, rng).astype(np.float32)
    pattern = asdex.SparsityPattern.from_dense(a)
    values = jnp.asarray(a[pattern.rows, pattern.cols])
    x, info = superlu_solve("lu", pattern, values, jnp.ones(40, jnp.float32))
    assert x.dtype == jnp.float32 and int(info) == 0
    np.testing.assert_allclose(x, np.linalg.solve(a, np.ones(40)), rtol=1e-4)


def test_strict_dtype_promotion(rng):
    a = _block_diagonal(60, 4, rng).astype(np.float32)
    pattern = asdex.SparsityPattern.from_dense(a)
    operator = SparseMatrixOperator(jnp.asarray(a[pattern.rows, pattern.cols]), pattern)
    b = jnp.ones(240, jnp.float32)
    with jax.numpy_dtype_promotion("strict"):
        x = jax.jit(
            lambda b: lx.linear_solve(operator, b, asdex.SparseLinearSolver()).value
        )(b)
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, np.linalg.solve(a, np.ones(240)), rtol=1e-4)
