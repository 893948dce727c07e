"""The compiled programs of one sparse derivative, with its arrays flattened once.

`equinox.filter_jit(body)(derivative, *args)` flattens and partitions the whole
derivative on every call: its layout, decompression, output format and function,
dozens of modules walked in Python. That costs about 60 of the 100 µs it takes to
dispatch a call, more than a small Jacobian takes to compute, and a large one on
CPU dispatches a program per product (see `dispatch_per_product`).

A derivative is immutable, so `run` splits it into array leaves and the rest once,
on its first call, and keeps that beside one `jax.jit` program per body and per
structure of the other arguments, until the derivative is garbage collected. A
call then flattens only its own arguments (a few arrays) and dispatches in about
35 µs. The semantics are `filter_jit`'s: array leaves (JAX and numpy arrays,
numpy scalars) are traced, all other leaves are static and must be hashable, and
non-array outputs are returned as they were at trace time. A derivative whose
leaves are tracers (one passed into a `jax.jit` as an argument, say) is not
cached: its calls go through `filter_jit`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import equinox as eqx
import jax
import jax.tree_util as jtu


class _Program:
    """One body compiled for one structure of the other arguments."""

    def __init__(self, body: Callable, entry: _Entry, treedef, static: tuple):
        self.out_static = None

        def program(derivative_leaves, arrays):
            derivative = eqx.combine(
                jtu.tree_unflatten(entry.treedef, derivative_leaves), entry.static
            )
            leaves = [a if s is None else s for a, s in zip(arrays, static)]
            out = body(derivative, *jtu.tree_unflatten(treedef, leaves))
            dynamic, self.out_static = eqx.partition(out, eqx.is_array)
            return dynamic

        self.jitted = jax.jit(program)


class _Entry:
    """A derivative split once: its array leaves, their structure, the rest."""

    def __init__(self, derivative):
        dynamic, self.static = eqx.partition(derivative, eqx.is_array)
        self.leaves, self.treedef = jtu.tree_flatten(dynamic)
        self.owner = weakref.ref(derivative)
        self.programs: dict = {}


# Keyed by `id(derivative)`: equinox modules compare by their leaves, which is slow
# and, for arrays, not a boolean. Each entry checks that it still belongs to the
# object with that id, and is dropped when the derivative is collected.
_ENTRIES: dict[int, _Entry] = {}


def _entry(derivative) -> _Entry | None:
    entry = _ENTRIES.get(id(derivative))
    if entry is not None and entry.owner() is derivative:
        return entry
    entry = _Entry(derivative)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in entry.leaves):
        return None
    key = id(derivative)
    _ENTRIES[key] = entry
    weakref.finalize(derivative, _forget, key, entry)
    return entry


def _forget(key: int, entry: _Entry) -> None:
    if _ENTRIES.get(key) is entry:
        del _ENTRIES[key]


def run(body: Callable, derivative, *args):
    """`equinox.filter_jit(body)(derivative, *args)`, dispatched faster (see above)."""
    entry = _entry(derivative)
    if entry is None:
        return eqx.filter_jit(body)(derivative, *args)
    leaves, treedef = jtu.tree_flatten(args)
    static = tuple(None if eqx.is_array(leaf) else leaf for leaf in leaves)
    arrays = [leaf if s is None else None for leaf, s in zip(leaves, static)]
    key = (body, treedef, static)
    program = entry.programs.get(key)
    if program is None:
        program = entry.programs[key] = _Program(body, entry, treedef, static)
    dynamic = program.jitted(entry.leaves, arrays)
    return eqx.combine(dynamic, program.out_static)
