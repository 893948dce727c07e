"""`SparseJacobianOperator` and `SparseHessianOperator`: sparse derivatives as Lineax operators.

Both are computed once, when the operator is built, by compressed automatic
differentiation: one linearisation of the function and one product per color
(`B = J S` by JVPs, `B = Sᵀ J` by VJPs, `B = H S` by forward-over-reverse HVPs),
then one gather that reads every nonzero out of `B`. The operator then stores only
the nonzeros, as a [`asdex.lineax.SparseMatrixOperator`][], to which every Lineax
query and every product is delegated.

The index arrays of a coloring (the seeds' colors, the decompression gather, the
pattern's rows and columns) are computed in numpy once per coloring and kept as
concrete device arrays in a small table keyed by the coloring, see
[`asdex.lineax.compression`][].
"""

# jaxtyping's shape strings (" nnz", "m n") are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
from jaxtyping import Array, Inexact, PyTree, Scalar

from .._caches import cached
from .._colored import ColoredPattern, check_coloring
from .._trace import check_scalar_output, explain_traced_control_flow
from ..ad._complex import complex_mode
from ..ad._compressed import (
    Decompression,
    DecompressionPlan,
    gradient_linearization,
    jacobian_linearization,
    nonzeros_of,
)
from ..ad._layout import Layout, Structure, check_coloring_samples
from ._operator import PatternIndices, SparseMatrixOperator, pattern_indices
from ._pattern_data import pattern_data
from ._sparsify import sparsify

_SYMMETRIC_TAGS = frozenset(
    [lx.symmetric_tag, lx.positive_semidefinite_tag, lx.negative_semidefinite_tag]
)


# ---------------------------------------------------------------- compression


class Compression(eqx.Module):
    """The device arrays that compressed differentiation with one coloring needs.

    An `equinox.Module` whose leaves are index arrays: store it in a module, or pass
    it to a jitted function as an argument, and the arrays enter the compiled
    program as arguments rather than as constants. Build it with
    [`asdex.lineax.compression`][].

    **Fields:**

    - `coloring`: the [`asdex.ColoredPattern`][] (static).
    - `decompression`: the seeds' colors and the gather that reads the nonzeros
      out of the compressed products.
    - `indices`: the pattern's [`asdex.lineax.PatternIndices`][].
    """

    coloring: ColoredPattern = eqx.field(static=True)
    decompression: Decompression
    indices: PatternIndices

    @property
    def pattern(self):
        return self.coloring.pattern


def compression(coloring: ColoredPattern) -> Compression:
    """The [`asdex.lineax.Compression`][] of `coloring`, computed once and cached.

    The arrays are concrete (also when this is called inside `jax.jit`), and the
    most recent colorings' arrays are kept, so repeated calls with one coloring
    upload nothing.

    **Arguments:**

    - `coloring`: an [`asdex.ColoredPattern`][] from [`asdex.jacobian_coloring`][]
        or [`asdex.hessian_coloring`][].

    **Returns:**

    A [`asdex.lineax.Compression`][].
    """
    check_coloring(coloring, "asdex.lineax.compression", hessian=None)
    return _compression(coloring)


@cached(maxsize=16)
def _compression(coloring: ColoredPattern) -> Compression:
    # Intern the pattern, so that every operator of this coloring shares one
    # pattern object (identity comparisons in `jit` caches and loop carries).
    pattern_data(coloring.pattern)
    with jax.ensure_compile_time_eval():
        decompression = Decompression(DecompressionPlan.of(coloring), in_solvers=True)
    return Compression(coloring, decompression, pattern_indices(coloring.pattern))


def _no_aux(fn: Callable, args: Any, has_aux: bool) -> Callable:
    if has_aux:
        return lambda y: fn(y, args)
    return lambda y: (fn(y, args), None)


def compressed_jacobian(
    fn: Callable,
    y: PyTree[Array],
    args: PyTree,
    compression: Compression,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
):
    """`(out, aux, values)`: `fn(y, args)` and its Jacobian's nonzeros at `y`.

    `fn` is evaluated once: its value comes out of the same `jax.linearize` (or
    `jax.vjp`) as the compressed products, which `asdex.ad`'s engine computes.
    """
    dec = compression.decompression
    lin, out, aux = jacobian_linearization(_no_aux(fn, args, has_aux), [y], dec)
    layout = Layout.of_structures(Structure.of_tree(y), Structure.of_tree(out))
    values = nonzeros_of(lin, [y], layout, dec, chunk_size, replicated=True)
    return out, aux, values


def compressed_hessian(
    fn: Callable,
    y: PyTree[Array],
    args: PyTree,
    compression: Compression,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
):
    """`(value, grad, aux, values)`: the scalar `fn(y, args)`, its gradient, and its
    Hessian's nonzeros at `y`, by one forward-over-reverse linearisation."""
    dec = compression.decompression
    g = _no_aux(fn, args, has_aux)
    lin, (grad,), value, aux = gradient_linearization(g, [y])
    # The gradient's layout (outputs shaped as `y`), whose Jacobian is the Hessian.
    flat_in = Structure.of_tree(y)
    layout = Layout.of_structures(flat_in, flat_in)
    values = nonzeros_of(lin, [y], layout, dec, chunk_size, replicated=True)
    return value, grad, aux, values


# Called outside `jit` (in eager code, notebooks, tests), the operators compute
# their values through these: compiled once per function, instead of dispatching
# every operation of the linearisation one by one. Inside `jit` they are inlined.
jacobian_values = eqx.filter_jit(compressed_jacobian)
hessian_values = eqx.filter_jit(compressed_hessian)


# ---------------------------------------------------------------- checks


def as_tags(tags: object | Iterable[object]) -> frozenset[object]:
    try:
        return frozenset(tags)  # pyright: ignore[reportArgumentType]
    except TypeError:
        return frozenset([tags])


def lineax_holomorphic(y) -> bool:
    """Lineax's reading of a Jacobian at complex `y`: holomorphic (its
    `JacobianLinearOperator` materialises with `holomorphic=True` then)."""
    return any(
        jnp.issubdtype(leaf.dtype, jnp.complexfloating)
        for leaf in jtu.tree_leaves(jax.eval_shape(lambda: y))
    )


def check_complex_coloring(y, out_struct, coloring: ColoredPattern, caller: str):
    """Raise if the coloring's mode cannot give the Jacobian of complex `y` or
    outputs (see `asdex.ad._complex`)."""
    complex_mode(
        jtu.tree_leaves(jax.eval_shape(lambda: y)),
        jtu.tree_leaves(out_struct),
        lineax_holomorphic(y),
        coloring.mode,
        caller,
        "coloring",
    )


def check_symmetric_tags(tags, coloring: ColoredPattern, caller: str) -> None:
    if (
        tags & _SYMMETRIC_TAGS
        and not pattern_data(coloring.pattern).is_symmetric_pattern
    ):
        raise ValueError(
            f"`{caller}(tags=...)` declares a symmetric (or semidefinite) operator, "
            "but the Jacobian's pattern is not symmetric. Use "
            "`asdex.SparseHessianOperator` for Hessians, or color the symmetrised "
            "pattern: `asdex.ColoredPattern(asdex.coloring.color_jacobian(pattern | "
            "pattern.T))`, and pass it as `coloring=`."
        )


def _matrix(
    values: Array, comp: Compression, in_structure, out_structure, tags
) -> SparseMatrixOperator:
    """The operators' values on their coloring's pattern, with its index arrays."""
    return SparseMatrixOperator(
        values,
        comp.coloring.pattern,
        in_structure,
        out_structure,
        tags,
        indices=comp.indices,
    )


# ---------------------------------------------------------------- operators


class _NonzerosOperator(lx.AbstractLinearOperator):
    """A sparse derivative as a Lineax operator: its nonzeros, held as a
    `SparseMatrixOperator` that answers every product and structure query, and
    the coloring they were computed with."""

    matrix: eqx.AbstractVar[SparseMatrixOperator]
    coloring: eqx.AbstractVar[ColoredPattern]

    @property
    def values(self) -> Inexact[Array, " nnz"]:
        """The nonzeros, in the pattern's row-major order."""
        return self.matrix.values

    @property
    def pattern(self):
        """The [`asdex.SparsityPattern`][] of the derivative (symmetric for a
        Hessian)."""
        return self.matrix.pattern

    def as_matrix(self) -> Inexact[Array, "m n"]:
        """The dense `(m, n)` matrix. This is the only method that densifies."""
        return self.matrix.as_matrix()

    def mv(
        self, vector: PyTree[Inexact[Array, " _b"]]
    ) -> PyTree[Inexact[Array, " _b"]]:
        return self.matrix.mv(vector)

    def in_structure(self) -> PyTree[jax.ShapeDtypeStruct]:
        return self.matrix.in_structure()

    def out_structure(self) -> PyTree[jax.ShapeDtypeStruct]:
        return self.matrix.out_structure()


def _refuse_coloring_as_point(caller: str, y) -> None:
    """A coloring passed where the point goes (`(fn, coloring, y)`, the order of
    `asdex.jacobian_from_coloring`) would fail later with a bare JAX type error."""
    if isinstance(y, ColoredPattern):
        raise TypeError(
            f"`{caller}(fn, y, args, coloring=...)`: `y` is the point, and got a "
            "ColoredPattern; pass the coloring by keyword."
        )


class SparseJacobianOperator(_NonzerosOperator):
    """The Jacobian of `fn` at `y`, as a sparse Lineax linear operator.

    This is the sparse counterpart of `lineax.JacobianLinearOperator(fn, y, args)`.
    The nonzeros are computed once, when the operator is built, by compressed
    automatic differentiation: one `jax.linearize` of `fn` and one JVP (or VJP) per
    color of the coloring, then one gather. The operator stores only these values
    (in a [`asdex.lineax.SparseMatrixOperator`][], its `matrix`): `mv` and
    `transpose().mv` are sparse products, and only
    [`as_matrix`][asdex.SparseJacobianOperator.as_matrix] forms the dense `m × n`
    matrix.

    `y` and the output of `fn` may be PyTrees (an `equinox.Module` of parameters, a
    tuple of arrays, ...). Columns follow the leaves of `y` and rows the leaves of
    the output, each in `jax.tree_util` order and row-major: Lineax's own layout.

    Complex `y` is read as Lineax reads it: `fn` is taken to be holomorphic, and
    the operator is `∂fn/∂y` (as `jax.jacfwd(..., holomorphic=True)`). Real `y`
    with complex outputs uses JVPs, which keep the imaginary parts (a coloring
    for VJPs raises a `TypeError`).

    The operator works under `jax.jit`, `jax.vmap` and `jax.grad` (including through
    `lineax.linear_solve`, where the derivative flows through the values into `y`
    and `args`). The coloring is a static field with a cached hash, so operators
    can be carried through Optimistix loops without retracing. All thirteen Lineax
    queries are answered from the sparse matrix (pattern-provable structure, such as
    a diagonal or triangular pattern, answers `True`).

    !!! Example

        ```python
        def residual(y, args):
            return y[1:] - y[:-1] ** 2 - args

        coloring = asdex.jacobian_coloring(residual, y, args)   # once
        J = asdex.SparseJacobianOperator(residual, y, args, coloring)
        step = lx.linear_solve(J, b, asdex.SparseLinearSolver()).value
        ```
    """

    matrix: SparseMatrixOperator
    coloring: ColoredPattern = eqx.field(static=True)

    def __init__(
        self,
        fn: Callable[[PyTree[Array], PyTree[Any]], PyTree[Array]],
        y: PyTree[Inexact[Array, " _b"]],
        args: PyTree[Any] = None,
        coloring: ColoredPattern | None = None,
        tags: object | Iterable[object] = (),
        *,
        chunk_size: int | None = None,
    ):
        """**Arguments:**

        - `fn`: a function `(y, args) -> out`, PyTrees of arrays in and out.
        - `y`: the point at which the Jacobian `d(fn)/dy` is evaluated.
        - `args`: other arguments of `fn`, not differentiated.
        - `coloring`: an [`asdex.ColoredPattern`][] of `fn`'s Jacobian with respect
            to `y`, from `asdex.jacobian_coloring(fn, y, args)`, to reuse. `None`
            detects and colors the pattern now (at trace time, under `jit`).
        - `tags`: Lineax tags (`lineax.symmetric_tag`, ...) declaring properties
            of the Jacobian; they are trusted, not checked. Symmetric tags need a
            symmetric pattern.
        - `chunk_size`: evaluate at most this many JVPs (or VJPs) at once, to
            bound memory; `None` evaluates all at once.
        """
        caller = "asdex.SparseJacobianOperator"
        if not callable(fn):
            raise TypeError(
                f"`{caller}(fn=...)` must be a function `(y, args) -> out`, got "
                f"{type(fn).__name__}."
            )
        _refuse_coloring_as_point(caller, y)
        tags = as_tags(tags)
        holomorphic = lineax_holomorphic(y)
        if coloring is None:
            from .._colorings import jacobian_coloring

            coloring = jacobian_coloring(
                fn, y, args, mode=None, holomorphic=holomorphic
            )
        n = Structure.of_tree(y).size
        with explain_traced_control_flow(caller, "fn"):
            out_struct = eqx.filter_eval_shape(fn, y, args)
        m = Structure.of(out_struct).size
        coloring = check_coloring(coloring, caller, hessian=False, shape=(m, n))
        check_coloring_samples(coloring, (y, args), caller)
        check_complex_coloring(y, out_struct, coloring, caller)
        check_symmetric_tags(tags, coloring, caller)
        comp = compression(coloring)
        out, _, values = jacobian_values(fn, y, args, comp, chunk_size=chunk_size)
        self.matrix = _matrix(
            values, comp, jax.eval_shape(lambda: y), jax.eval_shape(lambda: out), tags
        )
        self.coloring = coloring

    @classmethod
    def _from_values(
        cls,
        values: Array,
        comp: Compression,
        in_structure,
        out_structure,
        tags: frozenset[object] = frozenset(),
    ) -> SparseJacobianOperator:
        matrix = _matrix(values, comp, in_structure, out_structure, tags)
        return _JacobianOfValues(matrix, comp.coloring)

    def transpose(self) -> lx.AbstractLinearOperator:
        if lx.is_symmetric(self.matrix):
            return self
        return self.matrix.transpose()


class SparseHessianOperator(_NonzerosOperator):
    """The Hessian of a scalar `fn` at `y`, as a sparse symmetric Lineax operator.

    The nonzeros are computed once, when the operator is built, by one
    forward-over-reverse linearisation of `fn` and one Hessian-vector product per
    color of a symmetric (star or acyclic) coloring. The operator stores only these
    values; it is always tagged symmetric, and may be tagged positive (or negative)
    semidefinite, which lets [`asdex.SparseLinearSolver`][] factorise it by
    [`asdex.lineax.SparseCholesky`][].

    `y` may be a PyTree; the operator's input and output structures are both `y`'s.
    See [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator] for the transformations it supports.

    !!! Example

        ```python
        def energy(u, args):
            return jnp.sum((u[1:] - u[:-1]) ** 2) + jnp.sum(jnp.exp(u))

        H = asdex.SparseHessianOperator(
            energy, u, tags=lx.positive_semidefinite_tag
        )
        step = lx.linear_solve(H, g, asdex.SparseLinearSolver()).value
        ```
    """

    matrix: SparseMatrixOperator
    coloring: ColoredPattern = eqx.field(static=True)

    def __init__(
        self,
        fn: Callable[[PyTree[Array], PyTree[Any]], Scalar],
        y: PyTree[Inexact[Array, " _b"]],
        args: PyTree[Any] = None,
        coloring: ColoredPattern | None = None,
        tags: object | Iterable[object] = (),
        *,
        chunk_size: int | None = None,
    ):
        """**Arguments:**

        - `fn`: a scalar function `(y, args) -> value`.
        - `y`: the point at which the Hessian is evaluated; a PyTree of arrays.
        - `args`: other arguments of `fn`, not differentiated.
        - `coloring`: an [`asdex.ColoredPattern`][] of mode `"star"` or
            `"acyclic"`, from `asdex.hessian_coloring(fn, y, args)`, to reuse.
            `None` detects and colors the pattern now.
        - `tags`: extra Lineax tags, such as `lineax.positive_semidefinite_tag`
            for a convex `fn`. `lineax.symmetric_tag` is always added.
        - `chunk_size`: evaluate at most this many HVPs at once.
        """
        caller = "asdex.SparseHessianOperator"
        if not callable(fn):
            raise TypeError(
                f"`{caller}(fn=...)` must be a scalar function `(y, args) -> value`, "
                f"got {type(fn).__name__}."
            )
        _refuse_coloring_as_point(caller, y)
        with explain_traced_control_flow(caller, "fn"):
            out_struct = eqx.filter_eval_shape(fn, y, args)
        check_scalar_output(
            jax.tree.leaves(out_struct),
            caller,
            argument="fn",
            advice="For a vector-valued function use `asdex.SparseJacobianOperator`.",
        )
        if coloring is None:
            from .._colorings import hessian_coloring

            coloring = hessian_coloring(fn, y, args)
        n = Structure.of_tree(y).size
        coloring = check_coloring(coloring, caller, hessian=True, shape=(n, n))
        check_coloring_samples(coloring, (y, args), caller)
        comp = compression(coloring)
        _, _, _, values = hessian_values(fn, y, args, comp, chunk_size=chunk_size)
        structure = jax.eval_shape(lambda: y)
        self.matrix = _matrix(
            values, comp, structure, structure, as_tags(tags) | {lx.symmetric_tag}
        )
        self.coloring = coloring

    @classmethod
    def _from_values(
        cls,
        values: Array,
        comp: Compression,
        structure,
        tags: frozenset[object] = frozenset(),
    ) -> SparseHessianOperator:
        matrix = _matrix(values, comp, structure, structure, tags | {lx.symmetric_tag})
        return _HessianOfValues(matrix, comp.coloring)

    def transpose(self) -> SparseHessianOperator:
        return self


# The solvers and `asdex.SparseFunction` compute the nonzeros themselves (with the
# value, gradient or residual of the same linearisation): these build the
# operators around them, through an `__init__` of their own rather than the
# public one, which differentiates.


class _JacobianOfValues(SparseJacobianOperator):
    def __init__(self, matrix: SparseMatrixOperator, coloring: ColoredPattern):
        self.matrix = matrix
        self.coloring = coloring


class _HessianOfValues(SparseHessianOperator):
    def __init__(self, matrix: SparseMatrixOperator, coloring: ColoredPattern):
        self.matrix = matrix
        self.coloring = coloring


# ---------------------------------------------------------------- singledispatch

# Both operators hold their values as a `SparseMatrixOperator`, and every Lineax
# query is answered by that matrix: structural ones (diagonal, tridiagonal,
# triangular) from its pattern, the others from its tags.
_OPERATORS = (SparseJacobianOperator, SparseHessianOperator)

for _cls in _OPERATORS:
    sparsify.register(_cls)(lambda operator: operator.matrix)
    lx.linearise.register(_cls)(lambda operator: operator)
    lx.materialise.register(_cls)(lambda operator: operator)
    lx.diagonal.register(_cls)(lambda operator: lx.diagonal(operator.matrix))
    lx.tridiagonal.register(_cls)(lambda operator: lx.tridiagonal(operator.matrix))
    for _query in (
        lx.is_symmetric,
        lx.is_diagonal,
        lx.is_tridiagonal,
        lx.has_unit_diagonal,
        lx.is_lower_triangular,
        lx.is_upper_triangular,
        lx.is_positive_semidefinite,
        lx.is_negative_semidefinite,
    ):
        _query.register(_cls)(lambda operator, _query=_query: _query(operator.matrix))
    lx.conj.register(_cls)(
        lambda operator: eqx.tree_at(
            lambda op: op.matrix, operator, lx.conj(operator.matrix)
        )
    )
del _cls, _query
