"""Compressed AD: the one engine that computes products and decompresses them.

Everything that differentiates with a coloring calls it: `asdex.jacobian` and
`asdex.hessian` (`_sparse_derivative.py`), the Lineax operators, the Optimistix
and Optax solvers, and the matrix-free sparsifier. They differ only in how they
linearize and in their `Layout` (`Layout.from_traced` for the entry points,
`Layout.of_structures` for functions of one PyTree, `layout.gradient` for a
gradient's Jacobian).

With `c` colors the seed matrix `S` has one column per color, `S[j, k] = 1` when
column `j` has color `k`. The compressed matrix is one product per color of a
`Linear` map, which `f` is evaluated once to build:

- JVPs (column colorings): `B = J @ S`, `jax.linearize`'s map over the seeds;
- VJPs (row colorings): `B = Sᵀ @ J`, `jax.vjp`'s pullback over the seeds;
- both (bicolorings): the JVPs, and the VJPs of the same linearization through
  `jax.linear_transpose`;
- HVPs (star and acyclic colorings): `B = H @ S`, the JVPs of the gradient's
  linearization (forward over reverse, `gradient_linearization`).

`products_of` computes them, `nonzeros_of` also decompresses (over several
devices for a sharded coloring, see `_sharded.py`). `chunk_size=k` evaluates `k`
products at a time with `jax.lax.map(..., batch_size=k)`, to bound the memory of
the batched linear map. Without it, inside a caller's `jit` the seeds are
constants of the program (`constant_seeds`); otherwise all products are batched
with `jax.vmap` on GPU, and on CPU up to eight are unrolled and more run one
after the other in a `lax.map` (see `_cpu.py`). Large Jacobians called from
Python on CPU go further and run each product as a program of its own
(`dispatch_per_product` in `_sparse_derivative.py`), through `jacobian_product`.

The products are laid out color-major: `(c, m)` for JVPs and `(c, n)` for VJPs and
HVPs, as `jax.vmap` stacks them, so no transpose is needed. Decompression is then
one gather `flat[index]` from the concatenated products (plus the substitution
sweep of an acyclic coloring), with `index` the coloring result's own
`product_slots`.

Where every nonzero has a slot of its own in the products (column, row and
bidirectional colorings), the BCOO and dense outputs skip the gather: the
products are the BCOO's data as they are, in color-major order, with padding
entries for the slots that hold no nonzero (see `_formats.py`).
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array

from .._colored import ColoredPattern
from .._sharding import ProductSharding
from . import _cpu
from ._host_substitution import HostPlan, solve_on_host
from ._layout import Layout, ravel_stacked
from ._programs import in_own_program


def index_array(values: np.ndarray, bound: int) -> jax.Array:
    # Unsigned indices spare the gather `jnp` indexing's wrap-around of negative
    # indices (one select over the whole index array).
    if bound < 2**32:
        return jnp.asarray(np.ascontiguousarray(values, dtype=np.uint32))
    return jnp.asarray(np.ascontiguousarray(values, dtype=np.int64))


def _colors_array(colors) -> jax.Array | None:
    # The narrowest signed type (negative: in no seed): every product reads the
    # whole array, and int8 instead of int32 makes a Brusselator JVP 0.7x as long.
    if colors is None:
        return None
    colors = np.asarray(colors)
    top = int(colors.max(initial=0))
    dtype = np.int8 if top < 2**7 else np.int16 if top < 2**15 else np.int32
    return jnp.asarray(colors.astype(dtype))


class DecompressionPlan(NamedTuple):
    """The numpy side of a decompression, computed once when a derivative is built.

    - `index`: `(nnz,)`, for each nonzero in the pattern's order, its slot: where
      it lies in `concatenate([B_fwd.ravel(), B_rev.ravel()])` (color-major
      products), or after them among the unknowns of the substitution `plan`.
    - `num_slots`: the length of that concatenation, `m * c_fwd + c_rev * n`.
    - `direct`: whether every nonzero is a slot of its own (no substitution, no
      slot shared by two nonzeros). Then a slot holds one nonzero or a structural
      zero, and the products can be scattered into place without a gather. Never
      for a sharded coloring, whose products are decompressed where they lie
      (see `_sharded.py`).
    - `sharding`: the coloring's `ProductSharding`, or `None`.
    """

    shape: tuple[int, int]
    num_fwd: int
    num_rev: int
    index: np.ndarray
    num_slots: int
    direct: bool
    col_colors: np.ndarray | None
    row_colors: np.ndarray | None
    plan: eqx.Module | None
    sharding: ProductSharding | None

    @classmethod
    def of(cls, coloring: ColoredPattern) -> DecompressionPlan:
        # The coloring's result type knows its products and their slots.
        result = coloring.result
        m, n = coloring.shape
        num_fwd = coloring.num_jvps + coloring.num_hvps
        num_rev = coloring.num_vjps
        col_colors, row_colors = result.seed_colors
        index = result.product_slots()
        plan = result.substitution
        num_slots = m * num_fwd + num_rev * n
        direct = (
            plan is None
            and coloring.sharding is None
            and (
                index.size == 0
                or bool(np.bincount(index, minlength=num_slots).max() <= 1)
            )
        )
        return cls(
            (m, n),
            num_fwd,
            num_rev,
            index,
            num_slots,
            direct,
            col_colors,
            row_colors,
            plan,
            coloring.sharding,
        )


class HostColors:
    """The seeds' colors as numpy arrays, a static (hashable) field: for seed
    matrices built as constants at trace time (see `constant_seeds`)."""

    __slots__ = ("col", "row", "_key")

    def __init__(self, col: np.ndarray | None, row: np.ndarray | None):
        self.col = None if col is None else np.asarray(col, dtype=np.int64)
        self.row = None if row is None else np.asarray(row, dtype=np.int64)
        self._key = tuple(
            None if c is None else (c.size, hash(c.tobytes()))
            for c in (self.col, self.row)
        )

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, HostColors)
            and self._key == other._key
            and all(
                (a is None and b is None)
                or (a is not None and b is not None and np.array_equal(a, b))
                for a, b in ((self.col, other.col), (self.row, other.row))
            )
        )


class Decompression(eqx.Module):
    """The seeds and the decompression of one coloring, as device arrays.

    - `shape`, `num_fwd`, `num_rev`, `num_slots`: as in the plan (static).
    - `col_colors` / `row_colors`: colors of the columns (JVP and HVP seeds) and of
      the rows (VJP seeds); negative means "in no seed".
    - `index`: the slot of each nonzero (see `DecompressionPlan`).
    - `plan`: the substitution plan of an acyclic coloring, else `None`.
    - `host_plan`, `has_pred`: the same plan for the numba sweep on CPU (see
      `_host_substitution.py`), else `None`: also for plans of at most
      `_cpu.HOST_SWEEP_FROM_BLOCKS - 1` blocks, which XLA compiles as fast and runs faster.
    - `true`: the constant `True` as an array (see `_decompress_unfused`).
    - `sharded`: for a sharded coloring, where its products and nonzeros lie on
      the devices (see `_sharded.py`), else `None`.
    """

    shape: tuple[int, int] = eqx.field(static=True)
    num_fwd: int = eqx.field(static=True)
    num_rev: int = eqx.field(static=True)
    num_slots: int = eqx.field(static=True)
    index: Array
    col_colors: Array | None
    row_colors: Array | None
    plan: eqx.Module | None
    host_plan: HostPlan | None = eqx.field(static=True)
    has_pred: Array | None
    true: Array
    host_colors: HostColors = eqx.field(static=True)
    sharded: eqx.Module | None
    in_solvers: bool = eqx.field(static=True)

    def __init__(self, plan: DecompressionPlan, *, in_solvers: bool = False):
        self.in_solvers = in_solvers
        self.shape = plan.shape
        self.num_fwd = plan.num_fwd
        self.num_rev = plan.num_rev
        self.num_slots = plan.num_slots
        bound = max(plan.num_slots, int(plan.index.max(initial=0)) + 1)
        self.index = index_array(plan.index, bound)
        self.col_colors = _colors_array(plan.col_colors)
        self.row_colors = _colors_array(plan.row_colors)
        self.plan = None if plan.plan is None else jtu.tree_map(jnp.asarray, plan.plan)
        on_host = plan.plan is not None and (
            sum(len(level) for level in plan.plan.blocks) >= _cpu.HOST_SWEEP_FROM_BLOCKS
        )
        self.host_plan = HostPlan(plan.plan) if on_host else None
        self.has_pred = (
            None if self.host_plan is None else jnp.asarray(self.host_plan.has_pred)
        )
        self.true = jnp.asarray(True)
        self.host_colors = HostColors(plan.col_colors, plan.row_colors)
        self.sharded = None
        if plan.sharding is not None:
            from ._sharded import ShardedPlan  # it builds on this module

            self.sharded = ShardedPlan(plan, plan.sharding)

    def concatenate(self, B_fwd: Array | None, B_rev: Array | None) -> Array:
        """The `(num_slots,)` vector of all products, color-major."""
        parts = [B.reshape(-1) for B in (B_fwd, B_rev) if B is not None]
        if not parts:
            return jnp.zeros(0)
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    def constant_seeded(self) -> bool:
        """Whether the products are computed from constant seeds (see
        `constant_seeds`): then XLA may fuse them with what reads them. (With a
        `chunk_size` they are not, and are then fused all the same: a matter of
        speed only.)"""
        return not in_own_program() and all(
            _constant_seeds_fit(self, colors, count)
            for colors, count in (
                (self.host_colors.col, self.num_fwd),
                (self.host_colors.row, self.num_rev),
            )
            if count
        )

    def gather(self, flat: Array, index: Array) -> Array:
        """`flat[index]`, kept apart from the products on CPU (see
        `_decompress_unfused`)."""
        if self.constant_seeded():
            return _plain_gather(flat, index)
        return jax.lax.platform_dependent(
            flat,
            index,
            self.true,
            default=lambda flat, index, _: _plain_gather(flat, index),
            cpu=_unfused_gather,
        )

    def decompress(self, flat: Array) -> Array:
        """The nonzeros in the pattern's order, from the concatenated products."""
        if self.index.size == 0:
            return jnp.zeros(0, flat.dtype)
        cpu = _decompress_on_cpu if self.constant_seeded() else _decompress_unfused
        return jax.lax.platform_dependent(
            flat, self, default=decompress_in_xla, cpu=cpu
        )


def _gather(flat: Array, dec: Decompression, unknowns: Array | None) -> Array:
    if unknowns is not None:
        flat = jnp.concatenate([flat, unknowns])
    return flat.at[dec.index].get(mode="promise_in_bounds")


def decompress_in_xla(flat: Array, dec: Decompression) -> Array:
    unknowns = None if dec.plan is None else dec.plan.solve(flat)  # pyright: ignore
    return _gather(flat, dec, unknowns)


def _apart(true: Array, fn: Callable, *args) -> Array:
    """`fn(*args)`, in a conditional that XLA cannot see through (on `true`, an
    argument that is always `True`; see `_decompress_unfused`)."""
    out = jax.eval_shape(fn, *args)
    return jax.lax.cond(true, fn, lambda *_: jnp.zeros(out.shape, out.dtype), *args)


def _decompress_on_cpu(flat: Array, dec: Decompression) -> Array:
    unknowns = None
    if dec.host_plan is not None:
        assert dec.has_pred is not None
        unknowns = solve_on_host(dec.host_plan, dec.plan, dec.has_pred, flat)  # pyright: ignore
    elif dec.plan is not None:
        # XLA's sweep is kept apart from the gather that reads it, as the products
        # are: fused, the gather recomputes the sweep's last steps at every read
        # (decompressing the chained Rosenbrock Hessian at n = 10⁶: 3.8 ms, and
        # 2.3 ms apart).
        unknowns = _apart(dec.true, lambda plan, flat: plan.solve(flat), dec.plan, flat)
    return _gather(flat, dec, unknowns)


def _plain_gather(flat: Array, index: Array) -> Array:
    return flat.at[index].get(mode="promise_in_bounds")


def _unfused_gather(flat: Array, index: Array, true: Array) -> Array:
    return _apart(true, _plain_gather, flat, index)


def _decompress_unfused(flat: Array, dec: Decompression) -> Array:
    # On CPU, XLA fuses the products into the gather that reads them, and then
    # recomputes them element by element at the gathered positions in a scalar
    # loop: 2-3x slower than computing them and gathering. `optimization_barrier`
    # does not survive XLA's CPU pipeline, but a conditional on a value it cannot
    # see (`dec.true`, an argument) keeps the two apart. An acyclic coloring's
    # sweep of many blocks runs on the host (see `_host_substitution.py`).
    return _apart(dec.true, _decompress_on_cpu, flat, dec)


def batched_products(
    fn: Callable, count: int, chunk_size: int | None, first: Array | int = 0
) -> Array:
    """`(count, size)`: the products `fn(first + k)` for `k < count`, each
    flattened, by rows; vectorised, `chunk_size` at a time.

    `fn(k)` returns a list of arrays, the product's leaves in their own shapes: they
    are stacked as they are and flattened afterwards (see `ravel_stacked`).
    """
    ks = first + jnp.arange(count, dtype=jnp.int32)
    if chunk_size is not None and chunk_size < count:
        return ravel_stacked(jax.lax.map(fn, ks, batch_size=chunk_size))

    def batched():
        return jax.vmap(fn)(ks)

    def unrolled():
        products = [fn(first + k) for k in range(count)]
        return [jnp.stack(leaves) for leaves in zip(*products, strict=True)]

    def sequential():
        return jax.lax.map(fn, ks)

    # On CPU up to `_cpu.UNROLL` products are unrolled and more run in a loop:
    # XLA's CPU code for batched shifts and pads is slow (see `_cpu.py`). GPUs run
    # the batched products well.
    cpu = unrolled if count <= _cpu.UNROLL else sequential
    return ravel_stacked(jax.lax.platform_dependent(cpu=cpu, default=batched))


def constant_seeds(dec: Decompression, side: str, count: int, dtype):
    """The `(size, count)` seed matrix as a numpy constant, or `None`.

    XLA folds what the products compute from a constant seed alone (the linear
    stencil of a Laplacian applied to the seeds, say) at compile time, and runs
    the products batched over a trailing axis of colors in one pass. Measured in
    one process, in a caller's `jit` (steady state, as multiples of one call of the
    function): the 5 HVPs of the 512² Bratu energy take 1.1 t_grad with constant
    seeds against 3.7 with seeds computed from the colors, and the 12 JVPs of the
    512² Brusselator 10.7 against 23.9 unrolled (52 batched over computed seeds).
    Compiling costs more (3.8 against 1.8 s for that Brusselator), so this is
    done up to `_cpu.MAX_CONSTANT_SEEDS` entries, and not for the programs that a call
    from Python runs (`ad/_programs.py`), whose compile time is the user's wait.
    Products from constant seeds are not kept apart from their decompression
    (`_apart`): fused, the 512² Brusselator's take 4.5 t_f, and 14 apart.

    Solvers compile their whole loop once per solve and run a few steps in it, so
    their operators pay the compile time back less often: `jax.jit` of a
    `SparseJacobianOperator` of the 512² Brusselator compiled in 4.9 s with
    constant seeds against 0.7 s without, for 4.2 against 45 ms a call, and a
    Newton solve of the 1000² Bratu problem took 10.7 against 6.7 s. Their limit,
    `_cpu.MAX_CONSTANT_SEEDS_IN_SOLVERS` (`Decompression(in_solvers=True)`), keeps the gain at 128² (the Brusselator
    operator 0.35 against 2.7 ms, compiled in 0.35 against 0.25 s).
    """
    colors = dec.host_colors.col if side == "fwd" else dec.host_colors.row
    if not _constant_seeds_fit(dec, colors, count) or in_own_program():
        return None
    return (colors[:, None] == np.arange(count)[None, :]).astype(dtype)


def _constant_seeds_fit(dec, colors: np.ndarray | None, count: int) -> bool:
    limit = _cpu.MAX_CONSTANT_SEEDS
    if dec.in_solvers:
        limit = min(limit, _cpu.MAX_CONSTANT_SEEDS_IN_SOLVERS)
    return colors is not None and colors.size * count <= limit


def _seed(colors: Array, k, dtype) -> Array:
    # `k` (an int32 loop index under `vmap` and `lax.map`) is cast to the colors'
    # narrow type rather than the colors widened: `==` between int8 and int32 does
    # not promote under `jax_numpy_dtype_promotion="strict"`, and the narrow type
    # is the point (see `_colors_array`). `k < 2**7` for int8 colors, and so on.
    return (colors == jnp.asarray(k, colors.dtype)).astype(dtype)


class Linear(NamedTuple):
    """A linear map and its transpose, either of them `None`: what the products
    apply to their seeds.

    - `jvp`: tangents of the primals (one positional argument each) to the
      output's tangent: `jax.linearize`'s map, or a linear operator's `mv`.
    - `vjp`: the output's cotangent to a tuple of the primals' cotangents:
      `jax.vjp`'s pullback. Without it, VJPs transpose `jvp`
      (`jax.linear_transpose`), so that `f` is still evaluated once.

    A PyTree whose leaves are the residuals: it can be returned by one compiled
    program and passed to others, so that the products run in programs of their
    own without evaluating `f` again (see `dispatch_per_product` in
    `_sparse_derivative.py`), or be handed to the devices of a sharded coloring
    (see `_sharded.py`).
    """

    jvp: Callable | None
    vjp: Callable | None

    def pullback(self, primals: list) -> Callable:
        if self.vjp is not None:
            return self.vjp
        assert self.jvp is not None
        return jax.linear_transpose(self.jvp, *primals)


def jacobian_linearization(g: Callable, primals: list, dec: Decompression):
    """`(lin, out, aux)`: `g(*primals) = (out, aux)`, and its `Linear` map.

    The JVP map (`jax.linearize`) when there are JVPs to compute, else the pullback
    (`jax.vjp`); `g` is evaluated once.
    """
    if dec.num_fwd:
        out, jvp, aux = jax.linearize(g, *primals, has_aux=True)
        return Linear(jvp, None), out, aux
    out, vjp, aux = jax.vjp(g, *primals, has_aux=True)
    return Linear(None, vjp), out, aux


def jacobian_product(
    lin: Linear, primals: list, layout: Layout, dec: Decompression, side: str, k
) -> list[Array]:
    """The `k`-th JVP (`side="fwd"`) or VJP (`"rev"`) from the linearization, as
    its leaves in their own shapes (flattened in this order, it is one row of `B`)."""
    dtype = layout.jacobian_dtype()
    colors = dec.col_colors if side == "fwd" else dec.row_colors
    assert colors is not None
    return _jacobian_product_of_seed(
        lin, primals, layout, side, _seed(colors, k, dtype)
    )


def _jacobian_product_of_seed(lin: Linear, primals, layout, side: str, seed):
    dtype = layout.jacobian_dtype()
    if side == "fwd":
        assert lin.jvp is not None
        return layout.output_parts(lin.jvp(*layout.unravel_inputs(seed)), dtype)
    pullback = lin.pullback(primals)
    return layout.input_parts(pullback(layout.unravel_outputs(seed)), dtype)


def products_of(
    lin: Linear,
    primals: list,
    layout: Layout,
    dec: Decompression,
    chunk_size: int | None,
) -> Array:
    """The concatenated products (see `Decompression.concatenate`) of a linear map:
    `dec.num_fwd` JVPs, then `dec.num_rev` VJPs."""
    dtype = layout.jacobian_dtype()
    if dec.num_fwd + dec.num_rev == 0:
        return jnp.zeros(0, dtype)
    B = {}
    for side, count in (("fwd", dec.num_fwd), ("rev", dec.num_rev)):
        if not count:
            continue
        seeds = None if chunk_size else constant_seeds(dec, side, count, dtype)
        if seeds is not None:
            product = ft.partial(_jacobian_product_of_seed, lin, primals, layout, side)
            B[side] = ravel_stacked(jax.vmap(product, in_axes=1)(seeds))
        else:
            product = ft.partial(jacobian_product, lin, primals, layout, dec, side)
            B[side] = batched_products(product, count, chunk_size)
    return dec.concatenate(B.get("fwd"), B.get("rev"))


def nonzeros_of(
    lin: Linear,
    primals: list,
    layout: Layout,
    dec: Decompression,
    chunk_size: int | None,
    *,
    replicated: bool = False,
) -> Array:
    """The nonzeros of a linear map, in the pattern's order: its products
    decompressed, or for a sharded coloring, computed and decompressed over the
    devices (`replicated`: see `sharded_nonzeros`).

    A Hessian's linearization is the `Linear` of its gradient (JVPs only).
    """
    dtype = layout.jacobian_dtype()
    if dec.sharded is not None:
        from ._sharded import sharded_nonzeros  # it builds on this module

        product = ft.partial(_side_product, layout, dec)
        return sharded_nonzeros(
            dec, lin, primals, product, dtype, chunk_size, replicated=replicated
        )
    return dec.decompress(products_of(lin, primals, layout, dec, chunk_size)).astype(
        dtype
    )


def _side_product(layout, dec, lin, primals, side, k):
    return jacobian_product(lin, primals, layout, dec, side, k)


def gradient_linearization(g: Callable, primals: list):
    """`(lin, grads, value, aux)`: `g(*primals) = (value, aux)` for a scalar
    `value`, its gradient (a tuple, one per primal), and the `Linear` map
    `v ↦ H v` (forward over reverse); `g` is evaluated once."""
    argnums = tuple(range(len(primals)))

    def gradient(*p):
        (value, aux), grads = jax.value_and_grad(g, argnums=argnums, has_aux=True)(*p)
        return grads, (value, aux)

    grads, hvp, (value, aux) = jax.linearize(gradient, *primals, has_aux=True)
    return Linear(hvp, None), grads, value, aux


def hessian_linearization(g: Callable, primals: list):
    """`(lin, value, aux)`: as `gradient_linearization`, without the gradient."""
    lin, _, value, aux = gradient_linearization(g, primals)
    return lin, value, aux
