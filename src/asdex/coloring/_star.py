"""Greedy star coloring of an adjacency graph.

A *star coloring* is a distance-1 coloring in which every path on four vertices
uses at least three colors; equivalently, every connected two-colored subgraph is
a star. It is what direct decompression of a symmetric matrix needs: in a star
with hub `h`, the entry `H[l, h]` of every leaf `l` is alone in `B[l, color(h)]`
(Coleman & Moré 1984; Gebremedhin, Manne & Pothen 2005, Theorem 4.6).

The kernel follows the structure of Gebremedhin, Tarafdar, Manne & Pothen (2007),
"New acyclic and star coloring algorithms with application to computing Hessians",
Algorithm 4.1: it keeps the two-colored stars built so far (each edge knows its
star, each star its hub) so that a new color only needs checking against the paths
of length two around the vertex, in O(|V| d₂) time.

The same kernel colors the bipartite graph of a Jacobian for bicoloring, with two
extensions (Montoison, Dalle & Gebremedhin 2025):

- *sides*: rows and columns draw from separate palettes, because a forward color
  and a reverse color are separate passes however they are numbered. The code of
  color `k` on side `s` is `k * nsides + s`.
- *neutral vertices* (`active[v]` false) get no color at all. Every entry next to
  a neutral vertex `u` must then be read from `u`'s side, so the colored
  neighbours of `u` need pairwise different colors (a partial distance-2
  constraint through `u`).
"""

from __future__ import annotations

import numba
import numpy as np

from ._graph import AdjacencyGraph


@numba.njit(cache=True)
def _treat(w, v, ptr, idx, color, forbidden, treated):
    """Forbid for `v` the colors of all colored neighbours of `w` (GTMP 2007, Alg. 4.1).

    Called when `v` has two neighbours of the same color as `w`: if `v` took the
    color of some other neighbour `x` of `w`, the path `x - w - v - w'` would be
    two-colored.
    """
    for h in range(ptr[w], ptr[w + 1]):
        cx = color[idx[h]]
        if cx >= 0:
            forbidden[cx] = v
    treated[w] = v


@numba.njit(cache=True)
def _star_kernel(nv, ptr, idx, rev, order, side, nsides, active):
    nhalf = idx.shape[0]
    ncodes = (nv + 2) * nsides
    color = np.full(nv, -1, np.int64)
    forbidden = np.full(ncodes, -1, np.int64)
    first_v = np.full(ncodes, -1, np.int64)
    first_w = np.full(ncodes, -1, np.int64)
    grow_v = np.full(ncodes, -1, np.int64)
    grow_star = np.full(ncodes, -1, np.int64)
    treated = np.full(nv, -1, np.int64)
    # star[e] is the star holding edge e; hub[s] the hub of star s, or -1 while s
    # is a single edge whose hub is not decided yet. Edges and stars are named by
    # the smaller of their two half-edges.
    star = np.full(nhalf, -1, np.int64)
    hub = np.full(nhalf, -1, np.int64)
    for t in range(order.shape[0]):
        v = order[t]
        if not active[v]:
            continue
        # Distance-1 constraint, and the partial distance-2 constraint through
        # neutral neighbours.
        for h in range(ptr[v], ptr[v + 1]):
            w = idx[h]
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
            elif not active[w]:
                for h2 in range(ptr[w], ptr[w + 1]):
                    cx = color[idx[h2]]
                    if cx >= 0:
                        forbidden[cx] = v
        # Paths of length two (GTMP 2007, Algorithm 4.1, lines 4-15).
        for h in range(ptr[v], ptr[v + 1]):
            w = idx[h]
            cw = color[w]
            if cw < 0:
                continue
            if first_v[cw] == v:
                # v has at least two neighbours of color cw: v must be the hub of
                # their star, so the other neighbours of those are off limits.
                q = first_w[cw]
                if treated[q] != v:
                    _treat(q, v, ptr, idx, color, forbidden, treated)
                if treated[w] != v:
                    _treat(w, v, ptr, idx, color, forbidden, treated)
            else:
                first_v[cw] = v
                first_w[cw] = w
                for h2 in range(ptr[w], ptr[w + 1]):
                    x = idx[h2]
                    if x == v:
                        continue
                    cx = color[x]
                    if cx < 0 or forbidden[cx] == v:
                        continue
                    # w is a leaf of a star centred at x: taking x's color would
                    # make v - w - x - (another leaf) two-colored.
                    if hub[star[min(h2, rev[h2])]] == x:
                        forbidden[cx] = v
        s = side[v]
        k = 0
        while forbidden[k * nsides + s] == v:
            k += 1
        c = k * nsides + s
        color[v] = c
        # Update the stars (GTMP 2007, Algorithm 4.1, "updateStars").
        for h in range(ptr[v], ptr[v + 1]):
            w = idx[h]
            cw = color[w]
            if cw < 0:
                continue
            e = min(h, rev[h])
            found = -1
            for h2 in range(ptr[w], ptr[w + 1]):
                if idx[h2] != v and color[idx[h2]] == c:
                    found = h2
                    break
            if found >= 0:
                # w already has a neighbour of color c: v joins that star as a
                # leaf, and w is (now) its hub.
                st = star[min(found, rev[found])]
                hub[st] = w
                star[e] = st
            elif grow_v[cw] == v:
                # A second neighbour of color cw: v is the hub of a new star.
                st = grow_star[cw]
                hub[st] = v
                star[e] = st
            else:
                grow_v[cw] = v
                grow_star[cw] = e
                star[e] = e
                hub[e] = -1
    return color


def star_coloring(
    graph: AdjacencyGraph,
    order: np.ndarray,
    *,
    side: np.ndarray | None = None,
    nsides: int = 1,
    active: np.ndarray | None = None,
) -> np.ndarray:
    """Color codes (`int64`) of a greedy star coloring of `graph` in `order`.

    With the defaults, codes are colors `0, 1, ...`. Neutral vertices get `-1`.
    """
    if side is None:
        side = np.zeros(graph.n, np.int64)
    if active is None:
        active = np.ones(graph.n, np.bool_)
    return _star_kernel(
        graph.n, graph.ptr, graph.idx, graph.rev, order, side, nsides, active
    )
