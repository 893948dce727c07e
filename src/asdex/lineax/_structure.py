"""Flat layout of PyTree structures: leaves in `jax.tree_util` order, each row-major.

This is Lineax's own layout for PyTree-valued operators (as in
`lineax.PyTreeLinearOperator.as_matrix`), and the layout of `SparsityPattern`.
"""

# jaxtyping's shape strings (" nnz", "m n") are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PyTree, Shaped

# A PyTree of `jax.ShapeDtypeStruct`s stored flat, so that it is hashable and can be
# a static field: `(leaves, treedef)`.
FlatStructure = tuple[tuple[jax.ShapeDtypeStruct, ...], Any]


def _inexact(struct: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
    dtype = struct.dtype
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    # Weak types would make `linear_solve`'s structure comparison fail.
    return jax.ShapeDtypeStruct(tuple(struct.shape), dtype)


def flatten_structure(structure: PyTree[jax.ShapeDtypeStruct]) -> FlatStructure:
    """Store `structure` as a hashable pair, with inexact, strong dtypes."""
    treedef = jtu.tree_structure(structure)
    leaves = []
    for leaf in jtu.tree_leaves(structure):
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(
                "Operator structures must be PyTrees of `jax.ShapeDtypeStruct`s "
                f"(for example `jax.eval_shape(lambda: y)`), got a leaf {leaf!r}."
            )
        leaves.append(_inexact(jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)))
    return tuple(leaves), treedef


def unflatten_structure(flat: FlatStructure) -> PyTree[jax.ShapeDtypeStruct]:
    leaves, treedef = flat
    return jtu.tree_unflatten(treedef, list(leaves))


def structure_size(flat: FlatStructure) -> int:
    return sum(math.prod(leaf.shape) for leaf in flat[0])


def structure_dtype(flat: FlatStructure):
    leaves = flat[0]
    if not leaves:
        return jnp.result_type(float)
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*[leaf.dtype for leaf in leaves])


def ravel(tree: PyTree[Array], flat: FlatStructure, dtype=None) -> Shaped[Array, " n"]:
    """Concatenate the leaves of `tree` (laid out as `flat`) into one vector."""
    leaves = checked_leaves(tree, flat)
    if dtype is None:
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.result_type(*leaves) if leaves else structure_dtype(flat)
    if not leaves:
        return jnp.zeros((0,), dtype)
    return jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])


def checked_leaves(tree: PyTree[Array], flat: FlatStructure) -> list[Array]:
    """The leaves of `tree`, after checking that it is laid out as `flat`."""
    leaves = jtu.tree_leaves(tree)
    struct_leaves, treedef = flat
    if jtu.tree_structure(tree) != treedef or len(leaves) != len(struct_leaves):
        raise ValueError(
            "The vector's PyTree structure does not match the operator's: expected "
            f"{treedef}, got {jtu.tree_structure(tree)}."
        )
    for leaf, struct in zip(leaves, struct_leaves, strict=True):
        if jnp.shape(leaf) != tuple(struct.shape):
            raise ValueError(
                f"The vector has a leaf of shape {jnp.shape(leaf)} where the operator "
                f"expects shape {tuple(struct.shape)}."
            )
    return leaves


def unravel(vector: Shaped[Array, " n"], flat: FlatStructure) -> PyTree[Array]:
    """Split a vector into the leaves of `flat`, with their shapes and dtypes."""
    struct_leaves, treedef = flat
    sizes = [math.prod(leaf.shape) for leaf in struct_leaves]
    pieces = jnp.split(vector, np.cumsum(sizes)[:-1]) if sizes else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # complex-to-real casts are intended here
        out = [
            piece.reshape(leaf.shape).astype(leaf.dtype)
            for piece, leaf in zip(pieces, struct_leaves, strict=True)
        ]
    return jtu.tree_unflatten(treedef, out)


class TreeLayout:
    """The layout of a function of one PyTree `y` (an operator's `fn(y, args)` or
    `mv`), as the compressed-AD engine (`asdex.ad._compressed`) reads layouts:
    tangents of `y` from flat seeds, and products as lists of leaves.

    Its values take the outputs' promoted dtype (`structure_dtype`), as Lineax's
    operators do.
    """

    def __init__(self, flat_in: FlatStructure, flat_out: FlatStructure):
        self.flat_in = flat_in
        self.flat_out = flat_out

    def jacobian_dtype(self):
        return structure_dtype(self.flat_out)

    def hessian_dtype(self):
        return structure_dtype(self.flat_in)

    def unravel_inputs(self, vector) -> list:
        return [unravel(vector, self.flat_in)]

    def unravel_outputs(self, vector):
        return unravel(vector, self.flat_out)

    def output_parts(self, out, dtype) -> list[Array]:
        return _cast_leaves(checked_leaves(out, self.flat_out), dtype)

    def input_parts(self, cotangents, dtype) -> list[Array]:
        # A pullback's (or a gradient's) one cotangent per primal: `(y_bar,)`.
        (tree,) = cotangents
        return _cast_leaves(checked_leaves(tree, self.flat_in), dtype)


def _cast_leaves(leaves: list[Array], dtype) -> list[Array]:
    return [leaf.astype(dtype) for leaf in leaves] or [jnp.zeros(0, dtype)]
