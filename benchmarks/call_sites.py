"""Sparse derivatives where users call them, against sparsejac given asdex's pattern.

Run with `uv run --group benchmark python benchmarks/call_sites.py` (a few
minutes), `--quick` for small sizes, `--cases` to pick. Everything runs in
float64. Four cases, each at its large size and at 1/16 of it:
`diff2` ((x[1:] - x[:-1])², n = 10⁶), the 2-D Brusselator residual (512²), the
chained Rosenbrock Hessian (10⁶) and the 2-D Bratu energy's Hessian (512²).

sparsejac (`sparsejac.jacfwd(f or jax.grad(f), sparsity=asdex's pattern)`) and
asdex (`asdex.jacobian` / `asdex.hessian`) are timed side by side at each call site:

- `jit`: `jax.jit(lambda x: jac_fn(x))`, the derivative closed over;
- `jit(arg)`: `jax.jit(lambda j, x: j(x))(jac_fn, x)`, passed as an argument
  (asdex only: sparsejac's function is not a PyTree);
- `while_loop`: 8 evaluations in a `lax.fori_loop` inside one `jit`, each at a
  point moved by the last result (as an Optimistix loop calls it);
- `vmap`: `jax.jit(jax.vmap(jac_fn))` over 8 inputs.

Each case runs in a fresh process (`_fresh.call`), so that no case times the
memory or caches an earlier one left; asdex and sparsejac are timed side by side
in it. `--rounds 2` measures everything twice, to show how much the ratios move
between runs on a noisy machine. Steady state is the best of `--repeats` calls,
asdex's and sparsejac's taken in turns, reported as multiples of one jitted call
of `f` (Jacobians) or `jax.grad(f)` (Hessians); the ratio is sparsejac's time
over asdex's (above 1: asdex is faster). Compile + first call of
the closed-over `jit` is reported for both. The output is the BCOO's data (asdex)
or `.data` of sparsejac's BCOO.
"""

from __future__ import annotations

import argparse
import functools as ft
import math
import warnings

import _examples  # noqa: F401  (puts examples/ on sys.path)
import _fresh
import jax
import jax.numpy as jnp
from _timing import best_in_turns, best_of, timed
from problems import (
    bratu_energy,
    brusselator,
    chained_rosenbrock,
    initial_state,
)

import asdex

jax.config.update("jax_enable_x64", True)


def _diff2(x):
    return (x[1:] - x[:-1]) ** 2


def make_case(name: str, scale: int):
    """`(f, x, kind)` at `1/scale` of the large size (flat inputs and outputs, as
    sparsejac needs)."""
    n = 1_000_000 // scale
    side = 512 // int(math.isqrt(scale))
    if name == "diff2":
        return _diff2, jnp.linspace(0.0, 1.0, n), "jacobian"
    if name == "brusselator":
        x0 = initial_state(side)
        shape = x0.shape
        return (
            lambda v: brusselator(v.reshape(shape)).reshape(-1),
            x0.reshape(-1),
            "jacobian",
        )
    if name == "rosenbrock":
        return chained_rosenbrock, jnp.linspace(0.0, 1.0, n), "hessian"
    if name == "bratu":
        return (
            lambda v: bratu_energy(v.reshape(side, side)),
            jnp.full((side * side,), 0.1),
            "hessian",
        )
    raise ValueError(name)


CASES = ("diff2", "brusselator", "rosenbrock", "bratu")


def _first_call(make) -> float:
    jax.clear_caches()
    fn, args = make()
    return timed(lambda: fn(*args))[0]


def _loop(evaluate):
    """8 evaluations in a `fori_loop`, each at a point moved by the last result."""

    def run(x):
        def body(_, carry):
            x, total = carry
            data = evaluate(x)
            total = total + jnp.sum(data)
            return x + 1e-9 * total, total

        return jax.lax.fori_loop(0, 8, body, (x, jnp.zeros((), x.dtype)))[1]

    return jax.jit(run)


def measure(name: str, scale: int, repeats: int) -> dict:
    import sparsejac

    f, x, kind = make_case(name, scale)
    target = f if kind == "jacobian" else jax.grad(f)
    build = asdex.jacobian if kind == "jacobian" else asdex.hessian
    derivative = build(f, x)
    sparsity = derivative.coloring.pattern.to_bcoo()
    theirs = sparsejac.jacfwd(target, sparsity=sparsity)
    xs = jnp.stack([x * (1 + 0.01 * k) for k in range(8)])
    base = best_of(ft.partial(jax.jit(target), x), repeats, warm=True)
    sites = {
        "jit": (
            jax.jit(lambda v: derivative(v).data),
            jax.jit(lambda v: theirs(v).data),
            (x,),
        ),
        "while_loop": (
            _loop(lambda v: derivative(v).data),
            _loop(lambda v: theirs(v).data),
            (x,),
        ),
        "vmap": (
            jax.jit(jax.vmap(lambda v: derivative(v).data)),
            jax.jit(jax.vmap(lambda v: theirs(v).data)),
            (xs,),
        ),
    }
    row = {"name": name, "size": x.size, "colors": derivative.coloring.num_colors}
    for site, (ours, other, args) in sites.items():
        best = best_in_turns(
            {"ours": ft.partial(ours, *args), "other": ft.partial(other, *args)},
            repeats,
            warm=True,
        )
        t_ours, t_other = best["ours"], best["other"]
        per = 8 if site != "jit" else 1
        row[site] = (t_ours / per / base, t_other / per / base)
    argument = jax.jit(lambda j, v: j(v).data)
    row["jit(arg)"] = best_of(ft.partial(argument, derivative, x), repeats, warm=True)
    row["jit(arg)"] /= base
    row["first_call"] = (
        _first_call(lambda: (jax.jit(lambda v: derivative(v).data), (x,))),
        _first_call(lambda: (jax.jit(lambda v: theirs(v).data), (x,))),
    )
    return row


def report(rows: list[dict]) -> list[float]:
    """Prints the table; returns the ratios (sparsejac's time / asdex's)."""
    print(
        "\n| case | n | colors | jit: asdex / sparsejac (ratio) | jit(arg) asdex "
        "| while_loop (ratio) | vmap ×8 (ratio) | compile + first call asdex / "
        "sparsejac (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for r in rows:
        cells = []
        for site in ("jit", "while_loop", "vmap"):
            ours, other = r[site]
            ratios.append(other / ours)
            cells.append(f"{ours:.1f} / {other:.1f} ({other / ours:.2f})")
        arg_ratio = r["jit"][1] / r["jit(arg)"]
        ratios.append(arg_ratio)
        print(
            f"| {r['name']} | {r['size']:,} | {r['colors']} | {cells[0]} "
            f"| {r['jit(arg)']:.1f} ({arg_ratio:.2f}) | {cells[1]} | {cells[2]} "
            f"| {r['first_call'][0]:.2f} / {r['first_call'][1]:.2f} |"
        )
    geomean = math.exp(sum(math.log(q) for q in ratios) / len(ratios))
    print(
        f"\nTimes are multiples of one jitted call of f (or grad f). Over every "
        f"case and call site: slowest ratio {min(ratios):.2f}, geomean "
        f"{geomean:.2f} (sparsejac's time / asdex's)."
    )
    return ratios


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    scales = (256,) if args.quick else (16, 1)
    rounds = []
    for _ in range(args.rounds):
        rows = []
        for scale in scales:
            for name in args.cases:
                rows.append(
                    _fresh.call(
                        "call_sites", "measure_quietly", name, scale, args.repeats
                    )
                )
                print(f"measured {name} at 1/{scale}", flush=True)
        rounds.append(report(rows))
    if len(rounds) > 1:
        low = [min(r) for r in zip(*rounds, strict=True)]
        print(
            "\nRatio by ratio, the lower of the rounds: slowest "
            f"{min(low):.2f}, geomean {math.exp(sum(map(math.log, low)) / len(low)):.2f}."
        )
    return rows


def measure_quietly(name: str, scale: int, repeats: int) -> dict:
    """`measure`, without the warning for colorings no cheaper than dense (the
    1/256 sizes of `--quick`)."""
    warnings.simplefilter("ignore", asdex.DenseColoringWarning)
    return measure(name, scale, repeats)


if __name__ == "__main__":
    main()
