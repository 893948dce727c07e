"""Sparse Newton in an Optax loop: `asdex.optax` against `optax.lbfgs`.

Minimises the chained Rosenbrock function (tridiagonal Hessian) with
`asdex.optax.sparse_newton`, and fits damped sinusoids with
`asdex.optax.sparse_gauss_newton`, each in an ordinary Optax loop under `jax.jit`;
L-BFGS runs the same loops for comparison. Run with
`uv run python examples/optax_newton.py [--n 10000] [--curves 1000]`.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import asdex.optax


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def minimise(opt, f, params, tol=1e-8, max_steps=10_000):
    """The Optax loop of `optax.lbfgs`'s documentation, as one `lax.while_loop`.

    `optax.value_and_grad_from_state` reuses the line search's last value and
    gradient where the state has them; otherwise it computes them.
    """
    value_and_grad = jax.value_and_grad(f)

    @jax.jit
    def run(params):
        def body(carry):
            params, state, value, grad, k = carry
            updates, state = opt.update(
                grad, state, params, value=value, grad=grad, value_fn=f
            )
            params = optax.apply_updates(params, updates)
            value, grad = value_and_grad(params)
            return params, state, value, grad, k + 1

        def cond(carry):
            return (optax.tree.norm(carry[3]) > tol) & (carry[4] < max_steps)

        value, grad = value_and_grad(params)
        init = (params, opt.init(params), value, grad, 0)
        return jax.lax.while_loop(cond, body, init)

    run(params)  # compile
    start = time.perf_counter()
    params, _, value, grad, steps = jax.block_until_ready(run(params))
    return params, float(value), int(steps), time.perf_counter() - start


def make_curves(num: int, samples: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = jnp.linspace(0.0, 10.0, samples)
    true = rng.uniform([0.5, 0.1, 1.0, -1.0], [2.0, 0.5, 3.0, 1.0], (num, 4))

    def model(p, t):
        a, b, w, phi = (p[:, k : k + 1] for k in range(4))
        return a * jnp.exp(-b * t) * jnp.sin(w * t + phi)

    observed = model(jnp.asarray(true), t) + 0.01 * rng.normal(size=(num, samples))
    guess = jnp.asarray(true * (1 + 0.05 * rng.normal(size=true.shape)))
    return model, t, observed, guess


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--curves", type=int, default=1_000)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    out = {}

    def compare(problem, optimisers, f, params):
        for name, opt in optimisers:
            _, value, steps, seconds = minimise(opt, f, params)
            print(f"  {name:>19}: {value:.6g} in {steps} steps, {seconds:.2f} s")
            out[f"{problem}/{name}"] = (value, steps)

    x0 = jnp.full(args.n, 0.5)
    print(f"chained Rosenbrock, n = {args.n:,}, from x = 0.5: f after the loop")
    newton = asdex.optax.sparse_newton(rosenbrock, x0)
    compare(
        "rosenbrock",
        [("sparse_newton", newton), ("optax.lbfgs", optax.lbfgs())],
        rosenbrock,
        x0,
    )

    model, t, observed, guess = make_curves(args.curves)

    def residuals(p):
        return model(p, t) - observed

    def loss(p):
        return 0.5 * jnp.sum(residuals(p) ** 2)

    print(
        f"{args.curves:,} damped sinusoids, {guess.size:,} parameters: the loss "
        "after the loop"
    )
    gauss_newton = asdex.optax.sparse_gauss_newton(residuals, guess)
    compare(
        "curves",
        [("sparse_gauss_newton", gauss_newton), ("optax.lbfgs", optax.lbfgs())],
        loss,
        guess,
    )
    return out


if __name__ == "__main__":
    main()
