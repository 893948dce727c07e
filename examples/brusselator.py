"""The 2-D Brusselator reaction–diffusion system, as a residual `f(x)` for detection.

This is the standard stiff test problem (Hairer & Wanner, *Solving ODEs II*, §IV.1;
also the DifferentialEquations.jl sparse-Jacobian benchmark). Two species `u`, `v`
live on an `N × N` periodic grid over the unit square:

    ∂u/∂t = B + u² v − (A + 1) u + α ∇²u + f(x, y, t)
    ∂v/∂t = A u − u² v + α ∇²v

with `A = 3.4`, `B = 1`, `α = 10` and the 5-point Laplacian scaled by `1/dx²`,
`dx = 1/(N − 1)`. The optional forcing `f` is 5 inside the disc
`(x − 0.3)² + (y − 0.6)² ≤ 0.1²` for `t ≥ 1.1`, else 0; it is a constant, so it
never changes the sparsity pattern.

Each residual entry depends on its own `u` and `v` and on the four periodic
neighbours of the same species: the Jacobian has at most 6 nonzeros per row.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

A = 3.4
B = 1.0
ALPHA = 10.0


def grid_size(x) -> int:
    """`N` for a state of `2 N²` elements, flat or shaped `(2, N, N)`."""
    size = math.prod(jnp.shape(x))
    n = math.isqrt(size // 2)
    if 2 * n * n != size:
        raise ValueError(
            f"a Brusselator state has 2·N² elements; got {size}. Pass a flat array of "
            "length 2·N² or one of shape (2, N, N)."
        )
    return n


def forcing(n: int, t: float = 1.1):
    """The Brusselator's forcing term on the `N × N` grid at time `t`."""
    xy = jnp.linspace(0.0, 1.0, n)
    x, y = jnp.meshgrid(xy, xy, indexing="ij")
    disc = (x - 0.3) ** 2 + (y - 0.6) ** 2 <= 0.1**2
    return jnp.where(disc & (t >= 1.1), 5.0, 0.0)


def laplacian(w):
    """The periodic 5-point Laplacian (unscaled) of a `(..., N, N)` array."""
    return (
        jnp.roll(w, 1, axis=-2)
        + jnp.roll(w, -1, axis=-2)
        + jnp.roll(w, 1, axis=-1)
        + jnp.roll(w, -1, axis=-1)
        - 4 * w
    )


def brusselator(x, *, alpha: float = ALPHA, a: float = A, b: float = B, t=None):
    """The residual `du/dt` of the 2-D Brusselator at the state `x`.

    **Arguments:**

    - `x`: the state: `u` then `v`, flat of length `2 N²` or shaped `(2, N, N)`.
    - `alpha`, `a`, `b`: the diffusion coefficient and the reaction constants.
    - `t`: if given, add the forcing term at time `t`; `None` leaves it out.

    **Returns:**

    The residual, with the same shape as `x`.
    """
    n = grid_size(x)
    state = jnp.reshape(x, (2, n, n))
    u, v = state[0], state[1]
    dx = 1.0 / (n - 1)
    diffusion = (alpha / dx**2) * laplacian(state)
    uuv = u * u * v
    du = b + uuv - (a + 1) * u + diffusion[0]
    dv = a * u - uuv + diffusion[1]
    if t is not None:
        du = du + forcing(n, t)
    return jnp.reshape(jnp.stack([du, dv]), jnp.shape(x))


def initial_state(n: int):
    """The classic initial condition `u = 22 y (1 − y)^{3/2}`, `v = 27 x (1 − x)^{3/2}`."""
    xy = jnp.linspace(0.0, 1.0, n)
    x, y = jnp.meshgrid(xy, xy, indexing="ij")
    u = 22 * y * (1 - y) ** 1.5
    v = 27 * x * (1 - x) ** 1.5
    return jnp.stack([u, v])
