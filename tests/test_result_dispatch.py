"""Each coloring result type knows its products: counts, seed colors, compressed
patterns, and the color-major slot of every nonzero. Sparse derivatives dispatch
on these rather than on the `mode` label; here they are checked against each
result's own `decompress`."""

import numpy as np
import pytest
import scipy.sparse as sp

import asdex
from asdex.coloring import (
    AcyclicColoringResult,
    BicoloringResult,
    ColumnColoringResult,
    RowColoringResult,
    StarColoringResult,
    color_bidirectional,
    color_columns,
    color_hessian,
    color_rows,
)


def _pattern(seed: int, m: int = 30, n: int = 24) -> asdex.SparsityPattern:
    a = sp.random(m, n, density=0.12, random_state=seed, format="csr")
    return asdex.SparsityPattern.from_any(a)


def _symmetric(seed: int, n: int = 25) -> asdex.SparsityPattern:
    a = sp.random(n, n, density=0.1, random_state=seed, format="csr")
    return asdex.SparsityPattern.from_any(a + a.T + sp.eye(n))


def _color_major(B: np.ndarray) -> np.ndarray:
    # JVPs and HVPs fill `(rows, c)`; stacked by `jax.vmap` they are `(c, rows)`.
    return B.T.ravel()


@pytest.mark.parametrize("seed", range(4))
def test_column_and_row_slots(seed):
    rng = np.random.default_rng(seed)
    pattern = _pattern(seed)
    fwd, rev = color_columns(pattern), color_rows(pattern)
    assert (fwd.num_jvps, fwd.num_vjps, fwd.num_hvps) == (fwd.num_colors, 0, 0)
    assert (rev.num_jvps, rev.num_vjps, rev.num_hvps) == (0, rev.num_colors, 0)
    B = rng.standard_normal(fwd.compressed_shape)
    np.testing.assert_array_equal(
        _color_major(B)[fwd.product_slots()], fwd.decompress(B)
    )
    B = rng.standard_normal(rev.compressed_shape)  # `(c, n)`: already color-major
    np.testing.assert_array_equal(B.ravel()[rev.product_slots()], rev.decompress(B))
    assert fwd.seed_colors[1] is None and rev.seed_colors[0] is None
    (p_fwd,) = fwd.compressed_patterns()
    (p_rev,) = rev.compressed_patterns()
    assert p_fwd.shape == fwd.compressed_shape and p_rev.shape == rev.compressed_shape


@pytest.mark.parametrize("seed", range(4))
def test_bidirectional_slots(seed):
    rng = np.random.default_rng(seed)
    result = color_bidirectional(_pattern(seed))
    assert result.num_jvps + result.num_vjps == result.num_colors
    (m, cf), (cr, n) = result.compressed_shapes
    B_fwd, B_rev = rng.standard_normal((m, cf)), rng.standard_normal((cr, n))
    flat = np.concatenate([_color_major(B_fwd), B_rev.ravel()])
    np.testing.assert_array_equal(
        flat[result.product_slots()], result.decompress(B_fwd, B_rev)
    )


@pytest.mark.parametrize("seed", range(4))
def test_symmetric_slots_and_substitution(seed):
    rng = np.random.default_rng(seed)
    pattern = _symmetric(seed)
    star = color_hessian(pattern, "direct")
    acyclic = color_hessian(pattern, "substitution")
    for result in (star, acyclic):
        assert result.symmetric and result.num_hvps == result.num_colors
        assert result.dense_products == pattern.shape[0]
    B = rng.standard_normal(star.compressed_shape)
    np.testing.assert_array_equal(
        _color_major(B)[star.product_slots()], star.decompress(B)
    )
    assert star.substitution is None
    B = rng.standard_normal(acyclic.compressed_shape)
    flat = _color_major(B)
    unknowns = np.asarray(acyclic.substitution.solve(flat))
    np.testing.assert_allclose(
        np.concatenate([flat, unknowns])[acyclic.product_slots()],
        acyclic.decompress(B),
        rtol=1e-12,
    )


def test_modes_are_labels_of_the_types():
    assert [
        cls.mode
        for cls in (
            ColumnColoringResult,
            RowColoringResult,
            BicoloringResult,
            StarColoringResult,
            AcyclicColoringResult,
        )
    ] == ["fwd", "rev", "bidirectional", "star", "acyclic"]
