"""The banded LU path of the host solvers (LAPACK `?gbtrf`), against dense numpy."""

import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
import jitted
from asdex import SparsityPattern
from asdex.lineax._banded import band_widths
from asdex.lineax._superlu import superlu_solve


def _band(n, kl, ku):
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    rows, cols = np.nonzero(((i - j) <= kl) & ((j - i) <= ku))
    return SparsityPattern(rows, cols, (n, n))


@pytest.mark.parametrize(
    "n, kl, ku, dtype",
    [
        (50, 1, 1, np.float64),
        (40, 2, 0, np.float64),
        (30, 0, 3, np.complex128),
        (60, 1, 2, np.float32),
    ],
)
@pytest.mark.parametrize("transpose", [False, True])
def test_banded_solves_match_dense(n, kl, ku, dtype, transpose):
    pattern = _band(n, kl, ku)
    assert band_widths(pattern) == (kl, ku)
    rng = np.random.default_rng(0)
    values = rng.standard_normal(pattern.nnz)
    if np.issubdtype(dtype, np.complexfloating):
        values = values + 1j * rng.standard_normal(pattern.nnz)
    # A dominant diagonal keeps the condition number, and so the tolerance, small.
    values = (values + 4.0 * (pattern.rows == pattern.cols)).astype(dtype)
    dense = np.zeros((n, n), dtype)
    dense[pattern.rows, pattern.cols] = values
    b = rng.standard_normal(n).astype(dtype)
    x, info = superlu_solve(
        "lu", pattern, jnp.asarray(values), jnp.asarray(b), transpose=transpose
    )
    assert int(info) == 0
    matrix = dense.T if transpose else dense
    expected = np.linalg.solve(matrix.astype(np.complex128), b)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(x), expected, rtol=tol, atol=tol)


def test_singular_banded_matrix_is_reported():
    pattern = _band(20, 1, 1)
    values = np.ones(pattern.nnz)  # rows of the all-ones tridiagonal repeat
    dense = np.zeros((20, 20))
    dense[pattern.rows, pattern.cols] = values
    values[pattern.rows == 5] = 0.0  # a zero row
    _, info = superlu_solve("lu", pattern, jnp.asarray(values), jnp.ones(20))
    assert int(info) == 1


def test_wide_bands_and_grids_keep_the_general_solvers():
    # A 2-D five-point stencil on a 20 x 20 grid: bandwidth 20, five nonzeros a row.
    side = 20
    idx = np.arange(side * side).reshape(side, side)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    for a, b in ((idx[1:], idx[:-1]), (idx[:, 1:], idx[:, :-1])):
        rows += [a.ravel(), b.ravel()]
        cols += [b.ravel(), a.ravel()]
    grid = SparsityPattern(np.concatenate(rows), np.concatenate(cols), (400, 400))
    assert band_widths(grid) is None
    assert band_widths(SparsityPattern([0, 1], [0, 1], (2, 3))) is None


def test_newton_on_a_tridiagonal_system_goes_through_the_band():
    n = 300
    pattern = _band(n, 1, 1)
    assert band_widths(pattern) == (1, 1)

    def f(u):
        padded = jnp.pad(u, 1)
        return 2 * u - padded[2:] - padded[:-2] + 0.1 * u**3 - 1.0

    coloring = asdex.jacobian_coloring(f, jnp.zeros(n))
    J = asdex.SparseJacobianOperator(lambda u, _: f(u), jnp.zeros(n), None, coloring)
    b = jnp.linspace(-1.0, 1.0, n)
    x = lx.linear_solve(J, b, asdex.SparseLinearSolver()).value
    np.testing.assert_allclose(J.mv(x), b, rtol=1e-10, atol=1e-10)
    dense = jitted.jacfwd(f)(jnp.zeros(n))
    np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-10, atol=1e-12)
