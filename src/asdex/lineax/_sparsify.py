"""`sparsify`: rewrite a Lineax operator as one `SparseMatrixOperator`, never densely.

Optimistix and Lineax wrap the operators they are given: `optx.LevenbergMarquardt`
solves with `hessian + λ * IdentityLinearOperator(...)`, optionally inside a
`TaggedLinearOperator`; Lineax's JVP rules negate, scale and transpose. The sparse
solvers call `sparsify` to see through these wrappers: sums, scalings and
diagonal scalings of sparse operators are sparse, with the union of the patterns.

It is a `functools.singledispatch` function, like Lineax's own `materialise`, so
other operator types can register how they become sparse.
"""

from __future__ import annotations

import functools as ft
import threading
from collections import OrderedDict

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike

from .._pattern import SparsityPattern
from ._operator import PatternIndices, SparseMatrixOperator, pattern_indices
from ._pattern_data import pattern_data
from ._structure import flatten_structure, ravel

# Lineax's structure queries and the tags that record them. A wrapper's tags are
# whatever Lineax itself concludes about the wrapper: that keeps Lineax's rules (the
# sign of a scalar for semidefiniteness, and so on) in one place.
_QUERIES = (
    (lx.is_symmetric, lx.symmetric_tag),
    (lx.is_diagonal, lx.diagonal_tag),
    (lx.is_tridiagonal, lx.tridiagonal_tag),
    (lx.has_unit_diagonal, lx.unit_diagonal_tag),
    (lx.is_lower_triangular, lx.lower_triangular_tag),
    (lx.is_upper_triangular, lx.upper_triangular_tag),
    (lx.is_positive_semidefinite, lx.positive_semidefinite_tag),
    (lx.is_negative_semidefinite, lx.negative_semidefinite_tag),
)


def _lineax_tags(operator: lx.AbstractLinearOperator) -> frozenset[object]:
    return frozenset(tag for query, tag in _QUERIES if query(operator))


@ft.singledispatch
def sparsify(operator: lx.AbstractLinearOperator) -> SparseMatrixOperator:
    """The operator as a single [`asdex.lineax.SparseMatrixOperator`][], without densifying.

    Handles `SparseMatrixOperator`s and what Lineax and Optimistix build around
    them: `TaggedLinearOperator`, sums (`AddLinearOperator`), scalings
    (`MulLinearOperator`, `DivLinearOperator`, `NegLinearOperator`), compositions with
    a diagonal operator on either side (`ComposedLinearOperator`), and the structured
    operators `IdentityLinearOperator`, `DiagonalLinearOperator` and
    `TridiagonalLinearOperator`. The tags of the result are what Lineax concludes
    about the input (for example, `H + λI` is positive semidefinite when `H` is).

    Matrix-free operators (`FunctionLinearOperator`, `JacobianLinearOperator`, so
    everything Optimistix builds) are sparsified by detecting the pattern of their
    `mv` and compressing it (see [`asdex.lineax.sparsify_linear_map`][]); a dense
    pattern raises `NotImplementedError`, as do dense operators
    (`MatrixLinearOperator`, `PyTreeLinearOperator`). Register more types with
    `@asdex.lineax.sparsify.register(MyOperator)`.

    **Arguments:**

    - `operator`: a Lineax linear operator.

    **Returns:**

    A `SparseMatrixOperator` with the same input and output structures and the same
    action.

    **Raises:**

    `NotImplementedError` if the operator has no sparse form.
    """
    raise NotImplementedError(
        f"`asdex.lineax.sparsify` has no rule for {type(operator).__name__}. Sparse "
        "solvers need an `asdex.lineax.SparseMatrixOperator` (or an "
        "`asdex.SparseJacobianOperator` / `asdex.SparseHessianOperator`), possibly "
        "wrapped in Lineax's tagged, sum, scaled or diagonally composed operators. "
        "Register a rule with `@asdex.lineax.sparsify.register(...)` to convert "
        "other operator types."
    )


def _with(
    operator: SparseMatrixOperator,
    values: Array | None = None,
    tags: frozenset[object] | None = None,
    input_structure=None,
    output_structure=None,
) -> SparseMatrixOperator:
    return SparseMatrixOperator(
        operator.values if values is None else values,
        operator.pattern,
        operator.in_structure() if input_structure is None else input_structure,
        operator.out_structure() if output_structure is None else output_structure,
        operator.tags if tags is None else tags,
        indices=operator.indices,
    )


def _diagonal_operator(diagonal: Array, pattern_shape, in_structure, out_structure):
    m, n = pattern_shape
    size = min(m, n)
    index = np.arange(size)
    pattern = SparsityPattern._canonical(index, index, (m, n))
    return SparseMatrixOperator(diagonal, pattern, in_structure, out_structure)


@sparsify.register(SparseMatrixOperator)
def _(operator):
    return operator


@sparsify.register(lx.TaggedLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    return _with(inner, tags=inner.tags | operator.tags)


@sparsify.register(lx.NegLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    return _with(inner, -inner.values, _lineax_tags(operator))


@sparsify.register(lx.MulLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    with jax.numpy_dtype_promotion("standard"):
        values = inner.values * operator.scalar
    return _with(inner, values, _lineax_tags(operator))


@sparsify.register(lx.DivLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    with jax.numpy_dtype_promotion("standard"):
        values = inner.values / operator.scalar
    return _with(inner, values, _lineax_tags(operator))


@sparsify.register(lx.IdentityLinearOperator)
def _(operator):
    m, n = operator.out_size(), operator.in_size()
    dtype = jnp.result_type(
        *[s.dtype for s in jax.tree.leaves(operator.in_structure())]
    )
    return _diagonal_operator(
        jnp.ones(min(m, n), dtype),
        (m, n),
        operator.in_structure(),
        operator.out_structure(),
    )


@sparsify.register(lx.DiagonalLinearOperator)
def _(operator):
    structure = operator.in_structure()
    diagonal = ravel(operator.diagonal, flatten_structure(structure))
    size = diagonal.shape[0]
    return _diagonal_operator(diagonal, (size, size), structure, structure)


@sparsify.register(lx.TridiagonalLinearOperator)
def _(operator):
    diagonal = operator.diagonal
    size = diagonal.shape[0]
    if size <= 1:
        return _diagonal_operator(
            diagonal, (size, size), operator.in_structure(), operator.out_structure()
        )
    index = np.arange(size)
    rows = np.concatenate([index, index[1:], index[:-1]])
    cols = np.concatenate([index, index[:-1], index[1:]])
    pattern = SparsityPattern(rows, cols, (size, size))
    # Row i holds (lower[i-1], diagonal[i], upper[i]): stacking these per row and
    # dropping the two entries outside the matrix gives the row-major order.
    pad = jnp.zeros((1,), diagonal.dtype)
    lower = jnp.concatenate([pad, operator.lower_diagonal.astype(diagonal.dtype)])
    upper = jnp.concatenate([operator.upper_diagonal.astype(diagonal.dtype), pad])
    values = jnp.stack([lower, diagonal, upper], axis=1).reshape(-1)[1:-1]
    return SparseMatrixOperator(
        values, pattern, operator.in_structure(), operator.out_structure()
    )


@sparsify.register(lx.AddLinearOperator)
def _(operator):
    total = add(sparsify(operator.operator1), sparsify(operator.operator2))
    return _with(total, tags=_lineax_tags(operator))


@sparsify.register(lx.ComposedLinearOperator)
def _(operator):
    left, right = operator.operator1, operator.operator2
    if _is_diagonal_structure(left):
        inner = sparsify(right)
        d = lx.diagonal(left)
        with jax.numpy_dtype_promotion("standard"):
            values = inner.values * d[inner.indices.rows]
        return _with(
            inner,
            values,
            _lineax_tags(operator),
            output_structure=operator.out_structure(),
        )
    if _is_diagonal_structure(right):
        inner = sparsify(left)
        d = lx.diagonal(right)
        with jax.numpy_dtype_promotion("standard"):
            values = inner.values * d[inner.indices.cols]
        return _with(
            inner,
            values,
            _lineax_tags(operator),
            input_structure=operator.in_structure(),
        )
    raise NotImplementedError(
        "`asdex.lineax.sparsify` supports compositions `D @ A` and `A @ D` with a "
        f"diagonal `D`, got {type(left).__name__} @ {type(right).__name__}. A "
        "product of two general sparse operators is not formed: solve with the "
        "factors in turn, or use `asdex.lineax.SparseNormalEquations` for `AᵀA`."
    )


def _is_diagonal_structure(operator: lx.AbstractLinearOperator) -> bool:
    return lx.is_diagonal(operator) and operator.in_size() == operator.out_size()


# ---------------------------------------------------------------- sums


def add(a: SparseMatrixOperator, b: SparseMatrixOperator) -> SparseMatrixOperator:
    """The sum of two sparse operators of the same shape, on the union pattern."""
    if a.pattern.shape != b.pattern.shape:
        raise ValueError(
            f"Cannot add sparse operators of shapes {a.pattern.shape} and "
            f"{b.pattern.shape}."
        )
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(a.values, b.values)
    va, vb = a.values.astype(dtype), b.values.astype(dtype)
    if a.pattern is b.pattern or a.pattern == b.pattern:
        return _with(a, va + vb, frozenset())
    data_a, data_b = pattern_data(a.pattern), pattern_data(b.pattern)
    # The common case `H + λI` (Levenberg–Marquardt, Tikhonov): add the diagonal
    # elementwise, `where(row == col, d[row], 0)`, without any new index array.
    if data_b.is_diagonal and data_a.has_full_diagonal:
        return _with(a, va + _spread_diagonal(b, a, dtype), frozenset())
    if data_a.is_diagonal and data_b.has_full_diagonal:
        return _with(b, vb + _spread_diagonal(a, b, dtype), frozenset())
    union, pos_a, pos_b = _union(a.pattern, b.pattern)
    # The positions are derived from the static patterns, so under `jit` they are
    # constants of the program (as are the union's own index arrays).
    values = (
        jnp.zeros(union.nnz, dtype)
        .at[pos_a]
        .add(va, unique_indices=True, mode="promise_in_bounds")
        .at[pos_b]
        .add(vb, unique_indices=True, mode="promise_in_bounds")
    )
    return SparseMatrixOperator(
        values,
        union,
        a.in_structure(),
        a.out_structure(),
        indices=pattern_indices(union),
    )


def _spread_diagonal(diag_op: SparseMatrixOperator, full: SparseMatrixOperator, dtype):
    """`diag_op`'s diagonal laid out on `full`'s pattern, which holds the diagonal."""
    m, n = full.pattern.shape
    size = min(m, n)
    d = (
        jnp.zeros(size, dtype)
        .at[diag_op.indices.rows]
        .add(diag_op.values.astype(dtype), mode="promise_in_bounds")
    )
    frows, fcols = full.indices.rows, full.indices.cols
    on_diagonal = frows == fcols
    safe = jnp.where(on_diagonal, frows, 0)
    return jnp.where(on_diagonal, d.at[safe].get(mode="promise_in_bounds"), 0)


_union_table: OrderedDict = OrderedDict()
_union_lock = threading.Lock()


def _union(pa: SparsityPattern, pb: SparsityPattern):
    key = (pa, pb)
    with _union_lock:
        hit = _union_table.get(key)
        if hit is not None:
            _union_table.move_to_end(key)
            return hit
    n = pa.shape[1]
    keys_a = pa.rows.astype(np.int64) * n + pa.cols
    keys_b = pb.rows.astype(np.int64) * n + pb.cols
    keys = np.union1d(keys_a, keys_b)
    rows, cols = np.divmod(keys, max(n, 1))
    union = SparsityPattern._canonical(rows, cols, pa.shape)
    dtype = pattern_data(union).index_dtype
    with jax.ensure_compile_time_eval():
        pos_a = jnp.asarray(np.searchsorted(keys, keys_a).astype(dtype))
        pos_b = jnp.asarray(np.searchsorted(keys, keys_b).astype(dtype))
    out = (union, pos_a, pos_b)
    with _union_lock:
        _union_table[key] = out
        while len(_union_table) > 8:
            _union_table.popitem(last=False)
    return out


# ---------------------------------------------------------------- damping


def damped_operator(
    jacobian: lx.AbstractLinearOperator, damping: ArrayLike
) -> SparseMatrixOperator:
    r"""The stacked operator $[J;\ \sqrt{\lambda} I]$ of a damped least-squares step.

    Levenberg–Marquardt's step solves $\min_x \|Jx - r\|^2 + \lambda \|x\|^2$: the
    least-squares problem for this operator against `(r, zeros)`, whose normal
    equations are $(J^\top J + \lambda I)\,x = J^\top r$. `optx.LevenbergMarquardt`
    builds the same operator as a `lineax.FunctionLinearOperator`, whose function
    Lineax traces into a jaxpr, so that no solver can recover the sparse $J$ from
    it; a sparse Levenberg–Marquardt descent should build it with this function
    instead and solve with [`asdex.lineax.SparseNormalEquations`][] (or
    [`asdex.SparseLinearSolver`][]).

    The output structure is `(J's output structure, J's input structure)`, as in
    Optimistix. Nothing dense is formed, and no index array is created from the
    pattern: the stacked indices are computed from `J`'s index arrays, so they
    stay arguments of a jitted caller.

    **Arguments:**

    - `jacobian`: an operator with a sparse form, `J` (see
        [`asdex.lineax.sparsify`][]).
    - `damping`: the scalar $\lambda \ge 0$.

    **Returns:**

    A [`asdex.lineax.SparseMatrixOperator`][] of shape `(m + n, n)`.
    """
    sparse = sparsify(jacobian)
    m, n = sparse.pattern.shape
    nnz = sparse.pattern.nnz
    pattern = _damped_pattern(sparse.pattern)
    rows, cols, perm = (
        sparse.indices.rows,
        sparse.indices.cols,
        sparse.indices.transpose_perm,
    )
    dtype = rows.dtype
    diagonal = jnp.arange(n, dtype=dtype)
    # Row-major order of [J; I]: J's entries, then one entry per row of I.
    stacked_rows = jnp.concatenate([rows, m + diagonal])
    stacked_cols = jnp.concatenate([cols, diagonal])
    # The transpose's order is column by column: J's entries of column j (in J's
    # transpose order), then the identity's entry of column j, whose row m + j is
    # the largest. So J's t-th entry in transpose order, in column c, moves to
    # t + c, and column j's identity entry lands after the c ≤ j entries of J.
    cols_t = cols.at[perm].get(mode="promise_in_bounds", wrap_negative_indices=False)
    per_column = jax.ops.segment_sum(
        jnp.ones(nnz, dtype), cols, num_segments=n, mode="promise_in_bounds"
    )
    through = jnp.cumsum(per_column).astype(dtype)
    stacked_perm = (
        jnp.zeros(nnz + n, dtype)
        .at[jnp.arange(nnz, dtype=dtype) + cols_t]
        .set(perm, unique_indices=True, mode="promise_in_bounds")
        .at[through + diagonal]
        .set(nnz + diagonal, unique_indices=True, mode="promise_in_bounds")
    )
    with jax.numpy_dtype_promotion("standard"):
        root = jnp.sqrt(jnp.asarray(damping)).astype(sparse.values.dtype)
    values = jnp.concatenate(
        [sparse.values, jnp.broadcast_to(root, (n,)).astype(sparse.values.dtype)]
    )
    return SparseMatrixOperator(
        values,
        pattern,
        sparse.in_structure(),
        (sparse.out_structure(), sparse.in_structure()),
        indices=PatternIndices(stacked_rows, stacked_cols, stacked_perm),
    )


_damped_table: OrderedDict = OrderedDict()


def _damped_pattern(pattern: SparsityPattern) -> SparsityPattern:
    with _union_lock:
        hit = _damped_table.get(pattern)
        if hit is not None:
            _damped_table.move_to_end(pattern)
            return hit
    m, n = pattern.shape
    diagonal = np.arange(n)
    stacked = SparsityPattern._canonical(
        np.concatenate([pattern.rows, m + diagonal]),
        np.concatenate([pattern.cols, diagonal]),
        (m + n, n),
    )
    with _union_lock:
        _damped_table[pattern] = stacked
        while len(_damped_table) > 8:
            _damped_table.popitem(last=False)
    return stacked
