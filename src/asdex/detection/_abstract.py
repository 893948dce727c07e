"""The abstract value of one jaxpr variable: its dependency sets, its known value, or
the interval its integer values lie in."""

from __future__ import annotations

import jax
import numpy as np

from ._deps import Deps


def is_differentiable_dtype(dtype) -> bool:
    """Floats and complexes carry derivatives; integers, booleans and keys never do."""
    return isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.inexact)


def _as_dtype(dtype):
    # Extended dtypes (PRNG keys) have no numpy equivalent; keep them as they are.
    try:
        return np.dtype(dtype)
    except TypeError:
        return dtype


class Abstract:
    """What detection knows about an array.

    - `deps`: a `Deps` with one row per element (row-major), or `None` when no element
      depends on any input (a constant, an integer, a `stop_gradient` value, ...).
    - `value`: the concrete numpy value when it is known, that is, when it was
      computed from literals and closed-over constants alone. Then `deps` is `None`.
    - `interval`: for an integer or boolean array whose value is not known, a pair
      `(lo, hi)` of int64 arrays of its shape with `lo <= value <= hi` at every
      input (`argmax` lies in `[0, axis size)`, say), or `None` when nothing
      tighter than the dtype's range is known. An interval that pins every element
      to one value is stored as that known value instead.
    """

    __slots__ = ("shape", "dtype", "deps", "value", "interval")

    def __init__(
        self, shape, dtype, deps: Deps | None = None, value=None, interval=None
    ):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = _as_dtype(dtype)
        if deps is not None and (
            deps.is_empty() or not is_differentiable_dtype(self.dtype)
        ):
            deps = None
        self.deps = deps
        self.value = None if value is None else np.asarray(value)
        self.interval = None
        if interval is not None and self.value is None:
            self._set_interval(*interval)

    def _set_interval(self, lo, hi) -> None:
        full = dtype_bounds(self.dtype)
        if full is None:
            return
        lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), self.shape)
        hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), self.shape)
        if np.any(lo > hi):
            raise AssertionError(f"asdex internal error: empty interval for {self}")
        if self.size and np.array_equal(lo, hi):
            self.value = lo.astype(self.dtype)
        elif self.size and (lo.min() > full[0] or hi.max() < full[1]):
            self.interval = (lo, hi)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def known(self) -> bool:
        return self.value is not None

    @staticmethod
    def constant(value) -> Abstract:
        if isinstance(value, jax.core.Tracer):
            # A value closed over from an outer trace (detection inside `jit` or an
            # Optimistix loop): its shape is known, its value and origin are not.
            return Abstract(value.shape, value.dtype)
        dtype = getattr(value, "dtype", None)
        if dtype is not None and not isinstance(_as_dtype(dtype), np.dtype):
            # PRNG keys have no numpy form: a key is opaque, and has no derivative.
            return Abstract(np.shape(value), dtype)
        value = np.asarray(value)
        return Abstract(value.shape, value.dtype, None, value)

    def with_deps(self, deps: Deps | None) -> Abstract:
        return Abstract(self.shape, self.dtype, deps)

    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`(lo, hi)` int64 arrays of this shape bounding an integer or boolean value:
        the value itself when known, else the interval, else the dtype's range.
        `None` for floats, and for the rare dtypes whose range int64 cannot hold."""
        full = dtype_bounds(self.dtype)
        if full is None:
            return None
        if self.value is not None:
            if self.dtype == np.uint64 and self.size and self.value.max() > full[1]:
                return None
            v = self.value.astype(np.int64)
            return v, v
        if self.interval is not None:
            return self.interval
        lo = np.broadcast_to(np.int64(full[0]), self.shape)
        return lo, np.broadcast_to(np.int64(full[1]), self.shape)

    def same_as(self, other: Abstract) -> bool:
        """Equality of abstract values (used to detect loop fixed points)."""
        if self.shape != other.shape or self.dtype != other.dtype:
            return False
        if (self.value is None) != (other.value is None):
            return False
        if self.value is not None and not np.array_equal(
            self.value, other.value, equal_nan=is_differentiable_dtype(self.dtype)
        ):
            return False
        if (self.deps is None) != (other.deps is None):
            return False
        if (self.interval is None) != (other.interval is None):
            return False
        if self.interval is not None and not (
            np.array_equal(self.interval[0], other.interval[0])
            and np.array_equal(self.interval[1], other.interval[1])
        ):
            return False
        return self.deps is None or self.deps.equals(other.deps)

    def __repr__(self) -> str:
        if self.known:
            what = "known"
        elif self.interval is not None:
            what = f"in [{self.interval[0].min()}, {self.interval[1].max()}]"
        else:
            what = f"nnz={0 if self.deps is None else self.deps.nnz}"
        return f"Abstract({self.shape}, {self.dtype}, {what})"


def dtype_bounds(dtype) -> tuple[int, int] | None:
    """The range of an integer or boolean dtype, clipped to what int64 holds."""
    if not isinstance(dtype, np.dtype):
        return None
    if dtype == np.bool_:
        return 0, 1
    if not np.issubdtype(dtype, np.integer):
        return None
    info = np.iinfo(dtype)
    return int(info.min), int(min(info.max, np.iinfo(np.int64).max))


def join(a: Abstract, b: Abstract, widen: bool = False) -> Abstract:
    """The least abstract value covering both: union of deps, value kept only if equal,
    intervals joined to their hull.

    With `widen=True` (loop fixed points) an interval survives only if both sides
    agree on it; otherwise a counter's interval would grow by one per round.
    """
    if a.same_as(b):
        return a
    from ._deps import vstack

    if a.deps is None:
        deps = b.deps
    elif b.deps is None:
        deps = a.deps
    else:
        n = a.size
        both = vstack([a.deps, b.deps])
        src = np.stack([np.arange(n), np.arange(n, 2 * n)], axis=1)
        deps = both.compose_dense(src)
    interval = None
    if not widen:
        ba, bb = a.bounds(), b.bounds()
        if ba is not None and bb is not None:
            interval = (np.minimum(ba[0], bb[0]), np.maximum(ba[1], bb[1]))
    return Abstract(a.shape, a.dtype, deps, interval=interval)
