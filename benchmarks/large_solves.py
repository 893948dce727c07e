"""Million-unknown Newton solves, against scipy's SuperLU and pyamg on the same matrices.

Run with `uv run --group benchmark python benchmarks/large_solves.py` (about six
minutes on 2 cores), or `--quick` for small sizes (seconds). Cases:

- `bratu1000`: the 2-D Bratu problem (`examples/bratu_newton.py`) at 1000²
  (10⁶ unknowns); target ≤ 20 s and ≤ 6 GB for the whole Newton solve;
- `bratu3d100`: the 3-D problem, 7-point stencil, at 100³ (10⁶ unknowns); target
  ≤ 60 s and ≤ 8 GB;
- `bratu2000`: 2-D at 2000² (4·10⁶ unknowns), for the slope of time against size.

Each case runs in a fresh Python process, as a user would: detection and coloring
(`asdex.jacobian_coloring`), then `optx.root_find` with
`asdex.optimistix.SparseNewton(rtol=atol=1e-8)` and the Jacobian tagged positive
definite, under `eqx.filter_jit`, compilation included. Its default linear solver,
`asdex.SparseLinearSolver()`, picks multigrid-preconditioned CG here
(`asdex.lineax.SparseAMG`). The peak memory is the process's peak resident set
size at the end of the solve.

Then, on the Jacobian at the solution, one linear solve `J x = 1` by each of:
asdex's `SparseAMG` under `jit` (compiled first; the hierarchy built in the
timed call), pyamg called
directly (`ruge_stuben_solver` plus its CG, to the same 1e-10), and scipy's
`spsolve` (SuperLU), the last in a child process stopped after `--spsolve-limit`
seconds, since its fill grows fast on 3-D grids.

`--orderings` adds direct factorisations of shifted 2-D and 3-D Laplacians under
fill-reducing orderings, minimum degree (SuperLU's MMD on `A + Aᵀ`, QDLDL's AMD)
against METIS nested dissection (`pymetis`, benchmark group only), and, for the
crossover of `asdex.SparseLinearSolver`, multigrid: pyamg's Ruge–Stüben setup
plus CG to 1e-10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _fresh import call, peak_rss_gb

CASES = {"bratu1000": (2, 1000), "bratu3d100": (3, 100), "bratu2000": (2, 2000)}
QUICK = {"bratu1000": (2, 150), "bratu3d100": (3, 30), "bratu2000": (2, 300)}
TARGETS = {
    "bratu1000": (20.0, 6.0),
    "bratu3d100": (60.0, 8.0),
    "bratu2000": None,  # reported for the slope
}


def run_case(dims: int, side: int, spsolve_limit: float) -> dict:
    """One case, in this process (called in a fresh one by `run`)."""
    started = time.perf_counter()
    import _examples  # noqa: F401  (puts examples/ on sys.path)
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import lineax as lx
    import numpy as np
    import optimistix as optx
    import pyamg
    from bratu_newton import bratu3d_residual, bratu_residual

    import asdex
    import asdex.optimistix as aox

    jax.config.update("jax_enable_x64", True)
    residual = bratu_residual if dims == 2 else bratu3d_residual
    u0 = jnp.zeros((side,) * dims)
    row: dict = {"dims": dims, "side": side, "unknowns": side**dims}
    row["import_s"] = time.perf_counter() - started

    start = time.perf_counter()
    coloring = asdex.jacobian_coloring(residual, u0, 1.0)
    row["detect_s"] = time.perf_counter() - start
    row["colors"] = coloring.num_colors
    row["nnz"] = coloring.pattern.nnz

    @eqx.filter_jit
    def solve(solver, u0):
        tags = frozenset({lx.positive_semidefinite_tag})
        return optx.root_find(residual, solver, u0, 1.0, max_steps=50, tags=tags)

    solver = aox.SparseNewton(rtol=1e-8, atol=1e-8, coloring=coloring)
    start = time.perf_counter()
    sol = solve(solver, u0)
    jax.block_until_ready(sol.value)
    row["solve_s"] = time.perf_counter() - start
    row["total_s"] = row["detect_s"] + row["solve_s"]
    row["peak_gb"] = peak_rss_gb()
    row["steps"] = int(sol.stats["num_steps"])
    row["residual"] = float(jnp.max(jnp.abs(residual(sol.value, 1.0))))
    row["linear_solver"] = type(
        asdex.SparseLinearSolver().select_solver(
            lx.TaggedLinearOperator(
                asdex.SparseJacobianOperator(residual, u0, 1.0, coloring=coloring),
                lx.positive_semidefinite_tag,
            )
        )
    ).__name__

    # ---------------------------------------------- one linear solve, three ways
    jac = asdex.jacobian_from_coloring(
        residual, coloring, u0, 1.0, output_format="scipy_csr"
    )
    matrix = jac(sol.value, 1.0)
    b = np.ones(matrix.shape[0])
    pattern = coloring.pattern
    values = np.asarray(matrix[pattern.rows, pattern.cols]).ravel()
    operator = asdex.lineax.SparseMatrixOperator(
        jnp.asarray(values), pattern, tags=lx.positive_semidefinite_tag
    )
    amg_solve = jax.jit(
        lambda op, b: lx.linear_solve(op, b, asdex.lineax.SparseAMG(reuse=False))
    )
    jax.block_until_ready(amg_solve(operator, jnp.asarray(b)).value)  # compile
    # Forget the factor and hierarchy of that call: the timed one builds its own.
    asdex.lineax._superlu.factor_cache.clear()
    asdex.lineax._amg.clear()
    start = time.perf_counter()
    x = amg_solve(operator, jnp.asarray(b)).value
    jax.block_until_ready(x)
    row["asdex_amg_s"] = time.perf_counter() - start
    row["asdex_amg_residual"] = float(np.max(np.abs(matrix @ np.asarray(x) - b)))

    start = time.perf_counter()
    ml = pyamg.ruge_stuben_solver(matrix)
    x = ml.solve(b, tol=1e-10, accel="cg", maxiter=100)
    row["pyamg_s"] = time.perf_counter() - start
    row["pyamg_residual"] = float(np.max(np.abs(matrix @ x - b)))
    row["spsolve_s"] = _spsolve_in_child(matrix, spsolve_limit)
    return row


_SPSOLVE = """
import sys, time
import numpy as np, scipy.sparse as sp, scipy.sparse.linalg as spla
matrix = sp.load_npz(sys.argv[1]).tocsc()
start = time.perf_counter()
spla.spsolve(matrix, np.ones(matrix.shape[0]))
print(time.perf_counter() - start)
"""


def _spsolve_in_child(matrix, limit: float) -> float | None:
    """scipy's `spsolve` time in a child process, or None past `limit` seconds."""
    import scipy.sparse as sp

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "matrix.npz")
        sp.save_npz(path, sp.csr_matrix(matrix))
        try:
            done = subprocess.run(
                [sys.executable, "-c", _SPSOLVE, path],
                capture_output=True,
                text=True,
                timeout=limit,
                check=True,
            )
        except subprocess.TimeoutExpired:
            return None
    return float(done.stdout.strip().splitlines()[-1])


def run(name: str, quick: bool, spsolve_limit: float) -> dict:
    """One case in a fresh process; its row, with the verdict against its target."""
    dims, side = (QUICK if quick else CASES)[name]
    row = call("large_solves", "run_case", dims, side, spsolve_limit)
    row["case"] = name
    target = TARGETS[name]
    row["target"] = (
        "slope" if target is None else f"≤ {target[0]:.0f} s, ≤ {target[1]:.0f} GB"
    )
    row["pass"] = row["residual"] <= 1e-8 and (
        target is None or (row["total_s"] <= target[0] and row["peak_gb"] <= target[1])
    )
    return row


def table(rows: list[dict], quick: bool = False) -> str:
    """The cases' table; in a quick run the verdicts read "(quick)": the targets
    are for the full sizes."""
    lines = [
        "| case | unknowns | colors | detection + coloring | Newton solve (with "
        "compile) | steps | max abs F | peak memory | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def verdict(r):
        return "(quick)" if quick else ("yes" if r["pass"] else "NO")

    for r in rows:
        lines.append(
            f"| {r['case']} ({r['dims']}-D, {r['side']}) | {r['unknowns']:,} "
            f"| {r['colors']} | {r['detect_s']:.1f} s | {r['solve_s']:.1f} s "
            f"| {r['steps']} | {r['residual']:.1e} | {r['peak_gb']:.2f} GB "
            f"| {r['target']} | {verdict(r)} |"
        )
    lines += [
        "",
        "One solve `J x = 1` with the Jacobian at the solution:",
        "",
        "| case | asdex SparseAMG (jit) | pyamg directly | scipy spsolve "
        "| spsolve / SparseAMG |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        sp_s = r["spsolve_s"]
        spsolve = "stopped" if sp_s is None else f"{sp_s:.2f} s"
        ratio = "—" if sp_s is None else f"{sp_s / r['asdex_amg_s']:.1f}×"
        lines.append(
            f"| {r['case']} | {r['asdex_amg_s']:.2f} s | {r['pyamg_s']:.2f} s "
            f"| {spsolve} | {ratio} |"
        )
    return "\n".join(lines)


def slope(rows: list[dict]) -> float | None:
    """The log–log slope of the whole solve's time between the 2-D cases."""
    import math

    two_d = sorted((r for r in rows if r["dims"] == 2), key=lambda r: r["unknowns"])
    if len(two_d) < 2:
        return None
    a, b = two_d[0], two_d[-1]
    return math.log(b["total_s"] / a["total_s"]) / math.log(
        b["unknowns"] / a["unknowns"]
    )


# ------------------------------------------------------------------ orderings


ORDERING_SIZES = [(2, 128), (2, 256), (2, 512), (3, 20), (3, 24), (3, 32)]
QUICK_ORDERING_SIZES = [(2, 64), (3, 12)]


def orderings(sizes) -> list[dict]:
    """Factorisation time and fill of minimum degree against nested dissection,
    and the time of a multigrid solve."""
    import numpy as np
    import pyamg
    import pymetis
    import qdldl
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    symmetric = dict(diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))
    rows = []
    for dims, side in sizes:
        matrix = _laplacian(dims, side)
        row = {"dims": dims, "side": side, "unknowns": matrix.shape[0]}
        start = time.perf_counter()
        lu = spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", **symmetric)
        row["mmd_s"], row["mmd_nnz"] = time.perf_counter() - start, lu.L.nnz
        start = time.perf_counter()
        ldl = qdldl.Solver(sp.triu(matrix, format="csc"), upper=True)
        row["amd_s"] = time.perf_counter() - start
        row["amd_nnz"] = ldl.factors()[0].nnz + matrix.shape[0]
        graph = sp.csr_array(matrix - sp.diags_array(matrix.diagonal()))
        graph.eliminate_zeros()
        start = time.perf_counter()
        adjacency = pymetis.CSRAdjacency(graph.indptr, graph.indices)
        perm, _ = pymetis.nested_dissection(adjacency)
        perm = np.asarray(perm)
        permuted = matrix[perm][:, perm].tocsc()
        lu = spla.splu(permuted, permc_spec="NATURAL", **symmetric)
        row["nd_s"], row["nd_nnz"] = time.perf_counter() - start, lu.L.nnz
        start = time.perf_counter()
        hierarchy = pyamg.ruge_stuben_solver(matrix)
        hierarchy.solve(np.ones(matrix.shape[0]), tol=1e-10, accel="cg")
        row["amg_s"] = time.perf_counter() - start
        rows.append(row)
    return rows


def _laplacian(dims: int, side: int):
    import numpy as np
    import scipy.sparse as sp

    t = sp.diags_array(
        [-np.ones(side - 1), 2 * np.ones(side), -np.ones(side - 1)],
        offsets=[-1, 0, 1],
    )
    eye = sp.eye_array(side)
    if dims == 2:
        a = sp.kron(t, eye) + sp.kron(eye, t)
    else:
        a = (
            sp.kron(sp.kron(t, eye), eye)
            + sp.kron(sp.kron(eye, t), eye)
            + sp.kron(sp.kron(eye, eye), t)
        )
    return (a + 0.1 * sp.eye_array(a.shape[0])).tocsr()


def orderings_table(rows: list[dict]) -> str:
    lines = [
        "| grid | unknowns | SuperLU, MMD on A + Aᵀ | QDLDL, AMD "
        "| SuperLU, METIS nested dissection | multigrid CG (setup + solve) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dims']}-D {r['side']} | {r['unknowns']:,} "
            f"| {r['mmd_s']:.2f} s, nnz(L) {r['mmd_nnz']:,} "
            f"| {r['amd_s']:.2f} s, nnz(L) {r['amd_nnz']:,} "
            f"| {r['nd_s']:.2f} s, nnz(L) {r['nd_nnz']:,} | {r['amg_s']:.3f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--spsolve-limit",
        type=float,
        default=120.0,
        help="seconds before scipy's spsolve is stopped",
    )
    parser.add_argument("--orderings", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name in args.cases:
        rows.append(run(name, args.quick, args.spsolve_limit))
        print(f"{name}: {rows[-1]['total_s']:.1f} s", file=sys.stderr, flush=True)
    print(table(rows, args.quick))
    s = slope(rows)
    if s is not None:
        print(f"\nslope of the whole solve's time against unknowns (2-D): {s:.2f}")
    result = {"cases": rows, "slope": s}
    if args.orderings:
        sizes = QUICK_ORDERING_SIZES if args.quick else ORDERING_SIZES
        result["orderings"] = orderings(sizes)
        print()
        print(orderings_table(result["orderings"]))
    return result


if __name__ == "__main__":
    main()
