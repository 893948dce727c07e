"""Helpers shared by the rule families.

Most rules are written with the *element-id trick*: give every element of every
operand a distinct integer id (or -1 when that operand depends on no input), run
the structural operation itself on the ids, and read off which source element each
output element copies. The dependency rows then follow by one `Deps.gather`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._abstract import Abstract
from .._deps import Deps, vstack

# A traced index whose interval allows at most this many values (or combinations,
# for several indices) is replayed at each of them and the results are joined:
# exact for intervals, at that many element-id replays. Wider ones fall back to a
# union over the reachable positions.
MAX_ENUMERATED_CASES = 64


def element_ids(
    shapes_and_deps: Sequence[Abstract],
) -> tuple[list[np.ndarray], Deps | None]:
    """Id arrays for several operands, numbered consecutively, plus their stacked deps.

    An operand without dependencies gets ids of -1, so it contributes nothing.
    """
    ids = []
    parts = []
    offset = 0
    for v in shapes_and_deps:
        if v.deps is None:
            ids.append(np.full(v.shape, -1, dtype=np.int64))
        else:
            ids.append(
                np.arange(offset, offset + v.size, dtype=np.int64).reshape(v.shape)
            )
            parts.append(v.deps)
            offset += v.size
    return ids, (vstack(parts) if parts else None)


def gather_from(stacked: Deps | None, source: np.ndarray) -> Deps | None:
    """Rows of `stacked` picked by `source` (negative: no dependence)."""
    if stacked is None:
        return None
    return stacked.gather(np.asarray(source).reshape(-1))


def union_sources(stacked: Deps | None, sources: Sequence[np.ndarray]) -> Deps | None:
    """Row `r` is the union of `sources[k].flat[r]` over `k` (negatives ignored)."""
    if stacked is None:
        return None
    cols = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sources]
    cols = [c for c in cols if c.size and np.any(c >= 0)]
    if not cols:
        return None
    if len(cols) == 1:
        return stacked.gather(cols[0])
    return stacked.compose_dense(np.stack(cols, axis=1))


def fiber_union(v: Abstract, axes: Sequence[int]) -> Deps | None:
    """Each element gets the union of its fiber along `axes` (shape unchanged)."""
    if v.deps is None:
        return None
    axes = tuple(sorted({a % len(v.shape) for a in axes})) if v.shape else ()
    if not axes:
        return v.deps
    group, n_groups = reduction_target(v.shape, axes)
    return v.deps.group_union(group, n_groups).gather(group)


def reduction_target(shape, axes) -> tuple[np.ndarray, int]:
    """For each element, the flat index of its fiber once `axes` are reduced away."""
    kept_shape = tuple(1 if a in axes else n for a, n in enumerate(shape))
    n_groups = int(np.prod(kept_shape, dtype=np.int64))
    target = np.broadcast_to(np.arange(n_groups).reshape(kept_shape), shape)
    return target.reshape(-1), n_groups


def out_size(eqn, k: int = 0) -> int:
    return int(np.prod(eqn.outvars[k].aval.shape, dtype=np.int64))
