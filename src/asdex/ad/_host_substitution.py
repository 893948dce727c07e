"""The substitution sweep of an acyclic Hessian coloring, on the CPU host.

`SubstitutionPlan.solve` runs the sweep in XLA: a few vectorised levels, each a
gather, a scatter and prefix sums of 2-D blocks. On GPU that is the right thing.
On CPU the same sweep is a plain loop over the unknowns, and XLA spends about a
second compiling the dozens of blocks of a 2-D stencil's plan (0.48 s for the
prefix sums alone of the 512² Bratu plan, 38 blocks; more with the rest), longer
than all the other work of a first call. So on CPU the sweep of a plan with
several blocks runs in numba instead, called through `jax.pure_callback`, with
the same sums (XLA associates them tile by tile). A plan of a few blocks stays
in XLA (see `HOST_SWEEP_FROM_BLOCKS` in `_cpu.py`).

The sweep is linear in the compressed products, so it is written as a linear
solve, `jax.lax.custom_linear_solve(A, b)`: `b` gathers each unknown's equation
from the products, and `A = I + P + L` adds to each unknown its predecessor on its
heavy path (`P`) and its light children (`L`). The solve is the forward sweep, the
transposed solve a backward sweep, and JAX derives forward and reverse mode and
batching from them, so the Hessian stays differentiable and `vmap`-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numba
import numpy as np

from ..coloring import SubstitutionPlan


@numba.njit(cache=True)
def _forward(b, sign, sub_ptr, sub_target, sub_source, block_ptr, blocks):
    """Solve `A x = b` level by level (see `SubstitutionPlan`).

    In place on a copy of `b`: each unknown's right-hand side is read once, just
    before its solution overwrites it, and the light children subtracted from it
    lie in earlier levels, already solved.
    """
    x = b.copy()
    for k in range(sub_ptr.shape[0] - 1):
        for q in range(sub_ptr[k], sub_ptr[k + 1]):
            x[sub_target[q]] -= x[sub_source[q]]
        for i in range(block_ptr[k], block_ptr[k + 1]):
            start, rows, width = blocks[i, 0], blocks[i, 1], blocks[i, 2]
            for row in range(rows):
                base = start + row * width
                acc = x.dtype.type(0)
                for j in range(width):
                    e = base + j
                    acc += sign[e] * x[e]
                    x[e] = sign[e] * acc
    return x


@numba.njit(cache=True)
def _backward(c, sign, sub_ptr, sub_target, sub_source, block_ptr, blocks):
    """Solve `Aᵀ y = c`: the levels in reverse, each path from its top down."""
    r = c.copy()
    y = np.zeros_like(c)
    for k in range(sub_ptr.shape[0] - 2, -1, -1):
        for i in range(block_ptr[k], block_ptr[k + 1]):
            start, rows, width = blocks[i, 0], blocks[i, 1], blocks[i, 2]
            for row in range(rows):
                base = start + row * width
                above = r.dtype.type(0)  # y of the next unknown up the path
                for j in range(width - 1, -1, -1):
                    e = base + j
                    if sign[e] == 0:  # padding: an identity row
                        y[e] = r[e]
                        above = 0
                    else:
                        y[e] = r[e] - above
                        above = y[e]
        for q in range(sub_ptr[k], sub_ptr[k + 1]):
            r[sub_source[q]] -= y[sub_target[q]]
    return y


class HostPlan:
    """A substitution plan as numpy arrays for the numba sweeps.

    Hashed and compared by identity, so that it can be a static field of an
    `equinox.Module`.
    """

    def __init__(self, plan: SubstitutionPlan):
        self.sign = np.asarray(plan.sign, dtype=np.int8)
        self.sub_ptr = np.asarray(plan.sub_bounds, dtype=np.int64)
        self.sub_target = np.asarray(plan.sub_target, dtype=np.int64)
        self.sub_source = np.asarray(plan.sub_source, dtype=np.int64)
        counts = [len(level) for level in plan.blocks]
        self.block_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        blocks = [block for level in plan.blocks for block in level]
        self.blocks = np.asarray(blocks, dtype=np.int64).reshape(-1, 3)
        # `P`: an unknown's predecessor on its path is the entry before it in its
        # block row, unless it starts the row or is padding.
        has_pred = self.sign != 0
        for start, rows, width in blocks:
            has_pred[start : start + rows * width : width] = False
        self.has_pred = has_pred

    def arrays(self) -> tuple:
        return (
            self.sign,
            self.sub_ptr,
            self.sub_target,
            self.sub_source,
            self.block_ptr,
            self.blocks,
        )

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def _on_host(kernel, host: HostPlan, v: jax.Array) -> jax.Array:
    def callback(values):
        return kernel(np.asarray(values), *host.arrays()).astype(
            values.dtype, copy=False
        )

    return jax.pure_callback(
        callback, jax.ShapeDtypeStruct(v.shape, v.dtype), v, vmap_method="sequential"
    )


def solve_on_host(
    host: HostPlan, plan: SubstitutionPlan, has_pred: jax.Array, flat: jax.Array
) -> jax.Array:
    """The unknowns `x` from the flattened products, as `plan.solve(flat)`.

    `plan` and `has_pred` hold the same arrays as `host`, as JAX arrays (arguments
    of the compiled program, not constants).
    """
    b = jnp.where(plan.sign != 0, flat[plan.rhs_index], 0).astype(flat.dtype)

    def matvec(x):
        pred = jnp.where(has_pred, jnp.roll(x, 1), 0)
        return (x + pred).at[plan.sub_target].add(x[plan.sub_source])

    return jax.lax.custom_linear_solve(
        matvec,
        b,
        solve=lambda _, v: _on_host(_forward, host, v),
        transpose_solve=lambda _, v: _on_host(_backward, host, v),
    )
