"""Reductions, cumulative operations, windows and sorting: unions along axes."""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from .. import _deps
from .._interpreter import outputs_like, register
from ._util import element_ids, fiber_union, reduction_target, union_sources
from .structural import pad_ids


@register("reduce_sum", "reduce_max", "reduce_min", "reduce_prod")
def reduce(interp, eqn, invals):
    operand = invals[0]
    if operand.deps is None:
        return outputs_like(eqn, [None])
    target, n_out = reduction_target(operand.shape, tuple(eqn.params["axes"]))
    return outputs_like(eqn, [operand.deps.group_union(target, n_out)])


@register("reduce_and", "reduce_or", "reduce_xor")
def reduce_boolean(interp, eqn, invals):
    return outputs_like(eqn, [None])


@register("reduce")
def reduce_variadic(interp, eqn, invals):
    # `lax.reduce` with a custom computation: any output may mix all operands.
    n = len(invals) // 2
    operands = invals[:n]
    axes = tuple(eqn.params["dimensions"])
    ids, stacked = element_ids(operands)
    if stacked is None:
        return outputs_like(eqn, [None] * n)
    target, n_out = reduction_target(operands[0].shape, axes)
    rows = np.concatenate([target] * n)
    sources = np.concatenate([i.reshape(-1) for i in ids])
    keep = sources >= 0
    deps = stacked.compose_coo(rows[keep], sources[keep], n_out)
    return outputs_like(eqn, [deps] * n)


@register("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp")
def cumulative(interp, eqn, invals):
    # Output k along the axis depends on inputs 0..k (k..n-1 when reversed).
    operand = invals[0]
    if operand.deps is None:
        return outputs_like(eqn, [None])
    axis = eqn.params["axis"]
    ids = np.moveaxis(np.arange(operand.size).reshape(operand.shape), axis, -1)
    if eqn.params["reverse"]:
        ids = ids[..., ::-1]
    length = ids.shape[-1]
    fibers = ids.reshape(-1, length)
    _deps._check_nnz(fibers.shape[0] * length * (length + 1) // 2)
    upto, src = np.tril_indices(length)
    out_rows = fibers[:, upto].reshape(-1)
    sources = fibers[:, src].reshape(-1)
    return outputs_like(
        eqn, [operand.deps.compose_coo(out_rows, sources, operand.size)]
    )


def window_sources(
    ids, window_dimensions, window_strides, padding, base_dilation, window_dilation
) -> list[np.ndarray]:
    """For each window offset, the operand id each output reads (-1 for padding)."""
    ndim = ids.ndim
    base_dilation = base_dilation or (1,) * ndim
    window_dilation = window_dilation or (1,) * ndim
    config = [(lo, hi, b - 1) for (lo, hi), b in zip(padding, base_dilation)]
    padded = pad_ids(ids, -1, config)
    out_shape = []
    for n, w, s, d in zip(
        padded.shape, window_dimensions, window_strides, window_dilation
    ):
        span = (w - 1) * d + 1
        out_shape.append(max((n - span) // s + 1, 0) if n >= span else 0)
    sources = []
    for offset in np.ndindex(*window_dimensions):
        index = tuple(
            slice(o * d, o * d + (k - 1) * s + 1, s) if k else slice(0, 0)
            for o, d, k, s in zip(offset, window_dilation, out_shape, window_strides)
        )
        sources.append(padded[index])
    return sources


def _window_params(params):
    return (
        params["window_dimensions"],
        params["window_strides"],
        params["padding"],
        params.get("base_dilation"),
        params.get("window_dilation"),
    )


@register("reduce_window_sum", "reduce_window_max", "reduce_window_min")
def reduce_window(interp, eqn, invals):
    (ids,), stacked = element_ids(invals[:1])
    sources = window_sources(ids, *_window_params(eqn.params))
    return outputs_like(eqn, [union_sources(stacked, sources)])


@register("reduce_window")
def reduce_window_variadic(interp, eqn, invals):
    n = len(invals) // 2
    ids, stacked = element_ids(invals[:n])
    sources = [s for i in ids for s in window_sources(i, *_window_params(eqn.params))]
    return outputs_like(eqn, [union_sources(stacked, sources)] * n)


@register("select_and_gather_add")
def select_and_gather_add(interp, eqn, invals):
    # Forward derivative of max pooling: the tangent at the selected window position.
    (ids,), stacked = element_ids(invals[:1])
    p = eqn.params
    sources = window_sources(
        ids,
        p["window_dimensions"],
        p["window_strides"],
        p["padding"],
        p.get("base_dilation"),
        p.get("window_dilation"),
    )
    return outputs_like(eqn, [union_sources(stacked, sources)])


@register("select_and_scatter_add")
def select_and_scatter_add(interp, eqn, invals):
    # Transpose of the above: each window's value lands somewhere inside the window.
    source, operand = invals[0], invals[1]
    if source.deps is None:
        return outputs_like(eqn, [None])
    p = eqn.params
    positions = np.arange(operand.size).reshape(operand.shape)
    windows = window_sources(
        positions, p["window_dimensions"], p["window_strides"], p["padding"], None, None
    )
    out_rows = np.concatenate([w.reshape(-1) for w in windows])
    src = np.concatenate([np.arange(source.size)] * len(windows))
    keep = out_rows >= 0
    return outputs_like(
        eqn, [source.deps.compose_coo(out_rows[keep], src[keep], operand.size)]
    )


@register("sort")
def sort(interp, eqn, invals):
    dim = eqn.params["dimension"]
    num_keys = eqn.params["num_keys"]
    keys = invals[:num_keys]
    if all(k.known for k in keys):
        # Known keys: the permutation is known, so each output is an exact gather.
        shape = keys[0].shape
        iota = np.broadcast_to(
            np.arange(shape[dim]).reshape(
                [-1 if a == dim else 1 for a in range(len(shape))]
            ),
            shape,
        ).astype(np.int32)
        with jax.ensure_compile_time_eval():
            perm = np.asarray(
                lax.sort(
                    (*[k.value for k in keys], iota),
                    dimension=dim,
                    is_stable=True,
                    num_keys=num_keys,
                )[-1]
            )
        outs = []
        for v in invals:
            if v.deps is None:
                outs.append(None)
                continue
            ids = np.arange(v.size).reshape(v.shape)
            outs.append(
                v.deps.gather(np.take_along_axis(ids, perm, axis=dim).reshape(-1))
            )
        return outputs_like(eqn, outs)
    return outputs_like(eqn, [fiber_union(v, (dim,)) for v in invals])


@register("top_k")
def top_k(interp, eqn, invals):
    operand = invals[0]
    k = eqn.params["k"]
    axis = eqn.params.get("axis", -1) % len(operand.shape)
    union = fiber_union(operand, (axis,))
    if union is None:
        return outputs_like(eqn, [None, None])
    ids = np.arange(operand.size).reshape(operand.shape)
    index = [slice(None)] * len(operand.shape)
    index[axis] = slice(0, k)
    return outputs_like(eqn, [union.gather(ids[tuple(index)].reshape(-1)), None])


@register("approx_top_k")
def approx_top_k(interp, eqn, invals):
    operand = invals[0]
    axis = eqn.params["reduction_dimension"] % len(operand.shape)
    union = fiber_union(operand, (axis,))
    if union is None:
        return outputs_like(eqn, [None, None])
    ids = np.arange(operand.size).reshape(operand.shape)
    k = eqn.outvars[0].aval.shape[axis]
    index = [slice(None)] * len(operand.shape)
    index[axis] = slice(0, k)
    return outputs_like(eqn, [union.gather(ids[tuple(index)].reshape(-1)), None])


@register("argsort")
def argsort(interp, eqn, invals):
    return outputs_like(eqn, [None] * len(eqn.outvars))
