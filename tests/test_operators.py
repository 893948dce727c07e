"""`SparseJacobianOperator`, `SparseHessianOperator`, and `sparsify` of matrix-free operators.

Every operator is compared with the dense derivative (`jax.jacfwd`, `jax.hessian`)
in Lineax's flat layout, every product with the dense product, and every solve and
its derivatives with a dense solve. The drop-in `sparsify` is checked on the
operators Optimistix builds, and by a jaxpr inspection that no array of the size of
a dense matrix is formed (and `test_memory_cap.py` solves under a memory cap).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from jax.flatten_util import ravel_pytree
from optimistix._solver.levenberg_marquardt import _Damped

import asdex
import asdex.optimistix as aox
import jitted
from asdex.lineax import (
    SparseHessianOperator,
    SparseJacobianOperator,
    SparseLinearSolver,
    SparseMatrixOperator,
    sparsify,
)

# ---------------------------------------------------------------- problems


def chain(y, args):
    """A vector function of a vector: a band of width 2."""
    return y[1:] ** 2 - args * y[:-1] + jnp.sin(y[1:])


def pytree_fn(y, args):
    """PyTree in, PyTree out."""
    return {
        "a": y["x"][1:] * y["z"][:-1] + args,
        "b": (jnp.sin(y["x"]), jnp.exp(y["z"]).reshape(2, 3)),
    }


class Params(eqx.Module):
    amplitude: jax.Array
    rate: jax.Array


def module_fn(params, t):
    return params.amplitude[:, None] * jnp.exp(-params.rate[:, None] * t)


def energy(y, args):
    """A scalar with a tridiagonal Hessian (indefinite in general)."""
    return jnp.sum((y[1:] - y[:-1] ** 2) ** 2) + args * jnp.sum(y**4)


def convex(y, args):
    """A strictly convex scalar on a grid: its Hessian is the 5-point stencil."""
    del args
    w = jnp.pad(y, 1)
    return (
        jnp.sum((w[1:, 1:-1] - w[:-1, 1:-1]) ** 2)
        + jnp.sum((w[1:-1, 1:] - w[1:-1, :-1]) ** 2)
        + jnp.sum(jnp.cosh(y))
    )


def flat_dense_jacobian(fn, y, args):
    flat, unravel = ravel_pytree(y)
    return np.asarray(
        jitted.jacfwd(lambda v: ravel_pytree(fn(unravel(v), args))[0])(flat)
    )


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


JACOBIAN_CASES = [
    ("chain", chain, jnp.linspace(0.5, 2.0, 12), 0.7),
    (
        "pytree",
        pytree_fn,
        {"x": jnp.linspace(1.0, 2.0, 6), "z": jnp.linspace(-1.0, 1.0, 6)},
        1.5,
    ),
    (
        "module",
        module_fn,
        Params(jnp.linspace(1.0, 2.0, 4), jnp.linspace(0.1, 0.4, 4)),
        jnp.linspace(0.0, 1.0, 5),
    ),
]


# ---------------------------------------------------------------- Jacobians


@pytest.mark.parametrize("name, fn, y, args", JACOBIAN_CASES)
@pytest.mark.parametrize("mode", [None, "rev", "bidirectional"])
def test_jacobian_operator_against_dense(name, fn, y, args, mode, rng):
    coloring = asdex.jacobian_coloring(fn, y, args, mode=mode)
    op = SparseJacobianOperator(fn, y, args, coloring)
    dense = flat_dense_jacobian(fn, y, args)
    np.testing.assert_allclose(op.as_matrix(), dense, atol=1e-12)
    assert op.in_structure() == jax.eval_shape(lambda: y)
    assert op.out_structure() == jax.eval_shape(fn, y, args)
    v = jtu.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), y)
    np.testing.assert_allclose(flat(op.mv(v)), dense @ flat(v), atol=1e-12)
    w = jtu.tree_map(
        lambda a: jnp.asarray(rng.normal(size=a.shape)), jax.eval_shape(fn, y, args)
    )
    np.testing.assert_allclose(
        flat(op.transpose().mv(w)), dense.T @ flat(w), atol=1e-12
    )
    # Detecting instead of reusing gives the same operator.
    if mode is None:
        again = SparseJacobianOperator(fn, y, args)
        assert again.coloring == coloring
        np.testing.assert_array_equal(again.values, op.values)


def test_jacobian_operator_values_are_the_pattern_nonzeros():
    y = jnp.linspace(0.5, 2.0, 12)
    op = SparseJacobianOperator(chain, y, 0.7)
    pattern = op.pattern
    assert pattern == op.coloring.pattern
    dense = flat_dense_jacobian(chain, y, 0.7)
    np.testing.assert_allclose(op.values, dense[pattern.rows, pattern.cols])
    # The band: y[i+1] and y[i] in row i.
    assert pattern.nnz == 2 * 11
    assert isinstance(sparsify(op), SparseMatrixOperator)


def test_singledispatch_functions():
    diag = SparseJacobianOperator(lambda y, a: jnp.exp(y) * a, jnp.arange(4.0), 2.0)
    tri = SparseJacobianOperator(
        lambda y, a: y * jnp.roll(y, 1).at[0].set(1.0) + y**2, jnp.arange(1.0, 6.0)
    )
    for op in (diag, tri):
        assert lx.linearise(op) is op
        assert lx.materialise(op) is op
    assert lx.is_diagonal(diag) and lx.is_tridiagonal(diag) and lx.is_symmetric(diag)
    np.testing.assert_allclose(lx.diagonal(diag), 2 * np.exp(np.arange(4.0)))
    assert not lx.is_diagonal(tri) and lx.is_tridiagonal(tri)
    assert lx.is_lower_triangular(tri) and not lx.is_upper_triangular(tri)
    assert not lx.is_symmetric(tri)
    main, lower, upper = lx.tridiagonal(tri)
    dense = np.asarray(tri.as_matrix())
    np.testing.assert_allclose(main, np.diag(dense))
    np.testing.assert_allclose(lower, np.diag(dense, -1))
    np.testing.assert_allclose(upper, np.diag(dense, 1))
    for query in (
        lx.has_unit_diagonal,
        lx.is_positive_semidefinite,
        lx.is_negative_semidefinite,
    ):
        assert not query(tri)
    conj = lx.conj(tri)
    assert isinstance(conj, SparseJacobianOperator)
    np.testing.assert_allclose(conj.as_matrix(), dense)
    tagged = SparseJacobianOperator(
        lambda y, a: jnp.exp(y), jnp.arange(3.0), tags=lx.positive_semidefinite_tag
    )
    assert lx.is_positive_semidefinite(tagged) and lx.is_symmetric(tagged)
    assert tagged.transpose() is tagged


def test_hessian_operator_against_dense(rng):
    y = jnp.asarray(rng.normal(size=9))
    op = SparseHessianOperator(energy, y, 0.5)
    dense = np.asarray(jitted.hessian(energy)(y, 0.5))
    np.testing.assert_allclose(op.as_matrix(), dense, atol=1e-12)
    assert op.coloring.mode == "star"  # the default: each entry direct
    assert lx.is_symmetric(op) and lx.is_tridiagonal(op)
    assert not lx.is_positive_semidefinite(op)
    assert op.transpose() is op
    v = jnp.asarray(rng.normal(size=9))
    np.testing.assert_allclose(op.mv(v), dense @ v, atol=1e-12)

    # A PyTree input: a dict of a grid and a vector.
    def tree_energy(y, args):
        return convex(y["u"], args) + jnp.sum(y["v"] ** 2 * y["u"][0, :3])

    tree = {"u": jnp.asarray(rng.normal(size=(3, 4))), "v": jnp.ones(3)}
    op = SparseHessianOperator(tree_energy, tree, 0.0)
    flat_y, unravel = ravel_pytree(tree)
    dense = jitted.hessian(lambda v: tree_energy(unravel(v), 0.0))(flat_y)
    np.testing.assert_allclose(op.as_matrix(), dense, atol=1e-12)
    assert op.in_structure() == jax.eval_shape(lambda: tree)


def test_solves_jit_vmap_grad(rng):
    """`linear_solve` with the operators, differentiated through the values into `y`."""
    y0 = jnp.asarray(rng.uniform(0.5, 1.5, (4, 4)))
    b = jnp.asarray(rng.normal(size=(4, 4)))
    coloring = asdex.hessian_coloring(convex, y0, 0.0)

    def sparse_loss(y):
        op = SparseHessianOperator(
            convex, y, 0.0, coloring, tags=lx.positive_semidefinite_tag
        )
        return jnp.sum(lx.linear_solve(op, b, SparseLinearSolver()).value ** 2)

    def dense_loss(y):
        h = jitted.hessian(lambda v: convex(v.reshape(4, 4), 0.0))(y.reshape(-1))
        return jnp.sum(jnp.linalg.solve(h, b.reshape(-1)) ** 2)

    np.testing.assert_allclose(jax.jit(sparse_loss)(y0), dense_loss(y0), rtol=1e-10)
    np.testing.assert_allclose(
        jax.jit(jax.grad(sparse_loss))(y0), jax.grad(dense_loss)(y0), rtol=1e-8
    )
    ys = jnp.stack([y0, 2 * y0])
    np.testing.assert_allclose(
        jax.vmap(sparse_loss)(ys), jax.vmap(dense_loss)(ys), rtol=1e-10
    )
    # A rectangular Jacobian: least squares through the normal equations.
    t = jnp.linspace(0.0, 1.0, 5)
    params = Params(jnp.linspace(1.0, 2.0, 4), jnp.linspace(0.1, 0.4, 4))
    r = jnp.asarray(rng.normal(size=(4, 5)))

    def lstsq(p):
        op = SparseJacobianOperator(module_fn, p, t)
        return lx.linear_solve(op, r, SparseLinearSolver()).value

    dense = flat_dense_jacobian(module_fn, params, t)
    expected = np.linalg.lstsq(dense, np.asarray(r).reshape(-1), rcond=None)[0]
    solution = eqx.filter_jit(lstsq)(params)
    assert isinstance(solution, Params)
    np.testing.assert_allclose(flat(solution), expected, atol=1e-10)


def test_static_coloring_in_loops_and_jit_cache():
    """The coloring is static with a cheap hash: no retrace for new values, and the
    operator can be carried by a `while_loop`."""
    y = jnp.linspace(0.5, 2.0, 12)
    coloring = asdex.jacobian_coloring(chain, y, 0.7)
    traces = []

    @jax.jit
    def apply(y, v):
        traces.append(None)
        return SparseJacobianOperator(chain, y, 0.7, coloring).mv(v)

    apply(y, y)
    apply(2 * y, y + 1)
    assert len(traces) == 1

    op = SparseJacobianOperator(chain, y, 0.7, coloring)

    def body(carry):
        op, k = carry
        return eqx.tree_at(lambda o: o.matrix.values, op, op.values * 2), k + 1

    out, _ = jax.jit(lambda op: jax.lax.while_loop(lambda c: c[1] < 3, body, (op, 0)))(
        op
    )
    np.testing.assert_allclose(out.values, 8 * op.values)
    assert out.coloring is op.coloring
    assert hash(coloring) == hash(out.coloring)


def test_operator_errors():
    y = jnp.linspace(0.5, 2.0, 12)
    with pytest.raises(TypeError, match="fn"):
        SparseJacobianOperator("chain", y)
    hessian_coloring = asdex.hessian_coloring(energy, y, 0.5)
    with pytest.raises(ValueError, match="jacobian_coloring"):
        SparseJacobianOperator(chain, y, 0.7, hessian_coloring)
    other = asdex.jacobian_coloring(chain, jnp.ones(8), 0.7)
    with pytest.raises(ValueError, match="other shapes"):
        SparseJacobianOperator(chain, y, 0.7, other)
    with pytest.raises(ValueError, match="symmetric"):
        SparseJacobianOperator(chain, y, 0.7, tags=lx.symmetric_tag)
    with pytest.raises(TypeError, match="one real scalar"):
        SparseHessianOperator(chain, y, 0.7)
    with pytest.raises(ValueError, match="hessian_coloring"):
        SparseHessianOperator(energy, y, 0.5, asdex.jacobian_coloring(chain, y, 0.7))
    with pytest.raises(TypeError, match="ColoredPattern"):
        asdex.lineax.compression(hessian_coloring.pattern)


# ---------------------------------------------------------------- drop-in sparsify


def _linearised(fn, y, args):
    _, lin = jax.linearize(lambda v: fn(v, args), y)
    return lx.FunctionLinearOperator(lin, jax.eval_shape(lambda: y))


def test_sparsify_function_and_jacobian_operators(rng):
    y = {"x": jnp.linspace(1.0, 2.0, 6), "z": jnp.linspace(-1.0, 1.0, 6)}
    dense = flat_dense_jacobian(pytree_fn, y, 1.5)
    for op in (
        _linearised(pytree_fn, y, 1.5),
        lx.JacobianLinearOperator(pytree_fn, y, 1.5),
        lx.JacobianLinearOperator(pytree_fn, y, 1.5, jac="bwd"),
    ):
        sparse = sparsify(op)
        assert isinstance(sparse, SparseMatrixOperator)
        assert sparse.in_structure() == op.in_structure()
        np.testing.assert_allclose(sparse.as_matrix(), dense, atol=1e-12)
        # Only the structural nonzeros are stored.
        assert sparse.pattern.nnz == np.count_nonzero(dense)
    # Under `jit`, the operator's arrays are tracers: detection treats them as
    # unknown constants, and the pattern is the same.
    values = jax.jit(lambda y: sparsify(_linearised(pytree_fn, y, 1.5)).values)(y)
    np.testing.assert_allclose(values, sparsify(_linearised(pytree_fn, y, 1.5)).values)


def test_sparsify_levenberg_marquardt_damped_operator(rng):
    """Optimistix's `FunctionLinearOperator(_Damped(J, λ))` becomes `[J; √λ I]`."""
    y = jnp.linspace(0.5, 2.0, 12)
    jac = _linearised(chain, y, 0.7)
    op = lx.FunctionLinearOperator(_Damped(jac, jnp.asarray(4.0)), jac.in_structure())
    sparse = sparsify(op)
    dense = flat_dense_jacobian(chain, y, 0.7)
    np.testing.assert_allclose(
        sparse.as_matrix(), np.vstack([dense, 2 * np.eye(12)]), atol=1e-12
    )
    b = (jnp.asarray(rng.normal(size=11)), jnp.zeros(12))
    x = lx.linear_solve(op, b, SparseLinearSolver()).value
    expected = np.linalg.solve(dense.T @ dense + 4 * np.eye(12), dense.T @ b[0])
    np.testing.assert_allclose(x, expected, atol=1e-10)


def test_sparsify_symmetric_and_reverse(rng):
    # A symmetric tag: the symmetrised pattern, star or acyclic colored.
    y = jnp.asarray(rng.normal(size=10))
    grad = jax.grad(energy)
    op = lx.JacobianLinearOperator(
        lambda y, a: grad(y, a), y, 0.5, tags=lx.symmetric_tag
    )
    sparse = sparsify(op)
    assert lx.is_symmetric(sparse) and sparse.pattern.is_symmetric()
    np.testing.assert_allclose(
        sparse.as_matrix(), jitted.hessian(energy)(y, 0.5), atol=1e-12
    )

    # Few dense columns, many rows: rows are colored (VJPs of the transpose).
    def wide(v):
        return jnp.concatenate([v[:1] * v[1:] * 0 + v[:1] + v[1:2], v[2:] * 3.0])

    op = lx.FunctionLinearOperator(wide, jax.ShapeDtypeStruct((40,), jnp.float64))
    dense = np.asarray(jitted.jacfwd(wide)(jnp.ones(40)))
    np.testing.assert_allclose(sparsify(op).as_matrix(), dense)


def test_sparsify_dense_pattern_is_not_sparse():
    op = lx.FunctionLinearOperator(
        lambda v: jnp.full_like(v, jnp.sum(v)), jax.ShapeDtypeStruct((6,), jnp.float64)
    )
    with pytest.raises(NotImplementedError, match="dense pattern"):
        sparsify(op)
    # `SparseLinearSolver` falls back to Lineax's dense solvers for small ones.
    op = lx.FunctionLinearOperator(
        lambda v: 2 * v + jnp.sum(v), jax.ShapeDtypeStruct((4,), jnp.float64)
    )
    x = lx.linear_solve(op, jnp.ones(4), SparseLinearSolver()).value
    np.testing.assert_allclose(x, np.linalg.solve(2 * np.eye(4) + 1, np.ones(4)))


def _size(var) -> int:
    return int(np.prod(getattr(var.aval, "shape", ()), dtype=np.int64))


def _max_array_size(jaxpr) -> int:
    """The largest array anywhere in a (closed) jaxpr, sub-jaxprs included."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    largest = max((_size(v) for v in [*jaxpr.invars, *jaxpr.constvars]), default=0)
    for eqn in jaxpr.eqns:
        largest = max([largest, *(_size(v) for v in eqn.outvars)])
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if hasattr(sub, "eqns") or hasattr(sub, "jaxpr"):
                    largest = max(largest, _max_array_size(sub))
    return largest


def bratu_1d(u, lam):
    """`h² F(u)` for `F(u) = −u'' − λ eᵘ`, scaled so that round-off stays below 1e-9."""
    h = 1.0 / (u.shape[0] + 1)
    w = jnp.pad(u, 1)
    return -(w[2:] - 2 * u + w[:-2]) - h**2 * lam * jnp.exp(u)


@pytest.mark.parametrize(
    "make_solver",
    [
        lambda: optx.Newton(1e-9, 1e-9, linear_solver=SparseLinearSolver()),
        lambda: aox.SparseNewton(1e-9, 1e-9),
    ],
)
def test_no_dense_matrix_anywhere(make_solver):
    """Inspect the whole program of a Newton solve: no array has as many as
    n²/10 elements (a dense Jacobian has n²). `test_memory_cap.py` solves at
    n = 2·10⁵ under a 4 GiB memory cap."""
    solver = make_solver()

    def solve(u0):
        return optx.root_find(bratu_1d, solver, u0, 1.0, max_steps=20).value

    n = 2000
    jaxpr = jax.make_jaxpr(solve)(jnp.zeros(n))
    assert _max_array_size(jaxpr) < n * n // 10
    # The inspection does see a dense Jacobian where there is one.
    dense = optx.Newton(1e-9, 1e-9)
    jaxpr = jax.make_jaxpr(
        lambda u0: optx.root_find(bratu_1d, dense, u0, 1.0, max_steps=20).value
    )(jnp.zeros(n))
    assert _max_array_size(jaxpr) >= n * n
    u = jax.jit(solve)(jnp.zeros(n))  # `throw=True`: raises unless converged
    assert float(jnp.max(jnp.abs(bratu_1d(u, 1.0)))) < 1e-9


def test_a_coloring_in_place_of_the_point_is_named():
    def fn(y, args):
        return y[1:] - y[:-1] ** 2

    y = jnp.ones(5)
    coloring = asdex.jacobian_coloring(fn, y, None)
    with pytest.raises(
        TypeError, match="`y` is the point.*pass the coloring by keyword"
    ):
        asdex.SparseJacobianOperator(fn, coloring, None)
    hessian = asdex.hessian_coloring(lambda y, a: jnp.sum(fn(y, a) ** 2), y, None)
    with pytest.raises(TypeError, match="`y` is the point"):
        asdex.SparseHessianOperator(lambda y, a: jnp.sum(y**2), hessian, None)
