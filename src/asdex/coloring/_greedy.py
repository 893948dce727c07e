"""Greedy partial distance-2 coloring of the columns (or rows) of a pattern.

Columns `j` and `k` may share a color when no row has nonzeros in both: they are
then *structurally orthogonal*, and one JVP with the sum of their seeds recovers
both (Curtis, Powell & Reid 1974). In the bipartite graph this is a distance-2
coloring of the column vertices only: a partial distance-2 coloring
(Gebremedhin, Manne & Pothen 2005, §3.3, Algorithm 3.1).
"""

from __future__ import annotations

import numba
import numpy as np

from ._graph import BipartiteGraph


@numba.njit(cache=True)
def _greedy_distance2(nv, vptr, vidx, wptr, widx, order):
    """First-fit partial distance-2 coloring (Gebremedhin et al. 2005, Algorithm 3.1).

    For each vertex `v` in `order`, mark the colors of every vertex that shares a
    neighbour `w` with it, then take the smallest unmarked color. Marking with the
    vertex id avoids clearing the `forbidden` array. Time O(Σ_w deg(w)²).
    """
    colors = np.full(nv, -1, np.int64)
    forbidden = np.full(nv + 1, -1, np.int64)
    for t in range(order.shape[0]):
        v = order[t]
        for p in range(vptr[v], vptr[v + 1]):
            w = vidx[p]
            for q in range(wptr[w], wptr[w + 1]):
                c = colors[widx[q]]
                if c >= 0:
                    forbidden[c] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        colors[v] = c
    return colors


def greedy_distance2(
    graph: BipartiteGraph, partition: str, order: np.ndarray
) -> np.ndarray:
    """Colors (`int64`, from 0) of the columns or rows of `graph`, visited in `order`."""
    nv, vptr, vidx = graph.vertices(partition)
    wptr, widx = graph.neighbours(partition)
    return _greedy_distance2(nv, vptr, vidx, wptr, widx, order)
