"""`ProductSharding`: which devices a coloring's products are spread over.

A coloring's products are independent of one another, so they split across devices
with no communication until decompression: each device computes the products of
its own block of colors (see `ad/_sharded.py`). This module holds only the
description, validated where the user gives it ([`asdex.ColoredPattern.shard`][]).
"""

from __future__ import annotations

import math

from jax.sharding import Mesh, PartitionSpec


class ProductSharding:
    """The products of a coloring, spread over the devices along some mesh axes.

    Hashable and immutable: it is part of a [`asdex.ColoredPattern`][]'s identity,
    and so a static part of every derivative built from it.
    """

    __slots__ = ("mesh", "axes")

    mesh: Mesh
    axes: tuple[str, ...]

    def __init__(self, mesh: Mesh, axes: tuple[str, ...]):
        object.__setattr__(self, "mesh", mesh)
        object.__setattr__(self, "axes", axes)

    def __setattr__(self, name, value):
        raise AttributeError("ProductSharding is immutable")

    @property
    def size(self) -> int:
        """How many devices share the products."""
        return math.prod(self.mesh.shape[a] for a in self.axes)

    @property
    def spec(self) -> PartitionSpec:
        """A leading axis split over the devices (the products' blocks)."""
        return PartitionSpec(self.axes if len(self.axes) > 1 else self.axes[0])

    def __hash__(self) -> int:
        return hash((self.mesh, self.axes))

    def __eq__(self, other) -> bool:
        if not isinstance(other, ProductSharding):
            return NotImplemented
        return self.mesh == other.mesh and self.axes == other.axes

    def __repr__(self) -> str:
        axes = ", ".join(repr(a) for a in self.axes)
        return f"ProductSharding({self.size} devices, axes ({axes}))"


def product_sharding(mesh, axis, caller: str) -> ProductSharding | None:
    """Validate `mesh` and `axis` (a name, a tuple of names, or `None` for all of
    the mesh's axes) as the user gave them."""
    if mesh is None:
        if axis is not None:
            raise ValueError(
                f"`{caller}(axis={axis!r})` needs a mesh; pass `mesh=` too, or "
                "neither to undo the sharding."
            )
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"`{caller}(mesh=...)` must be a `jax.sharding.Mesh` (for example "
            "`jax.make_mesh((jax.device_count(),), ('colors',))`), got "
            f"{type(mesh).__name__}."
        )
    names = tuple(mesh.axis_names)
    if axis is None:
        axes = names
    elif isinstance(axis, str):
        axes = (axis,)
    elif isinstance(axis, tuple) and axis and all(isinstance(a, str) for a in axis):
        axes = axis
    else:
        raise TypeError(
            f"`{caller}(axis={axis!r})` must be the name of a mesh axis, a tuple of "
            "names, or None for all of the mesh's axes."
        )
    unknown = [a for a in axes if a not in names]
    if unknown or len(set(axes)) != len(axes):
        raise ValueError(
            f"`{caller}(axis={axis!r})`: the mesh's axes are {names}; name each of "
            "them at most once."
        )
    return ProductSharding(mesh, axes)
