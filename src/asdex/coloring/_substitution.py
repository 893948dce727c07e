"""Substitution-based decompression of a symmetric matrix compressed with an acyclic coloring.

Let `B = H @ S` where `S` is the seed matrix of an acyclic coloring. For a vertex
`u` of color `a` and another color `b`,

    B[u, b] = Σ_{k ∈ N(u), color(k) = b} H[u, k],

and the neighbours `k` in that sum are exactly the neighbours of `u` in the
two-colored tree `T` of colors `{a, b}` that holds `u`. So each tree `T` gives one
linear equation per vertex in the unknowns `H[e]`, `e` an edge of `T`. Rooting `T`
and writing `x_u = H[u, parent(u)]`,

    x_u = B[u, color(parent(u))] - Σ_{c child of u} x_c.

Solving leaves first, then moving inward (Coleman & Cai 1986; Gebremedhin, Manne &
Pothen 2005, §4.4), takes as many sequential steps as the tree is deep: half a
million on a tridiagonal matrix of size 10⁶. To vectorise, we cut each tree into
*heavy paths* (Sleator & Tarjan 1983): each vertex continues its path to the child
with the largest subtree. Along a path `u_0` (bottom), `u_1`, ..., the recurrence
is `x_{u_k} = r_k - x_{u_{k-1}}` with `r_k` the right-hand side above minus the
light children, whose solution is the alternating prefix sum

    x_{u_k} = (-1)^k Σ_{j ≤ k} (-1)^j r_j.

A path's light children lie on paths of lower *level*, where the level of a path
is one more than the largest level of the paths hanging off it (the root, having
no equation, waits for nothing). A root-to-leaf walk crosses at most `log₂ |T|`
light edges, so there are at most `log₂ |T| + 1` levels, each one gather, one
scatter-subtract and the prefix sums of its paths. Those are row-wise prefix sums
of a few 2-D blocks, paths of similar length padded into the rows of one block, so
that no rounding error leaks from one path to the next (a flat `cumsum` minus
offsets would leak). In JAX they are products with triangular matrices of ones,
which compile at once (a segmented `jax.lax.associative_scan` takes seconds). Rooting each tree at a
centroid halves the longest path. Errors grow like those of sequential
substitution: with the length of the path below an entry, not with the size of
the matrix.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numba
import numpy as np

from ._graph import AdjacencyGraph

_OK, _SAME_COLOR, _CYCLE = 0, 1, 2


@numba.njit(cache=True)
def _bfs(nn, nptr, nhe, node_of, rev, roots, order, up):
    """Breadth-first search of the node forest from `roots` (one per tree).

    Fills `order` and `up` (the half-edge from each node to its parent, -1 at a
    root). Returns `(status, a, b)`: `_CYCLE` with two nodes on a cycle if the
    forest has one.
    """
    visited = np.zeros(nn, np.bool_)
    tail = 0
    head = 0
    for r in range(roots.shape[0]):
        s = roots[r]
        if visited[s]:
            continue
        visited[s] = True
        up[s] = -1
        order[tail] = s
        tail += 1
        while head < tail:
            a = order[head]
            head += 1
            for k in range(nptr[a], nptr[a + 1]):
                h = nhe[k]
                if h == up[a]:
                    continue
                b = node_of[rev[h]]
                if visited[b]:
                    return _CYCLE, a, b
                visited[b] = True
                up[b] = rev[h]
                order[tail] = b
                tail += 1
    return _OK, -1, -1


@numba.njit(cache=True)
def _plan_kernel(n, ptr, idx, rev, hpos, nnz, colors, ncolors):
    """Build the two-colored forests of `colors` and the plan that solves them.

    Returns `(status, u, v, nbuckets, level_ptr, rhs_index, sign, rows_in,
    sub_ptr, sub_target, sub_source, value_entry)`; on failure (`status` is
    `_SAME_COLOR` or `_CYCLE`) `u, v` are two offending vertices. `rows_in[k, w]`
    counts the paths of level `k` in the block of width `2^w`, and
    `value_entry[p]` is the unknown holding pattern entry `p` (-1 on the
    diagonal).
    """
    nhalf = idx.shape[0]
    empty = np.zeros(0, np.int64)
    empty_sign = np.zeros(0, np.int8)
    empty_rows = np.zeros((0, 0), np.int64)
    # Nodes: one per (vertex u, other color b) with u having b-colored neighbours;
    # node (u, b) is u as a member of its {color(u), b} tree.
    node_of = np.empty(nhalf, np.int64)
    node_vertex = np.empty(nhalf, np.int64)
    node_other = np.empty(nhalf, np.int64)
    stamp = np.full(ncolors, -1, np.int64)
    local = np.empty(ncolors, np.int64)
    nn = 0
    for u in range(n):
        cu = colors[u]
        for h in range(ptr[u], ptr[u + 1]):
            c = colors[idx[h]]
            if c == cu:
                return (
                    _SAME_COLOR,
                    u,
                    idx[h],
                    0,
                    empty,
                    empty,
                    empty_sign,
                    empty_rows,
                    empty,
                    empty,
                    empty,
                    empty,
                )
            if stamp[c] != u:
                stamp[c] = u
                local[c] = nn
                node_vertex[nn] = u
                node_other[nn] = c
                nn += 1
            node_of[h] = local[c]
    # Half-edges grouped by node (counting sort).
    nptr = np.zeros(nn + 1, np.int64)
    for h in range(nhalf):
        nptr[node_of[h] + 1] += 1
    for a in range(nn):
        nptr[a + 1] += nptr[a]
    cursor = nptr[:-1].copy()
    nhe = np.empty(nhalf, np.int64)
    for h in range(nhalf):
        a = node_of[h]
        nhe[cursor[a]] = h
        cursor[a] += 1
    # First search: find the trees (and any cycle), then a centroid of each.
    order = np.empty(nn, np.int64)
    up = np.empty(nn, np.int64)
    status, a, b = _bfs(nn, nptr, nhe, node_of, rev, np.arange(nn), order, up)
    if status != _OK:
        return (
            status,
            node_vertex[a],
            node_vertex[b],
            0,
            empty,
            empty,
            empty_sign,
            empty_rows,
            empty,
            empty,
            empty,
            empty,
        )
    parent = np.full(nn, -1, np.int64)
    size = np.ones(nn, np.int64)
    for i in range(nn - 1, -1, -1):
        a = order[i]
        if up[a] >= 0:
            p = node_of[rev[up[a]]]
            parent[a] = p
            size[p] += size[a]
    # Re-root each tree at a centroid (no subtree larger than half the tree). Only
    # the path from the old root to the centroid changes direction, so no second
    # search is needed.
    roots = np.empty(nn, np.int64)
    ntrees = 0
    for a in range(nn):
        if parent[a] < 0:
            roots[ntrees] = a
            ntrees += 1
    on_path = np.zeros(nn, np.bool_)
    path_nodes = np.empty(nn, np.int64)
    npath = 0
    for i in range(ntrees):
        r = roots[i]
        total = size[r]
        c = r
        moved = True
        while moved:
            moved = False
            for k in range(nptr[c], nptr[c + 1]):
                h = nhe[k]
                if h == up[c]:
                    continue
                child = node_of[rev[h]]
                if 2 * size[child] > total:
                    c = child
                    moved = True
                    break
        start = npath
        a = c
        while a >= 0:
            path_nodes[npath] = a
            on_path[a] = True
            npath += 1
            a = parent[a]
        # path_nodes[start:npath] runs from the centroid up to the old root;
        # descending, each node still reads its old child's old values.
        for k in range(npath - 1, start, -1):
            q = path_nodes[k]
            child = path_nodes[k - 1]
            size[q] = total - size[child]
            up[q] = rev[up[child]]
            parent[q] = child
        size[c] = total
        up[c] = -1
        parent[c] = -1
    # A bottom-up order for the new roots: the unchanged subtrees first, then each
    # re-rooted path from the old root down to the centroid.
    bottom_up = np.empty(nn, np.int64)
    t = 0
    for i in range(nn - 1, -1, -1):
        a = order[i]
        if not on_path[a]:
            bottom_up[t] = a
            t += 1
    for k in range(npath - 1, -1, -1):
        bottom_up[t] = path_nodes[k]
        t += 1
    heavy = np.full(nn, -1, np.int64)
    for i in range(nn):
        a = bottom_up[i]
        p = parent[a]
        if p >= 0 and (heavy[p] < 0 or size[a] > size[heavy[p]]):
            heavy[p] = a
    # Levels: a path's level exceeds those of the light paths hanging off it.
    level = np.zeros(nn, np.int64)
    for i in range(nn):
        a = bottom_up[i]
        p = parent[a]
        # The root has no equation of its own, so its light children wait for
        # nothing on the root's path.
        if p >= 0 and (heavy[p] == a or parent[p] >= 0):
            la = level[a] if heavy[p] == a else level[a] + 1
            if la > level[p]:
                level[p] = la
    for i in range(nn - 1, -1, -1):
        a = bottom_up[i]
        p = parent[a]
        if p >= 0 and heavy[p] == a:
            level[a] = level[p]
    # Unknowns ("entries"): one per non-root node. Within a level, paths are
    # bucketed by length: paths of length in (2^(w-1), 2^w] are rows of a block
    # of width 2^w, listed bottom to top and padded at the end (sign 0), so that
    # a level's prefix sums are row-wise cumsums of a few 2-D blocks.
    nlevels = 0
    nbuckets = 1
    below = np.ones(nn, np.int64)
    for i in range(nn):
        a = bottom_up[i]
        if heavy[a] >= 0:
            below[a] += below[heavy[a]]
    path_len = np.zeros(nn, np.int64)
    path_bucket = np.zeros(nn, np.int64)
    for top in range(nn):
        p = parent[top]
        if p >= 0 and heavy[p] == top:
            continue
        length = below[top] if p >= 0 else below[top] - 1
        w = 0
        while (1 << w) < length:
            w += 1
        path_len[top] = length
        path_bucket[top] = w
        if w + 1 > nbuckets:
            nbuckets = w + 1
        if level[top] + 1 > nlevels:
            nlevels = level[top] + 1
    rows_in = np.zeros((nlevels, nbuckets), np.int64)
    for a in range(nn):
        if path_len[a] > 0:
            rows_in[level[a], path_bucket[a]] += 1
    block_start = np.zeros((nlevels, nbuckets), np.int64)
    level_ptr = np.zeros(nlevels + 1, np.int64)
    total = 0
    for lv in range(nlevels):
        for w in range(nbuckets):
            block_start[lv, w] = total
            total += rows_in[lv, w] << w
        level_ptr[lv + 1] = total
    row_fill = np.zeros((nlevels, nbuckets), np.int64)
    entry_of = np.full(nn, -1, np.int64)
    rhs_index = np.zeros(total, np.int64)
    sign = np.zeros(total, np.int8)
    for top in range(nn):
        length = path_len[top]
        if length == 0:
            continue
        lv = level[top]
        w = path_bucket[top]
        base = block_start[lv, w] + (row_fill[lv, w] << w)
        row_fill[lv, w] += 1
        # Walk down from the top; the bottom of the path lands at `base`.
        a = top if parent[top] >= 0 else heavy[top]
        q = length - 1
        while a >= 0:
            pos = base + q
            entry_of[a] = pos
            rhs_index[pos] = node_vertex[a] * ncolors + node_other[a]
            sign[pos] = 1 if q % 2 == 0 else -1
            q -= 1
            a = heavy[a]
    # Light children subtract their solved entry from their parent's equation.
    sub_ptr = np.zeros(nlevels + 1, np.int64)
    for a in range(nn):
        p = parent[a]
        if p >= 0 and heavy[p] != a and parent[p] >= 0:
            sub_ptr[level[p] + 1] += 1
    for k in range(nlevels):
        sub_ptr[k + 1] += sub_ptr[k]
    sfill = sub_ptr[:-1].copy()
    sub_target = np.empty(sub_ptr[nlevels], np.int64)
    sub_source = np.empty(sub_ptr[nlevels], np.int64)
    for a in range(nn):
        p = parent[a]
        if p >= 0 and heavy[p] != a and parent[p] >= 0:
            q = sfill[level[p]]
            sfill[level[p]] += 1
            sub_target[q] = entry_of[p]
            sub_source[q] = entry_of[a]
    # Each off-diagonal pattern entry is the unknown of its child endpoint.
    value_entry = np.full(nnz, -1, np.int64)
    for a in range(nn):
        if parent[a] >= 0:
            h = up[a]
            value_entry[hpos[h]] = entry_of[a]
            value_entry[hpos[rev[h]]] = entry_of[a]
    return (
        _OK,
        -1,
        -1,
        nbuckets,
        level_ptr,
        rhs_index,
        sign,
        rows_in,
        sub_ptr,
        sub_target,
        sub_source,
        value_entry,
    )


def build_plan(graph: AdjacencyGraph, colors: np.ndarray, ncolors: int, nnz: int):
    """Run the plan kernel; return `(status, u, v, nlevels, arrays...)`."""
    return _plan_kernel(
        graph.n,
        graph.ptr,
        graph.idx,
        graph.rev,
        graph.hpos,
        nnz,
        colors.astype(np.int64),
        max(ncolors, 1),
    )


# Tile width of the prefix sums below. Each element costs `2 * _TILE` flops, and
# the recursion `log(width) / log(_TILE)` levels: on CPU, 16 runs the (2, 2¹⁹)
# block of a chained Rosenbrock plan in 0.52 ms against 0.84 ms with 64, and
# (129, 512) in 0.07 against 0.13 ms, compiling as fast.
_TILE = 16


def _row_prefix_numpy(x):
    return np.cumsum(x, axis=1)


def _row_prefix_jax(x):
    """Row-wise prefix sums of `x`, shape `(rows, 2^w)`, as small matrix products.

    XLA lowers `cumsum` on CPU and GPU to an associative scan that takes a few
    tenths of a second to compile per call, and a plan has dozens of blocks.
    Products with a triangular matrix of ones compile at once. Rows wider than
    `_TILE` are cut into tiles: prefix sums within tiles, then (recursively) of the
    tile totals. `HIGHEST` precision keeps GPUs from rounding to TF32.
    """
    rows, width = x.shape
    if width == 1:
        return x
    tile = min(width, _TILE)
    ones = jnp.triu(jnp.ones((tile, tile), dtype=x.dtype))
    local = jnp.matmul(
        x.reshape(rows, width // tile, tile),
        ones,
        precision=jax.lax.Precision.HIGHEST,
    )
    if width == tile:
        return local.reshape(rows, width)
    totals = local[:, :, -1]
    before = _row_prefix_jax(totals) - totals
    return (local + before[:, :, None]).reshape(rows, width)


class SubstitutionPlan(eqx.Module):
    """How to solve the two-colored trees of an acyclic coloring, level by level.

    The unknowns are the off-diagonal entries `x`, one per tree edge, plus some
    padding. Level `k` owns `x[a:b]` with `a, b = level_bounds[k],
    level_bounds[k + 1]`, laid out as consecutive 2-D blocks: `blocks[k]` lists
    `(start, rows, width)`, and each row of a block is one heavy path, bottom to
    top, padded at its end. With `s, t = sub_bounds[k], sub_bounds[k + 1]`:

    ```python
    r = B_flat[rhs_index[a:b]]                       # one gather
    r[sub_target[s:t] - a] -= x[sub_source[s:t]]     # light children (scatter-add)
    u = sign[a:b] * r
    u = concatenate([cumsum(u[start - a : start - a + rows * width]
                            .reshape(rows, width), axis=1).ravel()
                     for start, rows, width in blocks[k]])
    x[a:b] = sign[a:b] * u
    ```

    `sign` alternates `±1` along each path and is 0 on padding. Sources of the
    subtraction lie in earlier levels. There are at most `log₂(n) + 1` levels, and
    at most `log₂(n) + 1` blocks in a level.

    **Fields:**

    - `rhs_index`: `(E,)` flat index into `B.ravel()` of each unknown's equation.
    - `sign`: `(E,)` `int8`.
    - `sub_target`, `sub_source`: `(K,)` unknowns to update, and to subtract.
    - `level_bounds`, `sub_bounds`: static tuples of length `levels + 1`.
    - `blocks`: static; for each level, a tuple of `(start, rows, width)`.
    """

    rhs_index: np.ndarray
    sign: np.ndarray
    sub_target: np.ndarray
    sub_source: np.ndarray
    level_bounds: tuple[int, ...] = eqx.field(static=True)
    sub_bounds: tuple[int, ...] = eqx.field(static=True)
    blocks: tuple[tuple[tuple[int, int, int], ...], ...] = eqx.field(static=True)

    @property
    def num_unknowns(self) -> int:
        """The length `E` of `x`: one per edge of the two-colored forests, plus padding."""
        return self.level_bounds[-1]

    @property
    def num_levels(self) -> int:
        """The number of sequential levels."""
        return len(self.level_bounds) - 1

    def solve(self, flat):
        """The unknowns `x` from the flattened compressed matrix `B.ravel()`.

        Works on numpy arrays (a reference implementation) and on JAX arrays, under
        `jax.jit` and `jax.vmap` too.
        """
        if isinstance(flat, jax.Array):
            return self._solve(flat, jnp)
        return self._solve(np.asarray(flat), np)

    def _solve(self, flat, xp):
        x = xp.zeros(self.num_unknowns, dtype=flat.dtype)
        for k in range(self.num_levels):
            a, b = self.level_bounds[k], self.level_bounds[k + 1]
            s, t = self.sub_bounds[k], self.sub_bounds[k + 1]
            r = flat[self.rhs_index[a:b]]
            if t > s:
                target = self.sub_target[s:t] - a
                source = x[self.sub_source[s:t]]
                if xp is np:
                    np.subtract.at(r, target, source)
                else:
                    r = r.at[target].add(-source)
            sign = xp.asarray(self.sign[a:b]).astype(flat.dtype)
            u = sign * r
            prefix = _row_prefix_jax if xp is jnp else _row_prefix_numpy
            pieces = [
                prefix(u[start - a : start - a + rows * width].reshape(rows, width))
                for start, rows, width in self.blocks[k]
            ]
            pieces = [p.reshape(-1) for p in pieces]
            u = pieces[0] if len(pieces) == 1 else xp.concatenate(pieces)
            if xp is np:
                x[a:b] = sign * u
            else:
                x = x.at[a:b].set(sign * u)
        return x
