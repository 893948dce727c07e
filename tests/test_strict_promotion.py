"""Every public entry point under `jax_numpy_dtype_promotion="strict"`.

Equinox, Lineax and Optimistix run their tests under strict promotion, and so do
many of their users. Under it, arrays of different dtypes do not mix implicitly:
an int8 color compared with an int32 product index raises `TypePromotionError`,
and so does a float64 constant meeting a float32 array.

Each test runs in three precisions: `"float32"` (x64 off, as for most users),
`"float32_x64"` (float32 arrays with x64 on, where a stray `jnp.asarray(0.0)` is
float64 and mixes with them), and `"float64"`. The oracles are dense JAX, and
solutions known in closed form for the solvers.

Every combination compiles programs of its own, so the default suite runs a
slice: each case (mode, solver) in one of float32 and float64, alternately, and
`-m slow` runs the rest (all of them in every precision).
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import asdex
import asdex.ad._cpu as _cpu
import asdex.lineax as alx
import asdex.optimistix as aox
import jitted

PRECISIONS = ("float32", "float64", "float32_x64")


def rotated(cases):
    """`(precision, case)` pairs: case `i` in precision `i % 2` in the default
    suite, every other pair marked slow."""
    return [
        pytest.param(
            precision,
            case,
            marks=() if j == i % 2 else pytest.mark.slow,
            id=f"{precision}-{getattr(case, '__name__', case)}",
        )
        for i, case in enumerate(cases)
        for j, precision in enumerate(PRECISIONS)
    ]


def default_in(precision):
    """Every precision, with all but `precision` marked slow."""
    return [
        pytest.param(p, marks=() if p == precision else pytest.mark.slow)
        for p in PRECISIONS
    ]


@pytest.fixture(params=default_in("float32"))
def precision(request):
    return request.param


@pytest.fixture
def dtype(precision):
    """Strict promotion, in one precision; restored afterwards."""
    x64 = precision != "float32"
    with jax.enable_x64(x64), jax.numpy_dtype_promotion("strict"):
        yield jnp.float64 if precision == "float64" else jnp.float32


def _rtol(dtype):
    return 1e-4 if dtype == jnp.float32 else 1e-10


def _dense(matrix):
    return np.asarray(matrix.todense() if hasattr(matrix, "todense") else matrix)


def residual(x):
    return jnp.concatenate([(x[1:] - x[:-1]) ** 2, jnp.sin(x[:1] * x[-1:])])


def energy(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _point(dtype, n=10):
    return jnp.linspace(0.1, 1.2, n, dtype=dtype)


# ---------------------------------------------------------------- derivatives


def test_detection(dtype):
    x = _point(dtype)
    assert asdex.jacobian_sparsity(residual, x).nnz == 2 * 9 + 2
    assert asdex.hessian_sparsity(energy, x).nnz == 10 + 2 * 9


@pytest.mark.parametrize("precision, mode", rotated(["fwd", "rev", "bidirectional"]))
def test_jacobian_every_format(dtype, mode):
    x = _point(dtype)
    expected = jitted.jacfwd(residual)(x)
    # One format per mode (the products are the same; formats differ after them).
    fmt = {"fwd": "bcoo", "rev": "scipy_csr", "bidirectional": "dense"}[mode]
    jac_fn = asdex.value_and_jacobian(residual, x, mode=mode, output_format=fmt)
    value, J = jac_fn(x)
    np.testing.assert_allclose(value, residual(x), rtol=_rtol(dtype))
    np.testing.assert_allclose(_dense(J), expected, rtol=_rtol(dtype))
    if mode == "fwd":
        jac_fn = asdex.jacobian(residual, x, mode=mode, chunk_size=2)
        pattern = jac_fn.coloring.pattern
        np.testing.assert_allclose(
            jax.jit(jac_fn.nonzeros)(x),
            np.asarray(expected)[pattern.rows, pattern.cols],
            rtol=_rtol(dtype),
        )


def test_jacobian_pytrees_and_reuse(dtype):
    y = {"u": _point(dtype, 4), "v": _point(dtype, 5)}

    def f(y):
        return {"a": y["u"] * y["v"][:4], "b": jnp.sum(y["v"] ** 2)}

    expected = jitted.jacfwd(f)(y)
    got = asdex.jacobian(f, y, output_format="dense")(y)
    for path in (("a", "u"), ("a", "v"), ("b", "v")):
        np.testing.assert_allclose(
            got[path[0]][path[1]], expected[path[0]][path[1]], rtol=_rtol(dtype)
        )
    x = _point(dtype)
    coloring = asdex.jacobian_coloring(residual, x)
    J = asdex.jacobian_from_coloring(residual, coloring, x, output_format="dense")(x)
    np.testing.assert_allclose(J, jitted.jacfwd(residual)(x), rtol=_rtol(dtype))
    J = asdex.jacobian_from_pattern(
        residual, coloring.pattern, x, output_format="dense"
    )(x)
    np.testing.assert_allclose(J, jitted.jacfwd(residual)(x), rtol=_rtol(dtype))


def test_mixed_precision_leaves():
    """float32 and float64 leaves in one PyTree: the derivative's dtype is their
    standard promotion, which strict promotion would refuse to compute."""
    y = {
        "a": jnp.linspace(0.1, 1.0, 4, dtype=jnp.float32),
        "b": jnp.linspace(0.2, 1.0, 4),
    }

    def f(y):
        return {"p": y["a"] ** 2, "q": y["b"] * jnp.sum(y["b"])}

    def energy(y):
        return jnp.sum(y["a"] ** 4).astype(jnp.float64) + jnp.sum(y["b"] ** 3)

    J_ref, H_ref = jitted.jacfwd(f)(y), jitted.hessian(energy)(y)
    with jax.numpy_dtype_promotion("strict"):
        J = asdex.jacobian(f, y, output_format="dense")(y)
        H = asdex.hessian(energy, y, output_format="dense")(y)
        assert asdex.check_jacobian(asdex.jacobian(f, y), y).passed
    for out, inp in (("p", "a"), ("q", "b")):
        np.testing.assert_allclose(J[out][inp], J_ref[out][inp], rtol=1e-6)
    for a in ("a", "b"):
        np.testing.assert_allclose(H[a][a], H_ref[a][a], rtol=1e-6)


@pytest.mark.parametrize("precision", default_in("float64"))
def test_jacobian_one_program_per_product(dtype, monkeypatch):
    """The products run as separate programs (large Jacobians on CPU), here forced
    on a small one: the product index reaches the seed as a traced int32."""
    monkeypatch.setattr(_cpu, "DISPATCH_FROM_SIZE", 1)
    monkeypatch.setattr(_cpu, "DISPATCH_FROM", 1)
    x = _point(dtype)
    for mode in ("fwd", "rev"):
        J = asdex.jacobian(residual, x, mode=mode, output_format="dense")(x)
        np.testing.assert_allclose(J, jitted.jacfwd(residual)(x), rtol=_rtol(dtype))


@pytest.mark.parametrize("precision, mode", rotated(["star", "acyclic"]))
def test_hessian(dtype, mode, monkeypatch):
    # Every substitution plan on the host, so that its sweep is covered too.
    monkeypatch.setattr(_cpu, "HOST_SWEEP_FROM_BLOCKS", 1)
    x = _point(dtype)
    expected = jitted.hessian(energy)(x)
    value, H = asdex.value_and_hessian(energy, x, mode=mode)(x)
    np.testing.assert_allclose(value, energy(x), rtol=_rtol(dtype))
    np.testing.assert_allclose(_dense(H), expected, rtol=_rtol(dtype))


@pytest.mark.parametrize("precision", default_in("float64"))
def test_checks(dtype):
    x = _point(dtype)
    jac_fn = asdex.jacobian(residual, x)
    hess_fn = asdex.hessian(energy, x)
    for method in ("dense", "probes"):
        assert asdex.check_jacobian(jac_fn, x, method=method).passed
        assert asdex.check_hessian(hess_fn, x, method=method).passed


# ---------------------------------------------------------------- operators


@pytest.mark.parametrize("precision", default_in("float64"))
def test_operators(dtype):
    x = _point(dtype)
    v = jnp.arange(10, dtype=dtype)
    J = jitted.jacfwd(residual)(x)
    for mode in ("fwd", "rev", "bidirectional"):
        coloring = asdex.jacobian_coloring(residual, x, mode=mode)
        op = asdex.SparseJacobianOperator(lambda y, _: residual(y), x, None, coloring)
        np.testing.assert_allclose(op.mv(v), J @ v, rtol=_rtol(dtype))
        np.testing.assert_allclose(op.as_matrix(), J, rtol=_rtol(dtype))
        w = residual(x)
        np.testing.assert_allclose(op.transpose().mv(w), J.T @ w, rtol=_rtol(dtype))
    H = jitted.hessian(energy)(x)
    coloring = asdex.hessian_coloring(energy, x)
    op = asdex.SparseHessianOperator(lambda y, _: energy(y), x, None, coloring)
    np.testing.assert_allclose(op.mv(v), H @ v, rtol=_rtol(dtype))
    np.testing.assert_allclose(op.transpose().as_matrix(), H, rtol=_rtol(dtype))


def test_sparse_function(dtype):
    x = _point(dtype)
    fn = asdex.SparseFunction(lambda y, _: residual(y), x, None)
    value, op = fn.value_and_jacobian_operator(x, None)
    np.testing.assert_allclose(value, residual(x), rtol=_rtol(dtype))
    np.testing.assert_allclose(
        op.as_matrix(), jitted.jacfwd(residual)(x), rtol=_rtol(dtype)
    )
    fn = asdex.SparseFunction(lambda y, _: energy(y), x, None)
    np.testing.assert_allclose(
        fn.hessian_operator(x, None).as_matrix(),
        jitted.hessian(energy)(x),
        rtol=_rtol(dtype),
    )


@pytest.mark.parametrize("precision", default_in("float64"))
def test_linear_solvers(dtype):
    n = 10
    matrix = (
        np.diag(np.full(n, 4.0))
        - np.diag(np.ones(n - 1), 1)
        - np.diag(np.ones(n - 1), -1)
    ).astype(dtype)
    b = jnp.arange(n, dtype=dtype)
    expected = np.linalg.solve(matrix.astype(np.float64), np.asarray(b, np.float64))
    spd = (lx.symmetric_tag, lx.positive_semidefinite_tag)
    sparse = alx.SparseMatrixOperator.from_dense(matrix, tags=spd)
    structure = jax.ShapeDtypeStruct((n,), dtype)
    matrix_free = lx.FunctionLinearOperator(
        lambda v: jnp.asarray(matrix) @ v, structure
    )
    tol = 1e-5 if dtype == jnp.float32 else 1e-10
    for operator, solver in (
        (matrix_free, asdex.SparseLinearSolver()),
        (lx.JacobianLinearOperator(lambda y, _: jnp.asarray(matrix) @ y, b), None),
        (sparse, asdex.SparseLinearSolver()),
        (sparse, alx.SparseLU()),
        (sparse, alx.SparseCholesky()),
        (sparse, alx.SparseNormalEquations()),
        (sparse, alx.SparseKrylov(lx.CG(rtol=tol, atol=tol), preconditioner="jacobi")),
    ):
        solver = asdex.SparseLinearSolver() if solver is None else solver
        solution = lx.linear_solve(operator, b, solver)
        np.testing.assert_allclose(solution.value, expected, rtol=10 * _rtol(dtype))


# ---------------------------------------------------------------- Optimistix
#
# The problems have a known solution, `a = b = 1`, which is the oracle (rather
# than a second, dense solve to compile for every precision).


def root(y, args):
    return {"a": y["a"] ** 3 + 0.1 * jnp.roll(y["b"], 1) - args, "b": y["b"] - y["a"]}


def residuals(y, args):
    return {
        "chain": y["a"][1:] - y["a"][:-1] ** 2,
        "level": args - y["a"],
        "tie": y["b"] - y["a"],
    }


def objective(y, args):
    r = residuals(y, args)
    return sum(jnp.sum(leaf**2) for leaf in r.values())


def _y0(dtype):
    return {"a": jnp.full(5, 0.8, dtype), "b": jnp.full(5, 0.7, dtype)}


def _solved(solution, dtype):
    for leaf in (solution.value["a"], solution.value["b"]):
        assert leaf.dtype == dtype
        np.testing.assert_allclose(leaf, 1.0, rtol=100 * _rtol(dtype))


def _tol(dtype):
    return 1e-6 if dtype == jnp.float32 else 1e-10


@pytest.mark.parametrize(
    "precision, cls",
    rotated(
        [
            optx.Newton,
            optx.GaussNewton,
            optx.LevenbergMarquardt,
            optx.Chord,
            optx.Dogleg,
        ]
    ),
)
def test_drop_in_solvers(dtype, cls):
    if dtype == jnp.float32 and jax.config.jax_enable_x64 and cls in _X64_FAILS:
        # Optimistix's own LevenbergMarquardt and Dogleg fail on float32 `y` with
        # x64 on (a float64 damping or trust-region norm meets the float32
        # state), with or without asdex.
        pytest.skip("stock Optimistix needs x64 off for float32 LM and Dogleg")
    tol = _tol(dtype)
    solver = cls(tol, tol, linear_solver=asdex.SparseLinearSolver())
    if isinstance(solver, optx.AbstractRootFinder):
        p = jnp.asarray(1.1, dtype)
        _solved(optx.root_find(root, solver, _y0(dtype), p), dtype)
    else:
        p = jnp.asarray(1.0, dtype)
        _solved(optx.least_squares(residuals, solver, _y0(dtype), p), dtype)


_X64_FAILS = (optx.LevenbergMarquardt, optx.Dogleg)


@pytest.mark.parametrize(
    "precision, cls",
    rotated(
        [
            aox.SparseNewton,
            aox.SparseGaussNewton,
            aox.SparseLevenbergMarquardt,
            aox.SparseNewtonMinimiser,
        ]
    ),
)
def test_dedicated_solvers(dtype, cls):
    tol = _tol(dtype)
    solver = cls(tol, tol)
    y0, one = _y0(dtype), jnp.asarray(1.0, dtype)
    if isinstance(solver, optx.AbstractRootFinder):
        _solved(optx.root_find(root, solver, y0, jnp.asarray(1.1, dtype)), dtype)
    elif isinstance(solver, optx.AbstractLeastSquaresSolver):
        _solved(optx.least_squares(residuals, solver, y0, one), dtype)
    else:
        _solved(optx.minimise(objective, solver, y0, one), dtype)


def test_implicit_adjoint(dtype):
    """A gradient through a sparse root-find: with `a = b` uniform, `a³ + a/10 = p`,
    so `da/dp = 1 / (3a² + 1/10)`, and at `p = 1.1` (`a = 1`) the gradient of
    `Σ a²` (five entries) is `10 / 3.1`."""
    tol = _tol(dtype)
    solver = optx.Newton(tol, tol, linear_solver=asdex.SparseLinearSolver())
    adjoint = optx.ImplicitAdjoint(linear_solver=asdex.SparseLinearSolver())

    def loss(p):
        sol = optx.root_find(root, solver, _y0(dtype), p, adjoint=adjoint)
        return jnp.sum(sol.value["a"] ** 2)

    grad = jax.grad(loss)(jnp.asarray(1.1, dtype))
    np.testing.assert_allclose(grad, 10 / 3.1, rtol=100 * _rtol(dtype))
