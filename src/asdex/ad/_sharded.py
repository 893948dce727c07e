"""Compressed AD over several devices: each computes its own block of products.

A coloring sharded with [`asdex.ColoredPattern.shard`][] over `D` devices splits
each side's `c` products into `D` blocks of `p = ceil(c / D)` colors: device `d`
computes colors `d p, ..., d p + p - 1` (colors from `c` on are padding, computed
and never read). The only communication is in the decompression:

- every nonzero of a direct decompression (column, row, bidirectional and star
  colorings) is read from one slot of one product, so from one device. Each
  device reads the nonzeros its products hold into a vector of all the nonzeros,
  zero elsewhere, and one `psum_scatter` sums those vectors and leaves each device
  with its block of the result: the nonzeros, in the pattern's order, sharded
  over the devices. No device holds all the products;
- an acyclic coloring's substitution solves for entries from products of several
  colors, so there the products are gathered on every device (`all_gather`), each
  decompresses them all, and keeps its block of the nonzeros.

The function is linearized once, as without sharding, and the linear map (its
residuals) handed to every device. The products run in one `jax.shard_map` over
the mesh axes of the sharding, which works inside `jax.jit`, `jax.vmap` and
`jax.grad` like the unsharded path.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jaxtyping import Array

from .._sharding import ProductSharding
from ._compressed import (
    Decompression,
    DecompressionPlan,
    batched_products,
    decompress_in_xla,
)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class ShardedPlan(eqx.Module):
    """Where each nonzero lies once the products are spread over the devices.

    - `per_device`: for each side (`"fwd"`, then `"rev"`, those with products),
      how many of its colors each device computes;
    - `block`: how many of the (padded) nonzeros each device returns;
    - `gather`: whether the products are gathered (an acyclic coloring);
    - `positions`, `local_slots`: `(D, L)`: the nonzeros device `d` holds, as
      positions in the pattern's order (padding: `D * block`, dropped), and the
      slots in its own concatenated products that hold them;
    - `reorder`: for the gathered products (device by device, each its own
      concatenation), where each slot of the unsharded concatenation lies.
    """

    sharding: ProductSharding = eqx.field(static=True)
    sides: tuple[tuple[str, int], ...] = eqx.field(static=True)
    per_device: tuple[int, ...] = eqx.field(static=True)
    nnz: int = eqx.field(static=True)
    block: int = eqx.field(static=True)
    gather: bool = eqx.field(static=True)
    positions: Array | None
    local_slots: Array | None
    reorder: Array | None

    def __init__(self, plan: DecompressionPlan, sharding: ProductSharding):
        D = sharding.size
        m, n = plan.shape
        sizes = {"fwd": m, "rev": n}  # the length of one product of each side
        self.sharding = sharding
        self.sides = tuple(
            (side, c) for side, c in (("fwd", plan.num_fwd), ("rev", plan.num_rev)) if c
        )
        self.per_device = tuple(_ceil_div(c, D) for _, c in self.sides)
        self.nnz = int(plan.index.size)
        self.block = _ceil_div(self.nnz, D)
        self.gather = plan.plan is not None
        # Each slot of the unsharded concatenation (`k * size + i` after the
        # previous sides' slots) as (device, slot among that device's products).
        device = np.zeros(plan.num_slots, np.int64)
        local = np.zeros(plan.num_slots, np.int64)
        start = local_start = 0
        for (side, c), per in zip(self.sides, self.per_device, strict=True):
            size = sizes[side]
            k, i = np.divmod(np.arange(c * size, dtype=np.int64), size)
            device[start : start + c * size] = k // per
            local[start : start + c * size] = local_start + (k % per) * size + i
            start += c * size
            local_start += per * size
        local_size = local_start
        if self.gather:
            self.positions = self.local_slots = None
            self.reorder = jnp.asarray(device * local_size + local)
            return
        self.reorder = None
        index = plan.index.astype(np.int64)
        owner = device[index]
        order = np.argsort(owner, kind="stable")
        counts_per_device = np.bincount(owner, minlength=D)
        width = max(int(counts_per_device.max(initial=0)), 1)
        positions = np.full((D, width), D * self.block, np.int64)
        local_slots = np.zeros((D, width), np.int64)
        starts = np.concatenate([[0], np.cumsum(counts_per_device)])
        for d in range(D):
            mine = order[starts[d] : starts[d + 1]]
            positions[d, : mine.size] = mine
            local_slots[d, : mine.size] = local[index[mine]]
        self.positions = jnp.asarray(positions.astype(np.int32))
        self.local_slots = jnp.asarray(local_slots.astype(np.int32))


def sharded_nonzeros(
    dec: Decompression,
    lin,
    primals: list,
    product: Callable,
    dtype,
    chunk_size: int | None = None,
    *,
    replicated: bool = False,
) -> Array:
    """The nonzeros, from products computed over the devices of `dec.sharded`
    (see the module's docstring).

    - `lin`: the linear map, a PyTree (from `jax.linearize` or `jax.vjp`),
      computed once by the caller: the devices only apply it, and never call the
      user's function (Optimistix's closure-converted functions accept only
      arguments of the types they were traced with);
    - `product(lin, primals, side, k)` returns the `k`-th product of `side` as a
      list of arrays, in the order in which they flatten into one row;
    - `replicated`: return the nonzeros on every device rather than split over
      them. Operators and solvers ask for it: their sparse factorisations run on
      the host and need all the nonzeros (left split, XLA's partitioner warned
      of an "involuntary full rematerialization" before a solver's callback).
    """
    plan = dec.sharded
    assert plan is not None
    if plan.nnz == 0:
        return jnp.zeros(0, dtype)
    sharding = plan.sharding
    axes = sharding.axes
    D = sharding.size
    dynamic, static = eqx.partition((lin, primals, dec), eqx.is_array)
    _refuse_placed(dynamic)

    def body(dynamic):
        lin, primals, dec = eqx.combine(dynamic, static)
        plan = dec.sharded
        device = jax.lax.axis_index(axes)
        blocks = [
            batched_products(
                ft.partial(product, lin, primals, side),
                per,
                chunk_size,
                first=device * per,
            ).reshape(-1)
            for (side, _), per in zip(plan.sides, plan.per_device, strict=True)
        ]
        local = (blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks)).astype(
            dtype
        )
        if plan.gather:
            everything = jax.lax.all_gather(local, axes, tiled=True)
            nonzeros = decompress_in_xla(everything[plan.reorder], dec)
            nonzeros = jnp.pad(nonzeros, (0, D * plan.block - plan.nnz))
            return jax.lax.dynamic_slice_in_dim(
                nonzeros, device * plan.block, plan.block
            )
        assert plan.positions is not None and plan.local_slots is not None
        values = local.at[plan.local_slots[device]].get(mode="promise_in_bounds")
        spread = jnp.zeros(D * plan.block, dtype)
        spread = spread.at[plan.positions[device]].set(values, mode="drop")
        return jax.lax.psum_scatter(spread, axes, scatter_dimension=0, tiled=True)

    # Without `check_vma`, JAX's typing of what varies over the devices: with it,
    # the linear map (whose residuals are the same on every device) refuses seeds
    # that vary.
    run = jax.shard_map(
        body,
        mesh=sharding.mesh,
        in_specs=PartitionSpec(),
        out_specs=sharding.spec,
        check_vma=False,
    )
    nonzeros = run(_replicated(dynamic, sharding))
    if _explicit(sharding):
        return _replicate(lambda x: x[: plan.nnz], nonzeros, sharding)
    nonzeros = nonzeros[: plan.nnz]
    if replicated:
        everywhere = NamedSharding(sharding.mesh, PartitionSpec())
        return jax.lax.with_sharding_constraint(nonzeros, everywhere)
    return nonzeros


def _refuse_placed(tree) -> None:
    """Arrays placed on a mesh carry it in their type, and the linear map closes
    over values derived from them; inside the `shard_map` they would meet the
    devices' own values, typed with its manual mesh, which JAX refuses to mix
    (with an error about meshes that names neither asdex nor the argument)."""
    for leaf in jtu.tree_leaves(tree):
        mesh = getattr(jax.typeof(leaf).sharding, "mesh", None)
        if mesh is not None and not mesh.empty:
            raise ValueError(
                "A sharded coloring (`ColoredPattern.shard`) spreads the products "
                "over the devices itself, and needs the point and the function's "
                "arrays unplaced: these arguments are placed on a mesh (by "
                "`jax.device_put` with a `NamedSharding`, say). Pass them without "
                "a sharding, or keep the coloring unsharded, `coloring.shard(None)`: "
                "then XLA's partitioner follows the arguments' sharding."
            )


def _explicit(sharding: ProductSharding) -> bool:
    return any(t == AxisType.Explicit for t in sharding.mesh.axis_types)


def _replicated(tree, sharding: ProductSharding):
    """Under a mesh of explicit axes, arrays carry their sharding in their type,
    and `shard_map` takes them only as its `in_specs` say: replicated."""
    if not _explicit(sharding):
        return tree
    target = NamedSharding(sharding.mesh, PartitionSpec())
    return jtu.tree_map(lambda x: jax.sharding.reshard(x, target), tree)


def _replicate(fn: Callable, x: Array, sharding: ProductSharding) -> Array:
    """`fn(x)`; on a mesh of explicit axes, replicated over the devices.

    There arrays carry their sharding in their type, which cannot split a length
    unevenly (the nonzeros, as the products' last block, are padded to split),
    and every operation that reads them would need to be told its output's
    sharding: the nonzeros are gathered on every device (the products are not).
    On other meshes XLA's partitioner places `fn(x)` as it sees fit.
    """
    if not _explicit(sharding):
        return fn(x)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    return jax.sharding.auto_axes(fn, out_sharding=replicated)(x)
