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

Step 1 cannot see everything. Inside Optimistix's `jit` the residual's constants
and `args` are traced, so index arrays (`src` in `y[src] - y[dst]`, `cam_idx` in
bundle adjustment) reach detection without their values, and each gathered entry
may then depend on any entry of `y`: the pattern comes out dense. The pattern is
known outside the solve, from the residual itself: `SparseLinearSolver(coloring=
asdex.jacobian_coloring(...))` passes it in, and [`given_coloring`][] makes it
replace step 1 for the operators it describes (see `_given_coloring_for`). A given
coloring is not trusted blindly: the compiled program compares the operator's
product with one probe vector against the sparse matrix's, and raises if they
differ (`_checked_values`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array

from .._caches import cached
from .._colored import ColoredPattern
from ..ad._compressed import Linear, nonzeros_of
from ..ad._layout import Layout, Structure
from ..coloring import color_hessian, color_jacobian
from ..detection import PatternTooDenseError, jacobian_sparsity
from ._damping import damped_pattern
from ._derivative_operators import (
    Compression,
    compression,
)
from ._operator import SparseMatrixOperator
from ._sparsify import lineax_tags, sparsify

# The coloring that `SparseLinearSolver(coloring=...)` was given, while it
# sparsifies an operator. A context variable rather than an argument, so that
# `sparsify` keeps its one-argument signature through the wrappers it sees through.
_given: contextvars.ContextVar[ColoredPattern | None] = contextvars.ContextVar(
    "asdex_given_coloring", default=None
)


@contextlib.contextmanager
def given_coloring(coloring: ColoredPattern | None):
    """Within this block, `sparsify` takes matrix-free patterns from `coloring`."""
    token = _given.set(coloring)
    try:
        yield
    finally:
        _given.reset(token)


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
    """The nonzeros of a linear operator: `mv` of the seeds, decompressed by
    `asdex.ad`'s engine (star and acyclic colorings seed columns as column
    colorings do: `B = A S`).

    A sharded coloring's devices apply the operator's `mv` as a linearization, a
    PyTree of its constants: Optimistix's operators wrap closure-converted
    functions, which refuse the arguments of a `shard_map` (their sharding
    differs from the example's)."""
    dec = comp.decompression
    layout = Layout.of_structures(
        Structure.of(operator.in_structure()),
        Structure.of(operator.out_structure()),
    )
    if dec.sharded is not None:
        zero = jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype), operator.in_structure()
        )
        _, mv = jax.linearize(operator.mv, zero)
        return nonzeros_of(Linear(mv, None), [zero], layout, dec, None, replicated=True)
    # The transpose's own `mv` for VJPs: no primal point is needed then.
    transpose = operator.transpose().mv if dec.num_rev else None
    lin = Linear(operator.mv, None if transpose is None else _as_pullback(transpose))
    return nonzeros_of(lin, [], layout, dec, None)


def _as_pullback(mv: Callable) -> Callable:
    return lambda cotangent: (mv(cotangent),)


def _given_coloring_for(
    operator: lx.AbstractLinearOperator, given: ColoredPattern
) -> ColoredPattern | None:
    """The coloring of `operator` that `given` (a coloring of `J`) implies, if any.

    Optimistix hands the linear solver `J` itself (Newton, Gauss–Newton, Dogleg,
    the Newton step of IndirectLevenbergMarquardt) or Levenberg–Marquardt's
    stacked `v ↦ (J v, √λ v)`, whose pattern is `[J; I]`. Other operators (the
    Hessian in an adjoint's solve, say) are not described by `given`: `None`.
    """
    m, n = operator.out_size(), operator.in_size()
    if given.shape == (m, n):
        return given
    m_j, n_j = given.shape
    if (m, n) == (m_j + n_j, n_j) and is_damped_stack(operator):
        stacked = _stacked_coloring(given.pattern)
        sharding = given.sharding
        if sharding is None:
            return stacked
        return stacked.shard(sharding.mesh, sharding.axes)
    return None


def is_damped_stack(operator: lx.AbstractLinearOperator) -> bool:
    """Whether `operator` looks like Levenberg–Marquardt's `v ↦ (J v, √λ v)`: a pair
    of outputs whose second has the input's structure. Its matrix `[J; √λ I]` has
    full column rank for every `λ > 0`, which Optimistix's damping keeps."""
    out = operator.out_structure()
    return (
        isinstance(out, tuple)
        and len(out) == 2
        and Structure.of(out[1]) == Structure.of(operator.in_structure())
    )


@cached(maxsize=8)
def _stacked_coloring(pattern) -> ColoredPattern:
    # A row of `I` has one entry, so J's column colors would do, but J may have
    # been colored by rows; coloring `[J; I]` afresh is cheap (numpy, per trace).
    return ColoredPattern(color_jacobian(damped_pattern(pattern)))


def _checked_values(
    operator: lx.AbstractLinearOperator, comp: Compression, values: Array
) -> Array:
    """`values`, checked at run time against the operator on one probe vector.

    A given coloring may not fit the operator (another residual, other index
    arrays). If the operator has a nonzero outside the coloring's pattern, the
    decompressed matrix `Â` differs from `A`, and `A v ≠ Â v` for a random `v`
    (except on a set of measure zero). Round-off in both products is about
    `eps · (|Â| |v| + |A v|)`; a missed entry gives an error of the size of the
    entry itself, so the tolerance `√eps` of that scale separates the two.
    """
    m, n = comp.pattern.shape
    flat_in = Structure.of(operator.in_structure())
    flat_out = Structure.of(operator.out_structure())
    real = jnp.finfo(values.dtype).dtype
    probe = jax.random.uniform(jax.random.key(0), (n,), real, 0.5, 1.5)
    probe = probe.astype(values.dtype)
    exact = flat_out.ravel(operator.mv(flat_in.unravel(probe)), values.dtype)
    rows, cols = comp.indices.rows, comp.indices.cols
    terms = values * probe.at[cols].get(mode="promise_in_bounds")
    approx = jax.ops.segment_sum(terms, rows, num_segments=m)
    scale = jax.ops.segment_sum(jnp.abs(terms), rows, num_segments=m)
    scale = scale + jnp.abs(exact)
    tolerance = jnp.sqrt(jnp.finfo(real).eps)
    # NaN in the operator is the solver's business (it reports it), not a misfit.
    misfit = jnp.abs(exact - approx) > tolerance * scale
    bad = jnp.any(misfit & jnp.isfinite(exact) & jnp.isfinite(scale))
    return eqx.error_if(
        values,
        bad,
        "`asdex.SparseLinearSolver(coloring=...)`: the coloring does not fit the "
        "operator it was used for. Its product with a probe vector differs from "
        "the sparse matrix built with the coloring, so the operator has nonzeros "
        "outside the coloring's pattern. Detect the coloring again from the same "
        "residual, with the same constants and `args` as the solve "
        "(`asdex.jacobian_coloring(lambda y: fn(y, args), y0)`).",
    )


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
    given = _given.get()
    coloring = None if given is None else _given_coloring_for(operator, given)
    given_fits = coloring is not None
    if not given_fits:
        square = Structure.of(in_structure) == Structure.of(out_structure)
        symmetric = square and lx.is_symmetric(operator)
        coloring = _detect(operator, symmetric)
    comp = compression(coloring)
    values = _values(operator, comp)
    if given_fits:
        values = _checked_values(operator, comp, values)
    return SparseMatrixOperator(
        values,
        coloring.pattern,
        in_structure,
        out_structure,
        lineax_tags(operator),
        indices=comp.indices,
    )


sparsify.register(lx.FunctionLinearOperator, sparsify_linear_map)
sparsify.register(lx.JacobianLinearOperator, sparsify_linear_map)
