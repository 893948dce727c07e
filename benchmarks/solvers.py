"""Sparse Newton, Levenberg–Marquardt and Newton-minimisation solves against their targets.

Run with `uv run python benchmarks/solvers.py` (about two minutes), or add
`--quick` for a smoke run at small sizes (seconds).

Cases:

- `bratu64`: the 2-D Bratu problem at N = 64 (4,096 unknowns), solved by stock
  `optx.Newton` with its default dense linear solver, by the same with
  `linear_solver=asdex.SparseLinearSolver()` (the drop-in), and by
  `asdex.optimistix.SparseNewton` with a precomputed coloring and the Jacobian
  declared positive definite (sparse Cholesky). Times are the best of a few
  solves after compilation; the solutions must agree to 1e-8.
- `bratu256`, `bratu512`: the same at N = 256 and 512, drop-in and dedicated,
  end to end: detection, coloring, compilation and the solve (not the Python and
  JAX start-up). The peak memory is the process's peak resident set size.
- `curves`: 10,000 damped sinusoids (40,000 parameters, 1,000,000 residuals)
  fitted jointly by `asdex.optimistix.SparseLevenbergMarquardt`, end to end, and
  checked against 10,000 individual dense fits.
- `rosenbrock`: the chained Rosenbrock function at n = 100,000 from x = 0.5,
  minimised by `asdex.optimistix.SparseNewtonMinimiser`, end to end.

For each solve the split of a step is reported: the derivative (the compressed
Jacobian or Hessian, timed on its own after compilation, times the number of
derivatives computed), the host solve (measured inside the solve: the sparse
factorisation by SuperLU or QDLDL, or the multigrid setup, with the normal
equations formed, and the solves with it), and the rest (function evaluations,
products, transfers to and from the host, the loop).

Every case runs in a fresh Python process, so that memory and caches of one case
do not affect another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import _examples  # noqa: F401  (puts examples/ on sys.path)
import bratu_newton
import curve_fitting
import equinox as eqx
import jax
import jax.numpy as jnp
import newton_minimise
import optimistix as optx
from _fresh import peak_rss_gb
from _timing import best_of

import asdex
import asdex.optimistix as aox
from asdex.lineax import _superlu
from asdex.lineax._derivative_operators import (
    compressed_hessian,
    compressed_jacobian,
    compression,
)
from asdex.lineax._solver.auto import AMG_MIN_SIZE

CASES = ("bratu64", "bratu256", "bratu512", "curves", "rosenbrock")
FULL = {"bratu64": 64, "bratu256": 256, "bratu512": 512, "curves": 10_000}
FULL["rosenbrock"] = 100_000
QUICK = {"bratu64": 12, "bratu256": 16, "bratu512": 20, "curves": 50}
QUICK["rosenbrock"] = 1_000
TARGETS = {
    "bratu64": "≥ 100× faster than dense optx.Newton after compile",
    "bratu256": "≤ 5 s end to end, residual ≤ 1e-8",
    "bratu512": "≤ 30 s end to end, peak memory ≤ 4 GB",
    "curves": "≤ 20 s, every curve within 1e-6 of its own fit",
    "rosenbrock": "≤ 20 s, gradient norm ≤ 1e-8",
}


# ---------------------------------------------------------------- instruments


class FactorTimer:
    """Accumulates the time of the host's linear solves, and counts factorisations.

    The time is that of whole host solves (factorisation or multigrid setup, and
    the solves), so that an iterative solve, whose cost is in its iterations, is
    counted like a direct one.
    """

    def __init__(self):
        self.seconds = 0.0
        self.count = 0
        self._solve = _superlu._solve_host
        self._factorise = _superlu._factorise

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self._solve(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        def counted(*args):
            self.count += 1
            return self._factorise(*args)

        _superlu._solve_host = timed
        _superlu._factorise = counted
        _superlu.factor_cache.clear()
        return self

    def __exit__(self, *exc):
        _superlu._solve_host = self._solve
        _superlu._factorise = self._factorise


def split(total: float, steps: int, derivative: float, count: int, factor: FactorTimer):
    """Per-step seconds: derivative, factorisation, rest."""
    steps = max(steps, 1)
    d = derivative * count / steps
    f = factor.seconds / steps
    return {"derivative": d, "factorisation": f, "rest": total / steps - d - f}


# ---------------------------------------------------------------- Bratu


def _bratu_jacobian_seconds(u, lam, coloring, repeats):
    comp = compression(coloring)
    jac = eqx.filter_jit(
        lambda comp, u: compressed_jacobian(bratu_newton.bratu_residual, u, lam, comp)[
            2
        ]
    )
    jac(comp, u).block_until_ready()
    return best_of(lambda: jac(comp, u), repeats)


def _run_solve(fn, *args):
    """`(solution, seconds, factor timer)` of one solve."""
    with FactorTimer() as factor:
        start = time.perf_counter()
        sol = fn(*args)
        jax.block_until_ready(sol.value)
        seconds = time.perf_counter() - start
    return sol, seconds, factor


def bratu_after_compile(n: int, repeats: int) -> dict:
    lam = 1.0
    u0 = jnp.zeros((n, n))
    out: dict = {"size": n * n}
    coloring = asdex.jacobian_coloring(bratu_newton.bratu_residual, u0, lam)
    solver = aox.SparseNewton(rtol=1e-10, atol=1e-10, coloring=coloring)
    dedicated = eqx.filter_jit(bratu_newton.solve_dedicated)
    drop_in = eqx.filter_jit(bratu_newton.solve_drop_in)
    dense_solver = optx.Newton(rtol=1e-10, atol=1e-10)
    dense = eqx.filter_jit(
        lambda u0: optx.root_find(
            bratu_newton.bratu_residual, dense_solver, u0, lam, max_steps=50
        )
    )
    jacobian = _bratu_jacobian_seconds(u0, lam, coloring, repeats)
    results = {}
    for name, fn, args in (
        ("dedicated", dedicated, (solver, u0, lam)),
        ("drop_in", drop_in, (u0, lam)),
        ("dense", dense, (u0,)),
    ):
        sol = fn(*args)  # compile
        jax.block_until_ready(sol.value)
        best, best_factor = float("inf"), FactorTimer()
        for _ in range(repeats):
            sol, seconds, factor = _run_solve(fn, *args)
            if seconds < best:
                best, best_factor = seconds, factor
        steps = int(sol.stats["num_steps"])
        results[name] = sol.value
        residual = float(jnp.max(jnp.abs(bratu_newton.bratu_residual(sol.value, lam))))
        row = {"seconds": best, "steps": steps, "residual": residual}
        if name != "dense":
            row["split"] = split(best, steps, jacobian, steps, best_factor)
        out[name] = row
    out["difference"] = max(
        float(jnp.max(jnp.abs(results[k] - results["dense"])))
        for k in ("dedicated", "drop_in")
    )
    out["speedup"] = out["dense"]["seconds"] / out["dedicated"]["seconds"]
    out["speedup_drop_in"] = out["dense"]["seconds"] / out["drop_in"]["seconds"]
    out["pass"] = out["speedup"] >= 100 and out["difference"] <= 1e-8
    return out


def bratu_end_to_end(n: int, repeats: int, which: str) -> dict:
    lam = 1.0
    u0 = jnp.zeros((n, n))
    out: dict = {"size": n * n, "variant": which}
    start = time.perf_counter()
    with FactorTimer() as factor:
        if which == "dedicated":
            coloring = asdex.jacobian_coloring(bratu_newton.bratu_residual, u0, lam)
            solver = aox.SparseNewton(rtol=1e-10, atol=1e-10, coloring=coloring)
            fn = eqx.filter_jit(bratu_newton.solve_dedicated)
            args = (solver, u0, lam)
        else:
            coloring = None
            fn = eqx.filter_jit(bratu_newton.solve_drop_in)
            args = (u0, lam)
        sol = fn(*args)
        jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    out["peak_gb"] = peak_rss_gb()
    steps = int(sol.stats["num_steps"])
    out["seconds"] = seconds
    out["steps"] = steps
    out["residual"] = float(
        jnp.max(jnp.abs(bratu_newton.bratu_residual(sol.value, lam)))
    )
    out["factorisations"] = factor.count
    # The steady state, to split a step: the same solve again, compiled. The
    # drop-in's Jacobian (a `vmap` of the linearised map over the seeds) happens
    # inside the solve and is counted in "rest".
    _, again, factor = _run_solve(fn, *args)
    out["seconds_again"] = again
    jacobian = (
        0.0 if coloring is None else _bratu_jacobian_seconds(u0, lam, coloring, repeats)
    )
    out["split"] = split(again, steps, jacobian, steps, factor)
    return out


# ---------------------------------------------------------------- curves


def curves(num_curves: int, repeats: int) -> dict:
    t, observed, guess, _ = curve_fitting.make_curves(num_curves, 100)
    data = (t, observed)
    start = time.perf_counter()
    with FactorTimer():
        coloring = asdex.jacobian_coloring(curve_fitting.curve_residuals, guess, data)
        solver = aox.SparseLevenbergMarquardt(rtol=1e-10, atol=1e-10, coloring=coloring)
        sol = curve_fitting.fit_jointly(solver, guess, data)
        joint = jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    peak = peak_rss_gb()  # before the individual fits, which batch 10,000 solves
    steps = int(sol.stats["num_steps"])
    _, again, factor = _run_solve(curve_fitting.fit_jointly, solver, guess, data)
    comp = compression(coloring)
    jac = eqx.filter_jit(
        lambda comp, p: compressed_jacobian(
            curve_fitting.curve_residuals, p, data, comp
        )[2]
    )
    jac(comp, joint).block_until_ready()
    jacobian = best_of(lambda: jac(comp, joint), repeats)
    individual = jax.block_until_ready(
        curve_fitting.fit_individually(guess, t, observed)
    )
    difference = float(jnp.max(jnp.abs(joint - individual)))
    return {
        "size": int(guess.size),
        "residuals": int(observed.size),
        "seconds": seconds,
        "seconds_again": again,
        "steps": steps,
        "difference": difference,
        "split": split(again, steps, jacobian, steps, factor),
        "peak_gb": peak,
        "pass": seconds <= 20 and difference <= 1e-6,
    }


# ---------------------------------------------------------------- Rosenbrock


def rosenbrock(n: int, repeats: int) -> dict:
    f = newton_minimise.chained_rosenbrock
    x0 = jnp.full(n, 0.5)
    start = time.perf_counter()
    with FactorTimer():
        coloring = asdex.hessian_coloring(f, x0)
        solver = aox.SparseNewtonMinimiser(rtol=1e-12, atol=1e-12, coloring=coloring)
        sol = newton_minimise.minimise(solver, x0)
        x = jax.block_until_ready(sol.value)
    seconds = time.perf_counter() - start
    steps = int(sol.stats["num_steps"])
    accepted = int(sol.stats["num_accepted_steps"])
    _, again, factor = _run_solve(newton_minimise.minimise, solver, x0)
    comp = compression(coloring)
    hess = eqx.filter_jit(lambda comp, x: compressed_hessian(f, x, None, comp)[3])
    hess(comp, x).block_until_ready()
    hessian = best_of(lambda: hess(comp, x), repeats)
    gradient_norm = float(jnp.linalg.norm(jax.grad(f)(x)))
    return {
        "size": n,
        "seconds": seconds,
        "seconds_again": again,
        "steps": steps,
        "accepted": accepted,
        "gradient_norm": gradient_norm,
        # A Hessian per accepted step; a factorisation per step.
        "split": split(again, steps, hessian, accepted, factor),
        "peak_gb": peak_rss_gb(),
        "pass": seconds <= 20 and gradient_norm <= 1e-8,
    }


# ---------------------------------------------------------------- driver


VARIANTS = ("drop_in", "dedicated")


def run_case(name: str, quick: bool, repeats: int, variant: str | None = None) -> dict:
    """One case; for `bratu256` and `bratu512`, one variant or both."""
    jax.config.update("jax_enable_x64", True)
    size = (QUICK if quick else FULL)[name]
    if name == "bratu64":
        out = bratu_after_compile(size, repeats)
    elif name in ("bratu256", "bratu512"):
        variants = VARIANTS if variant is None else (variant,)
        out = {v: bratu_end_to_end(size, repeats, v) for v in variants}
    elif name == "curves":
        out = curves(size, repeats)
    else:
        out = rosenbrock(size, repeats)
    out["case"] = name
    return out


def _bratu_pass(name: str, out: dict) -> bool:
    limit = 5.0 if name == "bratu256" else 30.0
    ok = all(
        out[v]["seconds"] <= limit and out[v]["residual"] <= 1e-8 for v in VARIANTS
    )
    if name == "bratu512":
        ok = ok and all(out[v]["peak_gb"] <= 4 for v in VARIANTS)
    return ok


def _subprocess(name: str, quick: bool, repeats: int, variant: str | None) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--case", name]
    command += ["--repeats", str(repeats)] + (["--quick"] if quick else [])
    command += ["--variant", variant] if variant else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"case {name} failed:\n{done.stdout}\n{done.stderr}")


def run(name: str, quick: bool, repeats: int, in_process: bool) -> dict:
    """A case with its verdict; the Bratu variants each in a fresh process."""
    if in_process:
        out = run_case(name, quick, repeats)
    elif name in ("bratu256", "bratu512"):
        out = {"case": name}
        for v in VARIANTS:
            out[v] = _subprocess(name, quick, repeats, v)[v]
    else:
        out = _subprocess(name, quick, repeats, None)
    if name in ("bratu256", "bratu512"):
        out["pass"] = _bratu_pass(name, out)
    return out


def _fmt_split(s: dict) -> str:
    return (
        f"{s['derivative'] * 1e3:.1f} / {s['factorisation'] * 1e3:.1f} / "
        f"{s['rest'] * 1e3:.1f}"
    )


def table(results: dict[str, dict]) -> str:
    lines = [
        "| case | unknowns | solver | steps | time (s) | result | per step, ms: "
        "derivative / host solve / rest | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        target, met = TARGETS[name], "yes" if r["pass"] else "NO"
        if name == "bratu64":
            for variant, label in (
                ("dense", "optx.Newton, dense LU"),
                ("drop_in", "optx.Newton + SparseLinearSolver"),
                ("dedicated", "SparseNewton, Cholesky"),
            ):
                v = r[variant]
                result = f"max abs F {v['residual']:.1e}"
                row_target = row_met = "—"  # the dense baseline has no target
                if variant != "dense":
                    speed = r[
                        "speedup" if variant == "dedicated" else "speedup_drop_in"
                    ]
                    result += f"; {speed:.0f}× faster than dense"
                    # Each sparse variant is judged on its own speed-up.
                    row_target, row_met = target, "yes" if speed >= 100 else "NO"
                lines.append(
                    f"| {name} | {r['size']:,} | {label} | {v['steps']} "
                    f"| {v['seconds']:.4f} (after compile) | {result} "
                    f"| {_fmt_split(v['split']) if 'split' in v else '—'} "
                    f"| {row_target} | {row_met} |"
                )
            lines.append(
                f"| {name} | | | | | max abs difference to dense "
                f"{r['difference']:.1e} | | same solution to 1e-8 | "
                f"{'yes' if r['difference'] <= 1e-8 else 'NO'} |"
            )
        elif name.startswith("bratu"):
            # What `SparseLinearSolver` picks for the tagged (SPD) Jacobian.
            size = r["dedicated"]["size"]
            spd = "multigrid CG" if size >= AMG_MIN_SIZE else "Cholesky"
            for variant, label in (
                ("drop_in", "optx.Newton + SparseLinearSolver (LU)"),
                ("dedicated", f"SparseNewton, {spd}"),
            ):
                v = r[variant]
                extra = f"; again {v['seconds_again']:.2f} s"
                lines.append(
                    f"| {name} | {v['size']:,} | {label} | {v['steps']} "
                    f"| {v['seconds']:.2f} end to end{extra} "
                    f"| max abs F {v['residual']:.1e}; peak {v['peak_gb']:.2f} GB "
                    f"| {_fmt_split(v['split'])} | {target} | {met} |"
                )
        elif name == "curves":
            lines.append(
                f"| {name} | {r['size']:,} ({r['residuals']:,} residuals) "
                f"| SparseLevenbergMarquardt | {r['steps']} | {r['seconds']:.2f} end to "
                f"end; again {r['seconds_again']:.2f} | max abs difference to "
                f"individual fits {r['difference']:.1e}; peak {r['peak_gb']:.2f} GB "
                f"| {_fmt_split(r['split'])} | {target} | {met} |"
            )
        else:
            lines.append(
                f"| {name} | {r['size']:,} | SparseNewtonMinimiser | {r['steps']} "
                f"({r['accepted']} accepted) | {r['seconds']:.2f} end to end; again "
                f"{r['seconds_again']:.2f} | gradient norm {r['gradient_norm']:.1e}; "
                f"peak {r['peak_gb']:.2f} GB | {_fmt_split(r['split'])} "
                f"| {target} | {met} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", choices=CASES, help="run one case, print JSON")
    parser.add_argument("--variant", choices=VARIANTS, help="with --case bratu*")
    parser.add_argument(
        "--in-process", action="store_true", help="run every case in this process"
    )
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    args = parser.parse_args(argv)
    if args.case:
        out = run_case(args.case, args.quick, args.repeats, args.variant)
        print(json.dumps(out))
        return {args.case: out}
    results = {
        name: run(name, args.quick, args.repeats, args.in_process)
        for name in args.cases
    }
    print(
        f"Sparse solvers ({'quick sizes' if args.quick else 'target sizes'}); "
        f"backend {jax.default_backend()}, {os.cpu_count()} CPU cores"
    )
    print(table(results))
    return results


if __name__ == "__main__":
    main()
