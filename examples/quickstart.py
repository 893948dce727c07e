"""Quickstart: detect the sparsity pattern of the 2-D Brusselator's Jacobian.

Run with `uv run python examples/quickstart.py`.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from brusselator import brusselator

import asdex

N = 32  # grid points per side: 2·32² = 2048 unknowns


def main() -> None:
    n = 2 * N * N
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


if __name__ == "__main__":
    jnp.zeros(())  # initialise the JAX backend before timing detection
    main()
