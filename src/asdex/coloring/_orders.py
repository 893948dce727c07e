"""Vertex orders for greedy coloring.

Greedy coloring visits the vertices one by one and gives each the smallest color
allowed; the order decides how many colors it needs. The classic orders are
surveyed by Gebremedhin, Manne & Pothen (2005), §3.4, and by Gebremedhin, Nguyen,
Patwary & Pothen (2013), "ColPack", §3.

The *degree* of a vertex is taken in the graph that is colored: the adjacency graph
for symmetric coloring, and the column (or row) intersection graph for partial
distance-2 coloring, i.e. the number of distinct columns that share a row with it.

New orders can be added by subclassing [`asdex.coloring.AbstractOrder`][] and
registering a rule with `vertex_order.register`.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Sequence

import equinox as eqx
import numba
import numpy as np

from ._graph import ConflictGraph

# ---------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _for_each_neighbour_stamp(v, ptr1, idx1, ptr2, idx2, two_hop, stamp, buf):
    """Write the distinct neighbours of `v` into `buf`; return how many there are.

    `stamp` must be an array of -1/vertex ids that never holds `v` on entry.
    """
    count = 0
    if not two_hop:
        for p in range(ptr1[v], ptr1[v + 1]):
            buf[count] = idx1[p]
            count += 1
        return count
    stamp[v] = v
    for p in range(ptr1[v], ptr1[v + 1]):
        w = idx1[p]
        for q in range(ptr2[w], ptr2[w + 1]):
            u = idx2[q]
            if stamp[u] != v:
                stamp[u] = v
                buf[count] = u
                count += 1
    return count


@numba.njit(cache=True)
def degrees(nv, ptr1, idx1, ptr2, idx2, two_hop):
    degree = np.zeros(nv, np.int64)
    if not two_hop:
        for v in range(nv):
            degree[v] = ptr1[v + 1] - ptr1[v]
        return degree
    stamp = np.full(nv, -1, np.int64)
    buf = np.empty(nv, np.int64)
    for v in range(nv):
        degree[v] = _for_each_neighbour_stamp(
            v, ptr1, idx1, ptr2, idx2, two_hop, stamp, buf
        )
    return degree


@numba.njit(cache=True)
def dynamic_order(nv, ptr1, idx1, ptr2, idx2, two_hop, key, pick_max, delta):
    """Pick vertices by a key that changes as the neighbours are picked.

    A bucket queue (doubly linked lists, one per key value) gives each pick in
    O(1) amortised time, as in Matula & Beck (1983) for smallest-last. After `v`
    is picked, the key of every neighbour not yet picked changes by `delta`.
    Returns the vertices in the order picked.
    """
    if nv == 0:
        return np.zeros(0, np.int64)
    key = key.copy()
    nbuckets = max(nv, key.max()) + 2
    head = np.full(nbuckets, -1, np.int64)
    nxt = np.full(nv, -1, np.int64)
    prv = np.full(nv, -1, np.int64)
    for v in range(nv - 1, -1, -1):
        k = key[v]
        nxt[v] = head[k]
        if head[k] >= 0:
            prv[head[k]] = v
        head[k] = v
    picked = np.zeros(nv, np.bool_)
    stamp = np.full(nv, -1, np.int64)
    buf = np.empty(nv, np.int64)
    out = np.empty(nv, np.int64)
    cur = 0
    if pick_max:
        cur = nbuckets - 1
        while cur > 0 and head[cur] < 0:
            cur -= 1
    else:
        while cur < nbuckets - 1 and head[cur] < 0:
            cur += 1
    for t in range(nv):
        v = head[cur]
        # unlink v
        head[cur] = nxt[v]
        if nxt[v] >= 0:
            prv[nxt[v]] = -1
        picked[v] = True
        out[t] = v
        count = _for_each_neighbour_stamp(
            v, ptr1, idx1, ptr2, idx2, two_hop, stamp, buf
        )
        for r in range(count):
            u = buf[r]
            if picked[u]:
                continue
            k = key[u]
            # unlink u from bucket k
            if prv[u] >= 0:
                nxt[prv[u]] = nxt[u]
            else:
                head[k] = nxt[u]
            if nxt[u] >= 0:
                prv[nxt[u]] = prv[u]
            k += delta
            key[u] = k
            prv[u] = -1
            nxt[u] = head[k]
            if head[k] >= 0:
                prv[head[k]] = u
            head[k] = u
            if pick_max and k > cur:
                cur = k
            if not pick_max and k < cur:
                cur = k
        if t == nv - 1:
            break
        if pick_max:
            while head[cur] < 0:
                cur -= 1
        else:
            while head[cur] < 0:
                cur += 1
    return out


# ---------------------------------------------------------------- orders


class AbstractOrder(eqx.Module):
    """A rule that lists the vertices in the order greedy coloring visits them.

    Concrete orders are [`asdex.coloring.NaturalOrder`][],
    [`asdex.coloring.LargestFirst`][], [`asdex.coloring.SmallestLast`][],
    [`asdex.coloring.IncidenceDegree`][],
    [`asdex.coloring.DynamicLargestFirst`][] and [`asdex.coloring.RandomOrder`][].
    Wherever an order is expected, its name as a string (`"natural"`,
    `"largest_first"`, `"smallest_last"`, `"incidence_degree"`,
    `"dynamic_largest_first"`, `"random"`) or an explicit permutation of the
    vertices (a one-dimensional integer array) is accepted too.
    """


class NaturalOrder(AbstractOrder):
    """The vertices `0, 1, 2, ...` in their own order.

    For banded patterns this is optimal: it gives `b` colors to a Jacobian with
    `b` bands.
    """


class LargestFirst(AbstractOrder):
    """Decreasing degree (Welsh & Powell 1967), ties by index."""


class SmallestLast(AbstractOrder):
    """Smallest-last (Matula & Beck 1983).

    Repeatedly remove a vertex of smallest degree in the remaining graph; color in
    the reverse order of removal. The colors are at most one more than the
    degeneracy of the graph.
    """


class IncidenceDegree(AbstractOrder):
    """Incidence degree (Coleman & Moré 1983).

    Next comes the vertex with the most neighbours already ordered.
    """


class DynamicLargestFirst(AbstractOrder):
    """Dynamic largest-first (Gebremedhin et al. 2013, ColPack).

    Next comes the vertex with the most neighbours not yet ordered.
    """


class RandomOrder(AbstractOrder):
    """A random permutation drawn with `numpy.random.default_rng(seed)`."""

    seed: int = eqx.field(default=0, static=True)


_BY_NAME = {
    "natural": NaturalOrder,
    "largest_first": LargestFirst,
    "smallest_last": SmallestLast,
    "incidence_degree": IncidenceDegree,
    "dynamic_largest_first": DynamicLargestFirst,
    "random": RandomOrder,
}

#: Every built-in order once; pass it as `order=` to keep the best coloring.
ALL_ORDERS: tuple[AbstractOrder, ...] = (
    NaturalOrder(),
    LargestFirst(),
    SmallestLast(),
    IncidenceDegree(),
    DynamicLargestFirst(),
)


def as_orders(order, *, caller: str) -> tuple:
    """Normalise an `order=` argument to a non-empty tuple of orders."""
    if isinstance(order, str | AbstractOrder | np.ndarray):
        return (_as_order(order, caller=caller),)
    if isinstance(order, Sequence) and order and not isinstance(order[0], int):
        return tuple(_as_order(o, caller=caller) for o in order)
    if isinstance(order, Sequence) and order:
        return (_as_order(np.asarray(order), caller=caller),)
    raise TypeError(
        f"`{caller}(order=...)` must be an order (`asdex.coloring.AbstractOrder`, a "
        f"name such as 'smallest_last', or a permutation array), or a non-empty "
        f"sequence of orders to keep the best of; got {order!r}."
    )


def _as_order(order, *, caller: str):
    if isinstance(order, AbstractOrder | np.ndarray):
        return order
    if isinstance(order, str) and order in _BY_NAME:
        return _BY_NAME[order]()
    raise ValueError(
        f"`{caller}(order={order!r})` is not a known order; use one of "
        f"{sorted(_BY_NAME)}, an `asdex.coloring.AbstractOrder`, or a permutation "
        "array."
    )


@ft.singledispatch
def vertex_order(order, graph: ConflictGraph) -> np.ndarray:
    """The vertices of `graph` in the order `order` visits them (`int64` array).

    A `functools.singledispatch` function: register a rule for a new
    [`asdex.coloring.AbstractOrder`][] subclass with
    `@vertex_order.register(MyOrder)`.
    """
    raise TypeError(
        f"No vertex order rule for {type(order).__name__}; register one with "
        "`asdex.coloring.vertex_order.register`."
    )


def _kernel_args(graph: ConflictGraph):
    return (graph.nv, graph.ptr1, graph.idx1, graph.ptr2, graph.idx2, graph.two_hop)


@vertex_order.register
def _(order: NaturalOrder, graph: ConflictGraph) -> np.ndarray:
    return np.arange(graph.nv, dtype=np.int64)


@vertex_order.register
def _(order: LargestFirst, graph: ConflictGraph) -> np.ndarray:
    degree = degrees(*_kernel_args(graph))
    return np.argsort(-degree, kind="stable").astype(np.int64)


@vertex_order.register
def _(order: SmallestLast, graph: ConflictGraph) -> np.ndarray:
    degree = degrees(*_kernel_args(graph))
    removed = dynamic_order(*_kernel_args(graph), degree, False, -1)
    return removed[::-1].copy()


@vertex_order.register
def _(order: IncidenceDegree, graph: ConflictGraph) -> np.ndarray:
    return dynamic_order(*_kernel_args(graph), np.zeros(graph.nv, np.int64), True, 1)


@vertex_order.register
def _(order: DynamicLargestFirst, graph: ConflictGraph) -> np.ndarray:
    degree = degrees(*_kernel_args(graph))
    return dynamic_order(*_kernel_args(graph), degree, True, -1)


@vertex_order.register
def _(order: RandomOrder, graph: ConflictGraph) -> np.ndarray:
    return np.random.default_rng(order.seed).permutation(graph.nv).astype(np.int64)


@vertex_order.register
def _(order: np.ndarray, graph: ConflictGraph) -> np.ndarray:
    perm = np.asarray(order)
    if (
        perm.ndim != 1
        or perm.shape[0] != graph.nv
        or (perm.size and not np.issubdtype(perm.dtype, np.integer))
        or not np.array_equal(np.sort(perm), np.arange(graph.nv))
    ):
        raise ValueError(
            f"An explicit `order=` must be a permutation of the {graph.nv} vertices "
            f"being colored, got an array of shape {perm.shape}."
        )
    return perm.astype(np.int64)
