"""Bidirectional coloring (star bicoloring) of a Jacobian pattern.

Some nonzeros are read from JVPs (`B_fwd = J @ S_col`) and the others from VJPs
(`B_rev = S_rowᵀ @ J`). A pattern with a dense row and a dense column needs `n`
JVPs or `m` VJPs alone, but a few of each together (Coleman & Verma 1998).

Following Montoison, Dalle & Gebremedhin (2025), "Revisiting sparse matrix coloring
and bicoloring", bicoloring is a symmetric coloring of the augmented matrix
`[[0, Jᵀ], [J, 0]]`, whose adjacency graph is the bipartite graph of `J`: a star
in it centred on a column is read from `B_fwd`, one centred on a row from `B_rev`.
Column and row colors are separate passes, so they are drawn from separate
palettes. Afterwards, colors no entry needs are made *neutral* (their rows or
columns leave every seed), which only makes the remaining reads easier.

Greedy star coloring of the whole bipartite graph gives every vertex a color, and
a neutral-free coloring can be poor: on an arrowhead matrix the diagonal entries
drive it to `n` colors. So we also try colorings of a *vertex cover* of the
bipartite graph (Gebremedhin, Manne & Pothen 2005, §6.2, after Hossain & Steihaug
1998): vertices outside the cover are neutral from the start, and each entry next
to one is read from its side. The cover is greedy (largest remaining degree
first), with ties broken towards columns or towards rows. Pure column and pure row
colorings are candidates as well, so bicoloring never needs more passes than the
better unidirectional coloring. The candidate with the fewest passes wins.

The decompression is direct. An arrowhead matrix (dense first row, dense first
column, diagonal) of size `n ≥ 3` gets 3 passes (2 JVPs + 1 VJP or 1 + 2): no
fewer is possible, since one JVP and one VJP give `2n` numbers for `3n - 2`
unknowns. Without the diagonal it gets 1 + 1.
"""

from __future__ import annotations

import numpy as np

from ._graph import AdjacencyGraph, BipartiteGraph, ConflictGraph
from ._greedy import greedy_distance2
from ._orders import degrees, dynamic_order, vertex_order
from ._result import BicoloringResult, readable
from ._star import star_coloring


def _greedy_cover(aug: AdjacencyGraph, n: int, prefer_columns: bool) -> np.ndarray:
    """A vertex cover of the bipartite graph, largest remaining degree first."""
    conflict = ConflictGraph.of_adjacency(aug)
    args = (aug.n, aug.ptr, aug.idx, conflict.ptr2, conflict.idx2, False)
    bonus = np.zeros(aug.n, np.int64)
    if prefer_columns:
        bonus[:n] = 1
    else:
        bonus[n:] = 1
    key = 2 * degrees(*args) + bonus
    picked = dynamic_order(*args, key, True, -2)
    position = np.empty(aug.n, np.int64)
    position[picked] = np.arange(aug.n)
    source = np.repeat(np.arange(aug.n), np.diff(aug.ptr))
    # A vertex is in the cover if, when it was picked, it still had an edge to a
    # vertex picked later.
    later = position[aug.idx] > position[source]
    return np.bincount(source[later], minlength=aug.n) > 0


def _safe_lookup(table: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """`table[colors]`, false where `colors` is neutral."""
    if table.size == 0:
        return np.zeros(colors.shape, bool)
    return (colors >= 0) & table[np.maximum(colors, 0)]


def neutralize(
    graph: BipartiteGraph, row_colors: np.ndarray, col_colors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Make the colors that no entry needs neutral, and renumber the rest from 0.

    An entry readable from only one side needs that side's color. An entry
    readable from both needs nothing if one of its two colors is needed anyway;
    the rest are covered greedily, most entries first (Montoison et al. 2025,
    §4, post-processing).
    """
    fwd_ok, rev_ok = readable(graph, row_colors, col_colors)
    rows = np.repeat(np.arange(graph.m), np.diff(graph.row_ptr))
    cc = col_colors[graph.row_idx]
    rc = row_colors[rows]
    need_f = np.zeros(int(col_colors.max(initial=-1)) + 1, bool)
    need_r = np.zeros(int(row_colors.max(initial=-1)) + 1, bool)
    need_f[cc[fwd_ok & ~rev_ok]] = True
    need_r[rc[rev_ok & ~fwd_ok]] = True
    open_ = fwd_ok & rev_ok
    while True:
        open_ &= ~(_safe_lookup(need_f, cc) | _safe_lookup(need_r, rc))
        if not open_.any():
            break
        count_f = np.bincount(cc[open_], minlength=need_f.size)
        count_r = np.bincount(rc[open_], minlength=need_r.size)
        if count_f.max() >= count_r.max():
            need_f[np.argmax(count_f)] = True
        else:
            need_r[np.argmax(count_r)] = True
    return _renumber(row_colors, need_r), _renumber(col_colors, need_f)


def _renumber(colors: np.ndarray, needed: np.ndarray) -> np.ndarray:
    new_id = np.cumsum(needed) - 1
    keep = _safe_lookup(needed, colors)
    return np.where(keep, new_id[np.maximum(colors, 0)] if needed.size else -1, -1)


def bicolor(pattern, orders) -> BicoloringResult:
    """The best star bicoloring of `pattern` over `orders` and the candidate strategies.

    Named orders are computed on each graph they order. Explicit permutations are
    orders of the augmented graph (columns `0..n-1`, then rows `n..n+m-1`); their
    restrictions to one side order the pure column and row colorings.
    """
    m, n = pattern.shape
    graph = BipartiteGraph.from_pattern(pattern)
    aug = AdjacencyGraph.augmented(graph)
    conflict = ConflictGraph.of_adjacency(aug)
    side = np.concatenate([np.zeros(n, np.int64), np.ones(m, np.int64)])
    covers = [
        None,
        _greedy_cover(aug, n, prefer_columns=True),
        _greedy_cover(aug, n, prefer_columns=False),
    ]
    best = None
    col_conflict = ConflictGraph.of_bipartite(graph, "column")
    row_conflict = ConflictGraph.of_bipartite(graph, "row")
    for order in orders:
        perm = vertex_order(order, conflict)
        if isinstance(order, np.ndarray):
            col_order = perm[perm < n]
            row_order = perm[perm >= n] - n
        else:
            col_order = vertex_order(order, col_conflict)
            row_order = vertex_order(order, row_conflict)
        candidates = [
            (np.full(m, -1), greedy_distance2(graph, "column", col_order)),
            (greedy_distance2(graph, "row", row_order), np.full(n, -1)),
        ]
        for cover in covers:
            codes = star_coloring(aug, perm, side=side, nsides=2, active=cover)
            colors = np.where(codes >= 0, codes // 2, -1)
            candidates.append((colors[n:], colors[:n]))
        for row_colors, col_colors in candidates:
            row_colors, col_colors = neutralize(graph, row_colors, col_colors)
            cost = int(row_colors.max(initial=-1)) + int(col_colors.max(initial=-1))
            if best is None or cost < best[0]:
                best = (cost, row_colors, col_colors)
    assert best is not None
    return BicoloringResult(pattern, best[1], best[2], _graph=graph)
