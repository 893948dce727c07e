"""`SparseSchur`: least squares by the normal equations, with a Schur complement."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Bool, PyTree

from .._operator import SparseMatrixOperator
from .._schur_plan import OuterSumPlan, PairPlan, SchurPlan, schur_plan
from .._superlu import superlu_solve
from ._direct import DirectState, flat_mv, to_sparse
from .normal import SparseNormalEquations

# Defaults of `SparseSchur`; `SparseLinearSolver` uses the same. A dense Cholesky
# factorisation of the reduced system costs r³/3 flops: 0.01 s at r = 450 and
# about 0.3 s at r = 2,000 on the 2-core CPU that the benchmarks ran on.
MAX_BLOCK = 16
MAX_REDUCED = 2_000
# Entries gathered at once for the products of W V⁻¹ Wᵀ (2²⁵: 256 MB in float64).
_GATHERED = 2**25


class SchurFactor(eqx.Module):
    """`AᵀA = [[U, W], [Wᵀ, V]]` factorised: `V = L_V L_Vᵀ` block by block, `W`'s
    blocks, and `S = U − W V⁻¹ Wᵀ`: its Cholesky factor `L_S` when dense, its
    values on `plan.s_pattern` when sparse (factorised on the host when solved)."""

    v_chol: Array  # (nb, k, k)
    coupling: Array  # (nb, c, k): W's block b, rows in `plan.block_reduced[b]`
    reduced: Array  # (r, r) L_S, or (nnz of S,) S's values
    ok: Bool[Array, ""]


def _definite(chol_diag: Array, real: Array) -> Bool[Array, ""]:
    """Whether the pivots (squared diagonals of Cholesky factors, over the last
    axis) are finite and not negligible against the largest of their matrix."""
    pivots = jnp.where(real, chol_diag * chol_diag, 0)
    largest = jnp.max(pivots, axis=-1, initial=0, keepdims=True)
    smallest = jnp.min(jnp.where(real, pivots, jnp.inf), axis=-1, initial=jnp.inf)
    size = chol_diag.shape[-1]
    eps = jnp.finfo(chol_diag.dtype).eps
    tol = min(max(size, 1), 100) * eps * largest[..., 0]
    return jnp.all(jnp.isfinite(chol_diag)) & jnp.all(smallest > tol)


def factorise(plan: SchurPlan, values: Array) -> SchurFactor:
    """Assemble `V`, `W` and `S` row by row from `A`'s values, and factorise."""
    m, n = plan.shape
    nb, k, r = plan.num_blocks, plan.block_size, plan.reduced_size
    c = plan.coupled_size
    dtype = values.dtype
    vals = jnp.concatenate([values, jnp.zeros(1, dtype)])
    e = vals[plan.e_pos]  # (m, k) each row's entries in its block
    red = vals[plan.r_pos]  # (m, p) and in the reduced columns
    p = red.shape[1]

    # Padded block slots get 1 on the diagonal, and are solved as zeros.
    padded = plan.block_cols == n
    v = jax.ops.segment_sum(e[:, :, None] * e[:, None, :], plan.row_block, nb + 1)
    v = v[:nb] + jnp.eye(k, dtype=dtype) * padded[:, None, :].astype(dtype)
    w = jax.ops.segment_sum(
        (red[:, :, None] * e[:, None, :]).reshape(m * p, k),
        plan.w_index.reshape(-1),
        (nb + 1) * (c + 1),
    ).reshape(nb + 1, c + 1, k)[:nb, :c]
    v_chol = jnp.linalg.cholesky(v)
    # F_b = W_b L_b⁻ᵀ, so that W_b V_b⁻¹ W_bᵀ = F_b F_bᵀ.
    f = jax.lax.linalg.triangular_solve(
        v_chol, w, left_side=False, lower=True, transpose_a=True
    )

    # S's blocks: U's, less W V⁻¹ Wᵀ's, and 1 on the padding's diagonal (whose
    # unknowns are solved as zeros); the last block is a dummy.
    s = plan.group_size
    buffer = jnp.zeros((plan.s_blocks + 1) * s * s, dtype)
    buffer = _add_outer_sum(buffer, plan.gram_sum, red).at[plan.padding].add(1)
    blocks = _subtract_pairs(buffer.reshape(-1, s, s), plan.pairs, f)
    ok = _definite(jnp.diagonal(v_chol, axis1=-2, axis2=-1), ~padded)
    if plan.s_pattern is not None:
        return SchurFactor(v_chol, w, blocks.reshape(-1)[plan.value_order], ok)
    ng = plan.num_groups
    dense = jnp.swapaxes(blocks[: ng * ng].reshape(ng, ng, s, s), 1, 2)
    s_chol = jnp.linalg.cholesky(dense.reshape(r, r))
    ok = ok & _definite(jnp.diagonal(s_chol), plan.reduced_cols < n)
    return SchurFactor(v_chol, w, s_chol, ok)


def _subtract_pairs(blocks: Array, pairs: PairPlan | None, f: Array) -> Array:
    """`blocks` less `W V⁻¹ Wᵀ = Σ_b F_b F_bᵀ`, by the chunks of `pairs`."""
    if pairs is None:
        return blocks
    s = blocks.shape[1]
    k = f.shape[-1]
    chunks, length = pairs.left.shape
    pieces = jnp.concatenate([f.reshape(-1, s, k), jnp.zeros((1, s, k), f.dtype)])

    def products(left, right):
        def side(x):
            # (chunks, length, s, k) → (chunks, s, length · k)
            return jnp.swapaxes(pieces[x], -3, -2).reshape(*x.shape[:-1], s, length * k)

        # A broadcast product and a sum over the last axis: XLA's CPU batched
        # dots are about six times slower on these small shapes.
        return jnp.sum(side(left)[..., :, None, :] * side(right)[..., None, :, :], -1)

    # Bounded memory: the pieces of at most `_GATHERED` entries at a time.
    batch = max(1, _GATHERED // (2 * length * s * k))
    if batch >= chunks:
        out = products(pairs.left, pairs.right)
    else:
        steps = -(-chunks // batch)
        zero = pieces.shape[0] - 1  # padding chunks gather the zero piece

        def split(items: np.ndarray) -> np.ndarray:
            # In numpy: padding index constants in the program, XLA would fold it.
            items = np.pad(
                items, ((0, steps * batch - chunks), (0, 0)), constant_values=zero
            )
            return items.reshape(steps, batch, length)

        out = jax.lax.map(
            lambda lr: products(*lr), (split(pairs.left), split(pairs.right))
        ).reshape(steps * batch, s, s)[:chunks]
    return (
        blocks.at[pairs.target].add(-out).at[pairs.mirror].add(-jnp.swapaxes(out, 1, 2))
    )


def _add_outer_sum(out: Array, plan: OuterSumPlan | None, x: Array) -> Array:
    """`out` (S's blocks, flat) plus `Σᵢ xᵢ xᵢᵀ` for the rows `xᵢ` of `x`, batched
    by `plan`."""
    if plan is None:
        return out
    batches, size, _ = plan.place.shape
    u = plan.union_size
    x = jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)])[plan.items]
    # D[batch, place, item]: each row's entries at their places in the union.
    d = (
        jnp.zeros(batches * (u + 1) * size, x.dtype)
        .at[plan.place.reshape(-1)]
        .add(x.reshape(-1))
        .reshape(batches, u + 1, size)[:, :u]
    )
    gram = jnp.sum(d[:, :, None] * d[:, None], axis=-1)
    return out.at[plan.target].add(gram.reshape(-1))


def _block_solve(chol: Array, b: Array) -> Array:
    """`(L Lᵀ)⁻¹ b` for a batch of factors `L` and vectors `b`."""
    y = jax.lax.linalg.triangular_solve(chol, b[..., None], left_side=True, lower=True)
    x = jax.lax.linalg.triangular_solve(
        chol, y, left_side=True, lower=True, transpose_a=True
    )
    return x[..., 0]


def gram_solve(
    plan: SchurPlan, factor: SchurFactor, g: Array
) -> tuple[Array, Bool[Array, ""]]:
    """`(AᵀA)⁻¹ g`: eliminate the blocks, solve the reduced system, back-substitute;
    and whether the reduced solve succeeded."""
    n = plan.shape[1]
    r = plan.reduced_size
    block_cols = jnp.asarray(plan.block_cols)
    block_reduced = jnp.asarray(plan.block_reduced)
    reduced_cols = jnp.asarray(plan.reduced_cols)
    w = factor.coupling
    padded_g = jnp.concatenate([g, jnp.zeros(1, g.dtype)])
    g_e = padded_g[block_cols]
    y_e = _block_solve(factor.v_chol, g_e)
    w_y = jnp.sum(w * y_e[:, None, :], axis=-1)
    rhs = (
        padded_g[reduced_cols]
        - jax.ops.segment_sum(w_y.reshape(-1), block_reduced.reshape(-1), r + 1)[:r]
    )
    if plan.s_pattern is None:
        x_r, solved = _block_solve(factor.reduced, rhs), jnp.array(True)
    else:
        x_r, info = superlu_solve("symmetric", plan.s_pattern, factor.reduced, rhs)
        solved = info == 0
    x_c = jnp.concatenate([x_r, jnp.zeros(1, g.dtype)])[block_reduced]
    x_e = _block_solve(factor.v_chol, g_e - jnp.sum(w * x_c[:, :, None], axis=1))
    x = (
        jnp.zeros(n + 1, g.dtype)
        .at[reduced_cols]
        .set(x_r)
        .at[block_cols.reshape(-1)]
        .set(x_e.reshape(-1))[:n]
    )
    return x, solved


class _SchurState(eqx.Module):
    operator: SparseMatrixOperator
    factor: SchurFactor
    plan: SchurPlan = eqx.field(static=True)
    transpose: bool = eqx.field(static=True)


class SparseSchur(lx.AbstractLinearSolver[_SchurState]):
    r"""Least squares through the normal equations, eliminating small blocks first.

    For a tall operator $A$ this returns $x = (A^\top A)^{-1} A^\top b$, as
    [`asdex.lineax.SparseNormalEquations`][] does, but it factorises the Gram
    matrix the way dedicated bundle adjusters do. Columns with identical patterns
    (a point's 3 coordinates, a camera's 9 parameters) form blocks; blocks that
    share no row with each other (the points) are eliminated, which leaves the
    small reduced system $S = U - W V^{-1} W^\top$ over the other columns (the
    cameras):

    $$A^\top A = \begin{bmatrix} U & W \\ W^\top & V \end{bmatrix},\qquad
    V \text{ block diagonal}.$$

    `V`'s blocks and `S` are assembled from the nonzero values in JAX, and
    factorised by Cholesky. With at most `max_reduced` unknowns left, `S` is
    dense and everything runs in JAX, with no host callback: under `jax.jit`,
    `jax.vmap`, on GPUs, and inside Optimistix's loops like any JAX code. A
    larger `S` (a thousand cameras, each seeing points with a few dozen others)
    is assembled on its sparse pattern of camera pairs and factorised on the
    host as by [`asdex.lineax.SparseCholesky`][]: by LAPACK's banded Cholesky
    when the cameras' couplings form a band (a sequence of views), else by QDLDL.
    The structure is found from the pattern alone, once per pattern.
    Levenberg–Marquardt's damped stacks `[J; √λ I]` (from
    [`asdex.lineax.damped_operator`][] or `optx.LevenbergMarquardt`) are solved as
    $(J^\top J + \lambda I)\,x = J^\top r$.

    [`asdex.SparseLinearSolver`][] picks it for damped stacks where it
    eliminates at least 90% of the columns.

    The factorisation assumes full column rank, which a damped stack always has
    in exact arithmetic. When a pivot is negligible (a rank-deficient $A$, or
    damping lost in rounding, as with the gauge freedom of bundle adjustment
    near convergence), the solve falls back to
    [`asdex.lineax.SparseNormalEquations`][]'s minimum-norm solution on the host,
    unless `fallback=False`, which reports `lineax.RESULTS.singular` instead.
    The solution is refined once against the normal equations. The transposed
    (wide) system gets its minimum-norm solution $A (A^\top A)^{-1} b$, so
    reverse-mode derivatives through the solve work. Real dtypes only.
    """

    max_block: int = MAX_BLOCK
    max_reduced: int = MAX_REDUCED
    fallback: bool = True

    def init(
        self, operator: lx.AbstractLinearOperator, options: dict[str, Any]
    ) -> _SchurState:
        del options
        sparse = to_sparse("SparseSchur", operator)
        m, n = sparse.pattern.shape
        if m < n:
            raise ValueError(
                f"`SparseSchur` solves tall least-squares problems; got a {m}×{n} "
                "operator. Use `asdex.lineax.SparseNormalEquations()` for wide ones."
            )
        if not jnp.issubdtype(sparse.values.dtype, jnp.floating):
            raise ValueError(
                "`SparseSchur` supports real operators only, got dtype "
                f"{sparse.values.dtype}."
            )
        plan = schur_plan(sparse.pattern, self.max_block, self.max_reduced)
        factor = factorise(plan, sparse.values)
        return _SchurState(sparse, factor, plan, transpose=False)

    def compute(
        self, state: _SchurState, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        del options
        solution, ok = _schur_solve(state, vector)
        if not self.fallback:
            result = lx.RESULTS.where(ok, lx.RESULTS.successful, lx.RESULTS.singular)
            return solution, result, {}

        def keep(solution, vector):
            return solution, lx.RESULTS.successful

        def normal(solution, vector):
            del solution
            direct = DirectState(state.operator, transpose=state.transpose)
            solution, result, _ = SparseNormalEquations().compute(direct, vector, {})
            return solution, result

        solution, result = jax.lax.cond(ok, keep, normal, solution, vector)
        return solution, result, {}

    def transpose(self, state: _SchurState, options: dict[str, Any]):
        return (
            _SchurState(state.operator, state.factor, state.plan, not state.transpose),
            options,
        )

    def conj(self, state: _SchurState, options: dict[str, Any]):
        # Real operators only: conjugation changes nothing.
        return state, options

    def assume_full_rank(self) -> bool:
        return True


def _schur_solve(
    state: _SchurState, vector: PyTree[Array]
) -> tuple[PyTree[Array], Bool[Array, ""]]:
    """The least-squares solution (or, transposed, the minimum-norm one), and
    whether every factorisation and solve succeeded."""
    a = state.operator
    if state.transpose:
        # Aᵀ x = b is wide: x = A (AᵀA)⁻¹ b.
        b = a.input_structure.ravel(vector).astype(a.values.dtype)
        y, ok = _refined_solve(state, b)
        return a.output_structure.unravel(flat_mv(a, y)), ok
    b = a.output_structure.ravel(vector).astype(a.values.dtype)
    x, ok = _refined_solve(state, flat_mv(a, b, transpose=True))
    return a.input_structure.unravel(x), ok


def _refined_solve(state: _SchurState, g: Array) -> tuple[Array, Bool[Array, ""]]:
    """`(AᵀA)⁻¹ g`, refined once against `AᵀA` itself."""
    a, plan, factor = state.operator, state.plan, state.factor
    x, first = gram_solve(plan, factor, g)
    correction, second = gram_solve(plan, factor, g - _gram_mv(a, x))
    return x + correction, factor.ok & first & second


def _gram_mv(a: SparseMatrixOperator, x: Array) -> Array:
    return flat_mv(a, flat_mv(a, x), transpose=True)


SparseSchur.__init__.__doc__ = """**Arguments:**

- `max_block`: the largest block of columns with identical patterns that is
    eliminated (16 by default; a bundle adjuster's points have 3).
- `max_reduced`: the most unknowns left in the reduced system for it to be
    assembled and factorised densely, in JAX (2,000 by default: about 0.3 s per
    factorisation on a 2-core CPU). Larger reduced systems are assembled sparsely
    and factorised on the host, as by [`asdex.lineax.SparseCholesky`][].
- `fallback`: on a negligible pivot, solve by the minimum-norm normal equations
    instead (the default), or report `lineax.RESULTS.singular` (`False`).
"""
