"""Which columns of a least-squares matrix to eliminate by a Schur complement.

Bundle adjustment's Jacobian couples each observation with one camera and one
point; its Gram matrix `AᵀA = [[U, W], [Wᵀ, V]]` has a block-diagonal `V` (3 × 3
per point) over most of the unknowns. Eliminating those blocks leaves the small
reduced system `S = U − W V⁻¹ Wᵀ` over the cameras, which is what dedicated
bundle adjusters solve. This module finds such blocks in any pattern, in numpy,
once per pattern:

1. Columns with the same rows form a *supervariable* (a point's 3 columns, a
   camera's 9). Rows with one entry (the `√λ I` rows of a damped stack) couple no
   columns and are left out.
2. Supervariables no larger than `max_block` that share no row are eliminated
   together, picked greedily as an independent set in their coupling graph, those
   coupled to fewer entries first (numba, linear in the pairs of entries that
   share a row: no Gram matrix is formed).
3. What is left is the reduced system, in groups of identical columns (a
   camera's 9). Up to `max_reduced` unknowns it is assembled and factorised
   densely; beyond, only its nonzero group blocks are assembled, and it is
   factorised as a sparse matrix on the host.

Each row then touches at most one eliminated block, so every term of `V`, `W`
and `U` is assembled row by row, from padded index arrays into the values.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import scipy.sparse as sp

from .._caches import cached
from .._pattern import SparsityPattern

# The batch sizes tried for `U`'s outer-product sums, and the chunk lengths for
# `W V⁻¹ Wᵀ`'s pairs, each picked by a cost estimate in one unit: an element
# scattered costs ten multiply-adds (XLA's CPU scatters are that much slower
# than its fused elementwise products), an element gathered one.
_SCATTER_COST = 10.0
_BATCHES = (1, 4, 16, 64, 256)
_CHUNKS = (1, 2, 4, 8, 16, 32, 64, 128)
# Reduced groups are padded to a common size, at most this.
_MAX_GROUP = 16


@dataclasses.dataclass(frozen=True, eq=False)
class OuterSumPlan:
    """How to add `Σᵢ xᵢ xᵢᵀ` into the reduced system `S`, stored as flat blocks.

    Item `i` (a row of `A`) has a short vector `xᵢ` whose entries belong at the
    indices `idx[i]` (padding `r`). Scattering every product entry by entry is
    slow, so the items are sorted by their indices and taken `B` at a time: the
    batch's `xᵢ` are laid side by side in a dense `D` over the union of their
    `u` indices, one batched product `D Dᵀ` sums them, and only that is
    scattered. Rows on the same columns (a camera's observations) make the
    unions small.
    """

    items: np.ndarray  # (batches, B) the batch's items; padding: the dummy item
    # (batches, B, w): flat index of each entry in D, of shape (batches, u + 1, B)
    place: np.ndarray
    target: np.ndarray  # (batches · u · u,) flat places of D Dᵀ in S's blocks
    union_size: int  # u


@dataclasses.dataclass(frozen=True, eq=False)
class PairPlan:
    """How to subtract `W V⁻¹ Wᵀ = Σ_b F_b F_bᵀ` (`F_b = W_b L_b⁻ᵀ`) by group pairs.

    The reduced unknowns come in groups of `s` (a camera's 9 parameters), and
    block `b`'s `F_b` in `s × k` pieces, one per group it couples to. The
    `(g, h)` block of the sum adds `F_b[g] F_b[h]ᵀ` over the blocks coupled to
    both: one dense product of the pieces laid side by side. Each group pair's
    blocks are cut into chunks of one length, so that all pairs go through one
    batched product and only `s × s` results are scattered, instead of every
    entry of every `F_b F_bᵀ`.
    """

    # (chunks, length): pieces `b · gmax + i` of group g; padding: a zero piece
    left: np.ndarray
    right: np.ndarray  # (chunks, length) the pieces of group h of the same blocks
    target: np.ndarray  # (chunks,) the block (g, h), h ≥ g, of `S`'s blocks
    mirror: np.ndarray  # (chunks,) the block (h, g); for h = g, the dummy block


@dataclasses.dataclass(frozen=True, eq=False)
class SchurPlan:
    """Padded index arrays for assembling and solving `AᵀA` by blocks.

    Sizes: `m × n` the matrix, `nb` eliminated blocks of at most `k` columns, `r`
    reduced unknowns in `ng` groups of `s` slots, at most `p` reduced entries per
    row, and `c = gmax · s` reduced unknowns coupled to one block. Indices into
    the values use `nnz` (a zero appended to them) for padding; padded block
    slots point at column `n`, padded reduced unknowns at unknown `r` or column
    `n`, and rows with no block at block `nb`.
    """

    shape: tuple[int, int]
    row_block: np.ndarray  # (m,) the block a row touches, or nb
    e_pos: np.ndarray  # (m, k) value index of row i's entry in slot q of its block
    r_pos: np.ndarray  # (m, p) value indices of row i's reduced entries
    w_index: np.ndarray  # (m, p) their places in W's blocks, (nb + 1, c + 1) flat
    block_cols: np.ndarray  # (nb, k) columns of each block's slots
    block_reduced: np.ndarray  # (nb, c) reduced unknowns coupled to each block
    reduced_cols: np.ndarray  # (r,) columns of the reduced unknowns, or n
    group_size: int  # s
    s_blocks: int  # S's s × s blocks in the buffer: ng² (dense S), or the sparse ones
    padding: np.ndarray  # flat places of the padded unknowns' diagonal entries
    gram_sum: OuterSumPlan | None  # U = Σ rows' reduced entries' outer products
    pairs: PairPlan | None  # W V⁻¹ Wᵀ by pairs of groups
    s_pattern: SparsityPattern | None  # a sparse S's pattern; None for a dense S
    value_order: np.ndarray | None  # its values' places in the buffer

    @property
    def num_blocks(self) -> int:
        return self.block_cols.shape[0]

    @property
    def block_size(self) -> int:
        return self.block_cols.shape[1]

    @property
    def reduced_size(self) -> int:
        return self.reduced_cols.size

    @property
    def num_groups(self) -> int:
        return self.reduced_size // self.group_size

    @property
    def coupled_size(self) -> int:
        return self.block_reduced.shape[1]


def _batch_unions(rows: np.ndarray, repeat: np.ndarray, size: int, r: int):
    """The union of each batch of `size` consecutive rows: its distinct indices
    below `r`, as sorted keys `batch · (r + 1) + index`.

    `rows` holds each row's indices sorted, and `repeat` marks the rows equal to
    the one before. Such a row adds nothing to its batch unless it opens it, so
    only the others are merged: few, when rows on the same columns (a camera's
    observations) come together.
    """
    opens = ~repeat
    opens[::size] = True
    which = np.flatnonzero(opens)
    keys = (which // size)[:, None] * (r + 1) + rows[which]
    keys = keys[rows[which] < r]
    return _unique(keys)


def _outer_sum_plan(idx: np.ndarray, r: int, locate) -> OuterSumPlan | None:
    """Batch the rows by their indices, with the cheapest batch size; `None` for
    no rows. `locate(a, b)` gives the flat place of entry `(a, b)` of the sum."""
    used = np.flatnonzero(np.any(idx < r, axis=1))
    if used.size == 0 or r == 0:
        return None
    w = idx.shape[1]
    # Rows sorted by their two smallest indices: enough to bring rows on the same
    # columns together, and far cheaper than sorting by all of them.
    rows = np.sort(idx[used], axis=1)
    rank = np.lexsort(rows[:, :2].T[::-1])
    order, rows = used[rank], rows[rank]
    repeat = np.zeros(order.size, bool)
    repeat[1:] = np.all(rows[1:] == rows[:-1], axis=1)
    best = None
    for size in _BATCHES:
        batches = -(-order.size // size)
        keys = _batch_unions(rows, repeat, size, r)
        counts = np.bincount(keys // (r + 1), minlength=batches)
        u = max(int(counts.max(initial=0)), 1)
        cost = batches * u * u * (_SCATTER_COST + size)
        if best is None or cost < best[0]:
            best = (cost, size, keys, counts, u)
        elif cost > 2 * best[0]:
            break  # past the cheapest: larger batches only grow the unions
        if batches == 1:
            break
    _, size, keys, counts, u = best
    batches = counts.size
    items = np.full(batches * size, idx.shape[0], np.int64)
    items[: order.size] = order
    items = items.reshape(batches, size)
    entries = np.concatenate([idx, np.full((1, w), r)])[items].reshape(batches, -1)
    union = np.full((batches, u), r, np.int64)
    batch = keys // (r + 1)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    union[batch, np.arange(keys.size) - first[batch]] = keys % (r + 1)
    # Each entry's place in its batch's union (padding: the dropped place u).
    # Keys `batch · (r + 2) + index` sort the unions of all batches as one array.
    key = np.arange(batches)[:, None] * (r + 2)
    found = np.searchsorted((key + union).ravel(), key + entries)
    found -= np.arange(batches)[:, None] * u
    position = np.where(entries < r, found, u).reshape(batches, size, w)
    batch = np.arange(batches)[:, None, None]
    place = (batch * (u + 1) + position) * size + np.arange(size)[None, :, None]
    target = locate(
        np.broadcast_to(union[:, :, None], (batches, u, u)),
        np.broadcast_to(union[:, None, :], (batches, u, u)),
    )
    return OuterSumPlan(items, place, target.ravel(), u)


def _supervariables(
    rows: np.ndarray, cols: np.ndarray, m: int, n: int
) -> tuple[np.ndarray, int]:
    """Group columns with identical row sets: the group of each column."""
    # Two random sums of a column's rows, and its count, identify the set. The
    # sums run in row order, so identical sets give identical bits. A collision
    # (all but impossible) is caught by the plan's check that no row touches two
    # eliminated blocks.
    rng = np.random.default_rng(0)
    h1 = np.bincount(cols, rng.random(m)[rows], minlength=n)
    h2 = np.bincount(cols, rng.random(m)[rows], minlength=n)
    count = np.bincount(cols, minlength=n).astype(np.float64)
    # Columns in no coupling row stay alone: they share no row with anything.
    lonely = count == 0
    h1[lonely] = np.arange(n)[lonely]
    # Number the distinct (count, h1, h2) in sorted order: a lexsort and a scan
    # (`np.unique(axis=0)` sorts rows as records, several times slower).
    order = np.lexsort((h2, h1, count))
    same = np.ones(n, bool)
    for key in (count, h1, h2):
        ranked = key[order]
        same[1:] &= ranked[1:] == ranked[:-1]
    same[:1] = False
    group = np.empty(n, np.int64)
    group[order] = np.cumsum(~same) - 1
    return group, int(group.max(initial=-1)) + 1


@numba.njit(cache=True)
def _greedy_blocks(order, first_col, col_ptr, col_rows, row_ptr, row_cols, group, ok):
    """Visit the groups in `order`; each joins unless a row of its shares a
    column with a group that joined before. Linear in the pairs of entries that
    share a row."""
    chosen = np.zeros(ok.size, np.bool_)
    for g in order:
        if not ok[g]:
            continue
        c = first_col[g]
        free = True
        for p in range(col_ptr[c], col_ptr[c + 1]):
            i = col_rows[p]
            for q in range(row_ptr[i], row_ptr[i + 1]):
                h = group[row_cols[q]]
                if h != g and chosen[h]:
                    free = False
                    break
            if not free:
                break
        chosen[g] = free
    return chosen


def _independent_blocks(
    rows: np.ndarray,
    cols: np.ndarray,
    m: int,
    group: np.ndarray,
    sizes: np.ndarray,
    max_block: int,
) -> np.ndarray:
    """An independent set of supervariables of at most `max_block` columns, for
    the coupling rows `(rows, cols)` (sorted by row): greedily, groups coupled
    to fewer entries first (points before cameras), ties in a fixed random
    order."""
    n = group.size
    row_len = np.bincount(rows, minlength=m)
    coupled = np.bincount(cols, row_len[rows] - 1, minlength=n)
    first_col = np.zeros(sizes.size, np.int64)
    first_col[group[::-1]] = np.arange(n)[::-1]
    degree = coupled[first_col] * sizes
    tie = np.random.default_rng(0).permutation(sizes.size)
    order = np.lexsort((tie, degree))
    # The rows of each column: scipy's counting sort into column order.
    by_col = sp.csc_array((np.ones(rows.size, bool), (rows, cols)), shape=(m, n))
    row_ptr = np.concatenate([[0], np.cumsum(row_len)])
    return _greedy_blocks(
        order,
        first_col,
        by_col.indptr,
        by_col.indices,
        row_ptr,
        cols,
        group,
        sizes <= max_block,
    )


def _pad_rows(row: np.ndarray, value: np.ndarray, m: int, fill) -> np.ndarray:
    """`value[i]` laid out in row `row[i]` of an `m`-row array, padded with `fill`;
    within a row, in the order given."""
    if row.size and np.any(row[1:] < row[:-1]):
        order = np.argsort(row, kind="stable")
        row, value = row[order], value[order]
    count = np.bincount(row, minlength=m)
    width = int(count.max(initial=0))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    position = np.arange(row.size) - start[row]
    out = np.full((m, max(width, 1)), fill, dtype=value.dtype)
    out[row, position] = value
    return out


def _pair_keys(block_groups: np.ndarray, ng: int):
    """Every pair `(g, h)`, `g ≤ h`, of groups coupled to one block: its key
    `g · ng + h`, and the pieces `b · gmax + i` of both sides, sorted by key."""
    nb, gmax = block_groups.shape
    left, right = np.triu_indices(gmax)
    g_left, g_right = block_groups[:, left], block_groups[:, right]
    real = (g_left < ng) & (g_right < ng)
    block = np.broadcast_to(np.arange(nb)[:, None], real.shape)[real]
    item_left = block * gmax + np.broadcast_to(left, real.shape)[real]
    item_right = block * gmax + np.broadcast_to(right, real.shape)[real]
    key = g_left[real].astype(np.int64) * ng + g_right[real]
    order = np.argsort(key, kind="stable")
    return key[order], item_left[order], item_right[order]


def _pair_plan(
    block_groups: np.ndarray, ng: int, pair_keys, block_of, unused_block: int
) -> PairPlan | None:
    """The chunks of `W V⁻¹ Wᵀ`'s group pairs; see `PairPlan`. `pair_keys` is
    `_pair_keys(block_groups, ng)`, and `block_of(g, h)` the place of block
    `(g, h)` among `S`'s blocks."""
    nb, gmax = block_groups.shape
    key, item_left, item_right = pair_keys
    if key.size == 0:
        return None
    keys, start, count = np.unique(key, return_index=True, return_counts=True)
    best = None
    for size in _CHUNKS:
        chunks = -(-count // size)
        cost = int(chunks.sum()) * (2 * size + _SCATTER_COST)
        if best is None or cost < best[0]:
            best = (cost, size, chunks)
    _, size, chunks = best
    total = int(chunks.sum())
    # The t-th incidence of key q goes to chunk first[q] + t // size, place t % size.
    first = np.concatenate([[0], np.cumsum(chunks)[:-1]])
    which = np.repeat(np.arange(keys.size), count)
    t = np.arange(key.size) - start[which]
    chunk = first[which] + t // size
    place = t % size
    zero_piece = nb * gmax
    lefts = np.full((total, size), zero_piece, np.int64)
    rights = np.full((total, size), zero_piece, np.int64)
    lefts[chunk, place] = item_left
    rights[chunk, place] = item_right
    chunk_key = np.repeat(keys, chunks)
    g, h = chunk_key // ng, chunk_key % ng
    return PairPlan(
        lefts, rights, block_of(g, h), np.where(h > g, block_of(h, g), unused_block)
    )


def _unique(keys: np.ndarray) -> np.ndarray:
    """`np.unique(keys)`, by a sort and a scan.

    NumPy 2.4's `np.unique` without options hashes, and on these integer keys
    that took 12.7 s for 10⁷ of them where a sort and a scan took 0.15 s (side by
    side on the 2-core benchmark machine). Repeats in a row are dropped first:
    keys taken entry by entry of a row-major pattern repeat along each row, and
    sorting fewer is cheaper.
    """
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    keys = np.sort(keys)
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys


def _row_pairs(rows: np.ndarray, groups: np.ndarray, m: int, ng: int) -> np.ndarray:
    """The keys `g · ng + h` of every pair of groups that share a row."""
    pairs = _unique(rows * (ng + 1) + groups)
    per_row = _pad_rows(pairs // (ng + 1), pairs % (ng + 1), m, ng)
    keys = [
        per_row[:, i] * ng + per_row[:, j]
        for i in range(per_row.shape[1])
        for j in range(per_row.shape[1])
    ]
    both = [
        (per_row[:, i] < ng) & (per_row[:, j] < ng)
        for i in range(per_row.shape[1])
        for j in range(per_row.shape[1])
    ]
    return _unique(np.concatenate([k[b] for k, b in zip(keys, both)]))


def _reduced_groups(
    group: np.ndarray, reduced_cols: np.ndarray, max_reduced: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Number the reduced columns by group: `(group, slot)` of each, and the slot
    count `s`. Groups of identical columns (a camera's 9) share their couplings;
    when their sizes vary too much to pad (or padding alone would make a dense
    reduced system sparse), every column is its own group."""
    _, g = np.unique(group[reduced_cols], return_inverse=True)
    g = g.ravel()
    sizes = np.bincount(g)
    s = min(int(sizes.max(initial=1)), _MAX_GROUP)
    # Groups larger than s are split into pieces of s columns.
    pieces = -(-sizes // s)
    padded = int(pieces.sum()) * s
    size = reduced_cols.size
    if padded > 1.5 * size or size <= max_reduced < padded:
        return np.arange(reduced_cols.size), np.zeros(reduced_cols.size, np.int64), 1
    rank = np.empty(g.size, np.int64)
    order = np.argsort(g, kind="stable")
    rank[order] = (
        np.arange(g.size) - np.concatenate([[0], np.cumsum(sizes)[:-1]])[g[order]]
    )
    piece_first = np.concatenate([[0], np.cumsum(pieces)[:-1]])
    return piece_first[g] + rank // s, rank % s, s


@cached(maxsize=8)
def elimination(
    pattern: SparsityPattern, max_block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2 alone: each column's supervariable, and which columns are
    eliminated. Cheaper than the whole plan, for deciding whether it pays."""
    m, n = pattern.shape
    rows = np.asarray(pattern.rows, np.int64)
    cols = np.asarray(pattern.cols, np.int64)
    couples = np.bincount(rows, minlength=m)[rows] >= 2
    rows, cols = rows[couples], cols[couples]
    group, groups = _supervariables(rows, cols, m, n)
    sizes = np.bincount(group, minlength=groups)
    eliminated = _independent_blocks(rows, cols, m, group, sizes, max_block)
    return group, eliminated[group]


@cached(maxsize=8)
def schur_plan(pattern: SparsityPattern, max_block: int, max_reduced: int) -> SchurPlan:
    """The block elimination of `pattern`'s Gram matrix; its reduced system is
    dense when it has at most `max_reduced` unknowns, and sparse otherwise."""
    m, n = pattern.shape
    rows = np.asarray(pattern.rows, np.int64)
    cols = np.asarray(pattern.cols, np.int64)
    nnz = rows.size
    group, col_eliminated = elimination(pattern, max_block)
    groups = int(group.max(initial=-1)) + 1
    cols_left = np.flatnonzero(~col_eliminated)

    # The reduced unknowns: s slots per group, padded; padding is unknown r's.
    red_group, red_slot, s = _reduced_groups(group, cols_left, max_reduced)
    ng = int(red_group.max(initial=-1)) + 1
    r = ng * s
    reduced_of_col = np.full(n, r, np.int64)
    reduced_of_col[cols_left] = red_group * s + red_slot
    reduced_cols = np.full(r, n, np.int64)
    reduced_cols[reduced_of_col[cols_left]] = cols_left
    group_of_col = np.full(n, ng, np.int64)
    group_of_col[cols_left] = red_group

    # The blocks, in order of their first column; slots in column order.
    e_cols = np.flatnonzero(col_eliminated)
    _, first = np.unique(group[e_cols], return_index=True)
    block_groups_ = group[e_cols][np.sort(first)]
    block_of_group = np.full(groups, -1, np.int64)
    block_of_group[block_groups_] = np.arange(block_groups_.size)
    nb = block_groups_.size
    e_block = block_of_group[group[e_cols]]
    block_cols = _pad_rows(e_block, e_cols, nb, n) if nb else np.full((0, 1), n)
    k = block_cols.shape[1]
    slot_of_col = np.zeros(n, np.int64)
    flat = block_cols.ravel()
    slot_of_col[flat[flat < n]] = np.tile(np.arange(k), nb)[flat < n]

    entry = np.arange(nnz)
    in_block = col_eliminated[cols]
    row_block = np.full(m, nb, np.int64)
    row_block[rows[in_block]] = block_of_group[group[cols[in_block]]]
    if np.any(row_block[rows[in_block]] != block_of_group[group[cols[in_block]]]):
        raise AssertionError("a row touches two eliminated blocks")  # pragma: no cover
    e_pos = np.full((m, k), nnz, np.int64)
    e_pos[rows[in_block], slot_of_col[cols[in_block]]] = entry[in_block]

    # The reduced groups each block couples to, in order, and where each reduced
    # entry of a row goes among its block's `gmax · s` coupled unknowns.
    red = ~in_block
    red_rows, red_cols = rows[red], cols[red]
    red_block = row_block[red_rows]
    coupled = red_block < nb
    pair = _unique(red_block[coupled] * (ng + 1) + group_of_col[red_cols[coupled]])
    pair_block, pair_group = pair // (ng + 1), pair % (ng + 1)
    block_groups = (
        _pad_rows(pair_block, pair_group, nb, ng) if nb else np.zeros((0, 1), np.int64)
    )
    gmax = block_groups.shape[1]
    first_pair = np.searchsorted(pair, np.arange(nb + 1) * (ng + 1))
    gslot = np.searchsorted(pair, red_block * (ng + 1) + group_of_col[red_cols])
    gslot = gslot - first_pair[red_block]
    slot = np.where(coupled, gslot * s + reduced_of_col[red_cols] % s, gmax * s)
    block_reduced = np.where(
        block_groups[:, :, None] < ng,
        block_groups[:, :, None] * s + np.arange(s),
        r,
    ).reshape(nb, gmax * s)
    r_col = _pad_rows(red_rows, reduced_of_col[red_cols], m, r)

    # S's blocks: pairs (g, h) of groups, s × s each, in one buffer with a dummy
    # block last. Dense: all ng² of them, at g · ng + h. Sparse: only the pairs
    # that a row or an eliminated block couples, and the diagonal, sorted.
    pair_keys = _pair_keys(block_groups, ng)
    dense = r <= max_reduced
    if dense:
        blocks = ng * ng

        def block_of(g, h):
            return g * ng + h

    else:
        coupled_pairs = _unique(pair_keys[0])
        keys = _unique(
            np.concatenate(
                [
                    _row_pairs(red_rows, group_of_col[red_cols], m, ng),
                    coupled_pairs,
                    coupled_pairs % ng * ng + coupled_pairs // ng,
                    np.arange(ng) * (ng + 1),
                ]
            )
        )
        blocks = keys.size

        def block_of(g, h):
            key = g * ng + h
            where = np.minimum(np.searchsorted(keys, key), blocks - 1)
            return np.where(keys[where] == key, where, blocks)

    def locate(a, b):
        """The flat place of S's entry (a, b); the dummy block for padding and for
        entries outside the pattern (which are exact zeros)."""
        outside = (a >= r) | (b >= r)
        a, b = np.where(outside, 0, a), np.where(outside, 0, b)
        block = block_of(a // s, b // s)
        flat = (block * s + a % s) * s + b % s
        return np.where(outside | (block == blocks), blocks * s * s, flat)

    padding = np.flatnonzero(reduced_cols == n)
    s_pattern = value_order = None
    if not dense:
        # The sparse S's values in its pattern's row-major order, from the blocks.
        g, h = keys // ng, keys % ng
        i, j = np.divmod(np.arange(s * s), s)
        rows_s = (g[:, None] * s + i).ravel()
        cols_s = (h[:, None] * s + j).ravel()
        value_order = np.lexsort((cols_s, rows_s))
        s_pattern = SparsityPattern._canonical(
            rows_s[value_order], cols_s[value_order], (r, r)
        )

    def small(a: np.ndarray) -> np.ndarray:
        # int32 where every index fits: half the memory and the traffic.
        return a.astype(np.int32) if max(m, n, nnz, (r + 1) ** 2) < 2**31 - 1 else a

    def small_fields(plan):
        if plan is None:
            return None
        return dataclasses.replace(
            plan,
            **{
                f.name: small(getattr(plan, f.name))
                for f in dataclasses.fields(plan)
                if isinstance(getattr(plan, f.name), np.ndarray)
            },
        )

    c = gmax * s
    w_index = row_block[:, None] * (c + 1) + _pad_rows(red_rows, slot, m, c)
    return SchurPlan(
        shape=(m, n),
        row_block=small(row_block),
        e_pos=small(e_pos),
        r_pos=small(_pad_rows(red_rows, entry[red], m, nnz)),
        w_index=small(w_index),
        block_cols=small(block_cols),
        block_reduced=small(block_reduced),
        reduced_cols=small(reduced_cols),
        group_size=s,
        s_blocks=blocks,
        padding=small(locate(padding, padding)),
        gram_sum=small_fields(_outer_sum_plan(r_col, r, locate)),
        pairs=small_fields(_pair_plan(block_groups, ng, pair_keys, block_of, blocks)),
        s_pattern=s_pattern,
        value_order=None if value_order is None else small(value_order),
    )
