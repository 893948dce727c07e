"""`SparseMatrixOperator`: a Lineax operator that stores only the nonzeros of a matrix."""

# jaxtyping's shape strings (" nnz", "m n") are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import scipy.sparse as sp
from jaxtyping import Array, ArrayLike, Inexact, Int, PyTree, Shaped

from .._pattern import SparsityPattern
from ..ad._layout import Structure
from ._pattern_data import PatternData, pattern_data


def _frozenset(tags: object | Iterable[object]) -> frozenset[object]:
    # Lineax's convention: one tag, or an iterable of tags.
    try:
        return frozenset(tags)  # pyright: ignore[reportArgumentType]
    except TypeError:
        return frozenset([tags])


def _take(array: Array, index: Array) -> Array:
    # The indices come from a `SparsityPattern`: in bounds and non-negative, so the
    # gather needs neither clamping nor the wrap-around of negative indices.
    return array.at[index].get(mode="promise_in_bounds", wrap_negative_indices=False)


class PatternIndices(eqx.Module):
    """The index arrays of a [`asdex.SparsityPattern`][], as JAX arrays.

    They are ordinary array leaves, not static data, so that a jitted function that
    receives a [`asdex.lineax.SparseMatrixOperator`][] as an argument receives them as
    arguments too, rather than compiling them into the program as constants.

    **Fields:**

    - `rows`: the row index of each nonzero, row-major order (sorted).
    - `cols`: the column index of each nonzero.
    - `transpose_perm`: the permutation that takes the values of the matrix to the
      values of its transpose, both in row-major order: `values_T = values[perm]`.
    """

    rows: Int[Array, " nnz"]
    cols: Int[Array, " nnz"]
    transpose_perm: Int[Array, " nnz"]


def pattern_indices(pattern: SparsityPattern) -> PatternIndices:
    """The [`asdex.lineax.PatternIndices`][] of `pattern`.

    The arrays are computed once per pattern and cached, so repeated calls with the
    same pattern upload nothing.

    **Arguments:**

    - `pattern`: a [`asdex.SparsityPattern`][].

    **Returns:**

    A [`asdex.lineax.PatternIndices`][] of concrete device arrays (int32, or int64 for
    patterns with 2³¹ entries or more).
    """
    if not isinstance(pattern, SparsityPattern):
        raise TypeError(
            "`pattern_indices(pattern=...)` must be an `asdex.SparsityPattern`, got "
            f"{type(pattern).__name__}."
        )
    rows, cols, perm = pattern_data(pattern).device_indices
    return PatternIndices(rows, cols, perm)


class SparseMatrixOperator(lx.AbstractLinearOperator):
    """A sparse matrix as a Lineax linear operator.

    The matrix is stored as its nonzero values in the row-major order of a static
    [`asdex.SparsityPattern`][], next to the pattern's index arrays. Matrix-vector
    products are one gather and one segment sum over the nonzeros; nothing of size
    `m × n` is ever formed unless [`as_matrix`][asdex.lineax.SparseMatrixOperator.as_matrix]
    is called.

    Input and output may be PyTrees, exactly as for `lineax.PyTreeLinearOperator`:
    the rows of the pattern index the output flattened leaf by leaf (in
    `jax.tree_util` order, each leaf row-major), and the columns index the input
    flattened the same way.

    Structure queries answer from the pattern where it proves the answer
    (`lineax.is_diagonal`, `is_tridiagonal`, `is_lower_triangular`,
    `is_upper_triangular`; for a square operator with equal input and output
    structures) and from `tags` otherwise (symmetric, positive or negative
    semidefinite, unit diagonal). Tags are not checked against the values.

    The operator works under `jax.jit`, `jax.vmap` and `jax.grad`, including through
    `lineax.linear_solve`; its `values` are differentiable. The pattern is a static
    field with a cached hash, so an operator can live in the state of an Optimistix
    loop without retracing.

    !!! Example

        ```python
        import jax.numpy as jnp
        import lineax as lx
        from asdex import SparsityPattern
        from asdex.lineax import SparseLU, SparseMatrixOperator

        pattern = SparsityPattern([0, 0, 1, 2], [0, 2, 1, 2], (3, 3))
        operator = SparseMatrixOperator(jnp.array([4.0, 1.0, 2.0, 3.0]), pattern)
        solution = lx.linear_solve(operator, jnp.ones(3), SparseLU()).value
        ```

    !!! Tip

        Construct the operator outside `jax.jit` and pass it in as an argument, or
        pass `indices=` in as an argument: index arrays that are created inside a
        trace are compiled into the program as constants.
    """

    values: Inexact[Array, " nnz"]
    indices: PatternIndices
    pattern: SparsityPattern = eqx.field(static=True)
    input_structure: Structure = eqx.field(static=True)
    output_structure: Structure = eqx.field(static=True)
    tags: frozenset[object] = eqx.field(static=True)

    def __init__(
        self,
        values: Shaped[ArrayLike, " nnz"],
        pattern: SparsityPattern,
        input_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        output_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        tags: object | Iterable[object] = (),
        *,
        indices: PatternIndices | None = None,
    ):
        """**Arguments:**

        - `values`: the nonzero values, a one-dimensional array of length
            `pattern.nnz`, in the pattern's row-major order (matching `pattern.rows`
            and `pattern.cols`).
        - `pattern`: the [`asdex.SparsityPattern`][] of the `(m, n)` matrix.
        - `input_structure`: a PyTree of `jax.ShapeDtypeStruct`s with `n` elements in
            all: the space the operator acts on. Defaults to a vector of shape `(n,)`
            with the dtype of `values`.
        - `output_structure`: likewise with `m` elements: the space it maps to.
            Defaults to a vector of shape `(m,)`.
        - `tags`: Lineax tags (`lineax.symmetric_tag`,
            `lineax.positive_semidefinite_tag`, ...) declaring properties of the
            values. They are trusted, not checked.
        - `indices`: the pattern's index arrays, from
            [`asdex.lineax.pattern_indices`][]. Defaults to a cached copy; pass them
            explicitly to have them enter a jitted function as arguments.
        """
        if not isinstance(pattern, SparsityPattern):
            raise TypeError(
                "`SparseMatrixOperator(pattern=...)` must be an `asdex.SparsityPattern`"
                f", got {type(pattern).__name__}. Build one with "
                "`asdex.SparsityPattern(rows, cols, shape)` or "
                "`asdex.SparsityPattern.from_scipy(matrix)`."
            )
        # Intern the pattern: operators built from equal patterns then share one
        # object, and the static-field comparisons of `jit` caches and loop carries
        # are identity checks rather than comparisons of index arrays.
        pattern = pattern_data(pattern).pattern
        values = jnp.asarray(values)
        if not jnp.issubdtype(values.dtype, jnp.inexact):
            values = values.astype(jnp.result_type(float))
        m, n = pattern.shape
        if input_structure is None:
            input_structure = jax.ShapeDtypeStruct((n,), values.dtype)
        if output_structure is None:
            output_structure = jax.ShapeDtypeStruct((m,), values.dtype)
        self.values = values
        self.pattern = pattern
        self.input_structure = Structure.of(input_structure)
        self.output_structure = Structure.of(output_structure)
        self.tags = _frozenset(tags)
        self.indices = pattern_indices(pattern) if indices is None else indices

    def __check_init__(self):
        m, n = self.pattern.shape
        nnz = self.pattern.nnz
        if jnp.ndim(self.values) != 1 or jnp.shape(self.values)[0] != nnz:
            raise ValueError(
                "`SparseMatrixOperator(values=...)` must be one-dimensional with one "
                f"entry per nonzero of the pattern ({nnz}), got shape "
                f"{jnp.shape(self.values)}. To operate on a batch of matrices, "
                "`jax.vmap` over a function that builds the operator."
            )
        for name, array in (
            ("rows", self.indices.rows),
            ("cols", self.indices.cols),
            ("transpose_perm", self.indices.transpose_perm),
        ):
            if jnp.shape(array) != (nnz,):
                raise ValueError(
                    f"`SparseMatrixOperator(indices=...)` has `{name}` of shape "
                    f"{jnp.shape(array)}, but the pattern has {nnz} nonzeros. Use "
                    "`asdex.lineax.pattern_indices(pattern)`."
                )
        out_size = self.output_structure.size
        in_size = self.input_structure.size
        if (out_size, in_size) != (m, n):
            raise ValueError(
                f"`SparseMatrixOperator`: the pattern has shape {(m, n)}, but "
                f"`output_structure` has {out_size} elements and `input_structure` "
                f"has {in_size}. The pattern's rows index the flattened output and "
                "its columns the flattened input."
            )
        symmetric_tags = {
            lx.symmetric_tag,
            lx.positive_semidefinite_tag,
            lx.negative_semidefinite_tag,
        }
        if self.tags & symmetric_tags:
            if not pattern_data(self.pattern).is_symmetric_pattern:
                raise ValueError(
                    "`SparseMatrixOperator(tags=...)` declares a symmetric (or "
                    "semidefinite) matrix, but its pattern is not symmetric. Store "
                    "the symmetrised pattern `pattern | pattern.T` (with explicit "
                    "zeros where needed) or drop the tag."
                )

    # ------------------------------------------------------------------ interface

    def mv(
        self, vector: PyTree[Inexact[Array, " _b"]]
    ) -> PyTree[Inexact[Array, " _a"]]:
        x = self.input_structure.ravel(vector)
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.result_type(self.values, x)
        products = self.values.astype(dtype) * _take(x.astype(dtype), self.indices.cols)
        y = jax.ops.segment_sum(
            products,
            self.indices.rows,
            num_segments=self.pattern.shape[0],
            indices_are_sorted=True,
            mode="promise_in_bounds",
        )
        return self.output_structure.unravel(y)

    def as_matrix(self) -> Inexact[Array, "m n"]:
        """The dense `(m, n)` matrix. This is the only method that densifies."""
        matrix = jnp.zeros(self.pattern.shape, self.values.dtype)
        return matrix.at[self.indices.rows, self.indices.cols].set(
            self.values, unique_indices=True, mode="promise_in_bounds"
        )

    def transpose(self) -> SparseMatrixOperator:
        if lx.is_symmetric(self):
            return self
        perm = self.indices.transpose_perm
        # The transpose's own `transpose_perm` is the inverse permutation.
        inverse = (
            jnp.zeros_like(perm)
            .at[perm]
            .set(
                jnp.arange(perm.shape[0], dtype=perm.dtype),
                unique_indices=True,
                mode="promise_in_bounds",
            )
        )
        indices = PatternIndices(
            _take(self.indices.cols, perm), _take(self.indices.rows, perm), inverse
        )
        return SparseMatrixOperator(
            _take(self.values, perm),
            pattern_data(self.pattern).transposed,
            self.out_structure(),
            self.in_structure(),
            lx.transpose_tags(self.tags),
            indices=indices,
        )

    def in_structure(self) -> PyTree[jax.ShapeDtypeStruct]:
        return self.input_structure.tree()

    def out_structure(self) -> PyTree[jax.ShapeDtypeStruct]:
        return self.output_structure.tree()

    # ------------------------------------------------------------------ conversions

    @classmethod
    def from_scipy(
        cls,
        matrix,
        input_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        output_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        tags: object | Iterable[object] = (),
    ) -> SparseMatrixOperator:
        """The operator of a scipy sparse matrix; its stored entries form the pattern.

        **Arguments:**

        - `matrix`: any two-dimensional scipy sparse matrix or array.
        - `input_structure`, `output_structure`, `tags`: as for the constructor.

        **Returns:**

        A `SparseMatrixOperator` holding the matrix's values.
        """
        if not sp.issparse(matrix):
            raise TypeError(
                "`SparseMatrixOperator.from_scipy(matrix)` needs a scipy sparse "
                f"matrix or array, got {type(matrix).__name__}. For a dense array use "
                "`SparseMatrixOperator.from_dense`."
            )
        csr = sp.csr_array(matrix, copy=True)
        csr.sum_duplicates()  # also sorts each row's columns
        pattern = SparsityPattern.from_csr(
            csr.indptr, csr.indices, csr.shape, sorted_unique=True
        )
        return cls(csr.data, pattern, input_structure, output_structure, tags)

    @classmethod
    def from_dense(
        cls,
        matrix: Shaped[ArrayLike, "m n"],
        input_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        output_structure: PyTree[jax.ShapeDtypeStruct] | None = None,
        tags: object | Iterable[object] = (),
    ) -> SparseMatrixOperator:
        """The operator of the nonzeros of a concrete dense matrix.

        Meant for tests and small examples: the pattern is read from the values, so
        `matrix` cannot be traced.

        **Arguments:**

        - `matrix`: a two-dimensional array (numpy or concrete JAX).
        - `input_structure`, `output_structure`, `tags`: as for the constructor.

        **Returns:**

        A `SparseMatrixOperator` whose pattern is the nonzeros of `matrix`.
        """
        if isinstance(matrix, jax.core.Tracer):
            raise ValueError(
                "`SparseMatrixOperator.from_dense(matrix)` reads the pattern from the "
                "values, so `matrix` must be concrete, not traced. Inside `jit`, "
                "build the `SparsityPattern` outside and pass "
                "`SparseMatrixOperator(matrix[pattern.rows, pattern.cols], pattern)`."
            )
        dense = np.asarray(matrix)
        pattern = SparsityPattern.from_dense(dense)
        values = dense[pattern.rows, pattern.cols]
        return cls(values, pattern, input_structure, output_structure, tags)

    def to_scipy(self) -> sp.csr_array:
        """The matrix as a scipy CSR array (needs concrete values)."""
        values = np.asarray(self.values)
        return sp.csr_array(
            (values, self.pattern.cols, pattern_data(self.pattern).indptr),
            shape=self.pattern.shape,
        )


# ---------------------------------------------------------------- singledispatch


def _provable(operator: SparseMatrixOperator) -> PatternData | None:
    """The pattern's data, if pattern-provable structure may be claimed.

    Lineax's structured solvers (and its `DiagonalLinearOperator` fast paths) assume
    that the input and output spaces are one and the same, so structure is claimed
    only for square operators whose input and output structures are equal.
    """
    if operator.input_structure != operator.output_structure:
        return None
    data = pattern_data(operator.pattern)
    return data if data.square else None


@lx.linearise.register(SparseMatrixOperator)
@lx.materialise.register(SparseMatrixOperator)
def _(operator):
    # Already stored in memory, and only the nonzeros: nothing to cache or densify.
    return operator


@lx.diagonal.register(SparseMatrixOperator)
def _(operator):
    m, n = operator.pattern.shape
    size = min(m, n)
    data = pattern_data(operator.pattern)
    if data.is_diagonal and data.has_full_diagonal:
        return operator.values
    rows, cols = operator.indices.rows, operator.indices.cols
    slot = jnp.where(rows == cols, rows, size)  # off-diagonal entries are dropped
    return (
        jnp.zeros(size, operator.values.dtype)
        .at[slot]
        .add(operator.values, mode="drop", wrap_negative_indices=False)
    )


@lx.tridiagonal.register(SparseMatrixOperator)
def _(operator):
    m, n = operator.pattern.shape
    size = min(m, n)
    off = max(size - 1, 0)
    rows, cols, values = operator.indices.rows, operator.indices.cols, operator.values

    def band(slot, length):
        return (
            jnp.zeros(length, values.dtype)
            .at[slot]
            .add(values, mode="drop", wrap_negative_indices=False)
        )

    main = band(jnp.where(rows == cols, rows, size), size)
    lower = band(jnp.where(rows == cols + 1, cols, off), off)
    upper = band(jnp.where(cols == rows + 1, rows, off), off)
    return main, lower, upper


def _real(operator: SparseMatrixOperator) -> bool:
    return not jnp.issubdtype(operator.values.dtype, jnp.complexfloating)


@lx.is_symmetric.register(SparseMatrixOperator)
def _(operator):
    tags = operator.tags
    if lx.symmetric_tag in tags or lx.diagonal_tag in tags:
        return True
    if lx.positive_semidefinite_tag in tags or lx.negative_semidefinite_tag in tags:
        # Semidefinite implies symmetric for real matrices (Hermitian for complex).
        return _real(operator)
    data = _provable(operator)
    return data is not None and data.is_diagonal


@lx.is_diagonal.register(SparseMatrixOperator)
def _(operator):
    if lx.diagonal_tag in operator.tags:
        return True
    if operator.in_size() == 1 and operator.out_size() == 1:
        return True
    data = _provable(operator)
    return data is not None and data.is_diagonal


@lx.is_tridiagonal.register(SparseMatrixOperator)
def _(operator):
    if lx.tridiagonal_tag in operator.tags or lx.diagonal_tag in operator.tags:
        return True
    data = _provable(operator)
    return data is not None and data.is_tridiagonal


@lx.is_lower_triangular.register(SparseMatrixOperator)
def _(operator):
    if lx.lower_triangular_tag in operator.tags:
        return True
    data = _provable(operator)
    return data is not None and data.is_lower_triangular


@lx.is_upper_triangular.register(SparseMatrixOperator)
def _(operator):
    if lx.upper_triangular_tag in operator.tags:
        return True
    data = _provable(operator)
    return data is not None and data.is_upper_triangular


@lx.has_unit_diagonal.register(SparseMatrixOperator)
def _(operator):
    return lx.unit_diagonal_tag in operator.tags


@lx.is_positive_semidefinite.register(SparseMatrixOperator)
def _(operator):
    return lx.positive_semidefinite_tag in operator.tags


@lx.is_negative_semidefinite.register(SparseMatrixOperator)
def _(operator):
    return lx.negative_semidefinite_tag in operator.tags


@lx.conj.register(SparseMatrixOperator)
def _(operator):
    return SparseMatrixOperator(
        operator.values.conj(),
        operator.pattern,
        operator.in_structure(),
        operator.out_structure(),
        operator.tags,
        indices=operator.indices,
    )
