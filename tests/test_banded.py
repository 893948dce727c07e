"""The banded paths of the host solvers, against dense numpy: LU in the given
order (LAPACK `?gbtrf`), and Cholesky after a reverse Cuthill–McKee ordering
(`?pbtrf`)."""

import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
import jitted
from asdex import SparsityPattern
from asdex.lineax._banded import BandedCholesky, band_widths, cholesky_band
from asdex.lineax._ldl import LDLFactor
from asdex.lineax._superlu import factor_cache, superlu_solve


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
    assert cholesky_band(grid) is None
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


def _shuffled_band(rng, n, kd):
    """A symmetric positive definite matrix of half-bandwidth `kd`, its rows and
    columns shuffled so that only a reordering finds the band again; and its
    pattern with the values on it."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    lower = np.where((i >= j) & (i - j <= kd) & (rng.random((n, n)) < 0.7), 1.0, 0)
    factor = lower * rng.standard_normal((n, n)) + np.eye(n)
    matrix = factor @ factor.T + np.eye(n)
    shuffle = rng.permutation(n)
    matrix = matrix[np.ix_(shuffle, shuffle)]
    pattern = SparsityPattern.from_dense(matrix != 0)
    return matrix, pattern, matrix[pattern.rows, pattern.cols]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_banded_cholesky_after_reordering_matches_dense(dtype):
    rng = np.random.default_rng(1)
    matrix, pattern, values = _shuffled_band(rng, 120, 4)
    assert band_widths(pattern) is None  # not banded as given
    band = cholesky_band(pattern)
    assert band is not None and band.kd < 30
    b = rng.standard_normal(120)
    factor_cache.clear()
    x, info = superlu_solve(
        "symmetric",
        pattern,
        jnp.asarray(values.astype(dtype)),
        jnp.asarray(b.astype(dtype)),
    )
    assert int(info) == 0
    (entry,) = factor_cache._entries
    assert isinstance(entry.factor, BandedCholesky)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x, np.linalg.solve(matrix, b), rtol=tol, atol=tol)
    # Several right-hand sides at once.
    many = rng.standard_normal((120, 3))
    np.testing.assert_allclose(
        entry.factor.solve(many.astype(dtype)),
        np.linalg.solve(matrix, many),
        rtol=tol,
        atol=tol,
    )


def test_banded_cholesky_hands_indefinite_and_singular_matrices_on():
    """Not positive definite: QDLDL's L D Lᵀ solves it instead; singular: reported."""
    rng = np.random.default_rng(2)
    matrix, pattern, values = _shuffled_band(rng, 80, 3)
    diagonal = pattern.rows == pattern.cols
    shift = 2.0 * np.max(np.linalg.eigvalsh(matrix)) / 3
    indefinite = values - shift * diagonal
    b = rng.standard_normal(80)
    factor_cache.clear()
    x, info = superlu_solve(
        "symmetric", pattern, jnp.asarray(indefinite), jnp.asarray(b)
    )
    assert int(info) == 0
    (entry,) = factor_cache._entries
    assert isinstance(entry.factor, LDLFactor)
    expected = np.linalg.solve(matrix - shift * np.eye(80), b)
    np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-8)

    # Positive semidefinite of rank n - 1: one unknown's row and column are zero.
    singular = np.where((pattern.rows == 7) | (pattern.cols == 7), 0.0, values)
    _, info = superlu_solve("symmetric", pattern, jnp.asarray(singular), jnp.asarray(b))
    assert int(info) == 1


def test_banded_cholesky_reuses_a_dropped_factors_band_only():
    """The band of a dropped factor is filled again by the next factorisation of
    its size; a live factor's band never is."""
    import gc

    from asdex.lineax import _banded

    rng = np.random.default_rng(3)
    matrix, pattern, values = _shuffled_band(rng, 60, 3)
    band = cholesky_band(pattern)
    b = rng.standard_normal(60)
    first = BandedCholesky(band, values)
    second = BandedCholesky(band, 2 * values)  # `first` is alive: a new band
    assert second._factor is not first._factor
    np.testing.assert_allclose(first.solve(b), np.linalg.solve(matrix, b), rtol=1e-12)
    np.testing.assert_allclose(
        second.solve(b), np.linalg.solve(2 * matrix, b), rtol=1e-12
    )
    used = first._factor
    del first
    gc.collect()
    third = BandedCholesky(band, 3 * values)
    assert third._factor is used
    np.testing.assert_allclose(
        third.solve(b), np.linalg.solve(3 * matrix, b), rtol=1e-12
    )
    asdex.clear_caches()
    assert not _banded._spare
