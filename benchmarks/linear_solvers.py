"""Sparse direct solves from JAX against scipy's SuperLU called directly.

Run with `uv run python benchmarks/linear_solvers.py` (about a minute), or add
`--quick` for a smoke run at small sizes (seconds).

The problem is the 2-D five-point Laplacian on an N × N grid (N² unknowns, Dirichlet
boundary), at N = 64, 256 and 512. For each size the script times, best of
`--repeats`:

- `scipy splu`: `scipy.sparse.linalg.splu` on the CSC matrix, then one solve, called
  directly from Python (COLAMD ordering, as `SparseLU` uses; and the symmetric mode
  that `SparseCholesky` uses);
- `SparseLU` / `SparseCholesky`: `lineax.linear_solve` through asdex's solvers,
  jitted with the operator passed as an argument, after compilation. Each repeat
  perturbs the values so that the factorisation cache cannot help: this is
  factorise + solve, and its difference from scipy is the cost of the callback
  (transfers, building the scipy matrix, checks);
- `re-solve`: the same matrix again, which hits the factorisation cache (a solve
  only, as in a chord method or a transposed solve);
- `grad`: `jax.grad` of a scalar of the solution with respect to the matrix values
  and right-hand side, which needs the solve and a transposed solve: with the cache,
  one factorisation;
- `dense lx.LU`: Lineax's dense LU on the same matrix (N = 64 only: 4096², 128 MB).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from _timing import best_in_turns, best_of

from asdex.lineax import SparseCholesky, SparseLU, SparseMatrixOperator
from asdex.lineax._superlu import factor_cache

SIZES = (64, 256, 512)
QUICK_SIZES = (16, 32)
DENSE_MAX_N = 64


def laplacian(side: int) -> sp.csr_array:
    """The five-point Laplacian on a `side × side` interior grid (positive definite)."""
    t = sp.diags_array(
        [-np.ones(side - 1), 2 * np.ones(side), -np.ones(side - 1)],
        offsets=[-1, 0, 1],
        shape=(side, side),
    )
    eye = sp.eye_array(side)
    return sp.csr_array(sp.kron(eye, t) + sp.kron(t, eye))


def make_solve(solver):
    @jax.jit
    def solve(operator, vector, scale):
        # The operator comes in as an argument, so its index arrays are arguments
        # of the compiled program, not constants.
        operator = SparseMatrixOperator(
            operator.values * scale,
            operator.pattern,
            tags=operator.tags,
            indices=operator.indices,
        )
        return lx.linear_solve(operator, vector, solver).value

    return solve


@jax.jit
def grad(operator, vector, scale):
    def loss(values, vector):
        op = SparseMatrixOperator(
            values, operator.pattern, tags=operator.tags, indices=operator.indices
        )
        return jnp.sum(lx.linear_solve(op, vector, SparseLU()).value ** 2)

    return jax.grad(loss, argnums=(0, 1))(operator.values * scale, vector)


def measure(side: int, repeats: int) -> dict:
    a = laplacian(side)
    n = a.shape[0]
    b = np.ones(n)
    csc = sp.csc_array(a)
    row: dict = {"N": side, "unknowns": n, "nnz": a.nnz}
    psd = SparseMatrixOperator.from_scipy(a, tags=lx.positive_semidefinite_tag)
    vector = jnp.asarray(b)

    def scipy_lu(k):
        return spla.splu(csc * (1 + 1e-3 * (k + 1)), permc_spec="COLAMD").solve(b)

    def scipy_sym(k):
        return spla.splu(
            csc * (1 + 1e-3 * (k + 1)),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options=dict(SymmetricMode=True),
        ).solve(b)

    for name, solver, reference in (
        ("lu", SparseLU(), scipy_lu),
        ("cholesky", SparseCholesky(), scipy_sym),
    ):
        solve = make_solve(solver)
        x = solve(psd, vector, 1.0)  # compile
        row[f"{name}_residual"] = float(np.abs(a @ np.asarray(x) - b).max())
        factor_cache.clear()
        # Each repeat scales the values: a new matrix, so a new factorisation.
        best = best_in_turns(
            {
                "scipy": reference,
                "asdex": lambda k, f=solve: f(psd, vector, 1.0 + 1e-3 * (k + 1)),
            },
            repeats,
            vary=True,
        )
        row[f"scipy_{name}"], row[name] = best["scipy"], best["asdex"]
        solve(psd, vector, 2.0)
        row[f"{name}_resolve"] = best_of(lambda f=solve: f(psd, vector, 2.0), repeats)

    grad(psd, vector, 1.0)
    factor_cache.clear()
    misses = factor_cache.misses
    row["grad"] = best_of(
        lambda k: grad(psd, vector, 1.0 + 1e-3 * (k + 1)), repeats, vary=True
    )
    row["grad_factorisations"] = (factor_cache.misses - misses) / repeats

    if side <= DENSE_MAX_N:
        dense = lx.MatrixLinearOperator(jnp.asarray(a.toarray()))
        dense_solve = jax.jit(
            lambda op, v, s: lx.linear_solve(op * s, v, lx.LU()).value
        )
        dense_solve(dense, vector, 1.0)
        row["dense_lu"] = best_of(
            lambda k: dense_solve(dense, vector, 1.0 + 1e-3 * (k + 1)),
            repeats,
            vary=True,
        )
    return row


def table(rows: list[dict]) -> str:
    def s(row, key):
        return f"{row[key]:.4f}" if key in row else "—"

    lines = [
        "| N | unknowns | nnz | scipy splu (COLAMD) | SparseLU | callback overhead "
        "| scipy splu (symmetric) | SparseCholesky | re-solve (cached) "
        "| grad (factorisations) | dense lx.LU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        overhead = r["lu"] - r["scipy_lu"]
        lines.append(
            f"| {r['N']} | {r['unknowns']} | {r['nnz']} | {s(r, 'scipy_lu')} "
            f"| {s(r, 'lu')} | {overhead:+.4f} | {s(r, 'scipy_cholesky')} "
            f"| {s(r, 'cholesky')} | {s(r, 'lu_resolve')} "
            f"| {s(r, 'grad')} ({r['grad_factorisations']:.0f}) | {s(r, 'dense_lu')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", help="grid sides N")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    print(
        f"2-D Laplacian, times in seconds (best of {args.repeats}); "
        f"backend {jax.default_backend()}"
    )
    rows = [measure(side, args.repeats) for side in sizes]
    print(table(rows))
    for r in rows:
        print(
            f"N={r['N']}: max residual |Ax - b| SparseLU {r['lu_residual']:.1e}, "
            f"SparseCholesky {r['cholesky_residual']:.1e}"
        )
    return rows


if __name__ == "__main__":
    main()
