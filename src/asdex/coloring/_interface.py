"""Entry points: a pattern, a problem and an algorithm in, a result out."""

from __future__ import annotations

import numpy as np

from .._pattern import SparsityPattern
from ._acyclic import acyclic_coloring
from ._algorithm import GreedyColoring
from ._bicoloring import bicolor
from ._graph import AdjacencyGraph, BipartiteGraph, ConflictGraph
from ._greedy import greedy_distance2
from ._orders import as_orders, vertex_order
from ._problem import ColoringProblem
from ._result import (
    AbstractColoringResult,
    AcyclicColoringResult,
    BicoloringResult,
    ColumnColoringResult,
    RowColoringResult,
    StarColoringResult,
)
from ._star import star_coloring


def _check_pattern(pattern, caller: str) -> None:
    if not isinstance(pattern, SparsityPattern):
        raise TypeError(
            f"`{caller}(pattern=...)` must be an `asdex.SparsityPattern`, not "
            f"{type(pattern).__name__}. Build one with `asdex.jacobian_sparsity`, "
            "`SparsityPattern.from_dense` or `SparsityPattern.from_scipy`."
        )


def _fewest(colorings) -> np.ndarray:
    """The first of the colorings with the fewest colors."""
    best = None
    for colors in colorings:
        if best is None or colors.max(initial=-1) < best.max(initial=-1):
            best = colors
    assert best is not None
    return best


def _neutral_if_empty(colors: np.ndarray, members: np.ndarray, size: int):
    """Give vertices without nonzeros the neutral color -1: they need no seed.

    Greedy coloring gives them color 0, which some non-empty vertex has too, so
    the other colors stay `0, 1, ..., c - 1`. A zero pattern then needs no
    products at all.
    """
    empty = np.bincount(members, minlength=size) == 0
    return np.where(empty, -1, colors)


def _bipartite_colors(graph: BipartiteGraph, partition: str, orders) -> np.ndarray:
    """Partial distance-2 colors of the columns or rows, the fewest over `orders`,
    with -1 for empty ones."""
    conflict = ConflictGraph.of_bipartite(graph, partition)
    colors = _fewest(
        greedy_distance2(graph, partition, vertex_order(o, conflict)) for o in orders
    )
    _, ptr, _ = graph.vertices(partition)
    return np.where(np.diff(ptr) == 0, -1, colors)


def color(
    pattern: SparsityPattern,
    problem: ColoringProblem | None = None,
    algorithm: GreedyColoring | None = None,
) -> AbstractColoringResult:
    """Color a sparsity pattern, and precompute its decompression.

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of a Jacobian or a Hessian.
    - `problem`: a [`asdex.coloring.ColoringProblem`][]: which structure and which
      partition. Defaults to `ColoringProblem()`, column coloring of a Jacobian.
    - `algorithm`: a [`asdex.coloring.GreedyColoring`][]: the vertex order(s), and
      direct or substitution decompression. Defaults to `GreedyColoring()`,
      natural order and direct decompression.

    **Returns:**

    - [`asdex.coloring.ColumnColoringResult`][] for a nonsymmetric column problem,
    - [`asdex.coloring.RowColoringResult`][] for a nonsymmetric row problem,
    - [`asdex.coloring.BicoloringResult`][] for a bidirectional problem,
    - [`asdex.coloring.StarColoringResult`][] for a symmetric problem with direct
      decompression,
    - [`asdex.coloring.AcyclicColoringResult`][] for a symmetric problem with
      substitution.
    """
    _check_pattern(pattern, "color")
    problem = ColoringProblem() if problem is None else problem
    algorithm = GreedyColoring() if algorithm is None else algorithm
    if not isinstance(problem, ColoringProblem):
        raise TypeError(
            "`color(problem=...)` must be an `asdex.coloring.ColoringProblem`, not "
            f"{type(problem).__name__}."
        )
    if not isinstance(algorithm, GreedyColoring):
        raise TypeError(
            "`color(algorithm=...)` must be an `asdex.coloring.GreedyColoring`, not "
            f"{type(algorithm).__name__}."
        )
    orders = algorithm.order
    if problem.structure == "symmetric":
        graph = AdjacencyGraph.from_pattern(pattern, caller="color(symmetric)")
        conflict = ConflictGraph.of_adjacency(graph)
        perms = [vertex_order(o, conflict) for o in orders]
        if algorithm.decompression == "direct":
            colors = _fewest(star_coloring(graph, p) for p in perms)
            colors = _neutral_if_empty(colors, pattern.rows, pattern.shape[0])
            return StarColoringResult(pattern, colors, _graph=graph)
        colors = _fewest(acyclic_coloring(graph, p) for p in perms)
        colors = _neutral_if_empty(colors, pattern.rows, pattern.shape[0])
        return AcyclicColoringResult(pattern, colors, _graph=graph)
    if problem.partition == "bidirectional":
        if algorithm.decompression != "direct":
            raise NotImplementedError(
                "Bidirectional coloring supports `decompression='direct'` only (star "
                "bicoloring); acyclic bicoloring with substitution is not "
                "implemented."
            )
        return bicolor(pattern, orders)
    graph = BipartiteGraph.from_pattern(pattern)
    colors = _bipartite_colors(graph, problem.partition, orders)
    if problem.partition == "column":
        return ColumnColoringResult(pattern, colors, _graph=graph)
    return RowColoringResult(pattern, colors, _graph=graph)


def color_columns(pattern: SparsityPattern, order="natural") -> ColumnColoringResult:
    """Partial distance-2 coloring of the columns of a Jacobian pattern (for JVPs).

    Shorthand for `color(pattern, ColoringProblem("nonsymmetric", "column"),
    GreedyColoring(order))`; see [`asdex.coloring.color`][].
    """
    result = color(pattern, ColoringProblem("nonsymmetric", "column"), _greedy(order))
    assert isinstance(result, ColumnColoringResult)
    return result


def color_rows(pattern: SparsityPattern, order="natural") -> RowColoringResult:
    """Partial distance-2 coloring of the rows of a Jacobian pattern (for VJPs).

    Shorthand for `color(pattern, ColoringProblem("nonsymmetric", "row"),
    GreedyColoring(order))`.
    """
    result = color(pattern, ColoringProblem("nonsymmetric", "row"), _greedy(order))
    assert isinstance(result, RowColoringResult)
    return result


def color_star(pattern: SparsityPattern, order="natural") -> StarColoringResult:
    """Star coloring of a Hessian pattern, for direct decompression.

    Shorthand for `color(pattern, ColoringProblem("symmetric"),
    GreedyColoring(order, "direct"))`.
    """
    result = color(pattern, ColoringProblem("symmetric"), _greedy(order, "direct"))
    assert isinstance(result, StarColoringResult)
    return result


def color_acyclic(pattern: SparsityPattern, order="natural") -> AcyclicColoringResult:
    """Acyclic coloring of a Hessian pattern, for substitution-based decompression.

    Shorthand for `color(pattern, ColoringProblem("symmetric"),
    GreedyColoring(order, "substitution"))`.
    """
    result = color(
        pattern, ColoringProblem("symmetric"), _greedy(order, "substitution")
    )
    assert isinstance(result, AcyclicColoringResult)
    return result


def color_bidirectional(
    pattern: SparsityPattern, order=("natural", "largest_first", "smallest_last")
) -> BicoloringResult:
    """Star bicoloring of a Jacobian pattern: some JVPs plus some VJPs.

    Shorthand for `color(pattern, ColoringProblem("nonsymmetric",
    "bidirectional"), GreedyColoring(order))`. Orders are of the augmented graph
    (columns `0..n-1`, then rows `n..n+m-1`).
    """
    result = color(
        pattern, ColoringProblem("nonsymmetric", "bidirectional"), _greedy(order)
    )
    assert isinstance(result, BicoloringResult)
    return result


def color_jacobian(
    pattern: SparsityPattern, mode: str | None = None, order="natural"
) -> ColumnColoringResult | RowColoringResult | BicoloringResult:
    """Color a Jacobian pattern for JVPs, VJPs, or whichever needs fewer.

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `mode`: `"fwd"` (columns, JVPs), `"rev"` (rows, VJPs), `"bidirectional"`,
      or `None` for the side with fewer colors (JVPs on a tie). With `None` the
      cheaper side is colored first (the columns also when their lower bound, the
      largest row count, is no larger than the rows'), and the other side is
      skipped when its lower bound (its largest row, respectively column, count)
      already reaches the first result. This keeps a dense row from costing
      `O(n²)` in column coloring.
    - `order`: as for [`asdex.coloring.GreedyColoring`][].

    **Returns:** a column, row or bicoloring result.
    """
    _check_pattern(pattern, "color_jacobian")
    by_mode = {
        "fwd": color_columns,
        "rev": color_rows,
        "bidirectional": color_bidirectional,
    }
    if mode in by_mode:
        return by_mode[mode](pattern, order)
    if mode is not None:
        raise ValueError(
            f"`color_jacobian(mode={mode!r})` must be None, 'fwd', 'rev' or "
            "'bidirectional'."
        )
    # One bipartite graph serves both sides; only the chosen side's result (and
    # its decompression plan) is built.
    graph = BipartiteGraph.from_pattern(pattern)
    orders = _greedy(order).order
    row_counts = np.diff(graph.row_ptr)
    col_counts = np.diff(graph.col_ptr)
    fwd_work = int(np.sum(row_counts**2))
    rev_work = int(np.sum(col_counts**2))
    fwd_bound = int(row_counts.max(initial=0))
    rev_bound = int(col_counts.max(initial=0))
    fwd = rev = None
    # Columns first when they are the cheaper side, and also when their bound is
    # no larger: then colored second they would be colored anyway (the rows'
    # colors are at least the rows' bound), and colored first they may reach
    # their bound and spare the rows. Either order gives the same result.
    if fwd_work <= rev_work or fwd_bound <= rev_bound:
        fwd = _bipartite_colors(graph, "column", orders)
        # A structurally symmetric pattern's rows are its columns: coloring them
        # gives the same colors, and a tie goes to JVPs.
        if rev_bound < _count(fwd) and not _symmetric(graph):
            rev = _bipartite_colors(graph, "row", orders)
    else:
        rev = _bipartite_colors(graph, "row", orders)
        if fwd_bound <= _count(rev):
            fwd = _bipartite_colors(graph, "column", orders)
    if fwd is not None and (rev is None or _count(fwd) <= _count(rev)):
        return ColumnColoringResult(pattern, fwd, _graph=graph)
    assert rev is not None
    return RowColoringResult(pattern, rev, _graph=graph)


def _symmetric(graph: BipartiteGraph) -> bool:
    return np.array_equal(graph.row_ptr, graph.col_ptr) and np.array_equal(
        graph.row_idx, graph.col_idx
    )


def _count(colors: np.ndarray) -> int:
    return int(colors.max(initial=-1)) + 1


def color_hessian(
    pattern: SparsityPattern,
    decompression: str | None = "direct",
    order="natural",
) -> StarColoringResult | AcyclicColoringResult:
    """Color a Hessian pattern for direct or substitution decompression.

    **Arguments:**

    - `pattern`: a square symmetric [`asdex.SparsityPattern`][].
    - `decompression`: `"direct"` (star coloring, the default; `None` means the
      same) or `"substitution"` (acyclic coloring).
    - `order`: as for [`asdex.coloring.GreedyColoring`][].

    **Returns:** a star or acyclic coloring result.

    Direct decompression is the default although substitution often needs fewer
    colors (2 instead of 3 on a tridiagonal Hessian): direct reads every entry
    from one product, so each is as exact as the product itself, while
    substitution solves entries from differences along the coloring's trees.
    Those differences cancel where neighbouring entries differ in magnitude: on a
    float32 energy whose coefficients span six decades (`n = 2000`), 738 of
    5,998 entries came out more than 1% wrong, and one NaN input spread along a
    whole tree (see `docs/explanation/coloring.md`).
    """
    _check_pattern(pattern, "color_hessian")
    if decompression is None or decompression == "direct":
        return color_star(pattern, order)
    if decompression == "substitution":
        return color_acyclic(pattern, order)
    raise ValueError(
        f"`color_hessian(decompression={decompression!r})` must be 'direct' or "
        "'substitution'."
    )


def _greedy(order, decompression: str = "direct") -> GreedyColoring:
    as_orders(order, caller="order")
    return GreedyColoring(order, decompression)
