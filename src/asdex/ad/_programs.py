"""The compiled programs of a sparse derivative, with its arrays flattened once.

`equinox.filter_jit(body)(derivative, *args)` flattens and partitions the whole
derivative on every call: its layout, decompression, output format and function,
dozens of modules walked in Python. That costs about 60 of the 100 µs it takes to
dispatch a call, more than a small Jacobian takes to compute, and a large one on
CPU dispatches a program per product (see `dispatch_per_product`).

A derivative is immutable, so `run` splits it into array leaves and the rest once,
on its first call, and keeps that until the derivative is garbage collected,
beside the programs it has run. A call then flattens only its own arguments (a
few arrays) and dispatches in about 35 µs. The programs themselves (one
`jax.jit` per body and per structure of the arguments) are shared by every
derivative of the same structure, as `filter_jit` shares them: a copy made by
`jax.tree_util.tree_map`, say, or one with other parameters, reuses the compiled
code of the original. The semantics are `filter_jit`'s: array leaves (JAX and
numpy arrays, numpy scalars) are traced, all other leaves are static and must be
hashable, and non-array outputs are returned as they were at trace time. A
derivative whose leaves are tracers (one passed into a `jax.jit` as an argument,
say) is not cached: its calls go through `filter_jit`.
"""

from __future__ import annotations

import contextvars
import weakref
from collections import OrderedDict
from collections.abc import Callable

import equinox as eqx
import jax
import jax.tree_util as jtu

from .._caches import on_clear


class _Program:
    """One body compiled for one structure of the derivative and of the arguments."""

    def __init__(self, body: Callable, entry: _Entry, treedef, static: tuple):
        self.out_static = None
        # Only the derivative's structure, never its arrays: a program outlives
        # the derivative it was first compiled for.
        derivative_treedef, derivative_static = entry.treedef, entry.static

        def program(derivative_leaves, arrays):
            derivative = eqx.combine(
                jtu.tree_unflatten(derivative_treedef, derivative_leaves),
                derivative_static,
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
        static_leaves, static_treedef = jtu.tree_flatten(self.static)
        self.structure = (self.treedef, static_treedef, tuple(static_leaves))
        try:
            hash(self.structure)
        except TypeError:  # an unhashable static leaf: programs of its own
            self.structure = None
        self.owner = weakref.ref(derivative)
        self.programs: dict = {}


# Keyed by `id(derivative)`: equinox modules compare by their leaves, which is slow
# and, for arrays, not a boolean. Each entry checks that it still belongs to the
# object with that id, and is dropped when the derivative is collected.
_ENTRIES: dict[int, _Entry] = {}

# Programs by the structure of derivative and arguments, for the next derivative of
# the same structure. Each keeps the static parts of the derivative it was compiled
# for alive (its function, coloring and plans), so only the `_MAX_PROGRAMS` most
# recently used are kept here; a live derivative holds its own in its entry.
_PROGRAMS: OrderedDict = OrderedDict()
_MAX_PROGRAMS = 64


@on_clear
def _clear() -> None:
    # Live derivatives compile their programs anew on their next call.
    for entry in list(_ENTRIES.values()):
        entry.programs.clear()
    _PROGRAMS.clear()


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


def _program(body: Callable, entry: _Entry, treedef, static: tuple) -> _Program:
    if entry.structure is None:
        return _Program(body, entry, treedef, static)
    key = (body, entry.structure, treedef, static, in_own_program())
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = _Program(body, entry, treedef, static)
        while len(_PROGRAMS) > _MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
    return program


_IN_OWN_PROGRAM = contextvars.ContextVar("asdex_in_own_program", default=False)


def in_own_program() -> bool:
    """Whether the code being traced is one of these programs, run for a call from
    Python, rather than inlined in the caller's own `jit`, `vmap` or `grad`."""
    return _IN_OWN_PROGRAM.get()


def run(body: Callable, derivative, *args):
    """`equinox.filter_jit(body)(derivative, *args)`, dispatched faster (see above)."""
    entry = _entry(derivative)
    if entry is None:
        return eqx.filter_jit(body)(derivative, *args)
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(args)):
        token = _IN_OWN_PROGRAM.set(True)
        try:
            return _run(body, entry, args)
        finally:
            _IN_OWN_PROGRAM.reset(token)
    return _run(body, entry, args)


def _run(body: Callable, entry: _Entry, args):
    leaves, treedef = jtu.tree_flatten(args)
    static = tuple(None if eqx.is_array(leaf) else leaf for leaf in leaves)
    arrays = [leaf if s is None else None for leaf, s in zip(leaves, static)]
    # Traced for a call from Python or inside the caller's `jit`, a body can
    # compile differently (see `in_own_program`): programs of their own.
    key = (body, treedef, static, in_own_program())
    program = entry.programs.get(key)
    if program is None:
        program = entry.programs[key] = _program(body, entry, treedef, static)
    dynamic = program.jitted(entry.leaves, arrays)
    return eqx.combine(dynamic, program.out_static)
