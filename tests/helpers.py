"""Shared oracles and tables of test functions for sparsity detection.

The oracle is dense JAX: at several random inputs, the nonzeros of `jax.jacfwd`
(`jax.jacrev` for `custom_vjp`, `jax.hessian` for Hessians) must lie inside the
detected pattern. Where the exact pattern is known, the tests state it.

The tables (`ELEMENTWISE_CASES`, ..., `JACOBIAN_CASES`, `HESSIAN_CASES`) list
`Case(name, f, args, expected=None, ...)` entries. They are meant to be reused by
any test that needs a zoo of functions with known sparsity, such as the tests of
sparse Jacobians and Hessians: `expected`, when given, is the exact dense boolean
pattern.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
import sys
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import scipy.sparse as sp
from jax import lax
from jax.experimental import sparse as jsparse
from jax.flatten_util import ravel_pytree

import asdex

# ---------------------------------------------------------------------------- scripts

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(relative_path: str):
    """Import a script of the repository (`"benchmarks/detection.py"`, say) as a
    module, for smoke runs of its `main`. It is registered in `sys.modules`, where
    dataclasses look their module up. Its folder goes on `sys.path`, as when the
    script runs, so that it imports its siblings (`benchmarks/_timing.py`); last,
    so that `examples/` keeps its place ahead of it (`benchmarks/bundle_adjustment.py`
    imports `examples/bundle_adjustment.py`)."""
    path = ROOT / relative_path
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    name = "asdex_script_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- oracle


def _nums(argnums) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def flat_function(f, args, kwargs=None, argnums=0, has_aux=False):
    """`f` as a map from the flat vector of the `argnums` leaves to the flat outputs.

    Inputs and outputs are flattened leaf by leaf in `jax.tree_util` order, each leaf
    row-major: the layout of `asdex.SparsityPattern`. Returns `(g, x_flat)`.
    """
    g, x_flat, arrays = _flat_function(f, args, kwargs, argnums, has_aux)
    return (lambda v: g(v, arrays)), x_flat


def _flat_function(f, args, kwargs, argnums, has_aux):
    """As `flat_function`, but `g(v, arrays)` also takes the array leaves of `args`
    (so that one `jax.jit` serves several points); non-array leaves are closed over."""
    kwargs = {} if kwargs is None else kwargs
    nums = tuple(a % len(args) for a in _nums(argnums))
    x_flat, unravel = ravel_pytree(tuple(args[a] for a in nums))
    leaves, treedef = jtu.tree_flatten(args)
    is_dyn = [_is_array(leaf) for leaf in leaves]
    arrays = [leaf for leaf, d in zip(leaves, is_dyn, strict=True) if d]

    def g(v, arrays):
        it = iter(arrays)
        full = list(
            jtu.tree_unflatten(
                treedef,
                [next(it) if d else x for x, d in zip(leaves, is_dyn, strict=True)],
            )
        )
        for a, part in zip(nums, unravel(v), strict=True):
            full[a] = part
        out = f(*full, **kwargs)
        if has_aux:
            out = out[0]
        flat = [jnp.ravel(jnp.asarray(leaf)) for leaf in jtu.tree_leaves(out)]
        if not flat:
            return jnp.zeros(0, v.dtype)
        return jnp.concatenate([leaf.astype(v.dtype) for leaf in flat])

    return g, x_flat, arrays


def random_like(args, rng: np.random.Generator, positive: bool = False):
    """Fresh random values for every floating leaf; other leaves are kept.

    `ShapeDtypeStruct` leaves become arrays (integers become zeros).
    """

    def draw(leaf):
        if not _is_array(leaf):
            return leaf
        if isinstance(leaf, jax.ShapeDtypeStruct):
            shape, dtype = leaf.shape, leaf.dtype
        else:
            shape, dtype = np.shape(leaf), jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.inexact):
            if positive:
                value = rng.uniform(0.5, 1.5, size=shape)
            else:
                value = rng.standard_normal(size=shape)
            return jnp.asarray(value, dtype=dtype)
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jnp.zeros(shape, dtype)
        return leaf

    return jtu.tree_map(draw, args)


def _concrete(args) -> bool:
    return not any(isinstance(x, jax.ShapeDtypeStruct) for x in jtu.tree_leaves(args))


def _points(args, n_points, seed, positive):
    rng = np.random.default_rng(seed)
    points = [args] if _concrete(args) else []
    while len(points) < n_points:
        points.append(random_like(args, rng, positive))
    return points


def dense_jacobians(f, points, argnums=0, rev=False, has_aux=False, kwargs=None):
    """The dense `(m, n)` Jacobians of `f` at each of `points` (tuples of arguments),
    in the flat layout. One compilation serves all points."""
    g, x, arrays = _flat_function(f, points[0], kwargs, argnums, has_aux)
    m = jax.eval_shape(g, x, arrays).size
    if m == 0 or x.size == 0:
        return [np.zeros((m, x.size)) for _ in points]
    jac_fn = jax.jit((jax.jacrev if rev else jax.jacfwd)(g))
    out = []
    for point in points:
        _, x, arrays = _flat_function(f, point, kwargs, argnums, has_aux)
        out.append(np.asarray(jac_fn(x, arrays)).reshape(m, x.size))
    return out


def dense_jacobian(f, *args, argnums=0, rev=False, has_aux=False, kwargs=None):
    """The dense `(m, n)` Jacobian of `f` at `args`, in the flat layout."""
    return dense_jacobians(f, [args], argnums, rev, has_aux, kwargs)[0]


def dense_hessians(f, points, argnums=0, kwargs=None):
    """The dense `(n, n)` Hessians of the scalar function `f` at each of `points`."""
    g, _, _ = _flat_function(f, points[0], kwargs, argnums, False)
    hess_fn = jax.jit(jax.hessian(lambda v, arrays: g(v, arrays)[0]))
    out = []
    for point in points:
        _, x, arrays = _flat_function(f, point, kwargs, argnums, False)
        out.append(np.asarray(hess_fn(x, arrays)).reshape(x.size, x.size))
    return out


def dense_hessian(f, *args, argnums=0, kwargs=None):
    """The dense `(n, n)` Hessian of the scalar function `f` at `args`."""
    return dense_hessians(f, [args], argnums, kwargs)[0]


def bcoo_todense(b: jsparse.BCOO) -> np.ndarray:
    """`b.todense()` as a numpy array, summed in numpy where `b` has neither batch
    nor dense dimensions: `BCOO.todense` called eagerly compiles a few XLA
    programs for every new shape, which costs the suite more than the tests."""
    if b.n_batch or b.n_dense:
        return np.asarray(b.todense())
    data, indices = np.asarray(b.data), np.asarray(b.indices)
    inside = np.all(indices < np.asarray(b.shape), axis=-1)  # padding is out of range
    out = np.zeros(b.shape, data.dtype)
    np.add.at(out, tuple(indices[inside].T), data[inside])
    return out


def as_matrix(result, shape) -> np.ndarray:
    """A sparse derivative of any output format (BCOO, scipy, dense) as a dense
    numpy matrix of `shape`."""
    if isinstance(result, jsparse.BCOO):
        result = bcoo_todense(result)
    elif sp.issparse(result):
        result = result.toarray()
    return np.asarray(result).reshape(shape)


def dense_tree(result):
    """A nested derivative with BCOO blocks, each block as a dense numpy array."""
    return jtu.tree_map(
        lambda b: bcoo_todense(b) if isinstance(b, jsparse.BCOO) else np.asarray(b),
        result,
        is_leaf=lambda b: isinstance(b, jsparse.BCOO),
    )


def _check_contains(pattern: asdex.SparsityPattern, dense, what: str):
    dense = np.asarray(dense)
    assert pattern.shape == dense.shape, (
        f"pattern shape {pattern.shape} != {what} shape {dense.shape}"
    )
    # NaN counts as a nonzero: it is not a structural zero.
    nonzero = dense != 0
    missed = nonzero & ~pattern.todense()
    if missed.any():
        where = np.argwhere(missed)
        raise AssertionError(
            f"unsound pattern: {len(where)} nonzero(s) of the {what} are missing, "
            f"first (row, col): {[tuple(map(int, w)) for w in where[:8]]}\n"
            f"pattern:\n{pattern.todense().astype(int)}\n"
            f"{what} nonzeros:\n{nonzero.astype(int)}"
        )


def assert_sound(
    f: Callable,
    *args,
    pattern: asdex.SparsityPattern | None = None,
    argnums=0,
    rev: bool = False,
    n_points: int = 3,
    has_aux: bool = False,
    positive: bool = False,
    kwargs: dict | None = None,
    seed: int = 0,
) -> asdex.SparsityPattern:
    """The nonzeros of the dense Jacobian at `n_points` inputs lie inside `pattern`.

    `pattern` defaults to `asdex.jacobian_sparsity(f, *args, ...)`. The first point is
    `args` itself when all its leaves are concrete; the others are random (uniform in
    [0.5, 1.5] with `positive=True`, standard normal otherwise). `rev=True` uses
    `jax.jacrev` (needed for `custom_vjp`). Returns the pattern.
    """
    kwargs = {} if kwargs is None else kwargs
    if pattern is None:
        pattern = asdex.jacobian_sparsity(
            f, *args, argnums=argnums, has_aux=has_aux, **kwargs
        )
    points = _points(args, n_points, seed, positive)
    for jac in dense_jacobians(f, points, argnums, rev, has_aux, kwargs):
        _check_contains(pattern, jac, "Jacobian")
    return pattern


def _as_dense_bool(expected) -> np.ndarray:
    if isinstance(expected, asdex.SparsityPattern):
        return expected.todense()
    return np.asarray(expected).astype(bool)


def assert_pattern_equal(pattern: asdex.SparsityPattern, expected):
    expected = _as_dense_bool(expected)
    assert pattern.shape == expected.shape, (
        f"pattern shape {pattern.shape} != expected shape {expected.shape}"
    )
    got = pattern.todense()
    if not np.array_equal(got, expected):
        extra = np.argwhere(got & ~expected)
        missing = np.argwhere(expected & ~got)
        raise AssertionError(
            f"pattern differs from the expected one: {len(extra)} extra entries "
            f"(first {[tuple(map(int, w)) for w in extra[:8]]}), {len(missing)} "
            f"missing (first {[tuple(map(int, w)) for w in missing[:8]]})\n"
            f"got:\n{got.astype(int)}\nexpected:\n{expected.astype(int)}"
        )


def assert_exact(
    f: Callable,
    x,
    expected,
    *,
    more_args: tuple = (),
    argnums=0,
    rev: bool = False,
    n_points: int = 3,
    has_aux: bool = False,
    positive: bool = False,
    kwargs: dict | None = None,
) -> asdex.SparsityPattern:
    """The pattern of `f(x, *more_args)` is exactly `expected` (a dense boolean array
    or a `SparsityPattern`), and it contains the dense Jacobian's nonzeros."""
    kwargs = {} if kwargs is None else kwargs
    args = (x, *more_args)
    pattern = asdex.jacobian_sparsity(
        f, *args, argnums=argnums, has_aux=has_aux, **kwargs
    )
    assert_pattern_equal(pattern, expected)
    assert_sound(
        f,
        *args,
        pattern=pattern,
        argnums=argnums,
        rev=rev,
        n_points=n_points,
        has_aux=has_aux,
        positive=positive,
        kwargs=kwargs,
    )
    return pattern


def assert_hessian_sound(
    f: Callable,
    *args,
    pattern: asdex.SparsityPattern | None = None,
    argnums=0,
    n_points: int = 3,
    positive: bool = False,
    kwargs: dict | None = None,
    seed: int = 0,
) -> asdex.SparsityPattern:
    """The nonzeros of `jax.hessian` at `n_points` inputs lie inside the (symmetric)
    Hessian pattern. Returns the pattern."""
    kwargs = {} if kwargs is None else kwargs
    if pattern is None:
        pattern = asdex.hessian_sparsity(f, *args, argnums=argnums, **kwargs)
    assert pattern.is_symmetric(), "a Hessian pattern must be symmetric"
    points = _points(args, n_points, seed, positive)
    for hess in dense_hessians(f, points, argnums, kwargs):
        _check_contains(pattern, hess, "Hessian")
    return pattern


def assert_hessian_exact(
    f: Callable, x, expected, *, more_args: tuple = (), argnums=0, n_points: int = 3
) -> asdex.SparsityPattern:
    """The Hessian pattern of `f(x, *more_args)` is exactly `expected`, and sound."""
    args = (x, *more_args)
    pattern = asdex.hessian_sparsity(f, *args, argnums=argnums)
    assert_pattern_equal(pattern, expected)
    assert_hessian_sound(f, *args, pattern=pattern, argnums=argnums, n_points=n_points)
    return pattern


def assert_within(pattern: asdex.SparsityPattern, bound):
    """`pattern` is no denser than `bound`: a check of tightness where the exact
    pattern is not pinned down (traced indices, decompositions, ...)."""
    bound = _as_dense_bool(bound)
    assert pattern.shape == bound.shape
    extra = pattern.todense() & ~bound
    if extra.any():
        where = np.argwhere(extra)
        raise AssertionError(
            f"pattern is looser than expected: {len(where)} entries outside the bound, "
            f"first {[tuple(map(int, w)) for w in where[:8]]}\n"
            f"got:\n{pattern.todense().astype(int)}\nbound:\n{bound.astype(int)}"
        )


@contextlib.contextmanager
def no_unknown_primitives():
    """Turn `asdex.UnknownPrimitiveWarning` into an error inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", asdex.UnknownPrimitiveWarning)
        yield


def cast_floats(tree, dtype):
    """Cast every floating leaf of `tree` to `dtype`."""

    def cast(leaf):
        if _is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating):
            if isinstance(leaf, jax.ShapeDtypeStruct):
                return jax.ShapeDtypeStruct(leaf.shape, dtype)
            return jnp.asarray(leaf, dtype=dtype)
        return leaf

    return jtu.tree_map(cast, tree)


# ---------------------------------------------------------------------------- patterns


def band(m: int, n: int, lower: int, upper: int) -> np.ndarray:
    """Dense boolean `(m, n)` band: entries with `-lower <= j - i <= upper`."""
    i, j = np.indices((m, n))
    return (j - i >= -lower) & (j - i <= upper)


def eye(n: int, m: int | None = None, k: int = 0) -> np.ndarray:
    return np.eye(n, m, k, dtype=bool)


def empty(m: int, n: int) -> np.ndarray:
    return np.zeros((m, n), dtype=bool)


def full(m: int, n: int) -> np.ndarray:
    return np.ones((m, n), dtype=bool)


def rows_of(index_map: np.ndarray, n: int) -> np.ndarray:
    """Pattern where output `i` copies input `index_map[i]` (negative: nothing)."""
    index_map = np.asarray(index_map).reshape(-1)
    out = np.zeros((index_map.size, n), dtype=bool)
    ok = index_map >= 0
    out[np.nonzero(ok)[0], index_map[ok]] = True
    return out


def structural(op: Callable, shape) -> np.ndarray:
    """Exact pattern of a structural map (each output copies one input element or
    a constant), found by applying `op` to an array of ids (`-1` for constants)."""
    n = int(np.prod(shape))
    ids = np.arange(n).reshape(shape)
    return rows_of(np.asarray(op(ids)), n)


def block_diag(*blocks) -> np.ndarray:
    blocks = [np.asarray(b, dtype=bool) for b in blocks]
    m = sum(b.shape[0] for b in blocks)
    n = sum(b.shape[1] for b in blocks)
    out = np.zeros((m, n), dtype=bool)
    i = j = 0
    for b in blocks:
        out[i : i + b.shape[0], j : j + b.shape[1]] = b
        i += b.shape[0]
        j += b.shape[1]
    return out


def kron_eye(k: int, block) -> np.ndarray:
    """`k` copies of `block` down the diagonal."""
    return np.kron(np.eye(k, dtype=bool), np.asarray(block, dtype=bool)).astype(bool)


# ---------------------------------------------------------------------------- tables


class Case(NamedTuple):
    """A test function with sample arguments and, when known, its exact pattern.

    - `name`: an id for `pytest.mark.parametrize`.
    - `f`, `args`: the function and its sample positional arguments (concrete).
    - `expected`: the exact dense boolean pattern, or `None` when only soundness is
      checked.
    - `rev`: use reverse mode for the dense oracle (`custom_vjp`).
    - `positive`: draw random inputs from [0.5, 1.5] (logs, roots, ...).
    """

    name: str
    f: Callable
    args: tuple
    expected: Any = None
    rev: bool = False
    positive: bool = False


def ids(cases) -> list[str]:
    return [c.name for c in cases]


def _vec(n, seed=0, dtype=jnp.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n), dtype=dtype)


def _arr(shape, seed=0, dtype=jnp.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _pos(shape, seed=0, dtype=jnp.float64):
    return jnp.asarray(
        np.random.default_rng(seed).uniform(0.5, 1.5, shape), dtype=dtype
    )


_MASK = np.array([1.0, 0.0, 2.0, 0.0, -1.0, 3.0])
_x6 = _vec(6)
_x5 = _vec(5)
_x4 = _vec(4)

ELEMENTWISE_CASES = [
    Case("sin", jnp.sin, (_x5,), eye(5)),
    Case("exp_plus_cos", lambda x: jnp.exp(x) + jnp.cos(x), (_x5,), eye(5)),
    Case("log", jnp.log, (_pos(5),), eye(5), positive=True),
    Case("sqrt", jnp.sqrt, (_pos(5),), eye(5), positive=True),
    Case("tanh_logistic", lambda x: jnp.tanh(jax.nn.sigmoid(x)), (_x5,), eye(5)),
    Case("abs", jnp.abs, (_x5,), eye(5)),
    Case("square", jnp.square, (_x5,), eye(5)),
    Case("integer_pow_3", lambda x: x**3, (_x5,), eye(5)),
    Case("integer_pow_0", lambda x: lax.integer_pow(x, 0), (_x5,), empty(5, 5)),
    Case("pow_float", lambda x: x**1.5, (_pos(5),), eye(5), positive=True),
    Case("pow_xx", lambda x: jnp.power(x, x), (_pos(5),), eye(5), positive=True),
    Case("mul_const_mask", lambda x: x * _MASK, (_x6,), np.diag(_MASK != 0)),
    Case("mul_zero_scalar", lambda x: x * 0.0, (_x6,), empty(6, 6)),
    Case("mul_xx", lambda x: x * x, (_x5,), eye(5)),
    Case("mul_reversed", lambda x: x * x[::-1], (_x5,), eye(5) | eye(5)[::-1]),
    Case(
        "div_xy", lambda x: x[:3] / (1.5 + x[3:] ** 2), (_x6,), eye(3, 6) | eye(3, 6, 3)
    ),
    Case("div_const_num", lambda x: _MASK / (2.0 + x**2), (_x6,), np.diag(_MASK != 0)),
    Case("div_by_const", lambda x: x / 3.0, (_x5,), eye(5)),
    Case(
        "add_sub", lambda x: x[:3] + x[3:] - 2 * x[:3], (_x6,), eye(3, 6) | eye(3, 6, 3)
    ),
    Case(
        "max_min", lambda x: jnp.maximum(x[:3], x[3:]), (_x6,), eye(3, 6) | eye(3, 6, 3)
    ),
    Case(
        "atan2", lambda x: jnp.arctan2(x[:3], x[3:]), (_x6,), eye(3, 6) | eye(3, 6, 3)
    ),
    Case("clip_consts", lambda x: jnp.clip(x, -0.5, 0.5), (_x5,), eye(5)),
    Case(
        "clamp_dynamic_bounds",
        lambda x: lax.clamp(x[:2], x[2:4], x[4:]),
        (_x6,),
        eye(2, 6) | eye(2, 6, 2) | eye(2, 6, 4),
    ),
    Case(
        "where_const_pred",
        lambda x: jnp.where(_MASK > 0, x, 2.0 * x[::-1]),
        (_x6,),
        np.where((_MASK > 0)[:, None], eye(6), eye(6)[::-1]),
    ),
    Case(
        "where_dynamic_pred",
        lambda x: jnp.where(x[:3] > 0, x[:3], x[3:]),
        (_x6,),
        eye(3, 6) | eye(3, 6, 3),
    ),
    Case("sign", jnp.sign, (_x5,), empty(5, 5)),
    Case("floor", jnp.floor, (_x5,), empty(5, 5)),
    Case("ceil", jnp.ceil, (_x5,), empty(5, 5)),
    Case("round", jnp.round, (_x5,), empty(5, 5)),
    Case("stop_gradient", lambda x: lax.stop_gradient(x) * x, (_x5,), eye(5)),
    Case(
        "to_int_and_back",
        lambda x: x.astype(jnp.int32).astype(x.dtype),
        (_x5,),
        empty(5, 5),
    ),
    Case("to_float32", lambda x: x.astype(jnp.float32), (_x5,), eye(5)),
    Case(
        "broadcast_scalar_input",
        lambda x: x[0] * jnp.ones(4) + x[1:],
        (_x5,),
        np.concatenate([np.ones((4, 1), bool), eye(4)], axis=1),
    ),
    Case("comparison_output", lambda x: (x > 0).astype(x.dtype) * x, (_x5,), eye(5)),
    Case(
        "erf_lgamma",
        lambda x: jax.scipy.special.erf(x) + jax.scipy.special.gammaln(x),
        (_pos(5),),
        eye(5),
        positive=True,
    ),
    Case(
        "rem",
        lambda x: jnp.remainder(x[:3], 1.5 + x[3:] ** 2),
        (_x6,),
        eye(3, 6) | eye(3, 6, 3),
    ),
    Case("hypot", lambda x: jnp.hypot(x[:3], x[3:]), (_x6,), eye(3, 6) | eye(3, 6, 3)),
    Case(
        "complex_abs",
        lambda x: jnp.abs(x[:3] + 1j * x[3:]),
        (_x6,),
        eye(3, 6) | eye(3, 6, 3),
    ),
]


def _roll2(x):
    return jnp.roll(x, 2)


_m34 = _arr((3, 4))
_m234 = _arr((2, 3, 4))

STRUCTURAL_CASES = [
    Case("reshape", lambda x: x.reshape(4, 3), (_m34,), eye(12)),
    Case("transpose", lambda x: x.T, (_m34,), structural(lambda i: i.T, (3, 4))),
    Case(
        "transpose3",
        lambda x: jnp.transpose(x, (2, 0, 1)),
        (_m234,),
        structural(lambda i: np.transpose(i, (2, 0, 1)), (2, 3, 4)),
    ),
    Case(
        "swapaxes_reshape",
        lambda x: jnp.swapaxes(x, 0, 2).reshape(-1),
        (_m234,),
        structural(lambda i: np.swapaxes(i, 0, 2).reshape(-1), (2, 3, 4)),
    ),
    Case(
        "broadcast",
        lambda x: jnp.broadcast_to(x, (3, 4)),
        (_x4,),
        structural(lambda i: np.broadcast_to(i, (3, 4)), (4,)),
    ),
    Case(
        "broadcast_col",
        lambda x: jnp.broadcast_to(x[:, None], (4, 3)),
        (_x4,),
        structural(lambda i: np.broadcast_to(i[:, None], (4, 3)), (4,)),
    ),
    Case(
        "slice_strided",
        lambda x: x[1:9:3],
        (_vec(10),),
        structural(lambda i: i[1:9:3], (10,)),
    ),
    Case(
        "slice_2d",
        lambda x: x[1:, ::2],
        (_m34,),
        structural(lambda i: i[1:, ::2], (3, 4)),
    ),
    Case(
        "lax_slice_strides",
        lambda x: lax.slice(x, (0, 1), (3, 4), (2, 2)),
        (_m34,),
        structural(lambda i: i[0:3:2, 1:4:2], (3, 4)),
    ),
    Case("rev", lambda x: x[::-1], (_x5,), eye(5)[::-1]),
    Case(
        "flip_2d",
        lambda x: jnp.flip(x, 1),
        (_m34,),
        structural(lambda i: i[:, ::-1], (3, 4)),
    ),
    Case(
        "concatenate",
        lambda x: jnp.concatenate([x[3:], x[:2], x]),
        (_x5,),
        structural(lambda i: np.concatenate([i[3:], i[:2], i]), (5,)),
    ),
    Case(
        "concat_const",
        lambda x: jnp.concatenate([jnp.zeros(2), x, jnp.ones(1)]),
        (_x4,),
        rows_of([-1, -1, 0, 1, 2, 3, -1], 4),
    ),
    Case(
        "stack",
        lambda x: jnp.stack([x, 2 * x[::-1]]),
        (_x4,),
        np.concatenate([eye(4), eye(4)[::-1]]),
    ),
    Case(
        "split",
        lambda x: jnp.split(x, [2, 5])[1] * jnp.split(x, [2, 5])[2][:3],
        (_vec(8),),
        eye(3, 8, 2) | eye(3, 8, 5),
    ),
    Case(
        "squeeze_expand",
        lambda x: jnp.squeeze(jnp.expand_dims(x, (0, 2)), 0),
        (_x4,),
        eye(4),
    ),
    Case(
        "tile",
        lambda x: jnp.tile(x, 3),
        (_x4,),
        structural(lambda i: np.tile(i, 3), (4,)),
    ),
    Case(
        "tile_2d",
        lambda x: jnp.tile(x, (2, 1)),
        (_m34,),
        structural(lambda i: np.tile(i, (2, 1)), (3, 4)),
    ),
    Case(
        "repeat",
        lambda x: jnp.repeat(x, 2),
        (_x4,),
        structural(lambda i: np.repeat(i, 2), (4,)),
    ),
    Case("roll", _roll2, (_x5,), structural(lambda i: np.roll(i, 2), (5,))),
    Case(
        "roll_2d",
        lambda x: jnp.roll(x, (1, -1), (0, 1)),
        (_m34,),
        structural(lambda i: np.roll(i, (1, -1), (0, 1)), (3, 4)),
    ),
    Case(
        "pad",
        lambda x: jnp.pad(x, (2, 1)),
        (_x4,),
        rows_of([-1, -1, 0, 1, 2, 3, -1], 4),
    ),
    Case(
        "pad_edge",
        lambda x: jnp.pad(x, (1, 2), mode="edge"),
        (_x4,),
        rows_of([0, 0, 1, 2, 3, 3, 3], 4),
    ),
    Case(
        "pad_reflect",
        lambda x: jnp.pad(x, 2, mode="reflect"),
        (_x5,),
        structural(lambda i: np.pad(i, 2, mode="reflect"), (5,)),
    ),
    Case(
        "lax_pad_negative",
        lambda x: lax.pad(x, jnp.zeros((), x.dtype), [(-1, 2, 0)]),
        (_x5,),
        rows_of([1, 2, 3, 4, -1, -1], 5),
    ),
    Case(
        "lax_pad_interior",
        lambda x: lax.pad(x, jnp.zeros((), x.dtype), [(1, -1, 2)]),
        (_x4,),
        rows_of([-1, 0, -1, -1, 1, -1, -1, 2, -1, -1], 4),
    ),
    Case(
        "lax_pad_value_traced",
        lambda x: lax.pad(x[1:], x[0], [(1, 1, 1)]),
        (_x4,),
        rows_of([0, 1, 0, 2, 0, 3, 0], 4),
    ),
    Case("diag_extract", jnp.diag, (_arr((4, 4)),), rows_of([0, 5, 10, 15], 16)),
    Case(
        "diagonal_offset",
        lambda x: jnp.diagonal(x, 1),
        (_m34,),
        rows_of([1, 6, 11], 12),
    ),
    Case(
        "diag_build",
        jnp.diag,
        (_vec(3),),
        rows_of([0, -1, -1, -1, 1, -1, -1, -1, 2], 3),
    ),
    Case("triu", jnp.triu, (_arr((3, 3)),), rows_of([0, 1, 2, -1, 4, 5, -1, -1, 8], 9)),
    Case(
        "dynamic_slice_const",
        lambda x: lax.dynamic_slice(x, (2,), (3,)),
        (_vec(7),),
        eye(3, 7, 2),
    ),
    Case(
        "dynamic_slice_clamped",
        lambda x: lax.dynamic_slice(x, (6,), (3,)),
        (_vec(7),),
        eye(3, 7, 4),
    ),
    Case(
        "dynamic_update_slice_const",
        lambda x: lax.dynamic_update_slice(x, -(x[:2] ** 2), (3,)),
        (_vec(6),),
        rows_of([0, 1, 2, 0, 1, 5], 6),
    ),
    Case(
        "dynamic_slice_2d_const",
        lambda x: lax.dynamic_slice(x, (1, 1), (2, 2)),
        (_m34,),
        structural(lambda i: i[1:3, 1:3], (3, 4)),
    ),
    Case(
        "dynamic_slice_traced",
        lambda x: lax.dynamic_slice(x, (jnp.argmax(x).astype(jnp.int32),), (3,)),
        (_vec(7),),
    ),
    Case(
        "dynamic_update_slice_traced",
        lambda x: lax.dynamic_update_slice(
            x[:5], x[5:] * 2, (jnp.argmin(x).astype(jnp.int32),)
        ),
        (_vec(7),),
    ),
]


_idx = np.array([4, 0, 0, 3])
_perm_key = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])

INDEXING_CASES = [
    Case("index_scalar", lambda x: x[2], (_x5,), rows_of([2], 5)),
    Case("index_const_array", lambda x: x[_idx], (_x5,), rows_of(_idx, 5)),
    Case("index_negative", lambda x: x[np.array([-1, -2])], (_x5,), rows_of([4, 3], 5)),
    Case("index_2d_row", lambda x: x[1], (_m34,), rows_of([4, 5, 6, 7], 12)),
    Case(
        "index_2d_pairs",
        lambda x: x[np.array([0, 2]), np.array([3, 1])],
        (_m34,),
        rows_of([3, 9], 12),
    ),
    Case(
        "index_bool_mask_const",
        lambda x: x[np.array([True, False, True, False, True])],
        (_x5,),
        rows_of([0, 2, 4], 5),
    ),
    Case(
        "take_along_axis",
        lambda x: jnp.take_along_axis(x, np.array([[1], [0], [3]]), 1),
        (_m34,),
        rows_of([1, 4, 11], 12),
    ),
    Case(
        "argsort_const_perm",
        lambda x: x[jnp.argsort(_perm_key)],
        (_vec(6),),
        rows_of(np.argsort(_perm_key, kind="stable"), 6),
    ),
    Case(
        "gather_out_of_bounds_fill",
        lambda x: x.at[np.array([1, 7])].get(mode="fill", fill_value=0.0),
        (_x5,),
        rows_of([1, -1], 5),
    ),
    Case(
        "gather_clip",
        lambda x: x.at[np.array([1, 7])].get(mode="clip"),
        (_x5,),
        rows_of([1, 4], 5),
    ),
    Case("gather_traced", lambda x: x[jnp.argmax(x[:2])], (_x4,)),
    Case(
        "gather_traced_rows",
        lambda x: x[jnp.argmax(x[:, 0])],
        (_m34,),
        structural(lambda i: i.T, (3, 4)).reshape(4, 3, 12).any(1),
    ),
    Case(
        "at_set",
        lambda x: x.at[np.array([1, 3])].set(x[:2] ** 2),
        (_x5,),
        rows_of([0, 0, 2, 1, 4], 5),
    ),
    Case(
        "at_set_const", lambda x: x.at[2].set(7.0), (_x5,), rows_of([0, 1, -1, 3, 4], 5)
    ),
    Case(
        "at_add",
        lambda x: x.at[np.array([0, 0, 4])].add(x[1:4]),
        (_x5,),
        np.array(
            [
                [1, 1, 1, 0, 0],
                [0, 1, 0, 0, 0],
                [0, 0, 1, 0, 0],
                [0, 0, 0, 1, 0],
                [0, 0, 0, 1, 1],
            ],
            bool,
        ),
    ),
    Case(
        "at_mul",
        lambda x: x.at[np.array([1, 2])].mul(x[3:], unique_indices=True),
        (_x5,),
        np.array(
            [
                [1, 0, 0, 0, 0],
                [0, 1, 0, 1, 0],
                [0, 0, 1, 0, 1],
                [0, 0, 0, 1, 0],
                [0, 0, 0, 0, 1],
            ],
            bool,
        ),
    ),
    Case(
        "at_min",
        lambda x: x.at[np.array([0])].min(x[4:]),
        (_x5,),
        eye(5) | rows_of([4, -1, -1, -1, -1], 5),
    ),
    Case(
        "at_max",
        lambda x: x.at[np.array([3, 3])].max(x[:2]),
        (_x5,),
        eye(5) | np.array([[0] * 5] * 3 + [[1, 1, 0, 0, 0]] + [[0] * 5], bool),
    ),
    Case(
        "at_set_2d_row",
        lambda x: x.at[1].set(x[0] * 2.0),
        (_m34,),
        rows_of([0, 1, 2, 3, 0, 1, 2, 3, 8, 9, 10, 11], 12),
    ),
    Case("at_set_traced", lambda x: x.at[jnp.argmax(x[:2])].set(x[4]), (_x5,)),
    Case("at_add_traced", lambda x: x[:3].at[jnp.argmax(x[:3])].add(x[3]), (_x4,)),
]


_w6 = _vec(6)

REDUCTION_CASES = [
    Case("sum", jnp.sum, (_x5,), full(1, 5)),
    Case(
        "sum_axis0",
        lambda x: jnp.sum(x, axis=0),
        (_m34,),
        structural(lambda i: i.T, (3, 4)).reshape(4, 3, 12).any(1),
    ),
    Case("sum_axis1", lambda x: jnp.sum(x, axis=1), (_m34,), kron_eye(3, full(1, 4))),
    Case("max_axis1", lambda x: jnp.max(x, axis=1), (_m34,), kron_eye(3, full(1, 4))),
    Case("prod", lambda x: jnp.prod(x, axis=-1), (_m34,), kron_eye(3, full(1, 4))),
    Case(
        "mean_keepdims",
        lambda x: jnp.mean(x, axis=(0, 2), keepdims=True),
        (_m234,),
        np.array(
            [
                [np.unravel_index(j, (2, 3, 4))[1] == r for j in range(24)]
                for r in range(3)
            ]
        ),
    ),
    Case(
        "logsumexp",
        lambda x: jax.nn.logsumexp(x, axis=1),
        (_m34,),
        kron_eye(3, full(1, 4)),
    ),
    Case(
        "softmax", lambda x: jax.nn.softmax(x, axis=1), (_m34,), kron_eye(3, full(4, 4))
    ),
    Case(
        "norm",
        lambda x: jnp.linalg.norm(x, axis=0),
        (_m34,),
        structural(lambda i: i.T, (3, 4)).reshape(4, 3, 12).any(1),
    ),
    Case("cumsum", jnp.cumsum, (_x5,), np.tril(full(5, 5))),
    Case(
        "cumsum_reverse",
        lambda x: lax.cumsum(x, reverse=True),
        (_x5,),
        np.triu(full(5, 5)),
    ),
    Case("cumprod", jnp.cumprod, (_x5,), np.tril(full(5, 5))),
    Case("cummax", lambda x: lax.cummax(x), (_x5,), np.tril(full(5, 5))),
    Case(
        "cumsum_axis1",
        lambda x: jnp.cumsum(x, axis=1),
        (_m34,),
        kron_eye(3, np.tril(full(4, 4))),
    ),
    Case("diff", jnp.diff, (_x5,), eye(4, 5) | eye(4, 5, 1)),
    Case(
        "max_pool_1d",
        lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (3,), (2,), "VALID"),
        (_vec(7),),
        np.array(
            [[1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1]], bool
        ),
    ),
    Case(
        "avg_pool_2d",
        lambda x: lax.reduce_window(x, 0.0, lax.add, (2, 2), (2, 2), "VALID"),
        (_arr((4, 4)),),
        np.array(
            [
                [
                    np.unravel_index(j, (4, 4))[0] // 2 * 2
                    + np.unravel_index(j, (4, 4))[1] // 2
                    == r
                    for j in range(16)
                ]
                for r in range(4)
            ]
        ),
    ),
    Case(
        "reduce_window_same_padding",
        lambda x: lax.reduce_window(x, 0.0, lax.add, (3,), (1,), "SAME"),
        (_x5,),
        band(5, 5, 1, 1),
    ),
    Case("sort", jnp.sort, (_x5,), full(5, 5)),
    Case("sort_rows", lambda x: jnp.sort(x, axis=1), (_m34,), kron_eye(3, full(4, 4))),
    Case(
        "sort_by_const_keys",
        lambda x: lax.sort((_perm_key, x), num_keys=1)[1],
        (_w6,),
        rows_of(np.argsort(_perm_key, kind="stable"), 6),
    ),
    Case(
        "argsort_traced_gather", lambda x: x[jnp.argsort(x)] * 2.0, (_x5,), full(5, 5)
    ),
    Case("top_k", lambda x: lax.top_k(x, 2)[0], (_x5,), full(2, 5)),
    Case("top_k_rows", lambda x: lax.top_k(x, 2)[0], (_m34,), kron_eye(3, full(2, 4))),
    Case("median", jnp.median, (_x5,), full(1, 5)),
    Case(
        "argmax_is_const", lambda x: jnp.argmax(x).astype(x.dtype) * x, (_x5,), eye(5)
    ),
    Case("var", lambda x: jnp.var(x, axis=1), (_m34,), kron_eye(3, full(1, 4))),
]


def _banded_matrix(n, lower, upper, seed=1):
    rng = np.random.default_rng(seed)
    return np.where(band(n, n, lower, upper), rng.uniform(1.0, 2.0, (n, n)), 0.0)


_A = _banded_matrix(6, 1, 2)
_S = np.array([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])  # a 3x3 stencil (a cross)
_STENCIL = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])


def _laplacian_pattern(h, w):
    i, j = np.indices((h, w))
    ii, jj = i.reshape(-1), j.reshape(-1)
    d = np.abs(ii[:, None] - ii[None, :]) + np.abs(jj[:, None] - jj[None, :])
    return d <= 1


def _conv2d(x):
    lhs = x.reshape(1, 1, 5, 4)
    return lax.conv_general_dilated(
        lhs, jnp.asarray(_STENCIL, x.dtype).reshape(1, 1, 3, 3), (1, 1), "SAME"
    ).reshape(-1)


def _spd(x, n):
    a = x.reshape(n, n)
    return a @ a.T + n * jnp.eye(n)


LINALG_CASES = [
    Case("matvec_banded", lambda x: _A @ x, (_x6,), _A != 0),
    Case("vecmat_banded", lambda x: x @ _A, (_x6,), (_A != 0).T),
    Case(
        "dot_general_batched_const",
        lambda x: jnp.einsum("bij,bj->bi", np.stack([_A, _A.T]), x.reshape(2, 6)),
        (_vec(12),),
        block_diag(_A != 0, (_A != 0).T),
    ),
    Case(
        "matmul_two_inputs",
        lambda x: x[:6].reshape(2, 3) @ x[6:].reshape(3, 2),
        (_vec(12),),
        np.array(
            [
                [
                    np.isin(j, [3 * (r // 2) + k for k in range(3)])
                    or np.isin(j, [6 + 2 * k + r % 2 for k in range(3)])
                    for j in range(12)
                ]
                for r in range(4)
            ]
        ),
    ),
    Case(
        "outer",
        lambda x: jnp.outer(x[:2], x[2:]),
        (_x5,),
        np.array([[j == r // 3 or j == 2 + r % 3 for j in range(5)] for r in range(6)]),
    ),
    Case("dot_self", lambda x: jnp.dot(x, x), (_x5,), full(1, 5)),
    Case("matmul_dense_const", lambda x: jnp.ones((2, 5)) @ x, (_x5,), full(2, 5)),
    Case(
        "convolve_1d",
        lambda x: jnp.convolve(x, jnp.array([1.0, 0.0, 2.0])),
        (_x5,),
        eye(7, 5) | eye(7, 5, -2),
    ),
    Case("conv2d_stencil", _conv2d, (_arr((5, 4)),), _laplacian_pattern(5, 4)),
    Case(
        "solve",
        lambda x: jnp.linalg.solve(_spd(x[:9], 3), x[9:]),
        (_vec(12),),
        full(3, 12),
    ),
    Case("cholesky", lambda x: jnp.linalg.cholesky(_spd(x, 3)).reshape(-1), (_vec(9),)),
    Case("qr", lambda x: jnp.linalg.qr(x.reshape(3, 3))[1].reshape(-1), (_vec(9),)),
    Case("eigh", lambda x: jnp.linalg.eigh(_spd(x, 3))[0], (_vec(9),), full(3, 9)),
    Case(
        "svd",
        lambda x: jnp.linalg.svd(x.reshape(3, 2), compute_uv=False),
        (_vec(6),),
        full(2, 6),
    ),
    # U is upper triangular: its strictly lower entries are known zeros.
    Case(
        "lu",
        lambda x: jax.scipy.linalg.lu(_spd(x, 3))[2].reshape(-1),
        (_vec(9),),
        np.triu(full(3, 3)).reshape(9, 1) & full(9, 9),
    ),
    Case(
        "triangular_solve",
        lambda x: jax.scipy.linalg.solve_triangular(
            jnp.tril(x[:9].reshape(3, 3)) + 4 * jnp.eye(3),
            x[9:].reshape(3, 2),
            lower=True,
        ).reshape(-1),
        (_vec(15),),
        None,
    ),
    Case("fft", lambda x: jnp.fft.fft(x).real, (_vec(4),), full(4, 4)),
    Case(
        "tridiagonal_solve",
        lambda x: lax.linalg.tridiagonal_solve(
            jnp.concatenate([jnp.zeros(1), x[:2]]),
            4.0 + x[2:5],
            jnp.concatenate([x[5:7], jnp.zeros(1)]),
            x[7:10, None],
        )[:, 0],
        (_vec(10),),
        full(3, 10),
    ),
    Case("det", lambda x: jnp.linalg.det(_spd(x, 3)), (_vec(9),), full(1, 9)),
    Case(
        "inv", lambda x: jnp.linalg.inv(_spd(x, 2)).reshape(-1), (_vec(4),), full(4, 4)
    ),
]


def _fori_shift(x):
    return lax.fori_loop(0, 3, lambda i, c: c.at[1:].set(c[:-1] * 0.5 + c[1:]), x)


def _scan_cumsum(x):
    return lax.scan(lambda c, xi: (c + xi, c * xi), 0.0, x)[1]


CONTROL_FLOW_CASES = [
    Case(
        "cond_union",
        lambda x: lax.cond(x[0] > 0, lambda v: v[1:] * 2, lambda v: v[:-1], x),
        (_x5,),
        eye(4, 5) | eye(4, 5, 1),
    ),
    Case(
        "cond_const_pred",
        lambda x: lax.cond(True, lambda v: v[1:], lambda v: v[:-1], x),
        (_x5,),
        eye(4, 5, 1),
    ),
    Case(
        "switch_const",
        lambda x: lax.switch(
            1, [lambda v: v[::-1], lambda v: v * 2, lambda v: jnp.roll(v, 1)], x
        ),
        (_x4,),
        eye(4),
    ),
    Case(
        "fori_const_trip", _fori_shift, (_x5,), np.tril(full(5, 5)) & band(5, 5, 3, 0)
    ),
    Case(
        "fori_gather_per_iteration",
        lambda x: lax.fori_loop(
            0, 4, lambda i, c: c.at[i].set(x[(i + 1) % 4]), jnp.zeros(4)
        ),
        (_x4,),
        rows_of([1, 2, 3, 0], 4),
    ),
    Case(
        "while_dynamic_stop",
        lambda x: lax.while_loop(
            lambda c: c[1] < 10.0,
            lambda c: (c[0] * 1.5, c[1] + jnp.abs(c[0][0]) + 1.0),
            (x, 0.0),
        )[0],
        (_x4,),
        eye(4),
    ),
    Case(
        "while_dynamic_shift",
        lambda x: lax.while_loop(
            lambda c: c[1] < 3.0 + x[0] ** 2,
            lambda c: (jnp.roll(c[0], 1), c[1] + 1.0),
            (x, 0.0),
        )[0],
        (_x4,),
        full(4, 4),
    ),
    Case(
        "scan_carry_only",
        lambda x: lax.scan(lambda c, _: (c * 2.0, None), x, None, length=3)[0],
        (_x4,),
        eye(4),
    ),
    # ys[i] = (x[0] + ... + x[i-1]) * x[i]; ys[0] = 0.0 * x[0] is a known zero.
    Case(
        "scan_xs",
        _scan_cumsum,
        (_x5,),
        np.tril(full(5, 5)) & (np.arange(5)[:, None] > 0),
    ),
    Case(
        "scan_reverse",
        lambda x: lax.scan(lambda c, xi: (c + xi, c), 0.0, x, reverse=True)[1],
        (_x5,),
        np.triu(full(5, 5), 1),
    ),
    Case(
        "scan_shift_carry",
        lambda x: lax.scan(lambda c, _: (jnp.roll(c, 1), c[0]), x, None, length=3)[1],
        (_x5,),
        rows_of([0, 4, 3], 5),
    ),
    Case(
        "jit_nested",
        jax.jit(lambda x: jax.jit(lambda y: y[::-1])(x) * 2),
        (_x4,),
        eye(4)[::-1],
    ),
    Case(
        "checkpoint",
        jax.checkpoint(lambda x: jnp.sin(x[1:]) * x[:-1]),
        (_x5,),
        eye(4, 5) | eye(4, 5, 1),
    ),
    Case(
        "vmap",
        jax.vmap(lambda r: r[::-1] * r[0]),
        (_m34,),
        kron_eye(3, eye(4)[::-1] | rows_of([0, 0, 0, 0], 4)),
    ),
    Case(
        "vmap_cond",
        jax.vmap(lambda r: lax.cond(r[0] > 0, lambda v: v * 2, jnp.sin, r)),
        (_m34,),
        eye(12),
    ),
]


@jax.custom_jvp
def _straight_through(x):
    return jnp.round(x)


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    return _straight_through(primals[0]), tangents[0]


@jax.custom_vjp
def _vjp_shift(x):
    return jnp.roll(x, 1)


def _vjp_shift_fwd(x):
    return jnp.roll(x, 1), None


def _vjp_shift_bwd(_, ct):
    return (jnp.roll(ct, -1),)


_vjp_shift.defvjp(_vjp_shift_fwd, _vjp_shift_bwd)


CUSTOM_CASES = [
    Case("straight_through", _straight_through, (_x5,), eye(5)),
    Case("relu_custom_jvp", jax.nn.relu, (_x5,), eye(5)),
    Case(
        "custom_jvp_inside",
        lambda x: _straight_through(x[1:] * x[:-1]),
        (_x5,),
        eye(4, 5) | eye(4, 5, 1),
    ),
    Case(
        "custom_vjp_roll",
        _vjp_shift,
        (_x5,),
        structural(lambda i: np.roll(i, 1), (5,)),
        rev=True,
    ),
    Case("logsumexp_custom_jvp", jax.nn.logsumexp, (_x5,), full(1, 5)),
]


JACOBIAN_CASES = (
    ELEMENTWISE_CASES
    + STRUCTURAL_CASES
    + INDEXING_CASES
    + REDUCTION_CASES
    + LINALG_CASES
    + CONTROL_FLOW_CASES
    + CUSTOM_CASES
)


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


_B = _banded_matrix(6, 1, 1, seed=3)

HESSIAN_CASES = [
    Case("rosenbrock", _rosenbrock, (_vec(8),), band(8, 8, 1, 1)),
    Case(
        "neighbour_products",
        lambda x: jnp.sum(x[1:] * x[:-1]),
        (_vec(7),),
        eye(7, 7, 1) | eye(7, 7, -1),
    ),
    Case("linear", lambda x: jnp.sum(3.0 * x) + x[0], (_vec(5),), empty(5, 5)),
    Case("quadratic_banded", lambda x: x @ _B @ x, (_x6,), (_B != 0) | (_B != 0).T),
    Case("separable", lambda x: jnp.sum(jnp.sin(x)), (_x5,), eye(5)),
    Case("dense_norm", lambda x: jnp.sqrt(1.0 + jnp.sum(x**2)), (_x4,), full(4, 4)),
    Case(
        "product_pairs",
        lambda x: jnp.sum(x[::2] * x[1::2]),
        (_x6,),
        np.kron(eye(3), np.array([[0, 1], [1, 0]], bool)),
    ),
    Case("cubic_diag", lambda x: jnp.sum(x**3), (_x5,), eye(5)),
    Case(
        "exp_of_sum_pairs",
        lambda x: jnp.sum(jnp.exp(x[:3] + x[3:])),
        (_x6,),
        np.kron(np.ones((2, 2), bool), eye(3)),
    ),
]


def check_case(case: Case, dtype=None) -> asdex.SparsityPattern:
    """Run one table entry: exact when `case.expected` is given, sound always, and no
    primitive may meet the unknown-primitive fallback. `dtype` recasts the floating
    sample arguments (float32 runs)."""
    args = case.args if dtype is None else cast_floats(case.args, dtype)
    with no_unknown_primitives():
        if case.expected is None:
            return assert_sound(case.f, *args, rev=case.rev, positive=case.positive)
        return assert_exact(
            case.f,
            args[0],
            case.expected,
            more_args=tuple(args[1:]),
            rev=case.rev,
            positive=case.positive,
        )


def check_hessian_case(case: Case, dtype=None) -> asdex.SparsityPattern:
    args = case.args if dtype is None else cast_floats(case.args, dtype)
    with no_unknown_primitives():
        if case.expected is None:
            return assert_hessian_sound(case.f, *args, positive=case.positive)
        return assert_hessian_exact(case.f, args[0], case.expected, more_args=args[1:])
