"""Output formats: from the compressed products to what the user gets.

Each format has two halves. `assemble` runs inside the compiled program: it
decompresses the products (or, where each nonzero has a slot of its own, uses them
as they are) with index arrays passed in as arguments. `finish` runs after it, in
Python, and wraps the result: a `BCOO` around its precomputed indices, or a scipy
matrix on the host.

`"bcoo"` and `"dense"` follow `jax.jacobian`'s layout: for outputs with
structure `Out` and differentiated inputs with structure `In` the result has
structure `Out` whose every leaf is an `In`-structured tree of blocks, the block
of output leaf `o` and input leaf `i` having shape `o.shape + i.shape`. Hessians
nest `In` in `In` like `jax.hessian`. The scipy formats are two-dimensional
`(m, n)` matrices in the flat layout of [`asdex.SparsityPattern`][].
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from jaxtyping import Array

from .._pattern import SparsityPattern
from ._compressed import Decompression, DecompressionPlan, index_array
from ._layout import Layout, ravel_parts

OUTPUT_FORMATS = ("bcoo", "dense", "scipy_csr", "scipy_csc", "scipy_coo")


def check_output_format(output_format, caller: str) -> str:
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"`{caller}(output_format={output_format!r})` must be one of "
            f"{', '.join(repr(f) for f in OUTPUT_FORMATS)}."
        )
    return output_format


class AbstractOutputFormat(eqx.Module):
    """How the products become the user's result."""

    @abc.abstractmethod
    def assemble(self, flat: Array, dec: Decompression):
        """Inside the compiled program: arrays from the concatenated products."""

    @abc.abstractmethod
    def from_nonzeros(self, values: Array):
        """As `assemble`, from the nonzeros in the pattern's order (what a sharded
        coloring's products decompress to; its plan is never `direct`)."""

    @abc.abstractmethod
    def finish(self, assembled):
        """After it: the result from what `assemble` returned."""

    def assemble_parts(self, parts: list, dec: Decompression):
        """As `assemble`, from the products as separate arrays, in the order of the
        concatenation (what one program per product returns)."""
        return self.assemble(ravel_parts(parts), dec)


# A compressed BCOO may hold this many padding entries per nonzero at most; beyond,
# the nonzeros are gathered instead.
_MAX_PADDING = 0.5


class BCOOFormat(AbstractOutputFormat):
    """`jax.experimental.sparse.BCOO` blocks, nested like `jax.jacobian`.

    With one block and a direct decompression (see `DecompressionPlan`) the BCOO
    is the products themselves: data `where(occupied, flat, 0)` in color-major
    order, whose slots without a nonzero get an out-of-bounds index, which BCOO
    treats as padding (as `BCOO.fromdense(..., nse=...)` does). No gather is
    needed. Where that would be mostly padding, the nonzeros are gathered in the
    order of their slots (`by_slot`): product by product, so that products
    computed by separate programs are read where they lie, without concatenating
    them first. Otherwise the nonzeros are gathered in the pattern's order and
    split into blocks.
    """

    layout: Layout = eqx.field(static=True)
    compressed: bool = eqx.field(static=True)
    occupied: Array | None
    selections: tuple[Array | None, ...]
    indices: tuple[Array, ...]
    # `by_slot`: the slots of the nonzeros in increasing order, the same as offsets
    # into their own products, and where each product's run of them ends.
    by_slot: bool = eqx.field(static=True)
    slots: Array | None
    part_offsets: Array | None
    part_ends: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, pattern: SparsityPattern, layout: Layout, plan: DecompressionPlan
    ):
        self.layout = layout
        padding = plan.num_slots - pattern.nnz
        self.compressed = bool(
            layout.single and plan.direct and padding <= _MAX_PADDING * pattern.nnz
        )
        self.by_slot = bool(layout.single and plan.direct and not self.compressed)
        self.slots = self.part_offsets = None
        self.part_ends = ()
        if self.by_slot:
            order = np.argsort(plan.index, kind="stable")
            slots = plan.index[order]
            starts = _part_starts(plan)
            part = np.searchsorted(starts, slots, side="right") - 1
            self.occupied = None
            self.selections = (None,)
            self.indices = (
                _multi_index(
                    pattern.rows[order],
                    pattern.cols[order],
                    layout.outputs.shapes[0],
                    layout.inputs.shapes[0],
                ),
            )
            bound = max(plan.num_slots, 1)
            self.slots = index_array(slots, bound)
            self.part_offsets = index_array(slots - starts[part], bound)
            counts = np.bincount(part, minlength=len(starts))
            self.part_ends = tuple(int(e) for e in np.cumsum(counts))
            return
        if self.compressed:
            slot_rows, slot_cols, occupied = _slots(pattern, plan)
            self.occupied = jnp.asarray(occupied)
            self.selections = (None,)
            self.indices = (
                _multi_index(
                    slot_rows,
                    slot_cols,
                    layout.outputs.shapes[0],
                    layout.inputs.shapes[0],
                ),
            )
            return
        self.occupied = None
        if layout.single:
            self.selections = (None,)
            self.indices = (
                _multi_index(
                    pattern.rows,
                    pattern.cols,
                    layout.outputs.shapes[0],
                    layout.inputs.shapes[0],
                ),
            )
            return
        selections, indices = [], []
        for sel, r, c, oshape, ishape in _blocks(pattern, layout):
            selections.append(jnp.asarray(sel))
            indices.append(_multi_index(r, c, oshape, ishape))
        self.selections = tuple(selections)
        self.indices = tuple(indices)

    def assemble(self, flat, dec):
        if self.compressed:
            assert self.occupied is not None
            return [jnp.where(self.occupied, flat, 0).astype(flat.dtype)]
        if self.by_slot:
            assert self.slots is not None
            return [dec.gather(flat, self.slots)]
        return self.from_nonzeros(dec.decompress(flat))

    def from_nonzeros(self, values):
        assert not (self.compressed or self.by_slot)
        return [values if s is None else values[s] for s in self.selections]

    def assemble_parts(self, parts, dec):
        if not self.by_slot:
            return super().assemble_parts(parts, dec)
        assert self.part_offsets is not None
        pieces, start = [], 0
        for part, end in zip(parts, self.part_ends, strict=True):
            if end > start:
                offsets = self.part_offsets[start:end]
                pieces.append(
                    part.reshape(-1).at[offsets].get(mode="promise_in_bounds")
                )
            start = end
        if not pieces:  # no nonzeros at all
            return [jnp.zeros(0, parts[0].dtype)]
        return [pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)]

    def finish(self, assembled):
        shapes = [
            o + i for o in self.layout.outputs.shapes for i in self.layout.inputs.shapes
        ]
        # `tree_unflatten` skips the validation of `BCOO.__init__`, a third of the
        # cost of a small call; the shapes are right by construction.
        blocks = [
            jsparse.BCOO.tree_unflatten(
                {
                    "shape": shape,
                    "indices_sorted": not (self.compressed or self.by_slot),
                    "unique_indices": True,
                },
                (data, idx),
            )
            for data, idx, shape in zip(assembled, self.indices, shapes, strict=True)
        ]
        return self.layout.nest(blocks)


class DenseFormat(AbstractOutputFormat):
    """Dense arrays, nested like `jax.jacobian`.

    With a direct decompression the products are scattered into place (slots
    without a nonzero are dropped); otherwise the nonzeros are gathered first.
    """

    layout: Layout = eqx.field(static=True)
    compressed: bool = eqx.field(static=True)
    rows: Array
    cols: Array

    def __init__(
        self, pattern: SparsityPattern, layout: Layout, plan: DecompressionPlan
    ):
        self.layout = layout
        self.compressed = bool(plan.direct)
        if plan.direct:
            rows, cols, _ = _slots(pattern, plan)
        else:
            rows, cols = pattern.rows, pattern.cols
        self.rows = jnp.asarray(
            rows.astype(np.int32 if rows.size < 2**31 else np.int64)
        )
        self.cols = jnp.asarray(
            cols.astype(np.int32 if cols.size < 2**31 else np.int64)
        )

    def assemble(self, flat, dec):
        return self._scatter(flat if self.compressed else dec.decompress(flat))

    def from_nonzeros(self, values):
        assert not self.compressed
        return self._scatter(values)

    def _scatter(self, values):
        m = int(self.layout.outputs.offsets[-1])
        n = int(self.layout.inputs.offsets[-1])
        dense = jnp.zeros((m, n), values.dtype)
        if values.size:
            dense = dense.at[self.rows, self.cols].set(
                values,
                mode="drop",
                indices_are_sorted=not self.compressed,
                unique_indices=True,
            )
        ro, co = self.layout.outputs.offsets, self.layout.inputs.offsets
        blocks = []
        for o, oshape in enumerate(self.layout.outputs.shapes):
            for i, ishape in enumerate(self.layout.inputs.shapes):
                block = dense
                if not self.layout.single:
                    block = dense[ro[o] : ro[o + 1], co[i] : co[i + 1]]
                blocks.append(block.reshape(oshape + ishape))
        return blocks

    def finish(self, assembled):
        return self.layout.nest(assembled)


class ScipyFormat(AbstractOutputFormat):
    """A two-dimensional scipy sparse array on the host (`csr`, `csc` or `coo`)."""

    pattern: SparsityPattern = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def assemble(self, flat, dec):
        return dec.decompress(flat)

    def from_nonzeros(self, values):
        return values

    def finish(self, assembled):
        if isinstance(assembled, jax.core.Tracer):
            raise TypeError(
                f"`output_format='scipy_{self.kind}'` builds a scipy matrix on the "
                "host, so the sparse derivative cannot be called under `jax.jit`, "
                "`jax.vmap`, `jax.grad` or other JAX transformations. Use "
                "`output_format='bcoo'` (or 'dense') inside transformations, and "
                "convert outside them."
            )
        data = np.asarray(assembled)
        p = self.pattern
        if self.kind == "coo":
            return sp.coo_array((data, (p.rows, p.cols)), shape=p.shape)
        csr = sp.csr_array((data, p.cols, p.indptr), shape=p.shape)
        csr.has_sorted_indices = True
        return csr if self.kind == "csr" else csr.tocsc()


def make_format(
    output_format: str,
    pattern: SparsityPattern,
    layout: Layout,
    plan: DecompressionPlan,
) -> AbstractOutputFormat:
    if output_format == "bcoo":
        return BCOOFormat(pattern, layout, plan)
    if output_format == "dense":
        return DenseFormat(pattern, layout, plan)
    return ScipyFormat(pattern, output_format.removeprefix("scipy_"))


def _part_starts(plan: DecompressionPlan) -> np.ndarray:
    """Where each product starts in the concatenation: `num_fwd` of length `m`, then
    `num_rev` of length `n` (a Hessian's HVPs are JVPs of the gradient: `m = n`)."""
    m, n = plan.shape
    lengths = [m] * plan.num_fwd + [n] * plan.num_rev
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])[:-1]


def _slots(pattern: SparsityPattern, plan: DecompressionPlan):
    """The row and column of the nonzero in each slot of a direct decompression;
    `(m, n)` (out of bounds) and `occupied=False` for slots without one."""
    m, n = pattern.shape
    slot_rows = np.full(plan.num_slots, m, dtype=np.int64)
    slot_cols = np.full(plan.num_slots, n, dtype=np.int64)
    occupied = np.zeros(plan.num_slots, dtype=bool)
    slot_rows[plan.index] = pattern.rows
    slot_cols[plan.index] = pattern.cols
    occupied[plan.index] = True
    return slot_rows, slot_cols, occupied


def _multi_index(rows, cols, out_shape, in_shape) -> Array:
    """`(nnz, len(out_shape) + len(in_shape))` BCOO indices of flat entries.

    Entries with an out-of-range row or column (padding) get the index `shape`,
    which BCOO ignores.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    dims = tuple(out_shape) + tuple(in_shape)
    dtype = np.int32 if max(dims, default=0) < 2**31 else np.int64
    if not dims:
        return jnp.zeros((rows.size, 0), dtype)
    m = int(np.prod(out_shape, dtype=np.int64))
    n = int(np.prod(in_shape, dtype=np.int64))
    padding = (rows >= m) | (cols >= n)
    parts = []
    if out_shape:
        parts += np.unravel_index(np.where(padding, 0, rows), out_shape)
    if in_shape:
        parts += np.unravel_index(np.where(padding, 0, cols), in_shape)
    index = np.stack(parts, axis=1)
    if padding.any():
        index[padding] = np.asarray(dims)
    return jnp.asarray(index.astype(dtype))


def _blocks(pattern: SparsityPattern, layout: Layout):
    """For each block, output-leaf-major: the entries in it (in the pattern's order)
    and their local row and column."""
    rows = pattern.rows.astype(np.int64)
    cols = pattern.cols.astype(np.int64)
    ro, co = layout.outputs.offsets, layout.inputs.offsets
    out_leaf = np.searchsorted(ro, rows, side="right") - 1
    in_leaf = np.searchsorted(co, cols, side="right") - 1
    k = len(layout.inputs.shapes)
    key = out_leaf * k + in_leaf
    # A stable sort keeps each block's entries in row-major order, so that its
    # BCOO indices are sorted.
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(len(layout.outputs.shapes) * k + 1))
    index_dtype = np.int32 if rows.size < 2**31 else np.int64
    for o, oshape in enumerate(layout.outputs.shapes):
        for i, ishape in enumerate(layout.inputs.shapes):
            b = o * k + i
            sel = order[bounds[b] : bounds[b + 1]]
            yield (
                sel.astype(index_dtype),
                rows[sel] - ro[o],
                cols[sel] - co[i],
                oshape,
                ishape,
            )
