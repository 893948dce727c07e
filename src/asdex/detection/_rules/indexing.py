"""Gather and scatter: exact with known indices, unions along the indexed axes otherwise."""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from .._abstract import Abstract
from .._interpreter import bind_equation, outputs_like, register
from ._util import element_ids, fiber_union
from .structural import receive_anywhere


def _id_dtype(size: int):
    return np.int32 if size < 2**31 - 1 else np.int64


def gather_ids(ids: np.ndarray, indices: np.ndarray, params: dict) -> np.ndarray:
    """Replay a gather on an id array; positions filled out of bounds get -1."""
    params = dict(params, fill_value=-1)
    with jax.ensure_compile_time_eval():
        out = lax.gather_p.bind(
            np.asarray(ids, dtype=_id_dtype(ids.size)), np.asarray(indices), **params
        )
    return np.asarray(out, dtype=np.int64)


@register("gather")
def gather(interp, eqn, invals):
    operand, indices = invals
    if operand.deps is None:
        return outputs_like(eqn, [None])
    params = eqn.params
    if not indices.known:
        # Any position along the indexed axes may be read: union over those fibers,
        # then gather at index zero, which keeps window and batching structure exact.
        indexed = tuple(params["dimension_numbers"].start_index_map)
        operand = operand.with_deps(fiber_union(operand, indexed))
        index_value = np.zeros(indices.shape, dtype=indices.dtype)
    else:
        index_value = indices.value
    ids = np.arange(operand.size).reshape(operand.shape)
    source = gather_ids(ids, index_value, params)
    return outputs_like(eqn, [operand.deps.gather(source.reshape(-1))])


def scatter_targets(
    operand: Abstract, indices, updates: Abstract, params
) -> np.ndarray:
    """For each update element, the flat operand index it lands on (-1: dropped).

    A scatter's update windows are read back by the gather that transposes it
    (the one JAX uses for the scatter's reverse-mode rule).
    """
    dn = params["dimension_numbers"]
    slice_sizes = []
    window = iter(dn.update_window_dims)
    for d in range(len(operand.shape)):
        if d in dn.inserted_window_dims or d in dn.operand_batching_dims:
            slice_sizes.append(1)
        else:
            slice_sizes.append(updates.shape[next(window)])
    gather_dn = lax.GatherDimensionNumbers(
        offset_dims=tuple(dn.update_window_dims),
        collapsed_slice_dims=tuple(dn.inserted_window_dims),
        start_index_map=tuple(dn.scatter_dims_to_operand_dims),
        operand_batching_dims=tuple(dn.operand_batching_dims),
        start_indices_batching_dims=tuple(dn.scatter_indices_batching_dims),
    )
    ids = np.arange(operand.size).reshape(operand.shape)
    return gather_ids(
        ids,
        indices,
        dict(
            dimension_numbers=gather_dn,
            slice_sizes=tuple(slice_sizes),
            unique_indices=False,
            indices_are_sorted=False,
            mode=params["mode"],
        ),
    ).reshape(-1)


def _overwrites(eqn) -> bool:
    """Whether this scatter replaces the operand (plain `.at[].set`)."""
    if eqn.primitive.name != "scatter":
        return False
    jaxpr = eqn.params.get("update_jaxpr")
    if jaxpr is None:
        return True
    return len(jaxpr.outvars) == 1 and jaxpr.outvars[0] is jaxpr.invars[1]


@register(
    "scatter",
    "scatter-add",
    "scatter_add",
    "scatter-sub",
    "scatter_sub",
    "scatter-mul",
    "scatter_mul",
    "scatter-min",
    "scatter_min",
    "scatter-max",
    "scatter_max",
)
def scatter(interp, eqn, invals):
    operand, indices, updates = invals
    if not indices.known:
        return outputs_like(eqn, [receive_anywhere(operand, updates)])
    (op_ids, up_ids), stacked = element_ids([operand, updates])
    if stacked is None:
        return outputs_like(eqn, [None])
    target = scatter_targets(operand, indices.value, updates, eqn.params)
    landed = target >= 0
    out_rows = [target[landed]]
    sources = [up_ids.reshape(-1)[landed]]
    keep_operand = np.ones(operand.size, dtype=bool)
    if _overwrites(eqn):
        keep_operand[target[landed]] = False
    out_rows.append(np.nonzero(keep_operand)[0])
    sources.append(op_ids.reshape(-1)[keep_operand])
    out_rows = np.concatenate(out_rows)
    sources = np.concatenate(sources)
    valid = sources >= 0
    return outputs_like(
        eqn, [stacked.compose_coo(out_rows[valid], sources[valid], operand.size)]
    )


@register("maybe_set")
def maybe_set(interp, eqn, invals):
    # Equinox's loop buffers: `xs.at[i].set(x)` where a (batched) predicate holds.
    pred, xs, x, *index_leaves = invals
    (xs_ids, x_ids), stacked = element_ids([xs, x])
    if stacked is None:
        return outputs_like(eqn, [None])
    if not all(v.known for v in index_leaves):
        return outputs_like(eqn, [receive_anywhere(xs, x)])
    # Replay the update on ids; where it wrote, the old value may also survive.
    fill = np.full(x_ids.shape, -2, dtype=np.int64)
    written = np.where(x_ids >= 0, x_ids, fill)
    with jax.ensure_compile_time_eval():
        updated = bind_equation(
            eqn, [np.True_, xs_ids, written, *[v.value for v in index_leaves]]
        )[0]
    updated = np.asarray(updated, dtype=np.int64).reshape(-1)
    kept = xs_ids.reshape(-1)
    changed = updated != kept
    sources = np.stack([kept, np.where(changed, updated, -1)], axis=1)
    return outputs_like(
        eqn, [stacked.compose_dense(np.where(sources == -2, -1, sources))]
    )
