"""Greedy acyclic coloring of an adjacency graph.

An *acyclic coloring* is a distance-1 coloring in which every two-colored subgraph
is a forest. A symmetric matrix compressed with such a coloring can be recovered by
substitution (Coleman & Cai 1986; Gebremedhin, Manne & Pothen 2005, Theorem 4.8):
on each two-colored tree, a leaf's entry is alone in its compressed entry, and
peeling leaves solves the tree. It needs fewer colors than star coloring: 2 instead
of 3 on a tridiagonal matrix, `⌊ρ/2⌋ + 1` instead of `2⌊ρ/2⌋ + 1` on a banded one.

The kernel follows Gebremedhin, Tarafdar, Manne & Pothen (2007), "New acyclic and
star coloring algorithms with application to computing Hessians", Algorithm 3.1:
the edges of the two-colored trees built so far are kept in a disjoint-set forest,
so that a new color is checked for cycles by looking only at paths of length two.
"""

from __future__ import annotations

import numba
import numpy as np

from ._graph import AdjacencyGraph


@numba.njit(cache=True)
def _find(parent, e):
    root = e
    while parent[root] != root:
        root = parent[root]
    while parent[e] != root:
        nxt = parent[e]
        parent[e] = root
        e = nxt
    return root


@numba.njit(cache=True)
def _union(parent, rank, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra == rb:
        return
    if rank[ra] < rank[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    if rank[ra] == rank[rb]:
        rank[ra] += 1


@numba.njit(cache=True)
def _acyclic_kernel(nv, ptr, idx, rev, order):
    nhalf = idx.shape[0]
    color = np.full(nv, -1, np.int64)
    forbidden = np.full(nv + 1, -1, np.int64)
    # Disjoint sets of edges (named by their smaller half-edge): one set per
    # two-colored tree.
    parent = np.arange(nhalf, dtype=np.int64)
    rank = np.zeros(nhalf, np.int64)
    visit_v = np.full(nhalf, -1, np.int64)
    visit_w = np.full(nhalf, -1, np.int64)
    mark_v = np.full(nv + 1, -1, np.int64)
    mark_e = np.full(nv + 1, -1, np.int64)
    for t in range(order.shape[0]):
        v = order[t]
        for h in range(ptr[v], ptr[v + 1]):
            cw = color[idx[h]]
            if cw >= 0:
                forbidden[cw] = v
        # "preventCycle" (GTMP 2007, Algorithm 3.1): if v reaches the same
        # two-colored tree through two different neighbours w, taking the tree's
        # other color would close a cycle.
        for h in range(ptr[v], ptr[v + 1]):
            w = idx[h]
            if color[w] < 0:
                continue
            for h2 in range(ptr[w], ptr[w + 1]):
                x = idx[h2]
                if x == v:
                    continue
                cx = color[x]
                if cx < 0 or forbidden[cx] == v:
                    continue
                tree = _find(parent, min(h2, rev[h2]))
                if visit_v[tree] != v:
                    visit_v[tree] = v
                    visit_w[tree] = w
                elif visit_w[tree] != w:
                    forbidden[cx] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
        # "growStar" / "mergeTrees": the new edges (v, w) join the tree of w's other
        # c-colored neighbours, and all edges from v to one color form one tree.
        for h in range(ptr[v], ptr[v + 1]):
            w = idx[h]
            cw = color[w]
            if cw < 0:
                continue
            e = min(h, rev[h])
            if mark_v[cw] == v:
                _union(parent, rank, e, mark_e[cw])
            else:
                mark_v[cw] = v
                mark_e[cw] = e
            for h2 in range(ptr[w], ptr[w + 1]):
                x = idx[h2]
                if x != v and color[x] == c:
                    _union(parent, rank, e, min(h2, rev[h2]))
                    break
    return color


def acyclic_coloring(graph: AdjacencyGraph, order: np.ndarray) -> np.ndarray:
    """Colors (`int64`, from 0) of a greedy acyclic coloring of `graph` in `order`."""
    return _acyclic_kernel(graph.n, graph.ptr, graph.idx, graph.rev, order)
