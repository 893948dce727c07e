"""The prepared check for a session lent an accelerator: values, then speed.

Run on the device machine with `uv run --group benchmark python
benchmarks/device_check.py` (a few minutes; `--quick` for seconds). It prints
plain lines and one Markdown table, and runs in one process, in float64:

1. values: the four cases of `benchmarks/call_sites.py` (diff², the 2-D
   Brusselator, the chained Rosenbrock and the 2-D Bratu Hessians) at a size
   where the dense derivative fits, asdex inside `jax.jit` against
   `jax.jacfwd` / `jax.hessian`; in float32 too;
2. sharding: where several devices are visible, each case's coloring sharded over
   all of them (`ColoredPattern.shard`), against the unsharded values;
3. steady state inside `jax.jit`: asdex, sparsejac given asdex's pattern and
   dense JAX at the dense size, then asdex and sparsejac at the full size and
   at 1/16 of it, through `call_sites.measure` (jit, while_loop, vmap).

A mismatch raises, so a run that finishes has checked every value it timed.
"""

from __future__ import annotations

import argparse
import functools as ft
import time

import call_sites  # (switches float64 on)
import jax
import jax.numpy as jnp
import numpy as np
from _timing import best_in_turns, best_of

import asdex

# At 1/`DENSE_SCALE` of the large size the dense derivative takes at most
# 16,384² entries (2 GiB in float64).
DENSE_SCALE = 64
QUICK_SCALE = 1024


def _build(name: str, scale: int, dtype=jnp.float64):
    f, x, kind = call_sites.make_case(name, scale)
    x = x.astype(dtype)
    derivative = (asdex.jacobian if kind == "jacobian" else asdex.hessian)(f, x)
    dense = jax.jacfwd(f) if kind == "jacobian" else jax.hessian(f)
    return f, x, derivative, jax.jit(dense)


def _max_error(derivative, dense, x) -> tuple[float, float]:
    """`(error, scale)`: the largest entrywise difference to the dense derivative,
    which must also vanish outside the pattern, and the largest entry."""
    sparse = np.asarray(jax.jit(lambda v: derivative(v).todense())(x))
    reference = np.asarray(dense(x)).reshape(sparse.shape)
    return float(np.max(np.abs(sparse - reference))), float(np.max(np.abs(reference)))


def check_values(scale: int) -> None:
    for name in call_sites.CASES:
        for dtype, tol in ((jnp.float64, 1e-10), (jnp.float32, 1e-4)):
            _, x, derivative, dense = _build(name, scale, dtype)
            error, size = _max_error(derivative, dense, x)
            ok = error <= tol * max(size, 1.0)
            print(
                f"values  {name:12s} {jnp.dtype(dtype).name:8s} n={x.size:>7,} "
                f"max error {error:.2e} (largest entry {size:.2e})",
                flush=True,
            )
            if not ok:
                raise AssertionError(f"{name} in {jnp.dtype(dtype).name}: {error}")


def check_sharded(scale: int) -> None:
    count = jax.device_count()
    if count < 2:
        print(f"sharding: {count} device, nothing to shard over", flush=True)
        return
    mesh = jax.make_mesh(
        (count,), ("colors",), axis_types=(jax.sharding.AxisType.Auto,)
    )
    for name in call_sites.CASES:
        f, x, derivative, _ = _build(name, scale)
        build = (
            asdex.jacobian_from_coloring
            if isinstance(derivative, asdex.SparseJacobian)
            else asdex.hessian_from_coloring
        )
        sharded = build(f, derivative.coloring.shard(mesh))
        got = jax.jit(sharded.nonzeros)(x)
        want = jax.jit(derivative.nonzeros)(x)
        error = float(jnp.max(jnp.abs(got - want)))
        print(
            f"sharded {name:12s} over {count} devices: max difference {error:.2e}",
            flush=True,
        )
        if error > 1e-12 * max(1.0, float(jnp.max(jnp.abs(want)))):
            raise AssertionError(f"{name} sharded: {error}")


def dense_steady_state(scale: int, repeats: int) -> list[dict]:
    import sparsejac

    rows = []
    for name in call_sites.CASES:
        f, x, derivative, dense = _build(name, scale)
        target = f if isinstance(derivative, asdex.SparseJacobian) else jax.grad(f)
        sparsity = derivative.coloring.pattern.to_bcoo()
        theirs = sparsejac.jacfwd(target, sparsity=sparsity)
        base = best_of(ft.partial(jax.jit(target), x), repeats, warm=True)
        fns = {
            "asdex": jax.jit(lambda v, d=derivative: d(v).data),
            "sparsejac": jax.jit(lambda v, t=theirs: t(v).data),
            "dense": dense,
        }
        best = best_in_turns(
            {label: ft.partial(fn, x) for label, fn in fns.items()}, repeats, warm=True
        )
        row = {"name": name, "n": x.size}
        row.update({label: seconds / base for label, seconds in best.items()})
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"jax {jax.__version__}, devices: {jax.devices()}", flush=True)
    dense_scale = QUICK_SCALE if args.quick else DENSE_SCALE
    check_values(dense_scale)
    check_sharded(dense_scale)
    dense_rows = dense_steady_state(dense_scale, args.repeats)
    print("\n| case | n | asdex | sparsejac | dense | dense / asdex |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in dense_rows:
        print(
            f"| {r['name']} | {r['n']:,} | {r['asdex']:.1f} | {r['sparsejac']:.1f} "
            f"| {r['dense']:.1f} | {r['dense'] / r['asdex']:.1f} |"
        )
    print("\nSteady state in jit, as multiples of one jitted call of f (grad f).")
    scales = (QUICK_SCALE // 16, QUICK_SCALE) if args.quick else (1, 16)
    rows = [
        call_sites.measure(name, scale, args.repeats)
        for name in call_sites.CASES
        for scale in scales
    ]
    call_sites.report(rows)
    print(f"\ndone in {time.perf_counter() - start:.0f} s", flush=True)
    return {"dense": dense_rows, "call_sites": rows}


if __name__ == "__main__":
    main()
