"""No dense Jacobian, proven under a memory cap.

A child process limits its own address space (`RLIMIT_AS`) to 4 GiB, then solves
the 1-D Bratu problem with n = 2·10⁵ unknowns, where a dense Jacobian needs
320 GB: with stock `optx.Newton` given `asdex.SparseLinearSolver()` (the drop-in),
and with `asdex.optimistix.SparseNewton`, and differentiates through both with
`asdex.optimistix.sparse_adjoint()`. Each solve has a process of its own, so
that one's compiled programs do not count against the next. As a control, stock `optx.Newton` with its dense solver must fail under the same cap at
n = 30,000 (a 7.2 GB Jacobian), so the cap is known to bite.
"""

import os
import subprocess
import sys
import textwrap

import pytest

CAP_GIB = 4

SCRIPT = textwrap.dedent(
    """
    import resource, sys
    cap = {cap} * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    import optimistix as optx
    import asdex, asdex.optimistix as aox

    def bratu_1d(u, lam):
        h = 1.0 / (u.shape[0] + 1)
        w = jnp.pad(u, 1)
        return -(w[2:] - 2 * u + w[:-2]) - h**2 * lam * jnp.exp(u)

    solvers = {{
        "dense": optx.Newton(1e-9, 1e-9),
        "drop-in": optx.Newton(1e-9, 1e-9, linear_solver=asdex.SparseLinearSolver()),
        "dedicated": aox.SparseNewton(1e-9, 1e-9),
    }}
    name, n = sys.argv[1], int(sys.argv[2])
    # "<solver>-grad": d(sum u)/d(lambda) through the solve, by the implicit
    # function theorem, with the sparse adjoint ("-dense-grad": Optimistix's
    # default adjoint, which materialises the Jacobian at the solution).
    grad = name.endswith("-grad")
    adjoint = optx.ImplicitAdjoint() if "-dense" in name else aox.sparse_adjoint()
    solver = solvers[name.split("-grad")[0].replace("-dense", "")]

    def total(lam):
        sol = optx.root_find(
            bratu_1d, solver, jnp.zeros(n), lam, max_steps=30, adjoint=adjoint
        )
        return jnp.sum(sol.value), sol.value

    try:
        if grad:
            (_, u), dlam = jax.value_and_grad(total, has_aux=True)(1.0)
        else:
            _, u = total(1.0)
    except Exception as error:  # JaxRuntimeError: RESOURCE_EXHAUSTED
        print("failed:", type(error).__name__, str(error)[:200])
    else:
        residual = jnp.max(jnp.abs(bratu_1d(u, 1.0)))
        if grad:
            # The oracle: 1ᵀ J⁻¹ (h² eᵘ) with J = tridiag(-1, 2 - h² eᵘ, -1), by
            # scipy's sparse solve, independent of asdex and Optimistix.
            import numpy as np, scipy.sparse as sp, scipy.sparse.linalg as spla
            h2 = (1.0 / (n + 1)) ** 2
            e = h2 * np.exp(np.asarray(u))
            jac = sp.diags([-np.ones(n - 1), 2 - e, -np.ones(n - 1)], [-1, 0, 1])
            oracle = spla.spsolve(jac.tocsc(), e).sum()
            print("solved", float(residual), float(jnp.max(u)), float(dlam), oracle)
        else:
            print("solved", float(residual), float(jnp.max(u)))
    """
).format(cap=CAP_GIB)


def _run(solver: str, n: int) -> str:
    # Fewer malloc arenas: each thread's arena reserves address space it never
    # uses, which counts against RLIMIT_AS.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, solver, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's"
)


@pytest.mark.slow  # shows the dense route failing; asdex is tested above and below
@linux_only
def test_dense_newton_fails_under_the_cap():
    out = _run("dense", 30_000)
    assert out.startswith("failed:") and "RESOURCE_EXHAUSTED" in out, out


@linux_only
@pytest.mark.parametrize(
    "solver", [pytest.param("drop-in", marks=pytest.mark.slow), "dedicated"]
)
def test_sparse_newton_solves_under_the_cap(solver):
    words = _run(solver, 200_000).split()
    assert words[0] == "solved", words
    assert float(words[1]) < 1e-9
    assert 0.1 < float(words[2]) < 0.2  # the lower branch: max u ≈ 0.14


@linux_only
@pytest.mark.slow  # 40 s on 2 cores; the Newton control above proves the cap bites
def test_dense_adjoint_fails_under_the_cap():
    # The control for the gradients below: a sparse forward solve, but
    # Optimistix's default `ImplicitAdjoint()` (a 7.2 GB Jacobian at n = 30,000).
    out = _run("dedicated-dense-grad", 30_000)
    assert out.startswith("failed:") and "RESOURCE_EXHAUSTED" in out, out


@linux_only
@pytest.mark.parametrize(
    "solver",
    [
        # About 45 s each on 2 cores: the drop-in runs with the slow tests only.
        pytest.param("drop-in-grad", marks=pytest.mark.slow),
        "dedicated-grad",
    ],
)
def test_gradient_through_sparse_solve_under_the_cap(solver):
    # n = 2·10⁵: d(Σu)/dλ through the solve with `asdex.optimistix.sparse_adjoint()`
    # needs one sparse transposed solve, where the default adjoint needs 320 GB.
    words = _run(solver, 200_000).split()
    assert words[0] == "solved", words
    assert float(words[1]) < 1e-9
    gradient, oracle = float(words[3]), float(words[4])
    assert abs(gradient - oracle) <= 1e-8 * abs(oracle), (gradient, oracle)
