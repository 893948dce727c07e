"""Test problems with known sparsity, used by the examples and `benchmarks/`.

- `brusselator`: the 2-D Brusselator residual (re-exported from `brusselator.py`).
- `bratu_energy`: the 2-D Bratu energy, a scalar whose Hessian is the 5-point stencil.
- `chained_rosenbrock`: a scalar whose Hessian is tridiagonal.
- `euler_diffusion_reaction`: explicit Euler steps of a 1-D reaction–diffusion
  equation under `lax.scan`.
- `relu_convolution_net`, `piecewise_neighbour_map`, `pair_penalty_energy`:
  functions whose nonzeros depend on the point, where local patterns
  (`local=True`) need fewer colors than global ones.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
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


def relu_convolution_net(n: int, depth: int = 6, seed: int = 0):
    """A deep ReLU network whose layers are 3-point convolutions, and a point.

    Globally the input Jacobian's band widens by two per layer; at a point, the
    inactive units cut the paths through them.

    **Returns:** `(net, x)`.
    """
    rng = np.random.default_rng(seed)
    kernels = [rng.standard_normal(3) for _ in range(depth)]
    biases = [rng.standard_normal(n) * 0.5 + 0.5 for _ in range(depth)]

    def net(x):
        for kernel, bias in zip(kernels, biases):
            x = jax.nn.relu(jnp.convolve(x, kernel, mode="same") + bias)
        return x

    return net, jnp.asarray(rng.standard_normal(n))


def piecewise_neighbour_map(n: int, seed: int = 1):
    """A piecewise-linear map, and a point: each output reads the neighbour at an
    offset from -4 to 4 chosen by the interval its input lies in. Globally a band
    of 9; at a point, two entries a row.

    **Returns:** `(model, x)`.
    """

    def model(x):
        offset = jnp.clip(jnp.floor(2.0 * x).astype(jnp.int32), -4, 4)
        return x[jnp.clip(jnp.arange(n) + offset, 0, n - 1)] - 0.5 * x

    return model, jnp.asarray(np.random.default_rng(seed).standard_normal(n))


def pair_penalty_energy(n: int, window: int = 8, seed: int = 2):
    """An energy with `jnp.maximum` penalties on every pair of particles within
    `window` of each other, and a point. Globally its Hessian is a band of width
    `2 window + 1`; at a point only the overlapping pairs couple.

    **Returns:** `(energy, x)`.
    """
    i = np.repeat(np.arange(n), window)
    j = i + np.tile(np.arange(1, window + 1), n)
    i, j = i[j < n], j[j < n]
    gap = 0.4 * (j - i)

    def energy(x):
        rest = jnp.arange(n, dtype=x.dtype) * 0.5
        overlap = jnp.maximum(gap - (x[j] - x[i]), 0.0)
        return 0.5 * jnp.sum((x - rest) ** 2) + jnp.sum(overlap**2)

    noise = np.random.default_rng(seed).standard_normal(n)
    return energy, jnp.asarray(np.arange(n) * 0.5 + 0.3 * noise)
