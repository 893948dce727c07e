"""Checks of sharded colorings on four CPU devices, run by `test_sharding.py`.

XLA fixes the number of host devices when JAX starts, so these run in a process
of their own, started with `XLA_FLAGS=--xla_force_host_platform_device_count=4`.
Each case compares values with `jax.jacfwd` / `jax.hessian` or with the same
computation on one device; the script prints one JSON object, each case's name
mapped to `"ok"` or the error it raised.
"""

import json
import pickle
import sys
import traceback

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402
from jax.sharding import AxisType, NamedSharding, PartitionSpec  # noqa: E402

import asdex  # noqa: E402
import jitted  # noqa: E402
from asdex.lineax._sparsify_matrix_free import (  # noqa: E402
    given_coloring,
    sparsify_linear_map,
)

AUTO = jax.make_mesh((4,), ("d",), axis_types=(AxisType.Auto,))
EXPLICIT = jax.make_mesh((4,), ("d",), axis_types=(AxisType.Explicit,))
GRID = jax.make_mesh((2, 2), ("a", "b"), axis_types=(AxisType.Auto,) * 2)
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def close(a, b, tol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(np.max(np.abs(a - b), initial=0.0))
    assert err <= tol * max(1.0, float(np.max(np.abs(b), initial=0.0))), err


def chain(x):
    """A tridiagonal Jacobian (3 column colors) with a dense last column."""
    p = jnp.pad(x, 1)
    return (p[2:] - p[:-2]) ** 2 + jnp.sin(x) * x[-1]


def energy(x):
    return jnp.sum((x[1:] - x[:-1] ** 2) ** 2) + jnp.sum(jnp.cosh(x))


X = jnp.linspace(0.1, 1.3, 42)


def devices_of(array) -> int:
    return len({s.device for s in array.addressable_shards if s.data.size})


@case
def jacobian_formats():
    coloring = asdex.jacobian_coloring(chain, X).shard(AUTO)
    assert coloring.sharding is not None and coloring.sharding.size == 4
    assert "over 4 devices" in repr(coloring)
    dense = jitted.jacfwd(chain)(X)
    for fmt in ("bcoo", "dense", "scipy_csr"):
        jac = asdex.jacobian_from_coloring(chain, coloring, output_format=fmt)
        out = jac(X)
        out = out.todense() if fmt == "bcoo" else out
        close(out.toarray() if fmt == "scipy_csr" else out, dense)


@case
def jacobian_modes():
    dense = jitted.jacfwd(chain)(X)
    for mode in ("fwd", "rev", "bidirectional"):
        coloring = asdex.jacobian_coloring(chain, X, mode=mode).shard(AUTO)
        close(asdex.jacobian_from_coloring(chain, coloring)(X).todense(), dense)


@case
def hessian_modes():
    dense = jitted.hessian(energy)(X)
    for mode in ("star", "acyclic"):
        coloring = asdex.hessian_coloring(energy, X, mode=mode).shard(AUTO)
        hess = asdex.hessian_from_coloring(energy, coloring, output_format="dense")
        close(hess(X), dense, 1e-10)


@case
def nonzeros_stay_sharded():
    # 42 × 4 = 168 slots hold 124 nonzeros; the star Hessian has 124 too.
    coloring = asdex.hessian_coloring(energy, X).shard(AUTO)
    hess = asdex.hessian_from_coloring(energy, coloring)
    assert coloring.pattern.nnz % 4 == 0
    values = jax.jit(hess.nonzeros)(X)
    assert devices_of(values) == 4, values.sharding
    close(values, asdex.hessian_from_coloring(energy, coloring.shard(None)).nonzeros(X))


@case
def products_are_not_gathered():
    # Direct: each device reads its own products, and one reduce-scatter
    # assembles the nonzeros. Acyclic substitution gathers the products.
    for mode, gathers in (("star", False), ("acyclic", True)):
        coloring = asdex.hessian_coloring(energy, X, mode=mode).shard(AUTO)
        hess = asdex.hessian_from_coloring(energy, coloring)
        hlo = jax.jit(hess.nonzeros).lower(X).compile().as_text()
        assert ("all-gather" in hlo) == gathers, mode
        assert ("reduce-scatter" in hlo) != gathers, mode


@case
def pytrees_value_and_aux():
    def f(tree):
        y = tree["y"]
        return {"r": jnp.diff(y) ** 2 * tree["s"][0], "s": tree["s"] ** 2}, jnp.sum(y)

    tree = {"y": X[:9], "s": X[9:12]}
    coloring = asdex.jacobian_coloring(f, tree, has_aux=True).shard(AUTO)
    plain = asdex.value_and_jacobian(f, tree, has_aux=True, output_format="dense")
    sharded = asdex.jacobian_from_coloring(
        f, coloring, tree, has_aux=True, with_value=True, output_format="dense"
    )
    (value, aux), jac = sharded(tree)
    (value0, aux0), jac0 = plain(tree)
    jax.tree.map(close, (value, aux, jac), (value0, aux0, jac0))


@case
def transformations():
    coloring = asdex.jacobian_coloring(chain, X)
    plain = asdex.jacobian_from_coloring(chain, coloring)
    sharded = asdex.jacobian_from_coloring(chain, coloring.shard(AUTO), chunk_size=1)
    close(jax.jit(sharded.nonzeros)(X), plain.nonzeros(X))
    xs = jnp.stack([X, 2 * X, -X])
    close(jax.vmap(sharded.nonzeros)(xs), jax.vmap(plain.nonzeros)(xs))

    def loss(jac):
        return lambda x: jnp.sum(jnp.sin(jac.nonzeros(x)))

    close(jax.grad(loss(sharded))(X), jax.grad(loss(plain))(X), 1e-10)

    def loop(jac):
        def body(i, x):
            return x + 1e-3 * jac.nonzeros(x)[: x.size]

        return jax.jit(lambda x: jax.lax.fori_loop(0, 3, body, x))

    close(loop(sharded)(X), loop(plain)(X))


@case
def meshes():
    dense = jitted.jacfwd(chain)(X)
    colorings = [
        asdex.jacobian_coloring(chain, X).shard(EXPLICIT),
        asdex.jacobian_coloring(chain, X).shard(GRID),
        asdex.jacobian_coloring(chain, X).shard(GRID, "b"),
        asdex.jacobian_coloring(chain, X).shard(GRID, ("b", "a")),
    ]
    for coloring in colorings:
        jac = asdex.jacobian_from_coloring(chain, coloring, output_format="dense")
        close(jax.jit(jac)(X), dense)
    assert colorings[2].sharding.size == 2


@case
def complex_holomorphic():
    def f(z):
        return jnp.diff(z) ** 2 + 1j * z[1:]

    z = jax.lax.complex(X[:12], X[12:24])
    coloring = asdex.jacobian_coloring(f, z, holomorphic=True).shard(AUTO)
    jac = asdex.jacobian_from_coloring(f, coloring, z, holomorphic=True)
    close(jac(z).todense(), jitted.jacfwd(f, holomorphic=True)(z))


@case
def float32():
    x = X.astype(jnp.float32)
    coloring = asdex.jacobian_coloring(chain, x).shard(AUTO)
    jac = asdex.jacobian_from_coloring(chain, coloring, x, output_format="dense")
    out = jac(x)
    assert out.dtype == jnp.float32
    close(out, jitted.jacfwd(chain)(x), 1e-5)


def bratu(y, args):
    p = jnp.pad(y, 1)
    return 2 * y - p[:-2] - p[2:] + 0.1 * jnp.exp(y) - args


@case
def operators():
    args = jnp.float64(0.5)
    coloring = asdex.jacobian_coloring(lambda y: bratu(y, args), X).shard(AUTO)
    op = asdex.SparseJacobianOperator(bratu, X, args, coloring=coloring)
    dense = jitted.jacfwd(bratu)(X, args)
    close(op.as_matrix(), dense)
    b = jnp.cos(X)

    @jax.jit
    def solve(op, b):
        return lx.linear_solve(op, b, asdex.SparseLinearSolver()).value

    close(solve(op, b), jnp.linalg.solve(dense, b), 1e-10)

    def e(y, args):
        return energy(y) * args

    hcoloring = asdex.hessian_coloring(lambda y: e(y, args), X).shard(AUTO)
    hop = asdex.SparseHessianOperator(e, X, args, coloring=hcoloring)
    close(hop.as_matrix(), jitted.hessian(e)(X, args), 1e-10)


@case
def solvers():
    # 2,500 unknowns: above the size that `SparseLinearSolver` solves densely.
    # The matrices are tridiagonal, solved in XLA: host factorisations inside a
    # multi-device loop can hang XLA's CPU runtime (docs/howto/scaling_out.md).
    y0 = jnp.linspace(0.0, 1.0, 2500)
    args = jnp.float64(0.5)
    coloring = asdex.jacobian_coloring(lambda y: bratu(y, args), y0)
    solvers = [
        asdex.optimistix.SparseNewton(rtol=1e-10, atol=1e-10, coloring=coloring),
        asdex.optimistix.SparseNewton(
            rtol=1e-10, atol=1e-10, coloring=coloring.shard(AUTO)
        ),
        optx.Newton(
            rtol=1e-10,
            atol=1e-10,
            linear_solver=asdex.SparseLinearSolver(coloring=coloring.shard(AUTO)),
        ),
    ]
    roots = [optx.root_find(bratu, s, y0, args).value for s in solvers]
    close(roots[1], roots[0], 1e-10)
    close(roots[2], roots[0], 1e-10)
    hcoloring = asdex.hessian_coloring(energy, X).shard(AUTO)
    minimiser = asdex.optimistix.SparseNewtonMinimiser(
        rtol=1e-10, atol=1e-10, coloring=hcoloring
    )
    found = optx.minimise(lambda y, _: energy(y), minimiser, X).value
    close(jax.grad(energy)(found), jnp.zeros_like(X), 1e-8)


@case
def sharded_unknowns():
    # The unknowns split over the devices: XLA's partitioner follows them with an
    # unsharded coloring; a sharded one refuses them, saying what to do.
    y0 = jax.device_put(
        jnp.linspace(0.0, 1.0, 2500), NamedSharding(AUTO, PartitionSpec("d"))
    )
    coloring = asdex.jacobian_coloring(lambda y: bratu(y, 0.5), y0)
    solver = asdex.optimistix.SparseNewton(rtol=1e-10, atol=1e-10, coloring=coloring)
    root = jax.jit(lambda y: optx.root_find(bratu, solver, y, 0.5).value)(y0)
    close(bratu(root, 0.5), jnp.zeros_like(root), 1e-9)
    jac = asdex.jacobian_from_coloring(lambda y: bratu(y, 0.5), coloring)
    close(jax.jit(jac.nonzeros)(y0), jac.nonzeros(np.asarray(y0)))
    sharded = asdex.jacobian_from_coloring(
        lambda y: bratu(y, 0.5), coloring.shard(AUTO)
    )
    try:
        jax.jit(sharded.nonzeros)(y0)
    except ValueError as e:
        assert "coloring.shard(None)" in str(e), str(e)
    else:
        raise AssertionError("no error")
    close(jax.jit(sharded.nonzeros)(np.asarray(y0)), jac.nonzeros(np.asarray(y0)))


@case
def levenberg_marquardt_operator():
    # Levenberg–Marquardt's operator is `[J; √λ I]`: its coloring, derived from
    # the given one, is sharded as the given one is.
    y0 = jnp.linspace(0.0, 1.0, 2500)
    coloring = asdex.jacobian_coloring(lambda y: bratu(y, 0.5), y0)
    _, jvp = jax.linearize(lambda y: bratu(y, 0.5), y0)
    stacked = lx.FunctionLinearOperator(
        lambda v: (jvp(v), 0.3 * v), jax.eval_shape(lambda: y0)
    )
    values = []
    for given in (coloring, coloring.shard(AUTO)):
        with given_coloring(given):
            values.append(jax.jit(lambda: sparsify_linear_map(stacked).values)())
    close(values[1], values[0])


@case
def sharded_batches():
    # Independent problems: an unsharded coloring, vmapped over a batch that is
    # sharded over the devices.
    batch = jax.device_put(
        jnp.stack([X * (1 + 0.1 * k) for k in range(8)]),
        NamedSharding(AUTO, PartitionSpec("d")),
    )
    jac = asdex.jacobian(chain, X, output_format="dense")
    out = jax.jit(jax.vmap(jac))(batch)
    close(out, jax.vmap(jitted.jacfwd(chain))(batch))
    assert devices_of(out) == 4, out.sharding
    args = jax.device_put(
        jnp.linspace(0.1, 0.8, 8), NamedSharding(AUTO, PartitionSpec("d"))
    )
    coloring = asdex.jacobian_coloring(lambda y: bratu(y, 0.5), X)
    solver = asdex.optimistix.SparseNewton(rtol=1e-10, atol=1e-10, coloring=coloring)

    @jax.jit
    @jax.vmap
    def roots(a):
        return optx.root_find(bratu, solver, X, a).value

    found = roots(args)
    assert devices_of(found) == 4, found.sharding
    for k in range(8):
        close(found[k], roots(np.asarray(args))[k], 1e-10)
        close(bratu(found[k], args[k]), jnp.zeros_like(X), 1e-9)


@case
def errors():
    coloring = asdex.jacobian_coloring(chain, X)
    for bad, kind in (
        (lambda: coloring.shard("d"), TypeError),
        (lambda: coloring.shard(AUTO, "x"), ValueError),
        (lambda: coloring.shard(AUTO, ("d", "d")), ValueError),
        (lambda: coloring.shard(None, "d"), ValueError),
        (lambda: pickle.dumps(coloring.shard(AUTO)), TypeError),
    ):
        try:
            bad()
        except kind as e:
            assert "shard" in str(e) or "pickle" in str(e), str(e)
        else:
            raise AssertionError("no error")
    sharded = coloring.shard(AUTO)
    assert sharded != coloring and sharded.shard(None) == coloring
    assert hash(sharded.shard(None)) == hash(coloring)
    assert sharded == coloring.shard(AUTO)


def main(names: list[str]) -> None:
    assert jax.device_count() == 4, jax.devices()
    report = {}
    for name in names or CASES:
        try:
            CASES[name]()
            report[name] = "ok"
        except Exception:
            report[name] = traceback.format_exc(limit=-6)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
