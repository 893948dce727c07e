"""A corpus of the problem families that Optimistix's and Lineax's own tests solve.

Written for asdex, in our own words: each `Problem` is one small, well-understood
instance of a family (bowls, Rosenbrock, Matyas, a neural-network fit, cosine and
polynomial roots, fixed points, a `custom_vjp` residual, a rank-deficient fit and a
graph residual). `tests/test_corpus.py` runs every problem through every solver
that applies, sparse and dense, and compares them.

Each problem is built in a given dtype by `make(dtype)`, so that float32 and
float64 runs share one definition. Index arrays are numpy constants closed over by
the residual, as users write them; everything differentiable travels in `args`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

Kind = Literal["root", "least_squares", "minimise", "fixed_point"]


class Problem(NamedTuple):
    """One instance of a problem family.

    - `fn(y, args)`: the residual (`root`, `least_squares`), the scalar objective
        (`minimise`) or the map whose fixed point is sought (`fixed_point`).
    - `y0`, `args`: the starting point and the parameters, PyTrees in `dtype`.
    - `expected`: the solution where it is known in closed form, else `None`.
    - `target(y)`: a scalar function of the solution whose gradient with respect
        to `args` is compared (it must only see identifiable parts of `y`).
    - `options`: passed to the Optimistix entry point (e.g. `{"jac": "bwd"}`).
    - `identifiable(y)`: the part of a solution that the problem determines, which
        is what solutions are compared on (all of `y` unless the fit is
        rank-deficient).
    """

    name: str
    kind: Kind
    fn: Callable
    y0: Any
    args: Any
    expected: Any = None
    target: Callable | None = None
    options: dict | None = None
    identifiable: Callable | None = None


def _cast(tree, dtype):
    return jtu.tree_map(lambda x: jnp.asarray(x, dtype), tree)


def _sum_of_squares(tree):
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jtu.tree_leaves(tree))


# ---------------------------------------------------------------- minimisation


def _bowl(dtype) -> Problem:
    # A dense, well conditioned quadratic ½ yᵀAy − bᵀy: the minimum solves Ay = b.
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5, 5))
    a = m @ m.T / 5 + np.eye(5)
    b = rng.normal(size=5)

    def fn(y, args):
        a, b = args
        return 0.5 * y @ (a @ y) - b @ y

    return Problem(
        "bowl",
        "minimise",
        fn,
        _cast(np.zeros(5), dtype),
        _cast((a, b), dtype),
        expected=_cast(np.linalg.solve(a, b), dtype),
    )


def _diagonal_bowl(dtype) -> Problem:
    # ½ Σ dᵢ (yᵢ − cᵢ)² over a dict of leaves of different shapes: a diagonal
    # Hessian, so that the pattern is as sparse as it gets.
    weight = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([[0.5, 4.0], [1.5, 2.5]])}
    centre = {"a": np.array([0.3, -1.0, 2.0]), "b": np.array([[1.0, 0.0], [-2.0, 0.5]])}

    def fn(y, args):
        weight, centre = args
        terms = jtu.tree_map(lambda w, y, c: w * (y - c) ** 2, weight, y, centre)
        return 0.5 * sum(jnp.sum(t) for t in jtu.tree_leaves(terms))

    return Problem(
        "diagonal_bowl",
        "minimise",
        fn,
        _cast(jtu.tree_map(np.zeros_like, centre), dtype),
        _cast((weight, centre), dtype),
        expected=_cast(centre, dtype),
    )


def _matyas(dtype) -> Problem:
    # Matyas' function 0.26 (x² + y²) − 0.48 xy, shifted to a centre in `args`, with
    # `y` a tuple of two scalars: 0-d leaves and a 1-element pattern.
    def fn(y, args):
        x, z = y[0] - args[0], y[1] - args[1]
        return 0.26 * (x**2 + z**2) - 0.48 * x * z

    centre = (np.array(0.5), np.array(-1.5))
    return Problem(
        "matyas",
        "minimise",
        fn,
        _cast((np.array(2.0), np.array(1.0)), dtype),
        _cast(centre, dtype),
        expected=_cast(centre, dtype),
    )


def _rosenbrock_terms(x, a, b):
    # The chained Rosenbrock function as residuals: Σ b (xᵢ₊₁ − xᵢ²)² + (a − xᵢ)².
    return jnp.sqrt(b) * (x[1:] - x[:-1] ** 2), a - x[:-1]


def _rosenbrock_dict(dtype) -> Problem:
    # Minimise the chained Rosenbrock function of a dict `y`, concatenated in a
    # fixed order. The minimum is at a = 1: x = 1.
    def fn(y, args):
        x = jnp.concatenate([y["head"], y["tail"]])
        stiff, gap = _rosenbrock_terms(x, args["a"], args["b"])
        return jnp.sum(stiff**2) + jnp.sum(gap**2)

    y0 = {"head": np.array([0.8, 0.9]), "tail": np.array([1.1, 1.2, 0.95])}
    return Problem(
        "rosenbrock_dict",
        "minimise",
        fn,
        _cast(y0, dtype),
        _cast({"a": np.array(1.0), "b": np.array(10.0)}, dtype),
        expected=_cast(jtu.tree_map(np.ones_like, y0), dtype),
    )


# ---------------------------------------------------------------- least squares


def _rosenbrock_list(dtype) -> Problem:
    # The same function as least squares, with `y` a list of two arrays and the
    # residual a tuple of two groups.
    def fn(y, args):
        x = jnp.concatenate(y)
        return _rosenbrock_terms(x, args["a"], args["b"])

    y0 = [np.array([0.7, 1.2, 0.9]), np.array([1.3, 0.8])]
    return Problem(
        "rosenbrock_list",
        "least_squares",
        fn,
        _cast(y0, dtype),
        _cast({"a": np.array(1.0), "b": np.array(100.0)}, dtype),
        expected=_cast([np.ones(3), np.ones(2)], dtype),
    )


def _mlp(params, x, activation):
    hidden = activation(params["w1"][:, None] * x[None, :] + params["b1"][:, None])
    return params["w2"] @ hidden + params["b2"]


def _nn_fit(dtype) -> Problem:
    # A 1-2-1 tanh network fitted to 16 samples of a teacher network of the same
    # shape; started near the teacher, the fit is well posed (J has full column
    # rank, condition number about 300) and has zero residual.
    teacher = {
        "w1": np.array([2.0, -1.0]),
        "b1": np.array([1.0, -0.5]),
        "w2": np.array([1.0, -0.8]),
        "b2": np.array(0.1),
    }
    x = np.linspace(-2.0, 2.0, 16)
    t = np.asarray(_mlp(jtu.tree_map(jnp.asarray, teacher), jnp.asarray(x), np.tanh))

    def fn(params, args):
        x, t = args
        return _mlp(params, x, jnp.tanh) - t

    y0 = jtu.tree_map(lambda v: v + 0.1, teacher)
    return Problem(
        "nn_fit",
        "least_squares",
        fn,
        _cast(y0, dtype),
        _cast((x, t), dtype),
        expected=_cast(teacher, dtype),
    )


@jax.custom_vjp
def _soft_abs(x):
    return jnp.sqrt(x**2 + 1.0)


def _soft_abs_fwd(x):
    value = _soft_abs(x)
    return value, (x, value)


def _soft_abs_bwd(res, cotangent):
    x, value = res
    return (cotangent * x / value,)


_soft_abs.defvjp(_soft_abs_fwd, _soft_abs_bwd)


def _custom_vjp_fit(dtype) -> Problem:
    # A residual through a function with a hand-written VJP and no JVP: forward
    # mode is impossible, so Optimistix needs `options={"jac": "bwd"}`. The
    # residual is elementwise in y (diagonal Jacobian) plus a coupling term.
    def fn(y, args):
        scale, target = args
        return _soft_abs(scale * y) + 0.1 * jnp.roll(y, 1) - target

    truth = np.array([0.5, 1.0, 1.5, 2.0])
    scale = np.array([1.0, 2.0, 0.5, 1.5])
    target = np.sqrt((scale * truth) ** 2 + 1) + 0.1 * np.roll(truth, 1)
    return Problem(
        "custom_vjp_fit",
        "least_squares",
        fn,
        _cast(truth + 0.2, dtype),
        _cast((scale, target), dtype),
        expected=_cast(truth, dtype),
        options={"jac": "bwd"},
    )


def _rank_deficient_fit(dtype) -> Problem:
    # A 1-3-1 ReLU network fitted to a teacher of the same shape whose third unit is
    # dead (its pre-activation is negative on every sample), plus a parameter that
    # the residual never reads. The Jacobian has zero columns, and each live unit
    # has a scale symmetry (w1, b1, w2) -> (c w1, c b1, w2 / c): 11 parameters, rank
    # 5. The fit has zero residual, so the predictions are determined while the
    # parameters are not; comparisons and the gradient target use predictions only.
    x = np.linspace(0.0, 2.0, 10)
    teacher = {
        "w1": np.array([1.0, -1.0, 0.5]),
        "b1": np.array([-0.55, 1.45, -5.0]),
        "w2": np.array([1.0, -0.7, 0.3]),
        "b2": np.array(0.2),
    }
    t = np.asarray(
        _mlp(jtu.tree_map(jnp.asarray, teacher), jnp.asarray(x), jax.nn.relu)
    )

    def fn(params, args):
        x, t = args
        return _mlp(params["net"], x, jax.nn.relu) - t

    def predictions(params):
        return _mlp(
            params["net"], jnp.asarray(x, params["net"]["b2"].dtype), jax.nn.relu
        )

    y0 = {"net": jtu.tree_map(lambda v: v + 0.05, teacher), "unused": np.array([0.7])}
    return Problem(
        "rank_deficient_fit",
        "least_squares",
        fn,
        _cast(y0, dtype),
        _cast((x, t), dtype),
        target=lambda params: jnp.sum(jnp.sin(predictions(params))),
        identifiable=predictions,
    )


def _graph_residual(dtype) -> Problem:
    # Twelve points in the plane, tied by edges: the residual gathers positions with
    # index arrays, `y[src] − y[dst]`, in a dict of residual groups (edge offsets,
    # squared edge lengths, and anchors that fix two points and so the rigid motion).
    rng = np.random.default_rng(3)
    num_points = 12
    truth = rng.normal(size=(num_points, 2))
    ring = np.arange(num_points)
    src = np.concatenate([ring, ring[::3]])
    dst = np.concatenate([np.roll(ring, -1), (ring[::3] + 5) % num_points])
    anchors = np.array([0, 7])
    offsets = truth[src] - truth[dst]
    lengths = np.sum(offsets**2, axis=1)

    def fn(y, args):
        diff = y[src] - y[dst]
        return {
            "offsets": diff - args["offsets"],
            "lengths": 0.5 * (jnp.sum(diff**2, axis=1) - args["lengths"]),
            "anchors": y[anchors] - args["anchors"],
        }

    y0 = truth + 0.1 * rng.normal(size=truth.shape)
    args = {"offsets": offsets, "lengths": lengths, "anchors": truth[anchors]}
    return Problem(
        "graph_residual",
        "least_squares",
        fn,
        _cast(y0, dtype),
        _cast(args, dtype),
        expected=_cast(truth, dtype),
    )


# ---------------------------------------------------------------- roots


def _cos_root(dtype) -> Problem:
    # cos(u) = a·u and cos(v) = b·v + 0.1 Σu on PyTree `y` and `args`: a nonlinear,
    # weakly coupled system with a unique root near the start.
    def fn(y, args):
        return {
            "u": jnp.cos(y["u"]) - args["a"] * y["u"],
            "v": jnp.cos(y["v"]) - args["b"] * y["v"] + 0.1 * jnp.sum(y["u"]),
        }

    y0 = {"u": np.full(3, 0.5), "v": np.full(2, 0.5)}
    args = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array(1.5)}
    return Problem("cos_root", "root", fn, _cast(y0, dtype), _cast(args, dtype))


def _polynomial_root(dtype) -> Problem:
    # Monotone cubics x³ + x = c (one real root each), with a tridiagonal coupling,
    # on a tuple `y` with a 0-d leaf and a dict of `args`.
    def fn(y, args):
        x, z = y
        coupled = x + 0.2 * (jnp.roll(x, 1) + jnp.roll(x, -1))
        return (x**3 + coupled - args["c"], z**3 + 2.0 * z - args["d"])

    # Started near the root, so that the chord method (whose Jacobian is frozen at
    # `y0`) converges as well as Newton's.
    y0 = (np.array([0.6, -0.9, 0.4, 1.1]), np.array(0.9))
    args = {"c": np.array([1.0, -2.0, 0.5, 3.0]), "d": np.array(3.0)}
    return Problem("polynomial_root", "root", fn, _cast(y0, dtype), _cast(args, dtype))


def _cos_fixed_point(dtype) -> Problem:
    # y = s · cos(y) elementwise; at s = 1 the fixed point is the Dottie number.
    def fn(y, args):
        return args * jnp.cos(y)

    dottie = 0.7390851332151607
    return Problem(
        "cos_fixed_point",
        "fixed_point",
        fn,
        _cast(np.zeros(4), dtype),
        _cast(np.ones(4), dtype),
        expected=_cast(np.full(4, dottie), dtype),
    )


def _coupled_fixed_point(dtype) -> Problem:
    # A contraction on a dict: y = ½ tanh(A y) + b, with A a small banded matrix.
    band = np.diag(np.full(5, 0.8)) + np.diag(np.full(4, 0.3), 1)

    def fn(y, args):
        return {"x": 0.5 * jnp.tanh(args["band"] @ y["x"]) + args["shift"]}

    args = {"band": band, "shift": np.linspace(-0.5, 0.5, 5)}
    return Problem(
        "coupled_fixed_point",
        "fixed_point",
        fn,
        _cast({"x": np.zeros(5)}, dtype),
        _cast(args, dtype),
    )


MAKERS = {
    maker.__name__.removeprefix("_"): maker
    for maker in (
        _bowl,
        _diagonal_bowl,
        _matyas,
        _rosenbrock_dict,
        _rosenbrock_list,
        _nn_fit,
        _custom_vjp_fit,
        _rank_deficient_fit,
        _graph_residual,
        _cos_root,
        _polynomial_root,
        _cos_fixed_point,
        _coupled_fixed_point,
    )
}


def make(name: str, dtype) -> Problem:
    """Problem `name` of the corpus, with `y0`, `args` and `expected` in `dtype`."""
    problem = MAKERS[name](dtype)
    target = _sum_of_squares if problem.target is None else problem.target
    identifiable = (
        (lambda y: y) if problem.identifiable is None else problem.identifiable
    )
    return problem._replace(
        target=target, options=problem.options or {}, identifiable=identifiable
    )


NAMES = tuple(MAKERS)
KINDS = {name: MAKERS[name](np.float64).kind for name in NAMES}
