"""`sparsify` for matrix-free Lineax operators: the drop-in path for Optimistix.

Optimistix hands its linear solver matrix-free operators: `optx.Newton` and
`optx.GaussNewton` a `lineax.FunctionLinearOperator` of the linearised function,
`optx.LevenbergMarquardt` a `FunctionLinearOperator` of `v ↦ (J v, √λ v)`, and
`optx.ImplicitAdjoint` a `lineax.JacobianLinearOperator`. Each of them is a linear
map `v ↦ A v`, and that is all that is needed to make it sparse:

1. detect the Jacobian pattern of `v ↦ operator.mv(v)`. For a linear map this is
   the pattern of `A` itself. Detection reads the jaxpr of `mv` at trace time; the
   arrays the operator closes over (the linearisation's residuals, `λ`, ...) are
   unknown constants to it, so the pattern holds whatever their values;
2. color it: columns (or rows) that share no row (column) form one seed; for a
   symmetric operator a star coloring of the symmetrised pattern (direct, so
   each entry is as exact as its product);
3. compute the compressed matrix. The map is linear, so the compressed product of
   a seed is just `operator.mv(seed)` (or `operator.transpose().mv(seed)`): one
   `jax.vmap` of `mv` over the seeds, no further differentiation;
4. read the nonzeros out of the products with one gather.

No dense `m × n` array is formed at any step. Steps 1 and 2 run in numpy once per
trace (so once per compilation of an Optimistix solve); steps 3 and 4 are part of
the compiled program.

An operator whose pattern is dense (its coloring needs as many products as its
size) has no useful sparse form: `sparsify` raises `NotImplementedError`, and
[`asdex.SparseLinearSolver`][] then falls back to Lineax's dense solvers for small
operators.
"""

from __future__ import annotations

import lineax as lx
import numpy as np
from jaxtyping import Array

from .._colored import ColoredPattern
from ..coloring import color_hessian, color_jacobian
from ..detection import PatternTooDenseError, jacobian_sparsity
from ._jacobian_operator import Compression, _compressed_products, compression
from ._operator import SparseMatrixOperator
from ._sparsify import _lineax_tags, sparsify
from ._structure import flatten_structure, structure_dtype


def _detect(operator: lx.AbstractLinearOperator, symmetric: bool) -> ColoredPattern:
    name = type(operator).__name__
    try:
        pattern = jacobian_sparsity(operator.mv, operator.in_structure())
    except PatternTooDenseError as err:
        raise NotImplementedError(
            f"`asdex.lineax.sparsify`: the {name}'s pattern is too dense to detect "
            f"({err})."
        ) from err
    m, n = pattern.shape
    # The columns of one row need distinct colors, and so do the rows of one
    # column: the longest row and column bound the colorings from below. When both
    # reach the size, every coloring is dense; say so before coloring, which costs
    # O(nnz · row length) and would take minutes on a large dense pattern.
    longest_row = int(np.diff(pattern.indptr).max(initial=0))
    longest_col = int(np.bincount(pattern.cols, minlength=n).max(initial=0))
    bound = (
        max(longest_row, longest_col) if symmetric else min(longest_row, longest_col)
    )
    if min(m, n) > 0 and bound >= min(m, n):
        _raise_dense(name, pattern, bound)
    if symmetric:
        # Lineax trusts the tag; detection may be looser on one side of the
        # diagonal than on the other. The union is a sound pattern for both.
        pattern = pattern | pattern.T
        coloring = ColoredPattern(color_hessian(pattern))
    else:
        coloring = ColoredPattern(color_jacobian(pattern))
    if coloring.is_dense:
        _raise_dense(name, pattern, coloring.num_colors)
    return coloring


def _raise_dense(name: str, pattern, colors: int):
    m, n = pattern.shape
    raise NotImplementedError(
        f"`asdex.lineax.sparsify`: the {m}×{n} {name} has a dense pattern "
        f"({pattern.nnz} nonzeros, at least {colors} colors), so it has no useful "
        "sparse form."
    )


def _values(operator: lx.AbstractLinearOperator, comp: Compression) -> Array:
    """The nonzeros of a linear operator: `mv` of the seeds, decompressed."""
    dec = comp.decompression
    flat_in = flatten_structure(operator.in_structure())
    flat_out = flatten_structure(operator.out_structure())
    dtype = structure_dtype(flat_out)
    B_fwd = B_rev = None
    # Star and acyclic colorings seed columns as "fwd" colorings do: `B = A S`.
    if dec.num_fwd:
        assert dec.col_colors is not None
        B_fwd = _compressed_products(
            operator.mv, dec.col_colors, dec.num_fwd, flat_in, flat_out, dtype, None
        )
    if dec.num_rev:
        assert dec.row_colors is not None
        B_rev = _compressed_products(
            operator.transpose().mv,
            dec.row_colors,
            dec.num_rev,
            flat_out,
            flat_in,
            dtype,
            None,
        )
    return dec.decompress(dec.concatenate(B_fwd, B_rev)).astype(dtype)


def sparsify_linear_map(operator: lx.AbstractLinearOperator) -> SparseMatrixOperator:
    """Sparsify any linear operator through its `mv`: detect, color, compress.

    Registered with [`asdex.lineax.sparsify`][] for `lineax.FunctionLinearOperator`
    and `lineax.JacobianLinearOperator`; register it for other matrix-free
    operator types with `asdex.lineax.sparsify.register(MyOperator,
    sparsify_linear_map)`.

    **Arguments:**

    - `operator`: a Lineax operator whose `mv` can be traced by JAX.

    **Returns:**

    A [`asdex.lineax.SparseMatrixOperator`][] with the same structures, the tags
    Lineax infers for `operator`, and the nonzeros of its matrix.

    **Raises:**

    `NotImplementedError` if the operator's pattern is dense.
    """
    in_structure = operator.in_structure()
    out_structure = operator.out_structure()
    square = flatten_structure(in_structure) == flatten_structure(out_structure)
    symmetric = square and lx.is_symmetric(operator)
    coloring = _detect(operator, symmetric)
    comp = compression(coloring)
    return SparseMatrixOperator(
        _values(operator, comp),
        coloring.pattern,
        in_structure,
        out_structure,
        _lineax_tags(operator),
        indices=comp.indices,
    )


sparsify.register(lx.FunctionLinearOperator, sparsify_linear_map)
sparsify.register(lx.JacobianLinearOperator, sparsify_linear_map)
