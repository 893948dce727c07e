"""Gather and scatter: exact with known indices, unions along the indexed axes otherwise."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._abstract import Abstract
from .._interpreter import bind_equation, outputs_like, register
from ._util import MAX_ENUMERATED_CASES, element_ids, fiber_union, union_sources
from .structural import receive_anywhere


def _id_dtype(size: int):
    return np.int32 if size < 2**31 - 1 else np.int64


def gather_ids(ids: np.ndarray, indices: np.ndarray, params: dict) -> np.ndarray:
    """Replay a gather on an id array; positions filled out of bounds get -1."""
    # The replayed indices need not be sorted or unique, whatever the original
    # promised.
    params = dict(params, fill_value=-1, indices_are_sorted=False, unique_indices=False)
    with jax.ensure_compile_time_eval():
        out = lax.gather_p.bind(
            np.asarray(ids, dtype=_id_dtype(ids.size)), np.asarray(indices), **params
        )
    return np.asarray(out, dtype=np.int64)


def index_cases(indices: Abstract) -> list[np.ndarray] | None:
    """Index arrays that together take every value a traced `indices` can hold.

    Each index vector (the last axis) varies independently of the others, and each
    output of a gather or update of a scatter reads one vector only. So it is enough
    that every vector runs through its own box `[lo, hi]`: case `δ` sets each vector
    to `min(lo + δ, hi)`, for `δ` up to the widest box. `None` when there are more
    than `MAX_ENUMERATED_CASES` cases (or no interval).
    """
    if indices.known:
        return [indices.value]
    b = indices.bounds()
    if b is None or indices.size == 0 or not indices.shape:
        return None
    lo, hi = b
    batch_axes = tuple(range(len(indices.shape) - 1))
    widths = (hi.astype(np.float64) - lo + 1).max(axis=batch_axes)
    if np.prod(widths) > MAX_ENUMERATED_CASES:
        return None
    return [
        np.minimum(lo + np.asarray(delta, dtype=np.int64), hi).astype(indices.dtype)
        for delta in itertools.product(*[range(int(w)) for w in widths])
    ]


@register("gather")
def gather(interp, eqn, invals):
    operand, indices = invals
    if operand.deps is None:
        return outputs_like(eqn, [None])
    params = eqn.params
    cases = index_cases(indices)
    if cases is None:
        # Any position along the indexed axes may be read: union over those fibers,
        # then gather at index zero, which keeps window and batching structure exact.
        indexed = tuple(params["dimension_numbers"].start_index_map)
        operand = operand.with_deps(fiber_union(operand, indexed))
        cases = [np.zeros(indices.shape, dtype=indices.dtype)]
    ids = np.arange(operand.size).reshape(operand.shape)
    sources = [gather_ids(ids, value, params) for value in cases]
    return outputs_like(eqn, [union_sources(operand.deps, sources)])


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
    cases = index_cases(indices)
    if cases is None:
        return outputs_like(eqn, [receive_anywhere(operand, updates)])
    (op_ids, up_ids), stacked = element_ids([operand, updates])
    if stacked is None:
        return outputs_like(eqn, [None])
    # targets[c, u]: where update element `u` lands in case `c` (-1: dropped).
    targets = np.stack(
        [scatter_targets(operand, value, updates, eqn.params) for value in cases]
    )
    landed = targets >= 0
    out_rows = [targets[landed]]
    sources = [np.broadcast_to(up_ids.reshape(-1), targets.shape)[landed]]
    keep_operand = np.ones(operand.size, dtype=bool)
    if _overwrites(eqn):
        # An operand element is gone only if some update lands on it in every
        # case; the others survive in some case.
        always = (targets == targets[:1]).all(axis=0) & landed[0]
        keep_operand[targets[0][always]] = False
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
    # Equinox's implementation indexes with `.at`, which numpy arrays lack.
    args = [np.True_, xs_ids, written, *[v.value for v in index_leaves]]
    with jax.ensure_compile_time_eval():
        updated = bind_equation(eqn, [jnp.asarray(a) for a in args])[0]
    updated = np.asarray(updated, dtype=np.int64).reshape(-1)
    kept = xs_ids.reshape(-1)
    changed = updated != kept
    sources = np.stack([kept, np.where(changed, updated, -1)], axis=1)
    return outputs_like(
        eqn, [stacked.compose_dense(np.where(sources == -2, -1, sources))]
    )
