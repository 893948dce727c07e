"""Detection plus coloring at 10⁵ to 10⁷ unknowns, each size in a fresh process.

Run with `uv run python benchmarks/detection_scale.py` (about six minutes on 2
cores: each size runs twice, see below), or `--quick` for small sizes (seconds);
`benchmarks/run.py --sections scale` runs it too. Cases:

- `diff`: `f(x) = (x[1:] - x[:-1])**2`, at n = 10⁵, 10⁶, 10⁷;
- `stencil`: a 2-D 5-point stencil plus `exp(u)` on an N × N grid, at N = 316,
  1000, 3162 (n ≈ 10⁵, 10⁶, 10⁷).

For each case and size a fresh Python process calls `asdex.jacobian_coloring(f,
jax.ShapeDtypeStruct(...))` three times: the first call (cold for that size: the
process's memory is new, numba's kernels load from their cache), then the best of
the next two (warm: what a user who detects again pays). The peak memory is the
process's peak resident set size (`VmHWM`), JAX's own included. Targets at 10⁷:
≤ 5 s and ≤ 4 GB warm, and a log–log slope of the warm time of at most 1.05
over 10⁵…10⁷.

Each size runs twice: as is, and with glibc told to keep freed memory in the
process (`KEEP_FREED`). On a virtual machine whose host takes freed guest memory
back, every array of a later call that lands on such memory faults it in again:
on this project's 2-core VM a fresh 1 GB fill took 6.4 s where a refill took
0.2 s, and the third detection of the 3162² stencil took 7.4-9.7 s as is against
1.9 s with freed memory kept (measured side by side). The second column is what
the same work costs where memory stays with the process, as on a plain machine;
`touch_s_per_gb`, measured after the calls, shows how the machine treats fresh
memory at the time.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from _fresh import KEEP_FREED, call, peak_rss_gb

SIZES = (10**5, 10**6, 10**7)
QUICK_SIZES = (10**3, 10**4)
CASES = ("diff", "stencil")
TARGET_S, TARGET_GB, TARGET_SLOPE = 5.0, 4.0, 1.05
# glibc's allocator without `mmap` for large blocks and without trimming its
# heap: freed arrays stay in the process for the next call to reuse.


def _function(case: str, n: int):
    import jax
    import jax.numpy as jnp

    if case == "diff":

        def f(x):
            return (x[1:] - x[:-1]) ** 2

        return f, jax.ShapeDtypeStruct((n,), jnp.float32)
    side = round(math.sqrt(n))

    def stencil(u):
        p = jnp.pad(u, 1)
        return (
            4 * u - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
        ) + jnp.exp(u)

    return stencil, jax.ShapeDtypeStruct((side, side), jnp.float32)


def measure(case: str, n: int) -> dict:
    """In this process: the first call and the best of two more."""
    import asdex

    f, x = _function(case, n)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        coloring = asdex.jacobian_coloring(f, x)
        times.append(time.perf_counter() - start)
    return {
        "case": case,
        "n": math.prod(x.shape),
        "nnz": coloring.pattern.nnz,
        "colors": coloring.num_colors,
        "first_s": times[0],
        "warm_s": min(times[1:]),
        "peak_gb": peak_rss_gb(),
        "copy_s": _copy_time(coloring.pattern.nnz),
        "touch_s_per_gb": _touch_time(),
    }


def _touch_time() -> float:
    """Seconds to fill 1 GB of memory newly allocated from the system."""
    import mmap

    import numpy as np

    size = 2**30
    with mmap.mmap(-1, size) as block:  # from the kernel whatever the allocator
        start = time.perf_counter()
        np.frombuffer(block, dtype=np.uint8).fill(1)
        return time.perf_counter() - start


def _copy_time(nnz: int) -> float:
    """The best of five numpy copies of an int64 array with one entry per
    nonzero: what one pass over the pattern costs in memory traffic alone."""
    import numpy as np

    source = np.arange(nnz, dtype=np.int64)
    target = np.empty_like(source)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return best


def run(case: str, n: int) -> dict:
    """`measure` in a fresh process, then again in one that keeps freed memory
    (`KEEP_FREED`): the row, with the second run's warm time and peak as `kept_warm_s` and
    `kept_peak_gb`."""
    row = call("detection_scale", "measure", case, n)
    kept = call("detection_scale", "measure", case, n, env=KEEP_FREED)
    return {**row, "kept_warm_s": kept["warm_s"], "kept_peak_gb": kept["peak_gb"]}


def slope(rows: list[dict], case: str, key: str = "warm_s") -> float:
    import numpy as np

    mine = [r for r in rows if r["case"] == case and key in r]
    if len(mine) < 2:
        return float("nan")
    fit = np.polyfit(np.log([r["n"] for r in mine]), np.log([r[key] for r in mine]), 1)
    return float(fit[0])


def _per_nonzero_growth(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Per case: how much the warm time and the copy time per nonzero grow from
    the smallest size to the largest."""
    growth = {}
    for case in CASES:
        mine = sorted(
            (r for r in rows if r["case"] == case and "copy_s" in r),
            key=lambda r: r["n"],
        )
        if len(mine) < 2:
            continue
        low, high = mine[0], mine[-1]
        growth[case] = (
            (high["warm_s"] / high["nnz"]) / (low["warm_s"] / low["nnz"]),
            (high["copy_s"] / high["nnz"]) / (low["copy_s"] / low["nnz"]),
        )
    return growth


def table(rows: list[dict], quick: bool = False) -> str:
    """The rows, with the verdict of the largest size of each case."""
    lines = [
        "| case | n | nnz | colors | first call (s) | warm (s) | warm, freed memory "
        "kept (s) | peak memory, as is / kept (GB) | fresh memory (s/GB) | target met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    top = {c: max((r["n"] for r in rows if r["case"] == c), default=0) for c in CASES}
    for r in rows:
        kept = r.get("kept_warm_s", math.nan)
        verdict = ""
        if r["n"] == top[r["case"]]:
            fits = max(r["peak_gb"], r.get("kept_peak_gb", 0.0)) <= TARGET_GB
            verdict = (
                "(quick)"
                if quick
                else "yes"
                if fits and r["warm_s"] <= TARGET_S
                else "with freed memory kept"
                if fits and kept <= TARGET_S
                else "NO"
            )
        lines.append(
            f"| {r['case']} | {r['n']:,} | {r['nnz']:,} | {r['colors']} "
            f"| {r['first_s']:.2f} | {r['warm_s']:.2f} | {kept:.2f} "
            f"| {r['peak_gb']:.2f} / {r.get('kept_peak_gb', math.nan):.2f} "
            f"| {r.get('touch_s_per_gb', math.nan):.2f} "
            f"| {verdict} |"
        )
    slopes = ", ".join(
        f"{c} {slope(rows, c):.2f} ({slope(rows, c, 'kept_warm_s'):.2f} kept)"
        for c in CASES
    )
    lines += [
        "",
        f"Log–log slope of the warm time against n: {slopes} (target ≤ "
        f"{TARGET_SLOPE}). Targets at 10⁷: ≤ {TARGET_S:.0f} s and ≤ "
        f'{TARGET_GB:.0f} GB warm. "Freed memory kept": the same run in a '
        "process whose allocator keeps freed memory, which removes what a "
        "virtual machine charges to fault returned memory in again (the "
        "fresh-memory column; this machine at its best took 0.2 s/GB).",
    ]
    growth = _per_nonzero_growth(rows)
    if growth:
        lines += [
            "",
            "Time per nonzero, largest size against smallest: "
            + "; ".join(
                f"{c}: detection and coloring {d:.2f}×, a numpy copy of one int64 "
                f"per nonzero {m:.2f}×"
                for c, (d, m) in growth.items()
            )
            + ". The copy is one pass over memory and nothing else: how much of "
            "the growth the arrays' leaving the caches alone accounts for.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases:
        for n in QUICK_SIZES if args.quick else SIZES:
            rows.append(run(case, n))
            r = rows[-1]
            print(
                f"{case:8s} n={r['n']:>10,}  first {r['first_s']:6.2f} s  warm "
                f"{r['warm_s']:6.2f} s  kept {r['kept_warm_s']:6.2f} s  peak "
                f"{r['peak_gb']:.2f} GB  fresh memory {r['touch_s_per_gb']:.2f} s/GB",
                flush=True,
            )
    print()
    print(table(rows, args.quick))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
