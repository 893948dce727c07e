"""Linear algebra: contractions that skip known zeros, and block-coupled decompositions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._abstract import Abstract
from .._deps import vstack
from .._interpreter import outputs_like, register, register_conservative
from ._util import element_ids, reduction_target, union_sources
from .reductions import window_sources


def _nonzero(v: Abstract) -> np.ndarray | None:
    return None if not v.known else (v.value != 0)


@register("dot_general")
def dot_general(interp, eqn, invals):
    # out[b,i,j] = Σ_k L[b,i,k] R[b,k,j]: the entry L[b,i,k] matters unless R[b,k,j]
    # is a known zero, and symmetrically. A constant banded matrix times x is banded.
    lhs, rhs = invals
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lf = [d for d in range(len(lhs.shape)) if d not in lc and d not in lb]
    rf = [d for d in range(len(rhs.shape)) if d not in rc and d not in rb]
    (l_ids, r_ids), stacked = element_ids([lhs, rhs])
    if stacked is None:
        return outputs_like(eqn, [None])
    B = int(np.prod([lhs.shape[d] for d in lb], dtype=np.int64))
    K = int(np.prod([lhs.shape[d] for d in lc], dtype=np.int64))
    Fl = int(np.prod([lhs.shape[d] for d in lf], dtype=np.int64))
    Fr = int(np.prod([rhs.shape[d] for d in rf], dtype=np.int64))
    L = np.transpose(l_ids, (*lb, *lf, *lc)).reshape(B, Fl, K)
    R = np.transpose(r_ids, (*rb, *rc, *rf)).reshape(B, K, Fr)
    l_nz = _nonzero(lhs)
    r_nz = _nonzero(rhs)
    if l_nz is not None:
        l_nz = np.transpose(l_nz, (*lb, *lf, *lc)).reshape(B, Fl, K)
    if r_nz is not None:
        r_nz = np.transpose(r_nz, (*rb, *rc, *rf)).reshape(B, K, Fr)
    out_rows, sources = [], []
    i_range = np.arange(Fl)
    j_range = np.arange(Fr)
    if lhs.deps is not None:
        if r_nz is not None:
            b, k, j = np.nonzero(r_nz)
            out_rows.append(((b * Fl)[None, :] + i_range[:, None]) * Fr + j[None, :])
            sources.append(L[b[None, :], i_range[:, None], k[None, :]])
        else:
            out = np.arange(B * Fl * Fr).reshape(B, Fl, Fr, 1)
            out_rows.append(np.broadcast_to(out, (B, Fl, Fr, K)))
            sources.append(np.broadcast_to(L[:, :, None, :], (B, Fl, Fr, K)))
    if rhs.deps is not None:
        if l_nz is not None:
            b, i, k = np.nonzero(l_nz)
            out_rows.append(((b * Fl + i) * Fr)[None, :] + j_range[:, None])
            sources.append(R[b[None, :], k[None, :], j_range[:, None]])
        else:
            out = np.arange(B * Fl * Fr).reshape(B, Fl, Fr, 1)
            out_rows.append(np.broadcast_to(out, (B, Fl, Fr, K)))
            sources.append(
                np.broadcast_to(
                    np.transpose(R, (0, 2, 1))[:, None, :, :], (B, Fl, Fr, K)
                )
            )
    rows = np.concatenate([r.reshape(-1) for r in out_rows])
    srcs = np.concatenate([s.reshape(-1) for s in sources])
    keep = srcs >= 0
    return outputs_like(eqn, [stacked.compose_coo(rows[keep], srcs[keep], B * Fl * Fr)])


@register("conv_general_dilated")
def conv_general_dilated(interp, eqn, invals):
    p = eqn.params
    lhs, rhs = invals
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    (l_ids, r_ids), stacked = element_ids([lhs, rhs])
    if stacked is None:
        return outputs_like(eqn, [None])
    # Canonical layouts: lhs (n_batch, n_in, *S), rhs (n_out, I, *K), out (n_batch, n_out, *n_spatial).
    l_ids = np.transpose(l_ids, lhs_spec)
    r_ids = np.transpose(r_ids, rhs_spec)
    l_nz = None if not lhs.known else np.transpose(lhs.value != 0, lhs_spec)
    r_nz = None if not rhs.known else np.transpose(rhs.value != 0, rhs_spec)
    n_batch, n_in = l_ids.shape[:2]
    n_out, in_per_group = r_ids.shape[:2]
    kernel = r_ids.shape[2:]
    groups = p["feature_group_count"]
    out_per_group = n_out // groups
    # With `batch_group_count = G`, the lhs batch splits into G contiguous blocks
    # and output feature `o` reads block `o // (n_out / G)` only; the output batch
    # is one block long. (JAX allows at most one of the two group counts > 1.)
    batch_groups = p["batch_group_count"]
    n_out_batch = n_batch // batch_groups
    out_per_batch_group = n_out // batch_groups
    spatial = np.arange(int(np.prod(l_ids.shape[2:], dtype=np.int64))).reshape(
        l_ids.shape[2:]
    )
    taps = window_sources(
        spatial,
        kernel,
        p["window_strides"],
        p["padding"],
        p["lhs_dilation"],
        p["rhs_dilation"],
    )
    src_spatial = np.stack([t.reshape(-1) for t in taps], axis=0)  # (n_taps, n_spatial)
    n_taps, n_spatial = src_spatial.shape
    out_shape_canon = (n_out_batch, n_out) + taps[0].shape
    n_idx = np.arange(n_out_batch)[:, None, None, None, None]
    o_idx = np.arange(n_out)[None, :, None, None, None]
    b_idx = (o_idx // out_per_batch_group) * n_out_batch + n_idx
    s_idx = np.arange(n_spatial)[None, None, :, None, None]
    t_idx = np.arange(n_taps)[None, None, None, :, None]
    c_loc = np.arange(in_per_group)[None, None, None, None, :]
    c_idx = (o_idx // out_per_group) * in_per_group + c_loc
    src_s = src_spatial[t_idx, s_idx]
    valid = src_s >= 0
    shape5 = (n_out_batch, n_out, n_spatial, n_taps, in_per_group)
    out_rows = np.broadcast_to((n_idx * n_out + o_idx) * n_spatial + s_idx, shape5)
    l_flat = l_ids.reshape(n_batch, n_in, -1)
    r_flat = r_ids.reshape(n_out, in_per_group, -1)
    rows, srcs = [], []
    safe_s = np.where(valid, src_s, 0)
    if lhs.deps is not None:
        keep = valid
        if r_nz is not None:
            keep = keep & r_nz.reshape(n_out, in_per_group, -1)[o_idx, c_loc, t_idx]
        keep = np.broadcast_to(keep, shape5)
        src = np.broadcast_to(l_flat[b_idx, c_idx, safe_s], shape5)
        rows.append(out_rows[keep])
        srcs.append(src[keep])
    if rhs.deps is not None:
        keep = valid
        if l_nz is not None:
            keep = keep & l_nz.reshape(n_batch, n_in, -1)[b_idx, c_idx, safe_s]
        keep = np.broadcast_to(keep, shape5)
        src = np.broadcast_to(r_flat[o_idx, c_loc, t_idx], shape5)
        rows.append(out_rows[keep])
        srcs.append(src[keep])
    rows = np.concatenate(rows)
    srcs = np.concatenate(srcs)
    ok = srcs >= 0
    n_out = int(np.prod(out_shape_canon, dtype=np.int64))
    canon = stacked.compose_coo(rows[ok], srcs[ok], n_out)
    # Back from (n_batch, n_out, *n_spatial) to the equation's output layout.
    canon_ids = np.arange(n_out).reshape(out_shape_canon)
    return outputs_like(
        eqn, [canon.gather(np.transpose(canon_ids, np.argsort(out_spec)).reshape(-1))]
    )


def block_coupled(
    eqn,
    invals: Sequence[Abstract],
    operand_batch: Sequence[Sequence[int | None]],
    output_batch: Sequence[Sequence[int]],
):
    """Outputs couple all non-batch axes of all operands; batch coordinates stay apart.

    `operand_batch[k][q]` is the axis of operand `k` that matches output batch axis `q`
    (`None`: the operand is broadcast along it). `output_batch[r]` lists the batch axes
    of output `r`, in the same order `q`.
    """
    out0 = eqn.outvars[0].aval
    batch_shape = tuple(out0.shape[a] for a in output_batch[0])
    n_groups = int(np.prod(batch_shape, dtype=np.int64))
    parts, cols = [], []
    offset = 0
    for v, axes in zip(invals, operand_batch):
        if v.deps is None:
            continue
        own = sorted(a for a in axes if a is not None)
        coupled = tuple(a for a in range(len(v.shape)) if a not in own)
        target, n_own = reduction_target(v.shape, coupled)
        parts.append(v.deps.group_union(target, n_own))
        # The operand's row for each output batch group: its rows are numbered over
        # its own batch axes in increasing order; reorder them to the output's order.
        rows = np.arange(n_own).reshape([v.shape[a] for a in own])
        rows = np.transpose(rows, [own.index(a) for a in axes if a is not None])
        rows = rows.reshape(
            [n if a is not None else 1 for n, a in zip(batch_shape, axes)]
        )
        cols.append(np.broadcast_to(rows, batch_shape).reshape(-1) + offset)
        offset += n_own
    if not parts:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    stacked = vstack(parts)
    groups = stacked.compose_dense(np.stack(cols, axis=1))
    outs = []
    for var, axes in zip(eqn.outvars, output_batch):
        shape = var.aval.shape
        if not np.issubdtype(var.aval.dtype, np.inexact):
            outs.append(None)
            continue
        group_of = np.arange(n_groups).reshape(
            [shape[a] if a in axes else 1 for a in range(len(shape))]
        )
        group_of = np.broadcast_to(group_of, shape)
        outs.append(groups.gather(group_of.reshape(-1)))
    return outputs_like(eqn, outs)


def _leading(ndim: int, core: int) -> list[int]:
    return list(range(ndim - core))


def matrix_decomposition(interp, eqn, invals):
    """Decompositions of (…, m, n) matrices: each batch matrix is coupled as a whole."""
    batch_rank = len(invals[0].shape) - 2
    return block_coupled(
        eqn,
        invals,
        [list(range(batch_rank))] * len(invals),
        [list(range(batch_rank))] * len(eqn.outvars),
    )


for _name in (
    "cholesky",
    "lu",
    "eigh",
    "svd",
    "eig",
    "schur",
    "hessenberg",
    "tridiagonal",
    "geqrf",
    "geqp3",
    "householder_product",
    "cholesky_update",
    "lu_pivots_to_permutation",
    "matrix_power",
    "ormqr",
    "symmetric_product",
):
    register(_name)(matrix_decomposition)


@register("qr")
def qr(interp, eqn, invals):
    """Householder QR is causal in the columns: the first `j + 1` columns of `Q`,
    and of `R`, are fixed by the first `j + 1` columns of `A`.

    So `Q[:, i]` depends on `A[:, :i+1]`, and `R[i, j]` (`i <= j`) on `A[:, :j+1]`,
    with `j` capped at `k - 1`, `k = min(m, n)` (a wide `A`'s later columns enter
    `R` only through their own column). The strict lower triangle of `R` is
    structurally zero. JAX's JVP keeps this structure exactly (`dA R⁻¹` with `R`
    upper triangular, `tril`/`triu` masks and a product of upper triangles), so
    dense AD shows no roundoff there either. Column pivoting reorders the columns
    by value: then every entry may depend on the whole matrix.
    """
    (a,) = invals
    if eqn.params["pivoting"] or a.deps is None:
        return matrix_decomposition(interp, eqn, invals)
    *batch, m, n = a.shape
    n_batch = int(np.prod(batch, dtype=np.int64))
    k = min(m, n)
    # Rows of `cols`: the union of each column of each batch matrix, (b, c) order.
    target = np.arange(n_batch)[:, None, None] * n + np.arange(n)[None, None, :]
    cols = a.deps.group_union(np.broadcast_to(target, (n_batch, m, n)), n_batch * n)
    # prefix[b, c] = union of cols[b, :c+1].
    upto, src = np.tril_indices(n)
    out_rows = (np.arange(n_batch)[:, None] * n + upto[None, :]).reshape(-1)
    sources = (np.arange(n_batch)[:, None] * n + src[None, :]).reshape(-1)
    prefix = cols.compose_coo(out_rows, sources, n_batch * n)
    stacked = vstack([prefix, cols])
    b = np.arange(n_batch)[:, None, None]
    q_shape, r_shape = (v.aval.shape for v in eqn.outvars[:2])
    kq = q_shape[-1]
    i = np.arange(kq)[None, None, :]
    q_src = np.broadcast_to(b * n + np.minimum(i, k - 1), (n_batch, m, kq))
    ri = np.arange(r_shape[-2])[None, :, None]
    rj = np.arange(n)[None, None, :]
    upper = ri <= rj
    r_prefix = np.where(upper, b * n + np.minimum(rj, k - 1), -1)
    r_own = np.where(upper, n_batch * n + b * n + rj, -1)
    r_deps = union_sources(stacked, [r_prefix, r_own])
    return outputs_like(eqn, [stacked.gather(q_src.reshape(-1)), r_deps])


@register("triangular_solve")
def triangular_solve(interp, eqn, invals):
    # left side, A X = B: column j of X needs A and column j of B (right side: rows).
    a, b = invals
    r = len(b.shape) - 2
    free = len(b.shape) - 1 if eqn.params["left_side"] else len(b.shape) - 2
    batch = list(range(r))
    return block_coupled(
        eqn, invals, [batch + [None], batch + [free]], [batch + [free]]
    )


@register("tridiagonal_solve")
def tridiagonal_solve(interp, eqn, invals):
    # Column j of X needs the three diagonals and column j of B.
    dl, d, du, b = invals
    r = len(b.shape) - 2
    batch = list(range(r))
    col = len(b.shape) - 1
    return block_coupled(
        eqn, invals, [batch + [None]] * 3 + [batch + [col]], [batch + [col]]
    )


@register("fft")
def fft(interp, eqn, invals):
    core = len(eqn.params["fft_lengths"])
    batch = _leading(len(invals[0].shape), core)
    return block_coupled(eqn, invals, [batch], [batch])


for _name, _why in (
    ("linear_solve", "Lineax's linear solve couples the operator and the vector"),
    ("pure_callback", "a host callback is opaque"),
    ("io_callback", "a host callback is opaque"),
    ("ragged_dot_general", "group sizes are data-dependent"),
    ("linear_call", "an opaque linear function with a custom transpose"),
    ("select_and_scatter", "a generic windowed scatter with a custom selection"),
    ("noinline", "Equinox's `noinline` hides its function behind a callback"),
    ("ffi_call", "a foreign function is opaque"),
):
    register_conservative(_name, _why)
