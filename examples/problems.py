"""Test problems with known sparsity, used by the examples and `benchmarks/`.

- `brusselator`: the 2-D Brusselator residual (re-exported from `brusselator.py`).
- `bratu_energy`: the 2-D Bratu energy, a scalar whose Hessian is the 5-point stencil.
- `chained_rosenbrock`: a scalar whose Hessian is tridiagonal.
- `euler_diffusion_reaction`: explicit Euler steps of a 1-D reaction–diffusion
  equation under `lax.scan`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from brusselator import brusselator as brusselator, initial_state as initial_state


def bratu_energy(u, lam: float = 1.0):
    """The energy of the 2-D Bratu problem on the unit square.

    With `h = 1/(N + 1)` and `u` the `N × N` interior unknowns (zero Dirichlet
    boundary),

        E(u) = h² Σ [ ½ |∇_h u|² − λ exp(u) ],

    where `∇_h` takes forward differences over the grid padded with the boundary
    zeros. Its stationary points solve `−Δu = λ eᵘ`; its Hessian is the 5-point
    Laplacian plus a diagonal, so the pattern is the 5-point stencil.

    **Arguments:**

    - `u`: the interior values, flat of length `N²` or shaped `(N, N)`.
    - `lam`: the Bratu parameter λ.

    **Returns:**

    The energy, a scalar.
    """
    size = math.prod(jnp.shape(u))
    n = math.isqrt(size)
    if n * n != size:
        raise ValueError(f"`bratu_energy` needs N² unknowns, got {size}.")
    h = 1.0 / (n + 1)
    w = jnp.pad(jnp.reshape(u, (n, n)), 1)
    gx = (w[1:, 1:-1] - w[:-1, 1:-1]) / h
    gy = (w[1:-1, 1:] - w[1:-1, :-1]) / h
    return h**2 * (
        0.5 * (jnp.sum(gx**2) + jnp.sum(gy**2)) - lam * jnp.sum(jnp.exp(w[1:-1, 1:-1]))
    )


def chained_rosenbrock(x):
    """The chained Rosenbrock function `Σᵢ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²`.

    Its Hessian is tridiagonal.
    """
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def euler_diffusion_reaction(x0, steps: int = 1000, dt: float | None = None):
    """`steps` explicit Euler steps of `u_t = u_xx + u (1 − u)` under `lax.scan`.

    The grid has zero Dirichlet boundaries, so each step couples every state to its
    two neighbours; after `len(x0)` steps every final state depends on every
    initial one. The default step `dt = dx²/4` is within the stability limit.

    **Returns:**

    The final state, shaped like `x0`.
    """
    dx2 = (1.0 / (x0.shape[0] + 1)) ** 2
    dt = 0.25 * dx2 if dt is None else dt

    def step(u, _):
        padded = jnp.pad(u, 1)
        lap = (padded[2:] - 2 * u + padded[:-2]) / dx2
        return u + dt * (lap + u * (1 - u)), None

    final, _ = jax.lax.scan(step, x0, None, length=steps)
    return final
