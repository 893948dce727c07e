"""Quickstart: the sparse Jacobian of the 2-D Brusselator, from pattern to values.

Run with `uv run python examples/quickstart.py` (a few seconds). It

1. detects the sparsity pattern of the Jacobian and checks it against dense AD,
2. builds `asdex.jacobian(brusselator, ...)` and prints its coloring,
3. computes the sparse Jacobian at a random point and compares it with dense
   `jax.jacfwd`, and
4. prints how many AD passes the coloring saves.
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from brusselator import brusselator, initial_state

import asdex

N = 32  # grid points per side: 2·32² = 2048 unknowns


def main() -> None:
    n = 2 * N * N
    # ---------------------------------------------------------------- 1. detection
    # Only the shape matters for detection; `input_shape=` stands for a flat array.
    start = time.perf_counter()
    pattern = asdex.jacobian_sparsity(brusselator, input_shape=n)
    first = time.perf_counter() - start
    # The first call also loads detection's compiled kernels; time a second one.
    start = time.perf_counter()
    asdex.jacobian_sparsity(brusselator, input_shape=n)
    again = time.perf_counter() - start

    print("Jacobian of the 2-D Brusselator residual on a 32×32 periodic grid:")
    print(pattern)
    print(
        f"nnz = {pattern.nnz:,} of {n:,}² entries, density = {pattern.density:.3%} "
        f"({pattern.nnz / n:.1f} per row)\ndetection time: {again:.3f} s "
        f"({first:.3f} s for the first call, which also pays one-time start-up costs)"
    )

    # The pattern must hold every nonzero that dense AD finds, at any point.
    x = jax.random.uniform(jax.random.key(0), (n,), minval=0.5, maxval=2.0)
    dense = np.asarray(jax.jacfwd(brusselator)(x))
    found = dense != 0
    detected = pattern.todense()
    missed = int(np.count_nonzero(found & ~detected))
    print(
        f"check against dense jax.jacfwd at a random point: "
        f"{int(found.sum()):,} nonzeros, {missed} outside the pattern "
        f"({'OK' if missed == 0 else 'FAILED'}); pattern is "
        f"{'exact' if np.array_equal(found, detected) else 'a strict superset'} here"
    )
    if missed:
        raise SystemExit(1)

    # ---------------------------------------------------------------- 2. coloring
    print(
        "\nBuilding the sparse Jacobian: detect, color the columns, plan the decompression"
    )
    start = time.perf_counter()
    jac_fn = asdex.jacobian(brusselator, input_shape=n)
    built = time.perf_counter() - start
    # The repr is the coloring: the pattern, and the compressed matrix the products fill.
    print(jac_fn)
    print(f"preparation (detection + coloring + build): {built:.3f} s")

    # ---------------------------------------------------------------- 3. values
    print("\nComputing the sparse Jacobian at the same random point")
    start = time.perf_counter()
    J = jac_fn(x)  # a jax.experimental.sparse.BCOO of shape (n, n)
    J.data.block_until_ready()
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    J = jac_fn(x)
    J.data.block_until_ready()
    steady = time.perf_counter() - start
    print(
        f"J: {type(J).__name__} of shape {J.shape}; compile + first call "
        f"{compiled:.3f} s, then {steady * 1e3:.2f} ms a call"
    )

    error = float(np.max(np.abs(np.asarray(J.todense()) - dense)))
    scale = float(np.max(np.abs(dense)))
    ok = error <= 1e-5 * scale
    print(
        f"max |J_sparse - J_dense| = {error:.3g} (largest entry {scale:.3g}): "
        f"{'OK' if ok else 'FAILED'}"
    )
    if not ok:
        raise SystemExit(1)

    # ---------------------------------------------------------------- 4. savings
    coloring = jac_fn.coloring
    passes = "JVPs" if coloring.mode == "fwd" else "VJPs"
    dense_passes = n if coloring.mode == "fwd" else pattern.shape[0]
    print(
        f"\nAD passes: {coloring.num_colors} {passes} instead of {dense_passes:,} "
        f"({dense_passes / coloring.num_colors:.0f}× fewer)"
    )

    # ---------------------------------------------------------------- 5. a Newton solve
    print("\nOne implicit Euler step (dt = 10⁻⁴) by Newton's method, with Optimistix")

    def implicit_euler(x, args):
        x_old, dt = args
        return x - x_old - dt * brusselator(x, t=1.1)

    x_old = initial_state(N).reshape(-1)
    for name, extra in (
        ("dense LU (Optimistix's default)", {}),
        ("asdex.SparseLinearSolver()", {"linear_solver": asdex.SparseLinearSolver()}),
    ):
        solver = optx.Newton(rtol=1e-5, atol=1e-5, **extra)
        step = eqx.filter_jit(
            lambda x_old, solver=solver: (
                optx.root_find(implicit_euler, solver, x_old, (x_old, 1e-4)).value
            )
        )
        step(x_old).block_until_ready()  # compile (asdex also detects and colors here)
        start = time.perf_counter()
        x_new = step(x_old).block_until_ready()
        seconds = time.perf_counter() - start
        residual = float(jnp.max(jnp.abs(implicit_euler(x_new, (x_old, 1e-4)))))
        print(f"  {name}: {seconds * 1e3:.1f} ms, max |residual| = {residual:.1e}")
    size = x_old.dtype.itemsize
    print(
        f"  the dense Jacobian takes {n * n * size / 1e6:.1f} MB here and grows as n² "
        f"({(2 * 512**2) ** 2 * size / 1e12:.1f} TB on a 512 × 512 grid); the sparse "
        f"one {pattern.nnz * (size + 8) / 1e6:.2f} MB with its indices"
    )


if __name__ == "__main__":
    jnp.zeros(())  # initialise the JAX backend before timing detection
    main()
