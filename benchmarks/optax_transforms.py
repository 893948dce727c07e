"""`asdex.optax` against `optax.lbfgs` and `optax.adam`, each as a jitted `lax.while_loop`.

(Not named `optax.py`: run as a script, its folder comes first on `sys.path`, and
the file would shadow Optax itself.)

Run with `uv run python benchmarks/optax_transforms.py` (minutes), or add `--quick` for a
smoke run at small sizes. All problems run in one process, in float64:

- `rosenbrock`: the chained Rosenbrock function, n = 100,000, from x = 0.5;
  `sparse_newton` (adaptive damping) against `optax.lbfgs` (zoom line search,
  `optax.value_and_grad_from_state`), to ‖∇f‖ ≤ 1e-8.
- `elliptic`: the energy Σ ½|∇u|²/h² + Σ (¼u⁴ + e^{0.1u} − 10u) on a 256² grid,
  u = 0 past the last row and column, h = 1/257, from u = 0; convex, so
  `sparse_newton` is told its Hessian is positive definite (sparse Cholesky).
- `curves`: 10,000 damped sinusoids (40,000 parameters, 100 samples each) as the
  loss ½‖r‖²; `sparse_gauss_newton` against L-BFGS, to ‖∇f‖ ≤ 1e-8.
- `pde_fit`: an `equinox.Module` of parameters (a diffusion coefficient field and
  the state) fitted to noisy observations of a 1-D reaction–diffusion solution,
  the PDE as a penalty; `sparse_gauss_newton` under `eqx.filter_jit`.

`optax.adam` runs a fixed number of steps on each, for scale. Reported: steps,
compile time (lowering and compiling the loop), steady time (one run of the
compiled loop), the final loss and gradient norm. The sparsity detection, done
once when the transform is built, is reported apart ("setup").
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax

import asdex.optax

jax.config.update("jax_enable_x64", True)


# ---------------------------------------------------------------- problems


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def elliptic(u):
    h = 1.0 / (u.shape[0] + 1)
    w = jnp.pad(u, ((0, 1), (0, 1)))  # u = 0 past the last row and column
    dx, dy = w[1:, :-1] - u, w[:-1, 1:] - u
    return 0.5 * jnp.sum(dx**2 + dy**2) / h**2 + jnp.sum(
        0.25 * u**4 + jnp.exp(0.1 * u) - 10.0 * u
    )


def make_curves(num: int, samples: int = 100):
    rng = np.random.default_rng(0)
    t = jnp.linspace(0.0, 10.0, samples)
    true = np.stack(
        [
            rng.uniform(0.5, 2.0, num),
            rng.uniform(0.1, 0.5, num),
            rng.uniform(1.0, 3.0, num),
            rng.uniform(-1.0, 1.0, num),
        ],
        axis=1,
    )

    def model(p):
        a, b, w, phi = (p[:, k : k + 1] for k in range(4))
        return a * jnp.exp(-b * t) * jnp.sin(w * t + phi)

    observed = model(jnp.asarray(true)) + 0.01 * rng.normal(size=(num, samples))
    guess = jnp.asarray(true * (1 + 0.05 * rng.normal(size=true.shape)))
    return (lambda p: model(p) - observed), guess


class Field(eqx.Module):
    """The unknowns of the fit: log-diffusivity `log_k` and state `u` on the grid."""

    log_k: jax.Array
    u: jax.Array
    name: str = eqx.field(static=True, default="reaction-diffusion")


def make_pde_fit(n: int):
    # −(k u')' + u³ = s on (0, 1), u(0) = u(1) = 0; observe u with noise and fit
    # k and u together, the PDE residual weighted in (all-at-once formulation).
    rng = np.random.default_rng(1)
    x = jnp.linspace(0.0, 1.0, n + 2)[1:-1]
    h = 1.0 / (n + 1)
    source = 10.0 * jnp.ones(n)

    def pde(log_k, u):
        k = jnp.exp(log_k)
        w = jnp.pad(u, 1)
        k_face = 0.5 * (
            jnp.pad(k, (0, 1), mode="edge") + jnp.pad(k, (1, 0), mode="edge")
        )
        flux = k_face * (w[1:] - w[:-1]) / h
        return -(flux[1:] - flux[:-1]) / h + u**3 - source

    true_log_k = 0.5 * jnp.sin(2 * jnp.pi * x)
    # The true state, by a few Newton iterations on the PDE alone.
    u = jnp.zeros(n)
    for _ in range(20):
        J = jax.jacfwd(lambda u: pde(true_log_k, u))(u)
        u = u - jnp.linalg.solve(J, pde(true_log_k, u))
    observed = u + 1e-3 * rng.normal(size=n)

    def residuals(p: Field):
        return (
            p.u - observed,
            1e-2 * pde(p.log_k, p.u),
            (p.log_k[1:] - p.log_k[:-1]) / jnp.sqrt(h) * 1e-1,
        )

    guess = Field(jnp.zeros(n), jnp.asarray(observed))
    return residuals, guess


def half_squares(residual_fn):
    def loss(p):
        return 0.5 * sum(jnp.sum(r**2) for r in jax.tree.leaves(residual_fn(p)))

    return loss


# ---------------------------------------------------------------- loops


def _norm(tree):
    return jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)))


def newton_loop(opt, f, tol, max_steps):
    """`opt` (an asdex transform) in a `while_loop`, until ‖∇f‖ ≤ tol.

    The state is made outside and passed in, as in an Optax training loop: its
    index arrays are then arguments of the compiled loop, not constants in it.
    """
    value_and_grad = jax.value_and_grad(f)

    def run(params, state):
        def body(carry):
            params, state, value, grad, k = carry
            updates, state = opt.update(grad, state, params, value=value, value_fn=f)
            params = optax.apply_updates(params, updates)
            value, grad = value_and_grad(params)
            return params, state, value, grad, k + 1

        def cond(carry):
            return (_norm(carry[3]) > tol) & (carry[4] < max_steps)

        value, grad = value_and_grad(params)
        init = (params, state, value, grad, jnp.array(0))
        params, _, value, grad, k = jax.lax.while_loop(cond, body, init)
        return params, value, _norm(grad), k

    return run, opt.init


def lbfgs_loop(f, tol, max_steps):
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)

    def run(params):
        def body(carry):
            params, state, k = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(
                grad, state, params, value=value, grad=grad, value_fn=f
            )
            return optax.apply_updates(params, updates), state, k + 1

        def cond(carry):
            params, state, k = carry
            grad = optax.tree.get(state, "grad")
            first = k == 0
            return (first | (_norm(grad) > tol)) & (k < max_steps)

        params, state, k = jax.lax.while_loop(
            cond, body, (params, opt.init(params), jnp.array(0))
        )
        value, grad = jax.value_and_grad(f)(params)
        return params, value, _norm(grad), k

    return run, None


def adam_loop(f, steps, learning_rate):
    opt = optax.adam(learning_rate)

    def run(params):
        def body(k, carry):
            params, state = carry
            grad = jax.grad(f)(params)
            updates, state = opt.update(grad, state, params)
            return optax.apply_updates(params, updates), state

        params, _ = jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))
        value, grad = jax.value_and_grad(f)(params)
        return params, value, _norm(grad), jnp.array(steps)

    return run, None


def measure(name, loop, params0, filter_jit=False):
    run, init = loop
    args = (params0,) if init is None else (params0, init(params0))
    if not filter_jit:
        run = jax.jit(run)
        start = time.perf_counter()
        compiled = run.lower(*args).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        steady_s = time.perf_counter() - start
    else:
        run = eqx.filter_jit(run)
        start = time.perf_counter()
        jax.block_until_ready(run(*args))  # compiles, then runs once
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        out = jax.block_until_ready(run(*args))
        steady_s = time.perf_counter() - start
        compile_s = first_s - steady_s
    _, value, gnorm, steps = out
    row = dict(
        method=name,
        steps=int(steps),
        compile_s=compile_s,
        steady_s=steady_s,
        loss=float(value),
        grad_norm=float(gnorm),
    )
    print(
        f"| {name} | {row['steps']} | {compile_s:.2f} | {steady_s:.2f} | "
        f"{row['loss']:.6g} | {row['grad_norm']:.1e} |",
        flush=True,
    )
    return row


# ---------------------------------------------------------------- cases


def opt_coloring(opt, params):
    """The coloring a transform detected, to build a second one without detecting."""
    return opt.init(params).compression.coloring


def case(title, setup):
    print(f"\n### {title}\n", flush=True)
    start = time.perf_counter()
    runs = setup()
    print(f"setup (detection and coloring): {time.perf_counter() - start:.2f} s\n")
    print("| method | steps | compile s | steady s | loss | ‖∇f‖ |")
    print("|---|---|---|---|---|---|")
    return [measure(*r) for r in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument(
        "--cases", default="rosenbrock,elliptic,curves,pde_fit", help="comma list"
    )
    args = parser.parse_args(argv)
    q = args.quick
    tol = 1e-8
    adam_steps = 200 if q else 2000
    cases = args.cases.split(",")
    results = {}

    if "rosenbrock" in cases:
        n = 1000 if q else 100_000
        x0 = jnp.full(n, 0.5)

        def setup():
            opt = asdex.optax.sparse_newton(rosenbrock, x0)
            # The same steps solved in XLA by Lineax's tridiagonal solver: the cost
            # of the transform without the host factorisation.
            tri = asdex.optax.sparse_newton(
                rosenbrock,
                x0,
                linear_solver=lx.Tridiagonal(),
                coloring=opt_coloring(opt, x0),
            )
            return [
                ("sparse_newton", newton_loop(opt, rosenbrock, tol, 200), x0),
                (
                    "sparse_newton, lx.Tridiagonal",
                    newton_loop(tri, rosenbrock, tol, 200),
                    x0,
                ),
                ("optax.lbfgs", lbfgs_loop(rosenbrock, tol, 10_000), x0),
                ("optax.adam", adam_loop(rosenbrock, adam_steps, 1e-3), x0),
            ]

        results["rosenbrock"] = case(f"chained Rosenbrock, n = {n:,}", setup)

    if "elliptic" in cases:
        N = 24 if q else 256
        u0 = jnp.zeros((N, N))

        def setup():
            opt = asdex.optax.sparse_newton(
                elliptic, u0, tags=lx.positive_semidefinite_tag
            )
            return [
                ("sparse_newton", newton_loop(opt, elliptic, tol, 200), u0),
                ("optax.lbfgs", lbfgs_loop(elliptic, tol, 20_000), u0),
                ("optax.adam", adam_loop(elliptic, adam_steps, 1e-2), u0),
            ]

        results["elliptic"] = case(f"2-D elliptic energy, {N}²", setup)

    if "curves" in cases:
        num = 50 if q else 10_000
        residual_fn, guess = make_curves(num)
        loss = half_squares(residual_fn)

        def setup():
            opt = asdex.optax.sparse_gauss_newton(residual_fn, guess)
            return [
                ("sparse_gauss_newton", newton_loop(opt, loss, tol, 200), guess),
                ("optax.lbfgs", lbfgs_loop(loss, tol, 20_000), guess),
                ("optax.adam", adam_loop(loss, adam_steps, 1e-3), guess),
            ]

        results["curves"] = case(f"{num:,} damped sinusoids", setup)

    if "pde_fit" in cases:
        n = 50 if q else 2000
        residual_fn, guess = make_pde_fit(n)
        loss = half_squares(residual_fn)

        def setup():
            opt = asdex.optax.sparse_gauss_newton(residual_fn, guess)
            return [
                (
                    "sparse_gauss_newton",
                    newton_loop(opt, loss, tol, 200),
                    guess,
                    True,
                ),
                ("optax.lbfgs", lbfgs_loop(loss, tol, 20_000), guess, True),
                ("optax.adam", adam_loop(loss, adam_steps, 1e-3), guess, True),
            ]

        results["pde_fit"] = case(
            f"eqx.Module PDE-constrained fit, n = {n:,} (eqx.filter_jit)", setup
        )
    return results


if __name__ == "__main__":
    main()
