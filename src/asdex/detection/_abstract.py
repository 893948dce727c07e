"""The abstract value of one jaxpr variable: its dependency sets, or its known value."""

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
    """

    __slots__ = ("shape", "dtype", "deps", "value")

    def __init__(self, shape, dtype, deps: Deps | None = None, value=None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = _as_dtype(dtype)
        if deps is not None and (
            deps.is_empty() or not is_differentiable_dtype(self.dtype)
        ):
            deps = None
        self.deps = deps
        self.value = None if value is None else np.asarray(value)

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
        return self.deps is None or self.deps.equals(other.deps)

    def __repr__(self) -> str:
        what = (
            "known"
            if self.known
            else f"nnz={0 if self.deps is None else self.deps.nnz}"
        )
        return f"Abstract({self.shape}, {self.dtype}, {what})"


def join(a: Abstract, b: Abstract) -> Abstract:
    """The least abstract value covering both: union of deps, value kept only if equal."""
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
    return Abstract(a.shape, a.dtype, deps)
