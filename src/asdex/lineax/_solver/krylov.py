"""Krylov solves with the sparse matrix-vector product and a Jacobi preconditioner."""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, PyTree

from ._direct import to_sparse


def jacobi_preconditioner(
    operator: lx.AbstractLinearOperator, *, normal: bool = False
) -> lx.AbstractLinearOperator:
    r"""The Jacobi (diagonal) preconditioner of a sparse operator.

    For a square operator $A$ this is $D^{-1}$, the inverse of its diagonal, read
    from the nonzero values without densifying. Zero diagonal entries are left
    unscaled (their inverse is taken to be 1). If $A$ is tagged positive
    semidefinite, the preconditioner is tagged too (a positive definite matrix has
    a positive diagonal), as `lineax.CG` requires; for a negative semidefinite $A$
    it is $-D^{-1}$, also positive, matching `lineax.CG`'s solve with $-A$.

    With `normal=True` it is the preconditioner that `lineax.Normal` expects for
    the normal equations: a diagonal $M$ with $M M^\top$ the Jacobi preconditioner of
    $A^\top A$ (tall $A$), that is $M = \operatorname{diag}(1/\|a_{:j}\|)$ over the
    columns, or with $M^\top M$ that of $A A^\top$ (wide $A$), over the rows.

    Pass it as `options={"preconditioner": ...}` to `lineax.linear_solve` with
    `lineax.CG`, `lineax.GMRES`, `lineax.BiCGStab` or `lineax.Normal(lineax.CG(...))`,
    or let [`asdex.lineax.SparseKrylov`][] do so (which also works inside Optimistix,
    where no `options` can be passed).

    **Arguments:**

    - `operator`: an operator with a sparse form (see [`asdex.lineax.sparsify`][]).
    - `normal`: build the preconditioner for the normal equations instead.

    **Returns:**

    A `lineax.DiagonalLinearOperator` over the operator's input structure (over its
    output structure for a wide operator with `normal=True`), wrapped in a
    `lineax.TaggedLinearOperator` with `lineax.positive_semidefinite_tag` when it is
    positive.
    """
    sparse = to_sparse("jacobi_preconditioner", operator)
    m, n = sparse.pattern.shape
    values = sparse.values
    if normal:
        tall = m >= n
        index = sparse.indices.cols if tall else sparse.indices.rows
        size = n if tall else m
        norms2 = jax.ops.segment_sum(
            jnp.abs(values) ** 2, index, num_segments=size, mode="promise_in_bounds"
        )
        scale = jnp.where(norms2 > 0, 1 / jnp.sqrt(jnp.where(norms2 > 0, norms2, 1)), 1)
        flat = sparse.input_structure if tall else sparse.output_structure
        diagonal = lx.DiagonalLinearOperator(flat.unravel(scale))
        return lx.TaggedLinearOperator(diagonal, lx.positive_semidefinite_tag)
    if m != n or sparse.input_structure != sparse.output_structure:
        raise ValueError(
            "`jacobi_preconditioner(operator)` needs a square operator with equal "
            f"input and output structures, got shape {m}×{n}. For least squares, "
            "pass `normal=True` and solve with `lineax.Normal(...)`."
        )
    d = lx.diagonal(sparse)
    nsd = lx.is_negative_semidefinite(operator) and not lx.is_positive_semidefinite(
        operator
    )
    if nsd:
        d = -d
    inverse = jnp.where(d != 0, 1 / jnp.where(d != 0, d, 1), 1)
    diagonal = lx.DiagonalLinearOperator(sparse.input_structure.unravel(inverse))
    if nsd or lx.is_positive_semidefinite(operator):
        return lx.TaggedLinearOperator(diagonal, lx.positive_semidefinite_tag)
    return diagonal


class SparseKrylov(lx.AbstractLinearSolver):
    """A Lineax Krylov solver run on the sparse operator, with a Jacobi preconditioner.

    Wraps any Lineax iterative solver (`lineax.CG`, `lineax.GMRES`,
    `lineax.BiCGStab`, `lineax.LSMR`, or `lineax.Normal(lineax.CG(...))` for least
    squares). At `init` it rewrites the operator as one
    [`asdex.lineax.SparseMatrixOperator`][] (so that, say, `H + λI` costs one sparse
    product per iteration) and, unless `options` already holds one, adds the
    [`asdex.lineax.jacobi_preconditioner`][] to the options. Because the
    preconditioner is added by the solver itself, it also takes effect inside
    Optimistix, which calls `lineax.linear_solve` without options.

    Nothing is factorised, so memory stays at a few vectors; convergence depends on
    the conditioning of the problem (and, for `CG`, the operator must be tagged
    positive or negative semidefinite). The wrapped solver's `rtol`, `atol` and
    `max_steps` apply; a solve that does not converge returns Lineax's failure
    result (`max_steps_reached`, `breakdown`, ...).

    !!! Example

        ```python
        solver = asdex.lineax.SparseKrylov(lx.GMRES(rtol=1e-8, atol=1e-8))
        solution = lx.linear_solve(operator, vector, solver)
        ```
    """

    solver: lx.AbstractLinearSolver
    preconditioner: Literal["jacobi"] | None = "jacobi"

    def __check_init__(self):
        if not isinstance(self.solver, lx.AbstractLinearSolver):
            raise TypeError(
                "`SparseKrylov(solver=...)` must be a Lineax solver such as "
                f"`lineax.GMRES(rtol=1e-8, atol=1e-8)`, got {self.solver!r}."
            )
        if self.preconditioner not in ("jacobi", None):
            raise ValueError(
                "`SparseKrylov(preconditioner=...)` must be 'jacobi' or None, got "
                f"{self.preconditioner!r}."
            )

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        sparse = to_sparse("SparseKrylov", operator)
        inner_options = dict(options)
        supports = not isinstance(self.solver, lx.LSMR)  # LSMR takes none
        if self.preconditioner == "jacobi" and supports:
            if "preconditioner" not in inner_options:
                normal = isinstance(self.solver, lx.Normal)
                inner_options["preconditioner"] = jacobi_preconditioner(
                    sparse, normal=normal
                )
        return self.solver.init(sparse, inner_options), inner_options

    def compute(
        self, state, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        inner_state, inner_options = state
        if "y0" in options:
            inner_options = dict(inner_options, y0=options["y0"])
        return self.solver.compute(inner_state, vector, inner_options)

    def transpose(self, state, options: dict[str, Any]):
        inner_state, inner_options = state
        return self.solver.transpose(inner_state, inner_options), options

    def conj(self, state, options: dict[str, Any]):
        inner_state, inner_options = state
        return self.solver.conj(inner_state, inner_options), options

    def assume_full_rank(self) -> bool:
        return self.solver.assume_full_rank()


SparseKrylov.__init__.__doc__ = """**Arguments:**

- `solver`: the Lineax iterative solver to run, for example
    `lineax.GMRES(rtol=1e-8, atol=1e-8)` or `lineax.CG(rtol=1e-8, atol=1e-8)`.
- `preconditioner`: `"jacobi"` (the default) to add
    [`asdex.lineax.jacobi_preconditioner`][] to the options, or `None` for none.
"""
