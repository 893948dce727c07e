"""Coloring results: the colors and a decompression plan, precomputed once.

Every result maps the compressed matrix (or matrices) back to the nonzero values
of the pattern in the pattern's order (`pattern.rows`, `pattern.cols`, row-major).
The plan is a set of numpy index arrays, so that decompression is one gather,
`B.ravel()[compressed_index]`, plus the substitution sweep of
[`asdex.coloring.AcyclicColoringResult`][]. `decompress` accepts numpy arrays (a
reference implementation) and JAX arrays, under `jax.jit` and `jax.vmap` too.

Results are `equinox.Module`s: the pattern and the color counts are static fields
and the index arrays are leaves, so that they travel into a jitted function as
arrays rather than as folded constants.

Colors count from 0. A negative color (`-1`) is *neutral*: the vertex is in no
seed. The algorithms give it to vertices without nonzeros (so that an all-zero
pattern needs no products at all) and, in bicoloring, to rows and columns that no
entry is read through. `num_colors` is the largest color plus one.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numba
import numpy as np
from jaxtyping import Array, ArrayLike, Int, Shaped

from .._pattern import SparsityPattern
from ._check import (
    as_colors,
    check_acyclic,
    check_bicoloring,
    check_structurally_orthogonal,
    check_symmetrically_orthogonal,
)
from ._graph import AdjacencyGraph, BipartiteGraph
from ._substitution import _CYCLE, _OK, SubstitutionPlan, build_plan

# Compressed matrices and decompressed values: numpy arrays (the reference) or JAX
# arrays (traced too).
Compressed = Shaped[Array, "rows cols"] | Shaped[np.ndarray, "rows cols"]
Values = Shaped[Array, " nnz"] | Shaped[np.ndarray, " nnz"]
Colors = Int[ArrayLike, " vertices"]


@numba.njit(cache=True)
def _unique_in_group(ngroups, ptr, idx, colors, width):
    """For each entry: is the color of its member (`colors[idx[p]] ≥ 0`) unique in its group?"""
    count = np.zeros(width, np.int64)
    stamp = np.full(width, -1, np.int64)
    out = np.zeros(idx.shape[0], np.bool_)
    for g in range(ngroups):
        for p in range(ptr[g], ptr[g + 1]):
            c = colors[idx[p]]
            if c < 0:
                continue
            if stamp[c] != g:
                stamp[c] = g
                count[c] = 0
            count[c] += 1
        for p in range(ptr[g], ptr[g + 1]):
            c = colors[idx[p]]
            out[p] = c >= 0 and count[c] == 1
    return out


@numba.njit(cache=True)
def _group_major_index(ngroups, ptr, idx, colors, stride, out):
    """`out[p] = g * stride + colors[idx[p]]` for each entry `p` of group `g`, in
    one pass without the numpy expression's temporaries."""
    for g in range(ngroups):
        for p in range(ptr[g], ptr[g + 1]):
            out[p] = g * stride + colors[idx[p]]


# Column colorings with this many nonzeros or more compute their compressed
# indices in numba: 0.6 against 1.0 s at 5·10⁷ (a 3162² stencil), worth loading
# the kernel (about 0.25 s a process) only that large.
_NUMBA_INDEX_FROM = 2**24


def _raise_invalid(check, *args) -> None:
    """Let a public checker explain why a coloring is invalid."""
    check(*args, raise_on_failure=True)
    raise ValueError(f"The colors are not valid for `{check.__name__}`.")


def _index(values: np.ndarray, bound: int) -> np.ndarray:
    """A read-only index array, `int32` when every index fits."""
    dtype = np.int32 if bound < 2**31 else np.int64
    out = np.ascontiguousarray(values, dtype=dtype)
    out.flags.writeable = False
    return out


def _flat_index(major, stride: int, minor, bound: int) -> np.ndarray:
    """`_index(major * stride + minor)`, computed in the index's own dtype (int32
    arithmetic on 5·10⁷ entries moves half the memory of int64). `major` and
    `minor` are index arrays, or pairs `(colors, indices)` for `colors[indices]`,
    looked up after narrowing the colors."""
    dtype = np.int32 if bound < 2**31 else np.int64

    def narrow(x, copy: bool):
        if isinstance(x, tuple):
            colors, indices = x
            return np.asarray(colors).astype(dtype)[indices]
        return np.asarray(x).astype(dtype, copy=copy)

    out = narrow(major, copy=True)  # written to below
    out *= dtype(stride)
    out += narrow(minor, copy=False)
    out.flags.writeable = False
    return out


def _block_starts(rows_in: np.ndarray, level_ptr: np.ndarray) -> np.ndarray:
    """Where each (level, width 2^w) block starts; blocks are laid out in order."""
    sizes = rows_in << np.arange(rows_in.shape[1])
    return level_ptr[:-1, None] + np.cumsum(sizes, axis=1) - sizes


def _num_colors(colors: np.ndarray) -> int:
    return int(colors.max(initial=-1)) + 1


def _seed(colors: np.ndarray, num_colors: int, dtype) -> np.ndarray:
    seed = np.zeros((colors.shape[0], num_colors), dtype=dtype)
    colored = np.flatnonzero(colors >= 0)
    seed[colored, colors[colored]] = 1
    return seed


def _gather(flat, index):
    if isinstance(flat, jax.Array):
        return flat[index]
    return np.asarray(flat)[index]


def _flatten(name: str, array, shape: tuple[int, ...]):
    """`array.ravel()`, after checking its shape; keeps JAX arrays as JAX arrays."""
    if not isinstance(array, jax.Array):
        array = np.asarray(array)
    if tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"`decompress({name}=...)` must have shape {shape} (the compressed "
            f"matrix of this coloring), got {tuple(array.shape)}."
        )
    return array.reshape(-1)


def _concatenate(*parts):
    if any(isinstance(p, jax.Array) for p in parts):
        return jnp.concatenate(parts)
    return np.concatenate(parts)


class AbstractColoringResult(eqx.Module):
    """The result of a coloring: colors, seeds and a decompression plan.

    **Fields common to all results:**

    - `pattern`: the colored [`asdex.SparsityPattern`][] (static).
    - `num_colors`: the number of compressed products (JVPs, VJPs or HVPs) that
      decompression needs (static).
    - `compressed_index`: `(nnz,)` integer array; see each result for what it
      indexes.
    """

    pattern: eqx.AbstractVar[SparsityPattern]
    num_colors: eqx.AbstractVar[int]
    compressed_index: eqx.AbstractVar[np.ndarray]

    # What sparse derivatives dispatch on, rather than on `mode`, a label:
    # - `mode`: `"fwd"`, `"rev"`, `"bidirectional"`, `"star"` or `"acyclic"`;
    # - `symmetric`: a Hessian coloring (products are HVPs).
    mode: ClassVar[str]
    symmetric: ClassVar[bool] = False

    @abc.abstractmethod
    def decompress(self, *compressed: Compressed) -> Values:
        """The nonzero values, in the pattern's order, from the compressed matrix."""

    @property
    def num_jvps(self) -> int:
        """The JVPs one evaluation costs."""
        return 0

    @property
    def num_vjps(self) -> int:
        """The VJPs one evaluation costs."""
        return 0

    @property
    def num_hvps(self) -> int:
        """The Hessian-vector products one evaluation costs."""
        return self.num_colors if self.symmetric else 0

    @property
    def dense_products(self) -> int:
        """The products dense AD needs for the same matrix: `min(m, n)` for a
        Jacobian, `n` for a Hessian."""
        m, n = self.pattern.shape
        return n if self.symmetric else min(m, n)

    @property
    def seed_colors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """`(column colors, row colors)`: the colors of the JVP (or HVP) seeds and
        of the VJP seeds, `None` for a side without products; negative is "in no
        seed"."""
        return np.asarray(self.colors), None  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def substitution(self) -> SubstitutionPlan | None:
        """The substitution plan that solves for entries shared by products,
        reading the products color-major (see `product_slots`), or `None`."""
        return None

    @abc.abstractmethod
    def product_slots(self) -> np.ndarray:
        """For each nonzero, in the pattern's order, its slot in the products laid
        out color-major, as `jax.vmap` stacks them: the JVPs' (or HVPs') `(c, m)`
        block, then the VJPs' `(c, n)` block; or, past them, among the unknowns
        of `substitution`."""

    @abc.abstractmethod
    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        """The patterns of the compressed matrices: what the products fill in."""


def to_color_major(flat_index: np.ndarray, rows: int, colors: int) -> np.ndarray:
    """Map flat indices into an `(rows, colors)` array to the `(colors, rows)` one."""
    flat_index = np.asarray(flat_index).astype(np.int64)
    c = max(colors, 1)
    return (flat_index % c) * rows + flat_index // c


def _column_patterns(result) -> tuple[SparsityPattern, ...]:
    p = result.pattern
    colors = np.asarray(result.colors, dtype=np.int64)
    cols = colors[p.cols.astype(np.int64)]
    return (
        SparsityPattern(p.rows.astype(np.int64), cols, (p.shape[0], result.num_colors)),
    )


class ColumnColoringResult(AbstractColoringResult):
    """A partial distance-2 coloring of the columns of a Jacobian pattern (JVPs).

    With `c` colors the seed matrix `S` has shape `(n, c)` and `S[j, colors[j]] =
    1`; the compressed matrix is `B = J @ S`, shape `(m, c)`, one JVP per column of
    `S`. The nonzero `J[i, j]` is `B[i, colors[j]]`, so

    ```python
    values = B.ravel()[compressed_index]   # compressed_index = rows * c + colors[cols]
    ```

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `colors`: one integer per column; structurally orthogonal (see
      [`asdex.coloring.check_structurally_orthogonal`][]). Colors of empty columns
      may be negative.

    **Raises:** `ValueError` if the colors are not structurally orthogonal.
    """

    pattern: SparsityPattern = eqx.field(static=True)
    colors: np.ndarray
    num_colors: int = eqx.field(static=True)
    compressed_index: np.ndarray

    def __init__(
        self,
        pattern: SparsityPattern,
        colors: Colors,
        *,
        _graph: BipartiteGraph | None = None,
    ):
        m, n = pattern.shape
        colors = as_colors(colors, n, "ColumnColoringResult")
        num_colors = _num_colors(colors)
        if _graph is None:
            ptr = pattern.indptr.astype(np.int64)
            idx = pattern.cols.astype(np.int64)
        else:
            ptr, idx = _graph.row_ptr, _graph.row_idx
        ok = _unique_in_group(m, ptr, idx, colors, num_colors + 1)
        if not ok.all():
            _raise_invalid(check_structurally_orthogonal, pattern, colors, "column")
        self.pattern = pattern
        self.colors = _index(colors, max(num_colors, 1))
        self.num_colors = num_colors
        bound = m * num_colors
        if idx.size >= _NUMBA_INDEX_FROM:
            index = np.empty(idx.size, np.int32 if bound < 2**31 else np.int64)
            _group_major_index(m, ptr, idx, colors, num_colors, index)
            index.flags.writeable = False
        else:
            index = _flat_index(pattern.rows, num_colors, (colors, pattern.cols), bound)
        self.compressed_index = index

    @property
    def compressed_shape(self) -> tuple[int, int]:
        """`(m, num_colors)`, the shape of `B = J @ S`."""
        return (self.pattern.shape[0], self.num_colors)

    def seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The seed matrix `S`, shape `(n, num_colors)`, with `S[j, colors[j]] = 1`."""
        return _seed(np.asarray(self.colors), self.num_colors, dtype)

    def decompress(self, B: Compressed) -> Values:
        """The nonzeros of `J` in the pattern's order, from `B = J @ S` of shape `(m, c)`."""
        return _gather(_flatten("B", B, self.compressed_shape), self.compressed_index)

    mode = "fwd"

    @property
    def num_jvps(self) -> int:
        return self.num_colors

    def product_slots(self) -> np.ndarray:
        p = self.pattern
        colors = np.asarray(self.colors, dtype=np.int64)
        return colors[p.cols.astype(np.int64)] * p.shape[0] + p.rows

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        return _column_patterns(self)


class RowColoringResult(AbstractColoringResult):
    """A partial distance-2 coloring of the rows of a Jacobian pattern (VJPs).

    With `c` colors the seed matrix `S` has shape `(m, c)` and `S[i, colors[i]] =
    1`; the compressed matrix is `B = Sᵀ @ J`, shape `(c, n)`, one VJP per column
    of `S`. The nonzero `J[i, j]` is `B[colors[i], j]`, so

    ```python
    values = B.ravel()[compressed_index]   # compressed_index = colors[rows] * n + cols
    ```

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `colors`: one integer per row; structurally orthogonal rows (see
      [`asdex.coloring.check_structurally_orthogonal`][] with `partition="row"`).
      Colors of empty rows may be negative.

    **Raises:** `ValueError` if the colors are not structurally orthogonal.
    """

    pattern: SparsityPattern = eqx.field(static=True)
    colors: np.ndarray
    num_colors: int = eqx.field(static=True)
    compressed_index: np.ndarray

    def __init__(
        self,
        pattern: SparsityPattern,
        colors: Colors,
        *,
        _graph: BipartiteGraph | None = None,
    ):
        m, n = pattern.shape
        colors = as_colors(colors, m, "RowColoringResult")
        num_colors = _num_colors(colors)
        graph = BipartiteGraph.from_pattern(pattern) if _graph is None else _graph
        ok = _unique_in_group(n, graph.col_ptr, graph.col_idx, colors, num_colors + 1)
        if not ok.all():
            _raise_invalid(check_structurally_orthogonal, pattern, colors, "row")
        self.pattern = pattern
        self.colors = _index(colors, max(num_colors, 1))
        self.num_colors = num_colors
        self.compressed_index = _flat_index(
            (colors, pattern.rows), n, pattern.cols, num_colors * n
        )

    @property
    def compressed_shape(self) -> tuple[int, int]:
        """`(num_colors, n)`, the shape of `B = Sᵀ @ J`."""
        return (self.num_colors, self.pattern.shape[1])

    def seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The seed matrix `S`, shape `(m, num_colors)`, with `S[i, colors[i]] = 1`."""
        return _seed(np.asarray(self.colors), self.num_colors, dtype)

    def decompress(self, B: Compressed) -> Values:
        """The nonzeros of `J` in the pattern's order, from `B = Sᵀ @ J` of shape `(c, n)`."""
        return _gather(_flatten("B", B, self.compressed_shape), self.compressed_index)

    mode = "rev"

    @property
    def num_vjps(self) -> int:
        return self.num_colors

    @property
    def seed_colors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return None, np.asarray(self.colors)

    def product_slots(self) -> np.ndarray:
        p = self.pattern
        colors = np.asarray(self.colors, dtype=np.int64)
        return colors[p.rows.astype(np.int64)] * p.shape[1] + p.cols

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        p = self.pattern
        colors = np.asarray(self.colors, dtype=np.int64)
        rows = colors[p.rows.astype(np.int64)]
        return (
            SparsityPattern(
                rows, p.cols.astype(np.int64), (self.num_colors, p.shape[1])
            ),
        )


class StarColoringResult(AbstractColoringResult):
    """A symmetric coloring of a Hessian pattern with direct decompression.

    With `c` colors the seed matrix `S` has shape `(n, c)` and `S[j, colors[j]] =
    1`; the compressed matrix is `B = H @ S`, shape `(n, c)`, one Hessian-vector
    product per column of `S`. Each nonzero `H[i, j]` is read from exactly one
    entry: `B[i, colors[j]]` when column `j` is the only one of its color in row
    `i`, otherwise `B[j, colors[i]]` (then column `i` is the only one of its color
    in row `j`). The diagonal is `H[i, i] = B[i, colors[i]]`. So

    ```python
    values = B.ravel()[compressed_index]   # flat indices r * c + k into B
    ```

    and `compressed_rows`, `compressed_cols` give the same entries as pairs.

    **Arguments:**

    - `pattern`: a square symmetric [`asdex.SparsityPattern`][].
    - `colors`: one integer per column, symmetrically orthogonal (see
      [`asdex.coloring.check_symmetrically_orthogonal`][]); a star coloring is.
      Only vertices without nonzeros may have a negative color.

    **Raises:** `ValueError` if the pattern is not square and symmetric, or the
    colors do not allow direct decompression.
    """

    pattern: SparsityPattern = eqx.field(static=True)
    colors: np.ndarray
    num_colors: int = eqx.field(static=True)
    compressed_index: np.ndarray

    def __init__(
        self,
        pattern: SparsityPattern,
        colors: Colors,
        *,
        _graph: AdjacencyGraph | None = None,
    ):
        caller = "StarColoringResult"
        if _graph is None:
            _graph = AdjacencyGraph.from_pattern(pattern, caller=caller)
        graph = _graph
        n = pattern.shape[0]
        colors = as_colors(colors, n, caller)
        num_colors = _num_colors(colors)
        rows = pattern.rows.astype(np.int64)
        cols = pattern.cols.astype(np.int64)
        unique = _unique_in_group(
            n, pattern.indptr.astype(np.int64), cols, colors, num_colors + 1
        )
        mirror_unique = unique[graph.mirror]
        if not np.all(unique | mirror_unique):
            _raise_invalid(check_symmetrically_orthogonal, pattern, colors)
        index = np.where(
            unique,
            rows * num_colors + colors[cols],
            cols * num_colors + colors[rows],
        )
        self.pattern = pattern
        self.colors = _index(colors, max(num_colors, 1))
        self.num_colors = num_colors
        self.compressed_index = _index(index, n * num_colors)

    @property
    def compressed_shape(self) -> tuple[int, int]:
        """`(n, num_colors)`, the shape of `B = H @ S`."""
        return (self.pattern.shape[0], self.num_colors)

    @property
    def compressed_rows(self) -> np.ndarray:
        """Row of `B` each nonzero is read from."""
        return np.asarray(self.compressed_index) // max(self.num_colors, 1)

    @property
    def compressed_cols(self) -> np.ndarray:
        """Column (color) of `B` each nonzero is read from."""
        return np.asarray(self.compressed_index) % max(self.num_colors, 1)

    def seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The seed matrix `S`, shape `(n, num_colors)`, with `S[j, colors[j]] = 1`."""
        return _seed(np.asarray(self.colors), self.num_colors, dtype)

    def decompress(self, B: Compressed) -> Values:
        """The nonzeros of `H` in the pattern's order, from `B = H @ S` of shape `(n, c)`."""
        return _gather(_flatten("B", B, self.compressed_shape), self.compressed_index)

    mode = "star"
    symmetric = True

    def product_slots(self) -> np.ndarray:
        return to_color_major(
            self.compressed_index, self.pattern.shape[0], self.num_colors
        )

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        return _column_patterns(self)


class AcyclicColoringResult(AbstractColoringResult):
    """A symmetric coloring of a Hessian pattern with substitution-based decompression.

    The seeds and the compressed matrix are as for
    [`asdex.coloring.StarColoringResult`][]: `S` of shape `(n, c)`, `B = H @ S` of
    shape `(n, c)`. The off-diagonal nonzeros are the unknowns `x` of the
    two-colored trees, solved by `plan` (a
    [`asdex.coloring.SubstitutionPlan`][], at most `log₂ n + 1` vectorised
    levels). Then

    ```python
    x = plan.solve(B.ravel())
    values = concatenate([B.ravel(), x])[compressed_index]
    ```

    Diagonal entries index `B.ravel()` directly (`H[i, i] = B[i, colors[i]]`);
    off-diagonal ones index `x`, at offset `n * c`.

    **Arguments:**

    - `pattern`: a square symmetric [`asdex.SparsityPattern`][].
    - `colors`: one integer per column, an acyclic coloring (see
      [`asdex.coloring.check_acyclic`][]). Only vertices without nonzeros may have
      a negative color.

    **Raises:** `ValueError` if the pattern is not square and symmetric, or the
    coloring is not acyclic.
    """

    pattern: SparsityPattern = eqx.field(static=True)
    colors: np.ndarray
    num_colors: int = eqx.field(static=True)
    compressed_index: np.ndarray
    plan: SubstitutionPlan

    def __init__(
        self,
        pattern: SparsityPattern,
        colors: Colors,
        *,
        _graph: AdjacencyGraph | None = None,
    ):
        caller = "AcyclicColoringResult"
        if _graph is None:
            _graph = AdjacencyGraph.from_pattern(pattern, caller=caller)
        graph = _graph
        n = pattern.shape[0]
        colors = as_colors(colors, n, caller)
        num_colors = _num_colors(colors)
        if np.any(colors[pattern.rows] < 0):
            _raise_invalid(check_acyclic, pattern, colors)
        out = build_plan(graph, colors, num_colors, pattern.nnz)
        status = out[0]
        if status != _OK:
            check_acyclic(pattern, colors, raise_on_failure=True)
            what = "adjacent" if status != _CYCLE else "on a two-colored cycle"
            raise ValueError(
                f"`{caller}`: vertices {out[1]} and {out[2]} are {what}; the "
                "coloring is not acyclic."
            )
        (_, _, _, _, level_ptr, rhs_index, sign, rows_in) = out[:8]
        sub_ptr, sub_target, sub_source, value_entry = out[8:]
        nflat = n * num_colors
        nunknowns = int(level_ptr[-1])
        rows = pattern.rows.astype(np.int64)
        index = np.where(
            value_entry >= 0,
            nflat + value_entry,
            rows * num_colors + colors[rows],
        )
        self.pattern = pattern
        self.colors = _index(colors, max(num_colors, 1))
        self.num_colors = num_colors
        self.compressed_index = _index(index, nflat + nunknowns)
        sign.flags.writeable = False
        blocks = tuple(
            tuple(
                (int(start), int(count), 1 << w)
                for w, (start, count) in enumerate(zip(starts, counts, strict=True))
                if count
            )
            for starts, counts in zip(
                _block_starts(rows_in, level_ptr), rows_in, strict=True
            )
        )
        self.plan = SubstitutionPlan(
            rhs_index=_index(rhs_index, max(nflat, 1)),
            sign=sign,
            sub_target=_index(sub_target, nunknowns),
            sub_source=_index(sub_source, nunknowns),
            level_bounds=tuple(int(v) for v in level_ptr),
            sub_bounds=tuple(int(v) for v in sub_ptr),
            blocks=blocks,
        )

    @property
    def compressed_shape(self) -> tuple[int, int]:
        """`(n, num_colors)`, the shape of `B = H @ S`."""
        return (self.pattern.shape[0], self.num_colors)

    def seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The seed matrix `S`, shape `(n, num_colors)`, with `S[j, colors[j]] = 1`."""
        return _seed(np.asarray(self.colors), self.num_colors, dtype)

    def decompress(self, B: Compressed) -> Values:
        """The nonzeros of `H` in the pattern's order, from `B = H @ S` of shape `(n, c)`."""
        flat = _flatten("B", B, self.compressed_shape)
        x = self.plan.solve(flat)
        return _gather(_concatenate(flat, x), self.compressed_index)

    mode = "acyclic"
    symmetric = True

    def product_slots(self) -> np.ndarray:
        n, c = self.pattern.shape[0], self.num_colors
        index = np.asarray(self.compressed_index, dtype=np.int64)
        return np.where(index < n * c, to_color_major(index, n, c), index)

    @property
    def substitution(self) -> SubstitutionPlan:
        n, c = self.pattern.shape[0], self.num_colors
        rhs = to_color_major(np.asarray(self.plan.rhs_index), n, c)
        return eqx.tree_at(lambda p: p.rhs_index, self.plan, rhs)

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        return _column_patterns(self)


class BicoloringResult(AbstractColoringResult):
    """A bidirectional coloring of a Jacobian pattern: some JVPs plus some VJPs.

    Columns colored `c ≥ 0` form the forward seed `S_col` (shape `(n, cf)`,
    `S_col[j, col_colors[j]] = 1`) and rows colored `r ≥ 0` the reverse seed
    `S_row` (shape `(m, cr)`). The compressed matrices are `B_fwd = J @ S_col`,
    shape `(m, cf)` (`cf` JVPs), and `B_rev = S_rowᵀ @ J`, shape `(cr, n)` (`cr`
    VJPs). Negative colors are neutral: in no seed. Each nonzero is read directly
    from one entry, `B_fwd[i, col_colors[j]]` when possible, otherwise
    `B_rev[row_colors[i], j]`:

    ```python
    flat = concatenate([B_fwd.ravel(), B_rev.ravel()])
    values = flat[compressed_index]
    ```

    `from_fwd` tells which entries come from `B_fwd`.

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `row_colors`: one integer per row, negative for neutral rows.
    - `col_colors`: one integer per column, negative for neutral columns.

    **Raises:** `ValueError` if some nonzero can be read from neither side (see
    [`asdex.coloring.check_bicoloring`][]).
    """

    pattern: SparsityPattern = eqx.field(static=True)
    row_colors: np.ndarray
    col_colors: np.ndarray
    num_fwd_colors: int = eqx.field(static=True)
    num_rev_colors: int = eqx.field(static=True)
    compressed_index: np.ndarray
    from_fwd: np.ndarray

    def __init__(
        self,
        pattern: SparsityPattern,
        row_colors: Colors,
        col_colors: Colors,
        *,
        _graph: BipartiteGraph | None = None,
    ):
        caller = "BicoloringResult"
        m, n = pattern.shape
        row_colors = as_colors(row_colors, m, caller, "row_colors")
        col_colors = as_colors(col_colors, n, caller, "col_colors")
        graph = BipartiteGraph.from_pattern(pattern) if _graph is None else _graph
        cf, cr = _num_colors(col_colors), _num_colors(row_colors)
        fwd_ok, rev_ok = readable(graph, row_colors, col_colors)
        if not np.all(fwd_ok | rev_ok):
            _raise_invalid(check_bicoloring, pattern, row_colors, col_colors)
        rows = pattern.rows.astype(np.int64)
        cols = pattern.cols.astype(np.int64)
        index = np.where(
            fwd_ok,
            rows * cf + col_colors[cols],
            m * cf + row_colors[rows] * n + cols,
        )
        self.pattern = pattern
        self.row_colors = _index(row_colors, max(cr, 1))
        self.col_colors = _index(col_colors, max(cf, 1))
        self.num_fwd_colors = cf
        self.num_rev_colors = cr
        self.compressed_index = _index(index, m * cf + cr * n)
        fwd_ok.flags.writeable = False
        self.from_fwd = fwd_ok

    @property
    def num_colors(self) -> int:
        """`num_fwd_colors + num_rev_colors`: the JVPs plus the VJPs."""
        return self.num_fwd_colors + self.num_rev_colors

    @property
    def compressed_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """`((m, cf), (cr, n))`, the shapes of `B_fwd` and `B_rev`."""
        m, n = self.pattern.shape
        return (m, self.num_fwd_colors), (self.num_rev_colors, n)

    def col_seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The forward seed `S_col`, shape `(n, cf)`."""
        return _seed(np.asarray(self.col_colors), self.num_fwd_colors, dtype)

    def row_seed_matrix(self, dtype=np.float64) -> np.ndarray:
        """The reverse seed `S_row`, shape `(m, cr)`."""
        return _seed(np.asarray(self.row_colors), self.num_rev_colors, dtype)

    def decompress(self, B_fwd: Compressed, B_rev: Compressed) -> Values:
        """The nonzeros of `J` in the pattern's order, from `B_fwd` `(m, cf)` and `B_rev` `(cr, n)`."""
        fwd_shape, rev_shape = self.compressed_shapes
        flat = _concatenate(
            _flatten("B_fwd", B_fwd, fwd_shape), _flatten("B_rev", B_rev, rev_shape)
        )
        return _gather(flat, self.compressed_index)

    mode = "bidirectional"

    @property
    def num_jvps(self) -> int:
        return self.num_fwd_colors

    @property
    def num_vjps(self) -> int:
        return self.num_rev_colors

    @property
    def seed_colors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return np.asarray(self.col_colors), np.asarray(self.row_colors)

    def product_slots(self) -> np.ndarray:
        m, cf = self.pattern.shape[0], self.num_fwd_colors
        index = np.asarray(self.compressed_index, dtype=np.int64)
        return np.where(index < m * cf, to_color_major(index, m, cf), index)

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        p = self.pattern
        m, n = p.shape
        rows, cols = p.rows.astype(np.int64), p.cols.astype(np.int64)
        col_colors = np.asarray(self.col_colors, dtype=np.int64)
        row_colors = np.asarray(self.row_colors, dtype=np.int64)
        fwd = col_colors[cols] >= 0
        rev = row_colors[rows] >= 0
        return (
            SparsityPattern(rows[fwd], col_colors[cols[fwd]], (m, self.num_jvps)),
            SparsityPattern(row_colors[rows[rev]], cols[rev], (self.num_vjps, n)),
        )


def readable(graph: BipartiteGraph, row_colors: np.ndarray, col_colors: np.ndarray):
    """For each nonzero: can it be read from `B_fwd`, and from `B_rev`?"""
    width = max(_num_colors(row_colors), _num_colors(col_colors)) + 1
    fwd_ok = _unique_in_group(graph.m, graph.row_ptr, graph.row_idx, col_colors, width)
    rev_csc = _unique_in_group(graph.n, graph.col_ptr, graph.col_idx, row_colors, width)
    rev_ok = np.empty_like(rev_csc)
    rev_ok[graph.col_pos] = rev_csc
    return fwd_ok, rev_ok
