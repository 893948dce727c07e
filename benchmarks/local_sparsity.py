"""Where local sparsity patterns pay: colors saved, and what re-detecting costs.

Run with `uv run python benchmarks/local_sparsity.py` (about a minute), or add
`--quick` for small sizes. `--plot PATH` also draws the global and local Hessian
patterns of the penalty problem, the picture of the docs' "Global and local
patterns" page. Everything runs in one process, in float64.

Three problems whose derivative's nonzeros depend on the point:

- `relu_net`: the input Jacobian of a deep ReLU network whose layers are 3-point
  convolutions. Globally the band widens by two per layer; at a point, inactive
  units cut the paths through them.
- `piecewise_linear`: each output reads the neighbour at an offset from -4 to 4
  chosen by the interval its input lies in (a band of 9 globally, two entries per
  row at a point).
- `penalty`: an energy with `jnp.maximum` penalties between every pair of
  particles within 8 of each other (the Hessian); at a point only overlapping
  pairs couple.

For each: the colors of the global and the local pattern at one point, the time
of one derivative evaluation with each (compiled, steady state, best of 5), and
the cost of a Newton step that re-detects at its point (local detection, coloring,
building and compiling the derivative, and one evaluation) against a step that
reuses the global derivative (one evaluation).
"""

from __future__ import annotations

import argparse

import _examples  # noqa: F401  (puts examples/ on sys.path)
import jax
from _timing import best_of, timed
from problems import (
    pair_penalty_energy,
    piecewise_neighbour_map,
    relu_convolution_net,
)

import asdex

jax.config.update("jax_enable_x64", True)


def relu_net(n: int):
    return (*relu_convolution_net(n), "jacobian")


def piecewise_linear(n: int):
    return (*piecewise_neighbour_map(n), "jacobian")


def penalty(n: int, window: int = 8):
    return (*pair_penalty_energy(n, window), "hessian")


PROBLEMS = {
    "relu_net": relu_net,
    "piecewise_linear": piecewise_linear,
    "penalty": penalty,
}
SIZES = {"relu_net": 20_000, "piecewise_linear": 200_000, "penalty": 20_000}
QUICK_SIZES = {"relu_net": 256, "piecewise_linear": 1000, "penalty": 200}


def measure(name: str, n: int, repeats: int = 5) -> dict:
    f, x, kind = PROBLEMS[name](n)
    build = asdex.jacobian if kind == "jacobian" else asdex.hessian
    sparsity = asdex.jacobian_sparsity if kind == "jacobian" else asdex.hessian_sparsity
    t_detect_global, global_pattern = timed(lambda: sparsity(f, x))
    t_detect_local, local_pattern = timed(lambda: sparsity(f, x, local=True))
    call = jax.jit(lambda d, v: d.nonzeros(v))
    derivatives = {}
    for local in (False, True):
        derivative = build(f, x, local=local)
        first, _ = timed(lambda d=derivative: call(d, x))
        steady = best_of(lambda d=derivative: call(d, x), repeats)
        derivatives[local] = (derivative, first, steady)

    def local_step():
        # What a Newton step that re-detects at its point pays.
        derivative = build(f, x, local=True)
        return jax.jit(lambda d, v: d.nonzeros(v))(derivative, x)

    t_local_step, _ = timed(local_step)
    return {
        "name": name,
        "n": n,
        "nnz_global": global_pattern.nnz,
        "nnz_local": local_pattern.nnz,
        "colors_global": derivatives[False][0].coloring.num_colors,
        "colors_local": derivatives[True][0].coloring.num_colors,
        "detect_global_s": t_detect_global,
        "detect_local_s": t_detect_local,
        "eval_global_s": derivatives[False][2],
        "eval_local_s": derivatives[True][2],
        "local_step_s": t_local_step,
    }


def report(rows: list[dict]) -> None:
    print(
        "| problem | n | nnz global / local | colors global / local | "
        "detection global / local (s) | evaluation global / local (ms) | "
        "re-detecting step / global step |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['n']:,} | {r['nnz_global']:,} / {r['nnz_local']:,} "
            f"| {r['colors_global']} / {r['colors_local']} "
            f"| {r['detect_global_s']:.3f} / {r['detect_local_s']:.3f} "
            f"| {1e3 * r['eval_global_s']:.2f} / {1e3 * r['eval_local_s']:.2f} "
            f"| {r['local_step_s'] / r['eval_global_s']:.0f}× |"
        )


def plot(path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, x, _ = penalty(60, window=6)
    patterns = {
        "global": asdex.hessian_coloring(f, x),
        "local, at x": asdex.hessian_coloring(f, x, local=True),
    }
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax, (title, coloring) in zip(axes, patterns.items()):
        p = coloring.pattern
        ax.spy(p.todense(), markersize=2.5, color="black")
        ax.set_title(f"{title}: nnz {p.nnz}, {coloring.num_colors} HVPs")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Hessian of a max-penalty energy (60 particles)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--plot", metavar="PATH", help="draw the docs' picture")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    rows = [measure(name, n) for name, n in sizes.items()]
    report(rows)
    if args.plot:
        plot(args.plot)
    return rows


if __name__ == "__main__":
    main()
