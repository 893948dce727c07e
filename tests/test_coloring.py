"""Tests of the coloring stage: problems, algorithms, results and checkers.

The public checkers are the oracles: every coloring produced is run through its
checker, and every decompression must reproduce a random matrix with the pattern
exactly (built densely in numpy from the seeds). Theory fixes the color counts of
banded, diagonal, dense-row and arrowhead patterns.
"""

from __future__ import annotations

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from asdex import SparsityPattern
from asdex.coloring import (
    ALL_ORDERS,
    AcyclicColoringResult,
    BicoloringResult,
    ColoringProblem,
    ColumnColoringResult,
    DynamicLargestFirst,
    GreedyColoring,
    IncidenceDegree,
    LargestFirst,
    NaturalOrder,
    RandomOrder,
    RowColoringResult,
    SmallestLast,
    StarColoringResult,
    check_acyclic,
    check_bicoloring,
    check_structurally_orthogonal,
    check_symmetrically_orthogonal,
    color,
    color_acyclic,
    color_bidirectional,
    color_columns,
    color_hessian,
    color_jacobian,
    color_rows,
    color_star,
    vertex_order,
)
from asdex.coloring._graph import AdjacencyGraph, BipartiteGraph, ConflictGraph
from helpers import load_script

ORDERS = [
    "natural",
    "largest_first",
    "smallest_last",
    "incidence_degree",
    "dynamic_largest_first",
    "random",
    RandomOrder(seed=3),
]

# ---------------------------------------------------------------- helpers


def banded(n: int, offsets, m: int | None = None) -> SparsityPattern:
    """The pattern with nonzeros at `(i, i + o)` for each offset `o`."""
    m = n if m is None else m
    rows, cols = [], []
    for o in offsets:
        i = np.arange(max(0, -o), min(m, n - o))
        rows.append(i)
        cols.append(i + o)
    return SparsityPattern(np.concatenate(rows), np.concatenate(cols), (m, n))


def arrowhead(n: int, diagonal: bool = True) -> SparsityPattern:
    dense = np.eye(n, dtype=bool) if diagonal else np.zeros((n, n), bool)
    dense[0, :] = dense[:, 0] = True
    return SparsityPattern.from_dense(dense)


def random_values(pattern: SparsityPattern, rng) -> np.ndarray:
    J = np.zeros(pattern.shape)
    J[pattern.rows, pattern.cols] = rng.standard_normal(pattern.nnz)
    return J


def random_symmetric(pattern: SparsityPattern, rng) -> np.ndarray:
    H = np.triu(random_values(pattern, rng))
    return H + np.triu(H, 1).T


def values(matrix: np.ndarray, pattern: SparsityPattern) -> np.ndarray:
    return matrix[pattern.rows, pattern.cols]


def assert_column_ok(pattern, result, rng):
    assert isinstance(result, ColumnColoringResult)
    assert check_structurally_orthogonal(
        pattern, result.colors, "column", raise_on_failure=True
    )
    J = random_values(pattern, rng)
    S = result.seed_matrix()
    assert S.shape == (pattern.shape[1], result.num_colors)
    np.testing.assert_array_equal(result.decompress(J @ S), values(J, pattern))


def assert_row_ok(pattern, result, rng):
    assert isinstance(result, RowColoringResult)
    assert check_structurally_orthogonal(
        pattern, result.colors, "row", raise_on_failure=True
    )
    J = random_values(pattern, rng)
    S = result.seed_matrix()
    assert S.shape == (pattern.shape[0], result.num_colors)
    np.testing.assert_array_equal(result.decompress(S.T @ J), values(J, pattern))


def assert_star_ok(pattern, result, rng):
    assert isinstance(result, StarColoringResult)
    assert check_symmetrically_orthogonal(pattern, result.colors, raise_on_failure=True)
    # A star coloring is acyclic too (every star is a tree).
    assert check_acyclic(pattern, result.colors, raise_on_failure=True)
    H = random_symmetric(pattern, rng)
    np.testing.assert_array_equal(
        result.decompress(H @ result.seed_matrix()), values(H, pattern)
    )


def assert_acyclic_ok(pattern, result, rng):
    assert isinstance(result, AcyclicColoringResult)
    assert check_acyclic(pattern, result.colors, raise_on_failure=True)
    H = random_symmetric(pattern, rng)
    np.testing.assert_allclose(
        result.decompress(H @ result.seed_matrix()),
        values(H, pattern),
        rtol=1e-12,
        atol=1e-12,
    )
    levels = result.plan.num_levels
    assert levels <= max(1, int(np.log2(max(pattern.shape[0], 1))) + 1)


def assert_bicoloring_ok(pattern, result, rng):
    assert isinstance(result, BicoloringResult)
    assert check_bicoloring(
        pattern, result.row_colors, result.col_colors, raise_on_failure=True
    )
    J = random_values(pattern, rng)
    B_fwd = J @ result.col_seed_matrix()
    B_rev = result.row_seed_matrix().T @ J
    np.testing.assert_array_equal(result.decompress(B_fwd, B_rev), values(J, pattern))


# ---------------------------------------------------------------- strategies


@st.composite
def patterns(draw, square=False, symmetric=False, max_size=24):
    m = draw(st.integers(0, max_size))
    n = m if square or symmetric else draw(st.integers(0, max_size))
    density = draw(st.sampled_from([0.0, 0.05, 0.15, 0.3, 0.6]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.random((m, n)) < density
    if symmetric:
        dense |= dense.T
        if draw(st.booleans()):
            np.fill_diagonal(dense, True)
    return SparsityPattern.from_dense(dense)


SETTINGS = settings(max_examples=40, deadline=None)

# ---------------------------------------------------------------- random patterns


@SETTINGS
@given(patterns(), st.sampled_from(ORDERS))
def test_column_and_row_coloring_random(pattern, order):
    rng = np.random.default_rng(0)
    assert_column_ok(pattern, color_columns(pattern, order), rng)
    assert_row_ok(pattern, color_rows(pattern, order), rng)


@SETTINGS
@given(patterns(symmetric=True), st.sampled_from(ORDERS))
def test_symmetric_coloring_random(pattern, order):
    rng = np.random.default_rng(0)
    star = color_star(pattern, order)
    acyclic = color_acyclic(pattern, order)
    assert_star_ok(pattern, star, rng)
    assert_acyclic_ok(pattern, acyclic, rng)


@SETTINGS
@given(patterns())
def test_bicoloring_random(pattern):
    rng = np.random.default_rng(0)
    orders = ("natural", "largest_first", "smallest_last")
    result = color_bidirectional(pattern, orders)
    assert_bicoloring_ok(pattern, result, rng)
    # The pure column and row colorings are candidates, so bicoloring never loses.
    unidirectional = min(
        color_columns(pattern, orders).num_colors,
        color_rows(pattern, orders).num_colors,
    )
    assert result.num_colors <= unidirectional


@SETTINGS
@given(patterns(symmetric=True), st.sampled_from(ORDERS[:-2]))
def test_orders_are_permutations(pattern, order):
    graph = AdjacencyGraph.from_pattern(pattern, caller="test")
    perm = vertex_order(
        GreedyColoring(order).order[0], ConflictGraph.of_adjacency(graph)
    )
    np.testing.assert_array_equal(np.sort(perm), np.arange(pattern.shape[0]))
    bip = BipartiteGraph.from_pattern(pattern)
    for side, size in (("column", pattern.shape[1]), ("row", pattern.shape[0])):
        conflict = ConflictGraph.of_bipartite(bip, side)
        perm = vertex_order(GreedyColoring(order).order[0], conflict)
        np.testing.assert_array_equal(np.sort(perm), np.arange(size))


def test_order_definitions():
    # A star K_{1,3} plus an isolated edge; vertex 0 is the centre.
    dense = np.zeros((6, 6), bool)
    for a, b in [(0, 1), (0, 2), (0, 3), (4, 5)]:
        dense[a, b] = dense[b, a] = True
    graph = ConflictGraph.of_adjacency(
        AdjacencyGraph.from_pattern(SparsityPattern.from_dense(dense), caller="t")
    )
    assert vertex_order(NaturalOrder(), graph).tolist() == [0, 1, 2, 3, 4, 5]
    assert vertex_order(LargestFirst(), graph)[0] == 0
    assert vertex_order(DynamicLargestFirst(), graph)[0] == 0
    # Smallest-last colors the centre (removed last) first.
    assert vertex_order(SmallestLast(), graph)[0] in (0, 4, 5)
    # Incidence degree follows edges: after the first pick, a neighbour comes next.
    inc = vertex_order(IncidenceDegree(), graph)
    assert dense[inc[0], inc[1]]
    a = vertex_order(RandomOrder(seed=1), graph)
    b = vertex_order(RandomOrder(seed=1), graph)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- theory


@pytest.mark.parametrize("bands", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("n", [8, 9, 100, 10_000])
def test_banded_jacobian_takes_as_many_colors_as_bands(bands, n):
    offsets = range(-(bands // 2), bands - bands // 2)
    pattern = banded(n, offsets)
    rng = np.random.default_rng(0)
    fwd = color_columns(pattern)
    rev = color_rows(pattern)
    assert fwd.num_colors == bands
    assert rev.num_colors == bands
    if n <= 100:
        assert_column_ok(pattern, fwd, rng)
        assert_row_ok(pattern, rev, rng)


@pytest.mark.parametrize("half_bandwidth", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [20, 301])
def test_symmetric_banded_star_and_acyclic_counts(half_bandwidth, n):
    # rho = 2 * half_bandwidth off-diagonal bands: star needs 2⌊ρ/2⌋ + 1 colors,
    # acyclic ⌊ρ/2⌋ + 1 (Coleman & Moré 1984; Coleman & Cai 1986).
    rho = 2 * half_bandwidth
    pattern = banded(n, range(-half_bandwidth, half_bandwidth + 1))
    rng = np.random.default_rng(0)
    star = color_star(pattern)
    acyclic = color_acyclic(pattern)
    assert star.num_colors == 2 * (rho // 2) + 1
    assert acyclic.num_colors == rho // 2 + 1
    assert_star_ok(pattern, star, rng)
    assert_acyclic_ok(pattern, acyclic, rng)
    # Direct decompression is the default: each entry read from one product.
    assert isinstance(color_hessian(pattern), StarColoringResult)
    assert color_hessian(pattern).num_colors == 2 * (rho // 2) + 1
    assert color_hessian(pattern, "substitution").num_colors == rho // 2 + 1


def test_tridiagonal_needs_two_colors_acyclic_three_star():
    pattern = banded(1000, [-1, 0, 1])
    assert color_star(pattern).num_colors == 3
    assert color_acyclic(pattern).num_colors == 2


def test_diagonal_takes_one_color():
    pattern = banded(50, [0])
    rng = np.random.default_rng(0)
    for result, check in [
        (color_columns(pattern), assert_column_ok),
        (color_rows(pattern), assert_row_ok),
        (color_star(pattern), assert_star_ok),
        (color_acyclic(pattern), assert_acyclic_ok),
    ]:
        assert result.num_colors == 1
        check(pattern, result, rng)
    result = color_bidirectional(pattern)
    assert result.num_colors == 1
    assert_bicoloring_ok(pattern, result, rng)


def test_dense_row_makes_column_coloring_dense_but_row_coloring_cheap():
    n = 40
    dense = np.eye(n, dtype=bool)
    dense[0, :] = True
    pattern = SparsityPattern.from_dense(dense)
    rng = np.random.default_rng(0)
    fwd = color_columns(pattern)
    rev = color_rows(pattern)
    assert fwd.num_colors == n
    assert rev.num_colors == 2
    assert_column_ok(pattern, fwd, rng)
    assert_row_ok(pattern, rev, rng)
    auto = color_jacobian(pattern)
    assert isinstance(auto, RowColoringResult) and auto.num_colors == 2
    assert isinstance(color_jacobian(pattern.T), ColumnColoringResult)


def test_color_jacobian_skips_a_hopeless_side():
    # One dense row of 200 000 columns: column coloring would cost O(n²) time.
    n = 200_000
    rows = np.concatenate([np.zeros(n, int), np.arange(1, 5)])
    cols = np.concatenate([np.arange(n), np.arange(1, 5)])
    pattern = SparsityPattern(rows, cols, (5, n))
    result = color_jacobian(pattern)
    assert isinstance(result, RowColoringResult)
    assert result.num_colors == 2


def test_color_jacobian_colors_one_side_when_it_reaches_the_bound(monkeypatch):
    # (x[1:] - x[:-1])²: the rows are the slightly cheaper side, but two colors
    # reach the columns' bound (2 per row), which the rows cannot beat.
    from asdex.coloring import _interface

    n = 1000
    r = np.arange(n - 1)
    pattern = SparsityPattern(
        np.concatenate([r, r]), np.concatenate([r, r + 1]), (n - 1, n)
    )
    sides = []
    colors = _interface._bipartite_colors

    def recorded(graph, partition, orders):
        sides.append(partition)
        return colors(graph, partition, orders)

    monkeypatch.setattr(_interface, "_bipartite_colors", recorded)
    result = color_jacobian(pattern)
    assert isinstance(result, ColumnColoringResult) and result.num_colors == 2
    assert sides == ["column"]
    # Both sides colored give the same result.
    assert np.array_equal(result.colors, color_columns(pattern).colors)


@pytest.mark.parametrize("n", [3, 4, 10, 300])
def test_arrowhead_bicoloring(n):
    rng = np.random.default_rng(0)
    pattern = arrowhead(n)
    assert color_columns(pattern).num_colors == n
    assert color_rows(pattern).num_colors == n
    result = color_bidirectional(pattern)
    assert_bicoloring_ok(pattern, result, rng)
    # One JVP and one VJP give 2n numbers for 3n - 2 unknowns: 3 is optimal.
    assert result.num_colors == 3
    if n > 3:  # for n = 3, three JVPs tie with the bidirectional 2 + 1
        assert result.num_fwd_colors >= 1 and result.num_rev_colors >= 1
    # Without the diagonal, one JVP (column 0) and one VJP (row 0) suffice.
    hollow = arrowhead(n, diagonal=False)
    result = color_bidirectional(hollow)
    assert_bicoloring_ok(hollow, result, rng)
    assert (result.num_fwd_colors, result.num_rev_colors) == (1, 1)


def test_bicoloring_rectangular_dense_row_and_column():
    rng = np.random.default_rng(1)
    dense = rng.random((60, 90)) < 0.03
    dense[3, :] = True
    dense[:, 5] = True
    pattern = SparsityPattern.from_dense(dense)
    result = color_bidirectional(pattern, ALL_ORDERS)
    assert_bicoloring_ok(pattern, result, rng)
    assert result.num_colors < 15


@pytest.mark.parametrize(
    "shape", [(0, 0), (0, 5), (5, 0), (3, 3), (3, 4), (4, 3)], ids=str
)
def test_empty_patterns(shape):
    pattern = SparsityPattern(np.zeros(0, int), np.zeros(0, int), shape)
    rng = np.random.default_rng(0)
    for result, check in [
        (color_columns(pattern), assert_column_ok),
        (color_rows(pattern), assert_row_ok),
        (color_bidirectional(pattern), assert_bicoloring_ok),
    ]:
        # Nothing to compute: no products at all.
        assert result.num_colors == 0
        check(pattern, result, rng)
    if shape[0] == shape[1]:
        assert_star_ok(pattern, color_star(pattern), rng)
        assert_acyclic_ok(pattern, color_acyclic(pattern), rng)
        assert color_hessian(pattern).num_colors == 0


def test_empty_columns_are_neutral():
    pattern = SparsityPattern([0, 1], [0, 2], (2, 4))
    result = color_columns(pattern)
    assert result.colors.tolist() == [0, -1, 0, -1]
    assert result.num_colors == 1


# ---------------------------------------------------------------- substitution


def test_acyclic_large_tridiagonal_is_exact_with_few_levels():
    n = 100_000
    pattern = banded(n, [-1, 0, 1])
    result = color_acyclic(pattern)
    assert result.num_colors == 2
    assert result.plan.num_levels <= 2
    rng = np.random.default_rng(0)
    off, diag = rng.standard_normal(n - 1), rng.standard_normal(n)
    B = np.zeros((n, 2))
    colors = np.asarray(result.colors)
    # B = H @ S built without forming H: each row sums its entries per color.
    np.add.at(B, (np.arange(n), colors), diag)
    np.add.at(B, (np.arange(n - 1), colors[1:]), off)
    np.add.at(B, (np.arange(1, n), colors[:-1]), off)
    expected = np.where(
        pattern.rows == pattern.cols,
        diag[pattern.rows],
        off[np.minimum(np.minimum(pattern.rows, pattern.cols), n - 2)],
    )
    np.testing.assert_allclose(result.decompress(B), expected, atol=1e-9)


@pytest.mark.parametrize("stay", [0.0, 0.7, 0.97])
def test_acyclic_on_random_trees(stay):
    # One big two-colored tree: many heavy paths of many lengths, several levels.
    # `stay` is the chance that vertex i hangs off i - 1, making long paths.
    rng = np.random.default_rng(int(stay * 100))
    n = 1000
    parent = (rng.random(n) * np.arange(n)).astype(int)
    chain = rng.random(n) < stay
    parent[1:][chain[1:]] = np.arange(n - 1)[chain[1:]]
    child = np.arange(1, n)
    rows = np.concatenate([np.arange(n), child, parent[1:]])
    cols = np.concatenate([np.arange(n), parent[1:], child])
    pattern = SparsityPattern(rows, cols, (n, n))
    result = color_acyclic(pattern)
    assert result.num_colors == 2
    assert_acyclic_ok(pattern, result, rng)
    if stay == 0.7:  # JAX too, once (compiling a many-level plan takes a second)
        H = random_symmetric(pattern, rng)
        B = jnp.asarray(H @ result.seed_matrix())
        out = eqx.filter_jit(lambda r, B: r.decompress(B))(result, B)
        np.testing.assert_allclose(np.asarray(out), values(H, pattern), atol=1e-10)


def test_acyclic_on_a_star_graph_is_one_level():
    pattern = arrowhead(100)
    result = color_acyclic(pattern)
    assert result.num_colors == 2
    assert result.plan.num_levels == 1
    assert_acyclic_ok(pattern, result, np.random.default_rng(0))


# ---------------------------------------------------------------- JAX


def _all_results():
    rng = np.random.default_rng(5)
    dense = rng.random((12, 12)) < 0.2
    sym = SparsityPattern.from_dense(dense | dense.T | np.eye(12, dtype=bool))
    jac = SparsityPattern.from_dense(rng.random((10, 14)) < 0.2)
    return [
        (jac, color_columns(jac)),
        (jac, color_rows(jac)),
        (jac, color_bidirectional(jac)),
        (sym, color_star(sym)),
        (sym, color_acyclic(sym)),
    ]


def _compressed(pattern, result, matrix):
    if isinstance(result, BicoloringResult):
        return (matrix @ result.col_seed_matrix(), result.row_seed_matrix().T @ matrix)
    if isinstance(result, RowColoringResult):
        return (result.seed_matrix().T @ matrix,)
    return (matrix @ result.seed_matrix(),)


@pytest.mark.parametrize("case", range(5))
def test_decompress_in_jax_jit_and_vmap(case):
    pattern, result = _all_results()[case]
    rng = np.random.default_rng(0)
    batch = []
    for _ in range(3):
        matrix = random_values(pattern, rng)
        if isinstance(result, StarColoringResult | AcyclicColoringResult):
            matrix = random_symmetric(pattern, rng)
        batch.append((matrix, _compressed(pattern, result, matrix)))
    matrix, compressed = batch[0]
    jitted = eqx.filter_jit(lambda res, *bs: res.decompress(*bs))
    out = jitted(result, *(jnp.asarray(b) for b in compressed))
    np.testing.assert_allclose(np.asarray(out), values(matrix, pattern), atol=1e-12)
    stacked = [
        jnp.stack([jnp.asarray(c[k]) for _, c in batch]) for k in range(len(compressed))
    ]
    out = jax.jit(jax.vmap(result.decompress))(*stacked)
    for k, (matrix, _) in enumerate(batch):
        np.testing.assert_allclose(
            np.asarray(out[k]), values(matrix, pattern), atol=1e-12
        )


def test_results_are_modules_with_int32_indices():
    for _, result in _all_results():
        assert isinstance(result, eqx.Module)
        assert result.compressed_index.dtype == np.int32
        assert not result.compressed_index.flags.writeable
        hash(result.pattern)


# ---------------------------------------------------------------- problem API


def test_problem_algorithm_result_interface():
    pattern = banded(30, [-1, 0, 1])
    rng = np.random.default_rng(0)
    assert_column_ok(pattern, color(pattern), rng)
    assert_row_ok(pattern, color(pattern, ColoringProblem(partition="row")), rng)
    problem = ColoringProblem("symmetric")
    assert_star_ok(pattern, color(pattern, problem), rng)
    algorithm = GreedyColoring(ALL_ORDERS, decompression="substitution")
    assert_acyclic_ok(pattern, color(pattern, problem, algorithm), rng)
    bidi = ColoringProblem(partition="bidirectional")
    assert_bicoloring_ok(pattern, color(pattern, bidi), rng)


def test_best_of_several_orders_keeps_the_fewest_colors():
    rng = np.random.default_rng(2)
    dense = rng.random((60, 60)) < 0.08
    pattern = SparsityPattern.from_dense(dense | dense.T)
    counts = [color_star(pattern, o).num_colors for o in ORDERS]
    assert color_star(pattern, ORDERS).num_colors == min(counts)
    counts = [color_columns(pattern, o).num_colors for o in ORDERS]
    assert color_columns(pattern, ORDERS).num_colors == min(counts)


def test_explicit_permutation_order():
    pattern = banded(10, [-1, 0, 1])
    perm = np.arange(10)[::-1].copy()
    result = color_columns(pattern, perm)
    assert result.num_colors == 3
    assert result.colors[9] == 0
    with pytest.raises(ValueError, match="permutation"):
        color_columns(pattern, np.arange(9))


# ---------------------------------------------------------------- errors and checkers


def test_symmetric_coloring_rejects_bad_patterns():
    with pytest.raises(ValueError, match="square symmetric"):
        color_star(banded(5, [0, 1], m=4))
    with pytest.raises(ValueError, match=r"\(0, 1\) is in it and \(1, 0\) is not"):
        color_acyclic(banded(5, [0, 1]))


def test_bad_arguments_teach():
    pattern = banded(5, [0])
    with pytest.raises(ValueError, match="not a known order"):
        color_columns(pattern, "biggest_first")
    with pytest.raises(TypeError, match="SparsityPattern"):
        color_columns(np.eye(3))  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="partition"):
        ColoringProblem(partition="diagonal")  # pyright: ignore[reportArgumentType]
    with pytest.raises(NotImplementedError, match="direct"):
        color(
            pattern,
            ColoringProblem(partition="bidirectional"),
            GreedyColoring(decompression="substitution"),
        )
    with pytest.raises(ValueError, match="length 5"):
        check_structurally_orthogonal(pattern, [0, 0])
    with pytest.raises(ValueError, match="shape"):
        color_columns(pattern).decompress(np.zeros((5, 2)))


def test_checkers_catch_conflicts():
    pattern = banded(6, [-1, 0, 1])
    assert not check_structurally_orthogonal(pattern, [0, 0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="Columns 0 and 1 share color 0"):
        check_structurally_orthogonal(
            pattern, [0, 0, 1, 2, 0, 1], raise_on_failure=True
        )
    with pytest.raises(ValueError, match="Rows 0 and 1 share color 0"):
        check_structurally_orthogonal(
            pattern, [0, 0, 1, 2, 0, 1], "row", raise_on_failure=True
        )
    # Alternating colors on a path: acyclic, but not a star coloring.
    two = [0, 1, 0, 1, 0, 1]
    assert check_acyclic(pattern, two)
    assert not check_symmetrically_orthogonal(pattern, two)
    with pytest.raises(ValueError, match="cannot be read directly"):
        check_symmetrically_orthogonal(pattern, two, raise_on_failure=True)
    with pytest.raises(ValueError, match="share color"):
        check_acyclic(pattern, [0, 0, 1, 2, 0, 1], raise_on_failure=True)
    cycle = SparsityPattern.from_dense(
        np.array([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1]], bool)
    )
    with pytest.raises(ValueError, match="induce a cycle"):
        check_acyclic(cycle, [0, 1, 0, 1], raise_on_failure=True)
    arrow = arrowhead(4)
    assert not check_bicoloring(arrow, [0, -1, -1, -1], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="from neither side"):
        check_bicoloring(arrow, [0, -1, -1, -1], [0, 0, 0, 0], raise_on_failure=True)
    assert check_bicoloring(arrow, [0, -1, -1, -1], [0, 1, 1, 1])


def test_results_reject_invalid_colors():
    pattern = banded(6, [-1, 0, 1])
    with pytest.raises(ValueError, match="share color"):
        ColumnColoringResult(pattern, [0, 0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="share color"):
        RowColoringResult(pattern, [0, 0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="cannot be read directly"):
        StarColoringResult(pattern, [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="induce a cycle"):
        cycle = banded(4, [-3, -1, 0, 1, 3])
        AcyclicColoringResult(cycle, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="neither side"):
        BicoloringResult(arrowhead(4), [0, -1, -1, -1], [0, 0, 0, 0])
    # User colorings that are valid are accepted.
    result = AcyclicColoringResult(pattern, [0, 1, 0, 1, 0, 1])
    assert_acyclic_ok(pattern, result, np.random.default_rng(0))


# ---------------------------------------------------------------- benchmark


@pytest.mark.benchmark
def test_benchmark_script_runs(capsys):
    # A smoke run of `benchmarks/coloring.py` at a small size, so it cannot rot.
    module = load_script("benchmarks/coloring.py")
    report = module.main(["--n", "2500", "--skip-compile"])
    assert "acyclic, tridiagonal" in capsys.readouterr().out
    assert report["column, 3 bands"][0] == 3
    assert report["star, tridiagonal"][0] == 3
    assert report["acyclic, tridiagonal"][0] == 2
    assert report["bidirectional, arrowhead"][0] == 3


@pytest.mark.parametrize("seed", range(6))
def test_column_result_index_by_numba_matches_numpy(seed, monkeypatch):
    # Large column colorings compute their compressed indices in numba.
    import asdex.coloring._result as result_module

    rng = np.random.default_rng(seed)
    dense = rng.random((30, 40)) < 0.15
    pattern = SparsityPattern.from_dense(dense)
    colors = color_columns(pattern).colors
    monkeypatch.setattr(result_module, "_NUMBA_INDEX_FROM", 1)
    by_numba = result_module.ColumnColoringResult(pattern, colors).compressed_index
    monkeypatch.setattr(result_module, "_NUMBA_INDEX_FROM", 10**12)
    by_numpy = result_module.ColumnColoringResult(pattern, colors).compressed_index
    assert by_numba.dtype == by_numpy.dtype
    np.testing.assert_array_equal(by_numba, by_numpy)
    c = int(np.max(colors)) + 1
    np.testing.assert_array_equal(
        by_numba, pattern.rows.astype(np.int64) * c + np.asarray(colors)[pattern.cols]
    )
