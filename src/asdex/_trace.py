"""From a user function and sample arguments to a jaxpr with a flat input/output layout.

Sample arguments may be arrays, `jax.ShapeDtypeStruct`s or PyTrees of them; only
shapes and dtypes are used. Array leaves become jaxpr inputs. Leaves of the
`argnums` arguments are *tracked*: they are the columns of the Jacobian, numbered
leaf by leaf in `jax.tree_util` order, each leaf row-major (Lineax's layout). Every
other leaf that is not an array (a Python number, a string, a callable, ...) is
static and closed over, as `jax.jacobian` does with non-differentiated arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.extend import core as jex_core


def is_array_leaf(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def _aval(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(
        np.shape(x),
        jnp.result_type(x) if not isinstance(x, jax.ShapeDtypeStruct) else x.dtype,
    )


@dataclasses.dataclass(frozen=True)
class Traced:
    """A traced function with its flat layout.

    - `jaxpr`: closed jaxpr whose inputs are the dynamic (array) leaves `in_avals`.
    - `tracked`: the jaxpr inputs that are differentiated, in Jacobian column order.
    - `in_tree`/`in_leaves`: structure and avals of the differentiated inputs.
    - `out_tree`/`out_leaves`: structure and avals of the outputs (the flat function's).
    """

    jaxpr: jex_core.ClosedJaxpr
    in_avals: tuple[jax.ShapeDtypeStruct, ...]
    tracked: tuple[int, ...]
    in_tree: Any
    in_leaves: tuple[jax.ShapeDtypeStruct, ...]
    out_tree: Any
    out_leaves: tuple[jax.ShapeDtypeStruct, ...]

    @property
    def n(self) -> int:
        return int(sum(np.prod(a.shape, dtype=np.int64) for a in self.in_leaves))

    @property
    def m(self) -> int:
        return int(sum(np.prod(a.shape, dtype=np.int64) for a in self.out_leaves))


def normalize_argnums(
    argnums, n_args: int, caller: str
) -> tuple[tuple[int, ...], bool]:
    """Returns the argnums as a tuple, and whether the user passed a single int."""
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"`{caller}(argnums=())`: give at least one argument index.")
    for k in nums:
        if not isinstance(k, (int, np.integer)) or not -n_args <= k < n_args:
            raise ValueError(
                f"`{caller}(argnums={argnums!r})`: the function was given {n_args} "
                f"positional sample argument(s), so argnums must lie in "
                f"[{-n_args}, {n_args})."
            )
    nums = tuple(int(k) % n_args for k in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"`{caller}(argnums={argnums!r})`: repeated argument index.")
    return nums, single


def sample_args(args: Sequence, input_shape, caller: str) -> tuple:
    """Apply the `input_shape=` shortcut for functions of one array."""
    if input_shape is None:
        if not args:
            raise TypeError(
                f"`{caller}` needs sample arguments (arrays or jax.ShapeDtypeStruct) "
                "after the function, or `input_shape=` for a function of one array."
            )
        return tuple(args)
    if args:
        raise TypeError(
            f"`{caller}`: give either sample arguments or `input_shape=`, not both."
        )
    shape = (
        (int(input_shape),)
        if np.ndim(input_shape) == 0
        else tuple(int(s) for s in input_shape)
    )
    return (jax.ShapeDtypeStruct(shape, jnp.zeros(()).dtype),)


def _differentiable_leaf(leaf, a: int, argnums, caller: str) -> jax.ShapeDtypeStruct:
    if isinstance(leaf, (float, complex)) and not isinstance(leaf, bool):
        leaf = np.asarray(leaf, dtype=jnp.asarray(leaf).dtype)
    if not is_array_leaf(leaf):
        raise TypeError(
            f"`{caller}(argnums={argnums!r})`: argument {a} has a leaf of type "
            f"{type(leaf).__name__}; differentiated arguments must be arrays, "
            "jax.ShapeDtypeStruct, or PyTrees of them."
        )
    aval = _aval(leaf)
    if not jnp.issubdtype(aval.dtype, jnp.inexact):
        raise TypeError(
            f"`{caller}(argnums={argnums!r})`: argument {a} has a leaf of dtype "
            f"{aval.dtype}; only floating or complex inputs can be differentiated. "
            "Cast it, e.g. `x.astype(jnp.float32)`, or leave it out of argnums."
        )
    return aval


def check_scalar_output(
    outs: Sequence,
    caller: str,
    *,
    argument: str = "f",
    has_aux: bool | None = None,
    advice: str = "For a vector-valued function use `asdex.jacobian`.",
) -> None:
    """Raise a `TypeError` unless `outs` (the output's leaves: arrays or
    `jax.ShapeDtypeStruct`s) are one real scalar, as `jax.grad` and
    `jax.hessian` need. `advice` is what to do instead; `has_aux=False` adds a
    hint when `outs` look like `(value, aux)`."""
    shapes = [jnp.shape(o) for o in outs]
    dtypes = [jnp.result_type(o) for o in outs]
    if len(outs) == 1 and shapes[0] == () and jnp.issubdtype(dtypes[0], jnp.floating):
        return
    got = ", ".join(
        f"{np.dtype(d).name}{list(s)}" for s, d in zip(shapes, dtypes, strict=True)
    )
    hint = ""
    if has_aux is False and len(outs) == 2 and shapes[0] == ():
        hint = " If it returns `(value, aux)`, pass `has_aux=True`."
    raise TypeError(
        f"`{caller}({argument}, ...)`: `{argument}` must return one real scalar, but "
        f"it returns {got or 'nothing'}. {advice}{hint}"
    )


@contextlib.contextmanager
def explain_traced_control_flow(caller: str, name: str = "f"):
    """Turn JAX's errors for Python control flow on traced values into asdex's.

    Detection traces `f` once, with abstract values that stand for every input at
    once, so `if x[0] > 0:` has no answer. JAX's `TracerBoolConversionError` (and
    its siblings for `int(...)`, `range(...)` and `np.asarray(...)`) point into
    JAX's and asdex's tracing code; this says what to write instead. The original
    stays chained. `name` is what the public caller calls the function.
    """
    try:
        yield
    except jax.errors.TracerBoolConversionError as err:
        raise TypeError(
            f"`{caller}`: `{name}` branches in Python on the value of an input (`if`, "
            "`while`, `and`/`or`, `bool(...)` on a traced array). asdex detects the "
            "sparsity pattern by tracing `f` once, for all input values at once, so "
            "such a branch cannot be taken. Write it with `jnp.where(condition, a, "
            "b)` (both sides evaluated, elementwise) or `jax.lax.cond(condition, "
            "true_fn, false_fn, *operands)`, and a loop on a value with "
            "`jax.lax.while_loop` or `jax.lax.fori_loop`. A value that only "
            "selects the structure (a size, a mode) can be passed as a Python "
            "value instead of an array: asdex keeps it static."
        ) from err
    except (
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerIntegerConversionError,
        jax.errors.TracerArrayConversionError,
    ) as err:
        raise TypeError(
            f"`{caller}`: `{name}` turns the value of an input into a Python or NumPy "
            "value (`int(...)`, `float(...)`, `range(...)`, `np.asarray(...)` on a "
            "traced array). asdex detects the sparsity pattern by tracing `f` once, "
            "for all input values at once, so the value is unknown. Keep the "
            "computation in `jax.numpy`, branch with `jnp.where` or `jax.lax.cond`, "
            "or pass a value that only selects the structure (a size, an index) as "
            "a Python value instead of an array: asdex keeps it static."
        ) from err


def trace(
    f: Callable,
    args: Sequence,
    kwargs: dict,
    argnums,
    has_aux: bool,
    caller: str,
    transform: Callable[[Callable, tuple[int, ...]], Callable] | None = None,
    local: bool = False,
) -> Traced:
    """Trace `f(*args, **kwargs)`, differentiating the `argnums` arguments.

    `transform(flat_fun, tracked)` may replace the flat function before tracing
    (the Hessian traces the gradient instead). With `local=True` the samples must
    be concrete, and what is traced is the function's linearization at them (see
    `linearized_at`).
    """
    if not callable(f):
        raise TypeError(
            f"`{caller}(f, ...)`: `f` must be callable, got {type(f).__name__}."
        )
    nums, _ = normalize_argnums(argnums, len(args), caller)
    flat_args, args_tree = jtu.tree_flatten((tuple(args), dict(kwargs)))
    arg_trees = [jtu.tree_structure(a) for a in args]
    # Which positional argument each flat leaf belongs to (None for kwargs).
    owner = [a for a, t in enumerate(arg_trees) for _ in range(t.num_leaves)]
    owner += [None] * (len(flat_args) - len(owner))
    dyn_avals, slots = [], []
    tracked_by_arg: dict[int, list[int]] = {a: [] for a in nums}
    for leaf, a in zip(flat_args, owner):
        if a in tracked_by_arg:
            tracked_by_arg[a].append(len(dyn_avals))
            slots.append(len(dyn_avals))
            dyn_avals.append(_differentiable_leaf(leaf, a, argnums, caller))
        elif is_array_leaf(leaf):
            slots.append(len(dyn_avals))
            dyn_avals.append(_aval(leaf))
        else:
            slots.append(None)
    # Tracked inputs are numbered in the order argnums lists them.
    tracked = tuple(k for a in nums for k in tracked_by_arg[a])
    out_store = {}

    def flat_fun(*dyn):
        leaves = [leaf if s is None else dyn[s] for s, leaf in zip(slots, flat_args)]
        call_args, call_kwargs = jtu.tree_unflatten(args_tree, leaves)
        out = f(*call_args, **call_kwargs)
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    f"`{caller}(has_aux=True)`: `f` must return a pair (output, aux), "
                    f"got {type(out).__name__}."
                )
            out = out[0]
        out_leaves, out_store["tree"] = jtu.tree_flatten(out)
        return [jnp.asarray(o) for o in out_leaves]

    fun = flat_fun if transform is None else transform(flat_fun, tracked)
    if local:
        point = [leaf for s, leaf in zip(slots, flat_args) if s is not None]
        fun = linearized_at(fun, concrete_point(point, caller), tracked)
    with explain_traced_control_flow(caller):
        jaxpr = jax.make_jaxpr(fun)(*dyn_avals)
    in_tree = differentiated_tree(arg_trees, nums, single=len(nums) == 1)
    return Traced(
        jaxpr=jaxpr,
        in_avals=tuple(dyn_avals),
        tracked=tracked,
        in_tree=in_tree,
        in_leaves=tuple(dyn_avals[k] for k in tracked),
        out_tree=out_store.get("tree"),
        out_leaves=tuple(
            jax.ShapeDtypeStruct(a.shape, a.dtype) for a in jaxpr.out_avals
        ),
    )


def differentiated_tree(arg_trees: list, nums: tuple[int, ...], *, single: bool):
    """The structure of the differentiated arguments `nums`: the argument's own for
    a `single` one, else a tuple of theirs (as `jax.jacobian` nests its result)."""
    if single:
        return arg_trees[nums[0]]
    return jtu.tree_structure(
        tuple(
            jtu.tree_unflatten(arg_trees[a], [0] * arg_trees[a].num_leaves)
            for a in nums
        )
    )


def concrete_point(leaves: list, caller: str) -> list:
    """The sample leaves as concrete arrays, for a local pattern at them."""
    for leaf in leaves:
        if isinstance(leaf, jax.ShapeDtypeStruct) or isinstance(leaf, jax.core.Tracer):
            what = (
                "a jax.ShapeDtypeStruct"
                if isinstance(leaf, jax.ShapeDtypeStruct)
                else "a traced value (inside `jax.jit`, `vmap` or a solver's loop)"
            )
            raise TypeError(
                f"`{caller}(..., local=True)`: a local pattern is the pattern at one "
                f"point, so every array argument must be a concrete array, but one "
                f"is {what}. Pass the point's values, and detect outside any JAX "
                "transformation; or use the global pattern (`local=False`), which "
                "needs shapes only."
            )
    return [jnp.asarray(leaf) for leaf in leaves]


def linearized_at(fun: Callable, point: list, tracked: tuple[int, ...]) -> Callable:
    """`fun`'s linear map at `point`, as a function of the tracked inputs' tangents.

    `jax.linearize` evaluates `fun` at the point and keeps what the tangents need
    (the residuals) as constants: which branch each `select_n` took, where `max`
    and `relu` are active, the permutation of a `sort`, the index an `argmax`
    returned. Walked by the interpreter, the linear map's pattern is the
    Jacobian's pattern at that point. The untracked inputs are fixed at the
    point; the traced function still takes them, so that the layout is the same.
    """

    def of_tracked(*values):
        full = list(point)
        for k, v in zip(tracked, values):
            full[k] = v
        return fun(*full)

    _, linear = jax.linearize(of_tracked, *[point[k] for k in tracked])

    def tangent_map(*dyn):
        return linear(*[dyn[k] for k in tracked])

    return tangent_map
