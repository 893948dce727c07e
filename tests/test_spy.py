"""`asdex.spy`: matplotlib pictures of patterns, colorings and their compressed forms."""

import sys

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in the tests

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

import asdex


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _diff_squares(x):
    return (x[1:] - x[:-1]) ** 2


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _arrowhead(x):
    return jnp.concatenate([x * x[0], jnp.sum(x)[None]])


def _points(ax) -> np.ndarray:
    """The marker positions `(row, col)` drawn into `ax`, sorted row-major."""
    offsets = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    if not offsets:
        return np.zeros((0, 2), dtype=np.int64)
    xy = np.concatenate([np.asarray(o) for o in offsets])
    rc = np.rint(xy[:, ::-1]).astype(np.int64)
    return rc[np.lexsort((rc[:, 1], rc[:, 0]))]


def _entries(pattern: asdex.SparsityPattern) -> np.ndarray:
    return np.stack([pattern.rows, pattern.cols], axis=1).astype(np.int64)


def _marker_colors(ax) -> np.ndarray:
    (coll,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return np.asarray(coll.get_facecolors())


def _assert_same_groups(colors: np.ndarray, groups: np.ndarray) -> None:
    """Markers share a face color exactly when they share a color group."""
    _, by_color = np.unique(colors, axis=0, return_inverse=True)
    _, by_group = np.unique(groups, return_inverse=True)
    pairs = set(zip(by_color.ravel().tolist(), by_group.ravel().tolist()))
    assert len(pairs) == len(set(by_color.ravel())) == len(set(by_group.ravel()))


# ---------------------------------------------------------------- patterns


def test_pattern_one_marker_per_nonzero():
    pattern = asdex.jacobian_sparsity(_diff_squares, input_shape=50)
    fig = asdex.spy(pattern)
    (ax,) = fig.axes
    assert pattern.nnz == 98
    np.testing.assert_array_equal(_points(ax), _entries(pattern))
    assert ax.get_xlim() == (-0.5, 49.5)
    assert ax.get_ylim() == (48.5, -0.5)  # row 0 at the top
    assert "49×50" in ax.get_title() and "nnz=98" in ax.get_title()
    assert not ax.images


def test_title_and_markersize():
    pattern = asdex.SparsityPattern([0, 1, 2], [2, 1, 0], (3, 3))
    fig = asdex.spy(pattern, title="anti-diagonal", markersize=5)
    (ax,) = fig.axes
    assert ax.get_title() == "anti-diagonal"
    (coll,) = ax.collections
    np.testing.assert_allclose(coll.get_sizes(), 25.0)
    assert asdex.spy(pattern, title="").axes[0].get_title() == ""


def test_empty_pattern():
    for shape in [(4, 5), (0, 3)]:
        fig = asdex.spy(asdex.SparsityPattern([], [], shape))
        assert len(_points(fig.axes[0])) == 0


# ---------------------------------------------------------------- colorings


def test_fwd_coloring_and_compressed_panel():
    coloring = asdex.jacobian_coloring(_diff_squares, input_shape=50, mode="fwd")
    fig = asdex.spy(coloring)
    main, compressed = fig.axes
    c = coloring.num_colors
    assert c == 2
    np.testing.assert_array_equal(_points(main), _entries(coloring.pattern))
    # Each nonzero has the color of its column's group.
    colors = np.asarray(coloring.colors)
    _assert_same_groups(_marker_colors(main), colors[coloring.pattern.cols])
    # The compressed panel B = J S is m × c: one column per JVP.
    (b,) = coloring.compressed_patterns()
    assert compressed.get_xlim() == (-0.5, c - 0.5)
    assert compressed.get_ylim() == main.get_ylim()
    np.testing.assert_array_equal(_points(compressed), _entries(b))
    assert set(_points(compressed)[:, 1].tolist()) == set(range(c))
    # The same colors: column k of B has the color of group k.
    main_colors = {
        tuple(rgba): int(g)
        for rgba, g in zip(_marker_colors(main), colors[coloring.pattern.cols])
    }
    for rgba, k in zip(_marker_colors(compressed), b.cols):
        assert main_colors[tuple(rgba)] == k
    assert "2 JVPs" in main.get_title()


def test_rev_coloring_compressed_below():
    def f(x):
        return jnp.concatenate([x[1:] * x[:-1], x[:3]])

    coloring = asdex.jacobian_coloring(f, input_shape=12, mode="rev")
    fig = asdex.spy(coloring)
    main, compressed = fig.axes
    c = coloring.num_colors
    rows = coloring.pattern.rows
    _assert_same_groups(_marker_colors(main), np.asarray(coloring.colors)[rows])
    # B = Sᵀ J is c × n, under the pattern: one row per VJP.
    assert compressed.get_ylim() == (c - 0.5, -0.5)
    assert compressed.get_xlim() == main.get_xlim()
    (b,) = coloring.compressed_patterns()
    np.testing.assert_array_equal(_points(compressed), _entries(b))


def test_bidirectional_coloring_two_compressed_panels():
    coloring = asdex.jacobian_coloring(_arrowhead, input_shape=30, mode="bidirectional")
    fig = asdex.spy(coloring)
    main, fwd, rev = fig.axes
    b_fwd, b_rev = coloring.compressed_patterns()
    np.testing.assert_array_equal(_points(main), _entries(coloring.pattern))
    np.testing.assert_array_equal(_points(fwd), _entries(b_fwd))
    np.testing.assert_array_equal(_points(rev), _entries(b_rev))
    assert fwd.get_xlim() == (-0.5, coloring.num_jvps - 0.5)
    assert rev.get_ylim() == (coloring.num_vjps - 0.5, -0.5)
    # Every product has its own color: JVP and VJP colors are never confused.
    total = {tuple(rgba) for ax in (fwd, rev) for rgba in _marker_colors(ax)}
    assert len(total) == coloring.num_colors


@pytest.mark.parametrize("mode", ["star", "acyclic"])
def test_sparse_hessian(mode):
    hes_fn = asdex.hessian(_rosenbrock, input_shape=40, mode=mode)
    fig = asdex.spy(hes_fn)
    main, compressed = fig.axes
    coloring = hes_fn.coloring
    c = coloring.num_colors
    assert c == (3 if mode == "star" else 2)
    np.testing.assert_array_equal(_points(main), _entries(coloring.pattern))
    # B = H S is n × c.
    assert compressed.get_xlim() == (-0.5, c - 0.5)
    assert compressed.get_ylim() == (39.5, -0.5)
    assert len(_points(compressed)) == coloring.compressed_patterns()[0].nnz


def test_compressed_false_draws_pattern_alone():
    coloring = asdex.jacobian_coloring(_diff_squares, input_shape=50)
    fig = asdex.spy(coloring, compressed=False)
    (ax,) = fig.axes
    _assert_same_groups(
        _marker_colors(ax), np.asarray(coloring.colors)[coloring.pattern.cols]
    )


def test_many_colors_stay_distinct():
    # A dense 5 × 25 block needs one color per column.
    pattern = asdex.SparsityPattern.from_dense(np.ones((5, 25)))
    coloring = asdex.ColoredPattern(asdex.coloring.color_columns(pattern))
    assert coloring.num_colors == 25
    fig = asdex.spy(coloring)
    colors = _marker_colors(fig.axes[1])
    assert len(np.unique(colors, axis=0)) == 25


# ---------------------------------------------------------------- large patterns


def test_large_pattern_is_a_density_image():
    n = 3000
    pattern = asdex.SparsityPattern(np.arange(n), np.arange(n), (n, n))
    fig = asdex.spy(pattern)
    (ax,) = fig.axes
    assert not ax.collections  # no markers
    (image,) = ax.images
    assert isinstance(image, AxesImage)
    assert "density" in ax.get_title() and "8×8 block" in ax.get_title()
    rgba = np.asarray(image.get_array())
    assert rgba.shape == (375, 375, 4)
    # Only the diagonal blocks hold nonzeros, each 8 of them: equally opaque.
    alpha = rgba[..., 3]
    np.testing.assert_array_equal(alpha > 0, np.eye(375, dtype=bool))
    np.testing.assert_allclose(np.diag(alpha), 1.0)
    assert image.get_extent() == [-0.5, n - 0.5, n - 0.5, -0.5]


def test_max_size_and_colored_density():
    coloring = asdex.jacobian_coloring(_diff_squares, input_shape=50)
    fig = asdex.spy(coloring, max_size=10)
    main, compressed = fig.axes
    assert main.images and compressed.images
    assert not main.collections and not compressed.collections
    # Blocks of the compressed panel span one column, so one color each.
    image = np.asarray(compressed.images[0].get_array())
    assert image.shape == (49, 2, 4)
    assert not np.array_equal(image[0, 0, :3], image[0, 1, :3])
    assert "density" in compressed.get_title()


# ---------------------------------------------------------------- input types


def _sparse_inputs():
    dense = np.zeros((6, 7))
    dense[[0, 1, 2, 5, 5], [0, 3, 6, 1, 2]] = [1.0, -2.0, 3.0, 4.0, 5.0]
    expected = asdex.SparsityPattern.from_dense(dense)
    return dense, expected


@pytest.mark.parametrize(
    "convert",
    [
        lambda d: d,
        lambda d: jnp.asarray(d),
        lambda d: sp.csr_matrix(d),
        lambda d: sp.coo_array(d),
        lambda d: jsparse.BCOO.fromdense(jnp.asarray(d)),
        lambda d: asdex.SparsityPattern.from_dense(d),
    ],
    ids=["numpy", "jax", "scipy_csr_matrix", "scipy_coo_array", "bcoo", "pattern"],
)
def test_input_types(convert):
    dense, expected = _sparse_inputs()
    fig = asdex.spy(convert(dense))
    (ax,) = fig.axes
    np.testing.assert_array_equal(_points(ax), _entries(expected))


def test_sparse_jacobian_and_operator():
    jac_fn = asdex.jacobian(_diff_squares, input_shape=50)
    x = jnp.linspace(0.0, 1.0, 50)
    operator = asdex.SparseJacobianOperator(lambda y, args: _diff_squares(y), x, None)
    for obj in (jac_fn, operator):
        fig = asdex.spy(obj)
        assert len(fig.axes) == 2
        np.testing.assert_array_equal(
            _points(fig.axes[0]), _entries(obj.coloring.pattern)
        )


# ---------------------------------------------------------------- axes


def test_draw_into_given_axes():
    coloring = asdex.jacobian_coloring(_diff_squares, input_shape=50)
    fig, (a, b) = plt.subplots(1, 2)
    assert asdex.spy(coloring, ax=a) is fig
    assert len(_points(a)) == 98 and not b.collections
    fig2, axes = plt.subplots(1, 2)
    asdex.spy(coloring, ax=axes)
    assert len(_points(axes[1])) == coloring.compressed_patterns()[0].nnz
    with pytest.raises(ValueError, match="has 3 axes, but there are 2 panels"):
        asdex.spy(coloring, ax=[*axes, a])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [[[1, 0], [0, 1]], "pattern", None, 3.0])
def test_bad_input_raises_type_error(bad):
    with pytest.raises(TypeError, match=r"`asdex.spy\(obj=...\)` must be") as info:
        asdex.spy(bad)
    assert "asdex.SparsityPattern" in str(info.value)
    assert "scipy sparse" in str(info.value)


def test_bad_shape_and_axes():
    with pytest.raises(ValueError, match="two-dimensional array"):
        asdex.spy(np.ones(5))
    pattern = asdex.SparsityPattern([0], [0], (2, 2))
    with pytest.raises(TypeError, match=r"`asdex.spy\(ax=...\)`"):
        asdex.spy(pattern, ax="left")


def test_missing_matplotlib_names_the_fix(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    pattern = asdex.SparsityPattern([0], [0], (2, 2))
    with pytest.raises(ImportError) as info:
        asdex.spy(pattern)
    message = str(info.value)
    assert 'pip install "asdex[plot]"' in message
    assert "uv add matplotlib" in message
