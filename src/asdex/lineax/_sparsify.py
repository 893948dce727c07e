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

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array

from .._pattern import SparsityPattern
from ..ad._layout import Structure
from ._operator import SparseMatrixOperator
from ._sum import add, with_values

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


def lineax_tags(operator: lx.AbstractLinearOperator) -> frozenset[object]:
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
    return with_values(inner, tags=inner.tags | operator.tags)


@sparsify.register(lx.NegLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    return with_values(inner, -inner.values, lineax_tags(operator))


@sparsify.register(lx.MulLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    with jax.numpy_dtype_promotion("standard"):
        values = inner.values * operator.scalar
    return with_values(inner, values, lineax_tags(operator))


@sparsify.register(lx.DivLinearOperator)
def _(operator):
    inner = sparsify(operator.operator)
    with jax.numpy_dtype_promotion("standard"):
        values = inner.values / operator.scalar
    return with_values(inner, values, lineax_tags(operator))


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
    diagonal = Structure.of(structure).ravel(operator.diagonal)
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
    return with_values(total, tags=lineax_tags(operator))


@sparsify.register(lx.ComposedLinearOperator)
def _(operator):
    left, right = operator.operator1, operator.operator2
    if _is_diagonal_structure(left):
        inner = sparsify(right)
        d = lx.diagonal(left)
        with jax.numpy_dtype_promotion("standard"):
            values = inner.values * d[inner.indices.rows]
        return with_values(
            inner,
            values,
            lineax_tags(operator),
            output_structure=operator.out_structure(),
        )
    if _is_diagonal_structure(right):
        inner = sparsify(left)
        d = lx.diagonal(right)
        with jax.numpy_dtype_promotion("standard"):
            values = inner.values * d[inner.indices.cols]
        return with_values(
            inner,
            values,
            lineax_tags(operator),
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
