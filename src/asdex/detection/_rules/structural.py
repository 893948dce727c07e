"""Structural primitives: each output element copies at most one operand element.

All of them use the element-id trick (see `_util`), with the operation replayed on
the id arrays in numpy, so the patterns are exact.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._abstract import Abstract
from .._deps import vstack
from .._interpreter import outputs_like, register
from ._util import (
    MAX_ENUMERATED_CASES,
    element_ids,
    fiber_union,
    gather_from,
    union_sources,
)


def _unary_structural(eqn, operand: Abstract, fn) -> list[Abstract]:
    if operand.deps is None:
        return outputs_like(eqn, [None])
    source = fn(np.arange(operand.size, dtype=np.int64).reshape(operand.shape))
    return outputs_like(eqn, [operand.deps.gather(source.reshape(-1))])


@register("squeeze", "expand_dims")
def squeeze(interp, eqn, invals):
    # Adding or removing unit axes keeps the flat order, so the rows are unchanged.
    return outputs_like(eqn, [invals[0].deps])


@register("reshape")
def reshape(interp, eqn, invals):
    # Row-major reshapes keep the flat order; old-style `dimensions` transpose first.
    operand = invals[0]
    dims = eqn.params.get("dimensions")
    if dims and tuple(dims) != tuple(range(len(operand.shape))):
        return _unary_structural(eqn, operand, lambda i: np.transpose(i, dims))
    return outputs_like(eqn, [operand.deps])


@register("broadcast_in_dim")
def broadcast_in_dim(interp, eqn, invals):
    operand = invals[0]
    shape = tuple(eqn.params["shape"])
    dims = eqn.params["broadcast_dimensions"]

    def fn(ids):
        expanded = [1] * len(shape)
        for i, d in enumerate(dims):
            expanded[d] = operand.shape[i]
        return np.broadcast_to(ids.reshape(expanded), shape)

    return _unary_structural(eqn, operand, fn)


@register("transpose")
def transpose(interp, eqn, invals):
    perm = eqn.params["permutation"]
    return _unary_structural(eqn, invals[0], lambda i: np.transpose(i, perm))


def _slices(starts, limits, strides):
    strides = strides or (1,) * len(starts)
    return tuple(slice(a, b, s) for a, b, s in zip(starts, limits, strides))


@register("slice")
def slice_(interp, eqn, invals):
    p = eqn.params
    index = _slices(p["start_indices"], p["limit_indices"], p["strides"])
    return _unary_structural(eqn, invals[0], lambda i: i[index])


@register("rev")
def rev(interp, eqn, invals):
    dims = tuple(eqn.params["dimensions"])
    return _unary_structural(eqn, invals[0], lambda i: np.flip(i, dims) if dims else i)


@register("concatenate")
def concatenate(interp, eqn, invals):
    ids, stacked = element_ids(invals)
    source = np.concatenate(ids, axis=eqn.params["dimension"])
    return outputs_like(eqn, [gather_from(stacked, source)])


@register("split")
def split(interp, eqn, invals):
    operand = invals[0]
    axis = eqn.params["axis"]
    bounds = np.cumsum(eqn.params["sizes"])[:-1]
    if operand.deps is None:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    ids = np.arange(operand.size).reshape(operand.shape)
    return outputs_like(
        eqn, [operand.deps.gather(p.reshape(-1)) for p in np.split(ids, bounds, axis)]
    )


def pad_ids(ids: np.ndarray, fill, config) -> np.ndarray:
    """`lax.pad` on an id array: low/high padding may be negative, interior ≥ 0."""
    full_shape = []
    placement = []
    crop = []
    for n, (lo, hi, interior) in zip(ids.shape, config):
        core = n + max(n - 1, 0) * interior
        lo_pos, hi_pos = max(lo, 0), max(hi, 0)
        total = lo_pos + core + hi_pos
        full_shape.append(total)
        placement.append(slice(lo_pos, lo_pos + core, interior + 1))
        crop.append(slice(max(-lo, 0), total - max(-hi, 0)))
    out = np.full(full_shape, fill, dtype=np.int64)
    out[tuple(placement)] = ids
    return out[tuple(crop)]


@register("pad")
def pad(interp, eqn, invals):
    (operand_ids, value_ids), stacked = element_ids(invals)
    source = pad_ids(
        operand_ids, int(value_ids.reshape(-1)[0]), eqn.params["padding_config"]
    )
    return outputs_like(eqn, [gather_from(stacked, source)])


def start_spans(start_vals, shape, sizes) -> list[tuple[int, int]]:
    """For each axis, the first and last start a (traced) start index can take once
    clamped into range the way XLA does."""
    spans = []
    for v, dim, size in zip(start_vals, shape, sizes):
        top = dim - size
        b = v.bounds()
        lo, hi = (0, top) if b is None else (int(b[0]), int(b[1]))
        spans.append((int(np.clip(lo, 0, top)), int(np.clip(hi, 0, top))))
    return spans


def _n_cases(spans) -> int:
    return int(np.prod([b - a + 1 for a, b in spans], dtype=np.float64))


@register("dynamic_slice")
def dynamic_slice(interp, eqn, invals):
    operand, *start_vals = invals
    if operand.deps is None:
        return outputs_like(eqn, [None])
    sizes = tuple(eqn.params["slice_sizes"])
    spans = start_spans(start_vals[: len(sizes)], operand.shape, sizes)
    ids = np.arange(operand.size).reshape(operand.shape)
    if _n_cases(spans) <= MAX_ENUMERATED_CASES:
        # Output element `o` reads `start + o` for each start the index can take.
        sources = [
            ids[tuple(slice(s, s + n) for s, n in zip(starts, sizes))]
            for starts in itertools.product(*[range(a, b + 1) for a, b in spans])
        ]
        return outputs_like(eqn, [union_sources(operand.deps, sources)])
    # Too many starts to replay: each element may come from anywhere the slice can
    # reach along an axis with a traced start.
    wide = [d for d, (a, b) in enumerate(spans) if b > a]
    reach = tuple(
        slice(a, b + n) if b > a else slice(None) for (a, b), n in zip(spans, sizes)
    )
    region = ids[reach]
    operand = Abstract(region.shape, operand.dtype, operand.deps.gather(region.ravel()))
    operand = operand.with_deps(fiber_union(operand, wide))
    index = tuple(
        slice(0, n) if b > a else slice(a, a + n) for (a, b), n in zip(spans, sizes)
    )
    return _unary_structural(eqn, operand, lambda i: i[index])


@register("dynamic_update_slice")
def dynamic_update_slice(interp, eqn, invals):
    operand, update, *start_vals = invals
    spans = start_spans(start_vals, operand.shape, update.shape)
    (op_ids, up_ids), stacked = element_ids([operand, update])
    if stacked is None:
        return outputs_like(eqn, [None])
    if _n_cases(spans) <= MAX_ENUMERATED_CASES:
        sources = []
        for starts in itertools.product(*[range(a, b + 1) for a, b in spans]):
            source = op_ids.copy()
            source[tuple(slice(s, s + n) for s, n in zip(starts, update.shape))] = (
                up_ids
            )
            sources.append(source)
        return outputs_like(eqn, [union_sources(stacked, sources)])
    return outputs_like(eqn, [receive_anywhere(operand, update)])


def receive_anywhere(operand: Abstract, update: Abstract):
    """Each element keeps its own rows and may receive any element of `update`."""
    any_update = None if update.deps is None else update.deps.union_all()
    parts, cols = [], []
    if operand.deps is not None:
        parts.append(operand.deps)
        cols.append(np.arange(operand.size))
    if any_update is not None:
        cols.append(np.full(operand.size, sum(p.size for p in parts)))
        parts.append(any_update)
    if not parts:
        return None
    return union_sources(vstack(parts), cols)


@register("tile")
def tile(interp, eqn, invals):
    reps = tuple(eqn.params["reps"])
    return _unary_structural(eqn, invals[0], lambda i: np.tile(i, reps))


@register("stack")
def stack(interp, eqn, invals):
    ids, stacked = element_ids(invals)
    return outputs_like(
        eqn, [gather_from(stacked, np.stack(ids, axis=eqn.params["axis"]))]
    )


@register("unstack")
def unstack(interp, eqn, invals):
    operand = invals[0]
    if operand.deps is None:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    ids = np.moveaxis(
        np.arange(operand.size).reshape(operand.shape), eqn.params["axis"], 0
    )
    return outputs_like(eqn, [operand.deps.gather(part.reshape(-1)) for part in ids])
