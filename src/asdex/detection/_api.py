"""Public detection entry points: `jacobian_sparsity` and `hessian_sparsity`."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from .._pattern import SparsityPattern
from .._trace import Traced, check_scalar_output, sample_args, trace
from . import _rules  # noqa: F401  (registers the rules)
from ._abstract import Abstract
from ._deps import Deps, vstack
from ._interpreter import Interpreter


def pattern_of(traced: Traced) -> SparsityPattern:
    """Walk a traced function and read off the `(m, n)` pattern of its outputs."""
    n = traced.n
    interp = Interpreter(n)
    inputs = [Abstract(a.shape, a.dtype) for a in traced.in_avals]
    offset = 0
    for k in traced.tracked:
        a = traced.in_avals[k]
        size = int(np.prod(a.shape, dtype=np.int64))
        inputs[k] = Abstract(a.shape, a.dtype, Deps.identity(size, offset, n))
        offset += size
    outs = interp.run_closed(traced.jaxpr, inputs)
    rows = [o.deps if o.deps is not None else Deps.empty(o.size, n) for o in outs]
    if not rows:
        return SparsityPattern(np.zeros(0, int), np.zeros(0, int), (0, n))
    stacked = vstack(rows)
    return SparsityPattern.from_csr(
        stacked.indptr, stacked.indices, (stacked.size, n), sorted_unique=True
    )


def within(
    global_pattern: SparsityPattern, at_point: Traced, symmetric: bool = False
) -> SparsityPattern:
    """The local pattern: that of `at_point` (a linearization at the point, from
    `trace(..., local=True)`), kept within the global pattern, and marked local.

    Both are sound at the point, so their intersection is too; it is also never
    looser than the global pattern, whatever the linear map's rules give. A
    Hessian's (`symmetric`) is made symmetric first, as the global one is.
    """
    local = pattern_of(at_point)
    if symmetric:
        local = local | local.T
    return (local & global_pattern)._as_local()


def check_local(local, caller: str) -> bool:
    if not isinstance(local, bool):
        raise TypeError(
            f"`{caller}(local={local!r})` must be `True` (the pattern at the given "
            "point) or `False` (the global pattern, at every point)."
        )
    return local


def jacobian_sparsity(
    f: Callable,
    *sample_args_,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    input_shape: int | tuple[int, ...] | None = None,
    local: bool = False,
    **sample_kwargs,
) -> SparsityPattern:
    """Detect the sparsity pattern of the Jacobian of `f`: global, or at one point.

    The function is traced once to a jaxpr, which an abstract interpreter walks
    without evaluating any derivative. The global pattern holds at every input:
    every entry that `jax.jacobian(f)` can make nonzero at any point is in it.

    With `local=True`, the pattern is the one at the sample point: `f` is
    linearized there (`jax.linearize`), so every comparison, `jnp.where`,
    `max`/`min`, `abs`, `relu`, `clip`, `sort` and `argmax` is decided by the
    actual values, and only the branches taken count. It contains every nonzero
    of `jax.jacobian(f)` at that point and is never looser than the global
    pattern, but it **holds at that point only**: at another point the active
    branches, and so the nonzeros, can differ. See
    [Global and local patterns](../explanation/global_patterns.md).

    **Arguments:**

    - `f`: the function. It may take and return PyTrees of arrays.
    - `*sample_args`: sample positional arguments: arrays, `jax.ShapeDtypeStruct`s,
        or PyTrees of them. Only shapes and dtypes are used. Leaves that are not
        arrays (Python numbers, strings, callables) are static and closed over.
    - `argnums`: which positional argument(s) to differentiate, as in `jax.jacobian`.
    - `has_aux`: whether `f` returns a pair `(output, aux)`; `aux` is ignored.
    - `input_shape`: for a function of one array, its shape instead of a sample
        (the array then has the default float dtype).
    - `local`: `False` for the global pattern, `True` for the pattern at the
        sample arguments, which must then be concrete arrays (not
        `jax.ShapeDtypeStruct`s, not traced values).
    - `**sample_kwargs`: sample keyword arguments, never differentiated.

    **Returns:**

    A [`asdex.SparsityPattern`][] of shape `(m, n)`: `m` output and `n` input
    elements, each flattened leaf by leaf in `jax.tree_util` order, row-major.
    A local one has `pattern.local == True`, and its `repr` says so.

    !!! Example

        ```python
        def f(x):
            return (x[1:] - x[:-1]) ** 2

        asdex.jacobian_sparsity(f, input_shape=50)
        # SparsityPattern(49×50, nnz=98, sparsity=96.0%)
        ```
    """
    caller = "asdex.jacobian_sparsity"
    check_local(local, caller)
    args = sample_args(sample_args_, input_shape, caller)
    traced = trace(f, args, sample_kwargs, argnums, has_aux, caller)
    pattern = pattern_of(traced)
    if local:
        at_point = trace(f, args, sample_kwargs, argnums, has_aux, caller, local=True)
        pattern = within(pattern, at_point)
    return pattern


def hessian_sparsity(
    f: Callable,
    *sample_args_,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    input_shape: int | tuple[int, ...] | None = None,
    local: bool = False,
    **sample_kwargs,
) -> SparsityPattern:
    """Detect the sparsity pattern of the Hessian of a scalar function `f`: global,
    or at one point.

    The pattern is the Jacobian pattern of `jax.grad(f)`, made symmetric. Constant
    factors are tracked, so `sum(x[1:] * x[:-1])` gives the two off-diagonals and no
    diagonal, and a linear function gives an empty pattern.

    **Arguments:** as for [`asdex.jacobian_sparsity`][]; `f` must return a real
    scalar (or `(scalar, aux)` with `has_aux=True`). With `local=True` the pattern
    is the Hessian's at the (concrete) sample point, and holds there only: a
    penalty `jnp.maximum(g(x), 0) ** 2` couples the variables of `g` only where
    it is active.

    **Returns:**

    A symmetric [`asdex.SparsityPattern`][] of shape `(n, n)`.
    """
    caller = "asdex.hessian_sparsity"
    check_local(local, caller)
    args = sample_args(sample_args_, input_shape, caller)

    def traced(at_point: bool) -> Traced:
        return trace(
            f,
            args,
            sample_kwargs,
            argnums,
            has_aux,
            caller,
            transform=lambda fun, tracked: gradient_of(fun, tracked, caller),
            local=at_point,
        )

    pattern = pattern_of(traced(False))
    pattern = pattern | pattern.T
    return within(pattern, traced(True), symmetric=True) if local else pattern


def gradient_of(flat_fun: Callable, tracked: tuple[int, ...], caller: str) -> Callable:
    """The flat function's gradient with respect to the tracked inputs; `caller`
    names the public function in errors."""

    def scalar(*dyn):
        outs = flat_fun(*dyn)
        check_scalar_output(
            outs, caller, advice="For a vector function use `asdex.jacobian_sparsity`."
        )
        return outs[0]

    def grad(*dyn):
        def of_tracked(*t):
            full = list(dyn)
            for k, v in zip(tracked, t):
                full[k] = v
            return scalar(*full)

        try:
            return jax.grad(of_tracked, argnums=tuple(range(len(tracked))))(
                *[dyn[k] for k in tracked]
            )
        except ValueError as err:
            if "Reverse-mode differentiation does not work" in str(err):
                raise ValueError(
                    f"`{caller}`: `f` cannot be differentiated in reverse "
                    "mode, which Hessians need. A `lax.while_loop` with a dynamic trip "
                    "count is the usual cause: use `lax.fori_loop` with static bounds, "
                    "`lax.scan`, or `equinox.internal.while_loop(..., max_steps=...)`."
                ) from err
            raise

    return grad
