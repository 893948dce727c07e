"""Public entry points: colorings, sparse Jacobians and sparse Hessians."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

from ._colored import ColoredPattern, warn_if_dense
from ._pattern import SparsityPattern
from ._trace import (
    Traced,
    concrete_point,
    is_array_leaf,
    sample_args as _samples,
    trace,
)
from .ad._complex import check_real_hessian, complex_mode
from .ad._layout import Layout
from .ad._sparse_hessian import SparseHessian
from .ad._sparse_jacobian import SparseJacobian
from .coloring import color_hessian, color_jacobian
from .detection._api import _gradient, check_local, pattern_of, within

OutputFormat = Literal["bcoo", "dense", "scipy_csr", "scipy_csc", "scipy_coo"]

_JACOBIAN_MODES = (None, "fwd", "rev", "bidirectional")
_HESSIAN_MODES = (None, "star", "acyclic")


# ---------------------------------------------------------------------------- helpers


def _check_mode(mode, modes, caller: str) -> None:
    if mode not in modes:
        raise ValueError(
            f"`{caller}(mode={mode!r})` must be one of "
            f"{', '.join(repr(m) for m in modes)}."
        )


def _color_jacobian(
    pattern: SparsityPattern, mode, order, caller: str
) -> ColoredPattern:
    _check_mode(mode, _JACOBIAN_MODES, caller)
    return ColoredPattern(color_jacobian(pattern, mode, order))


def _color_hessian(
    pattern: SparsityPattern, mode, order, caller: str
) -> ColoredPattern:
    _check_mode(mode, _HESSIAN_MODES, caller)
    # Star (direct) by default: every entry read from one product, as exact as
    # `jax.hessian`. Acyclic only by name; see `asdex.coloring.color_hessian`.
    decompression = {None: "direct", "star": "direct", "acyclic": "substitution"}[mode]
    return ColoredPattern(color_hessian(pattern, decompression, order))


def _trace_jacobian(f, args, kwargs, argnums, has_aux, caller) -> Traced:
    return trace(f, args, kwargs, argnums, has_aux, caller)


def _complex_mode(traced: Traced, holomorphic, mode, caller, argument="mode"):
    return complex_mode(
        traced.in_leaves, traced.out_leaves, holomorphic, mode, caller, argument
    )


def _trace_hessian(f, args, kwargs, argnums, has_aux, caller, local=False):
    """Trace the gradient of `f` (for the pattern), checking that `f` is scalar;
    with `local`, its linearization at the sample point."""
    store: dict = {}

    def transform(flat_fun, tracked):
        def checked(*dyn):
            outs = flat_fun(*dyn)
            store["out_avals"] = tuple(
                jax.ShapeDtypeStruct(jnp.shape(o), jnp.result_type(o)) for o in outs
            )
            if (
                len(outs) != 1
                or jnp.shape(outs[0]) != ()
                or not jnp.issubdtype(jnp.result_type(outs[0]), jnp.floating)
            ):
                got = ", ".join(f"{a.dtype}{list(a.shape)}" for a in store["out_avals"])
                hint = ""
                if not has_aux and len(outs) == 2 and jnp.shape(outs[0]) == ():
                    hint = " If `f` returns `(value, aux)`, pass `has_aux=True`."
                raise TypeError(
                    f"`{caller}(f, ...)`: `f` must return one real scalar (a Hessian "
                    f"is the derivative of a scalar function), but it returns "
                    f"{got or 'nothing'}. For a vector-valued function use "
                    f"`asdex.jacobian`.{hint}"
                )
            return outs

        return _gradient(checked, tracked, caller)

    traced = trace(
        f, args, kwargs, argnums, has_aux, caller, transform=transform, local=local
    )
    check_real_hessian(traced.in_leaves, caller)
    return traced, store["out_avals"]


def _jacobian_pattern(traced, f, args, kwargs, argnums, has_aux, caller, local):
    """The global pattern of the traced function, or (`local`) the one at the
    sample point."""
    pattern = pattern_of(traced)
    if check_local(local, caller):
        at_point = trace(f, args, kwargs, argnums, has_aux, caller, local=True)
        pattern = within(pattern, at_point)
    return pattern


def _hessian_pattern(traced, f, args, kwargs, argnums, has_aux, caller, local):
    """As `_jacobian_pattern`, for the Hessian (made symmetric)."""
    pattern = pattern_of(traced)
    pattern = pattern | pattern.T
    if check_local(local, caller):
        at_point = _trace_hessian(f, args, kwargs, argnums, has_aux, caller, True)
        pattern = within(pattern, at_point[0], symmetric=True)
    return pattern


def _mark_point(coloring: ColoredPattern, args, kwargs, caller: str) -> None:
    """Remember where a local coloring holds: the sample arguments' array leaves,
    which sparse derivatives built from it check their calls against."""
    if coloring.pattern.local:
        leaves = jax.tree_util.tree_leaves((tuple(args), dict(kwargs)))
        # Python numbers given for differentiated scalars are values too.
        is_value = [
            is_array_leaf(x) or (isinstance(x, float | complex)) for x in leaves
        ]
        arrays = iter(
            concrete_point([x for x, v in zip(leaves, is_value) if v], caller)
        )
        coloring._point = tuple(next(arrays) if v else None for v in is_value)


def _as_pattern(pattern, caller: str) -> SparsityPattern:
    if isinstance(pattern, SparsityPattern):
        if pattern.local:
            raise ValueError(
                f"`{caller}(pattern=...)` is a local pattern (`local=True`), which "
                "holds at one point only, but a derivative built from a pattern is "
                "called anywhere. Build it at the point instead, with `local=True` "
                "(`asdex.jacobian(f, x, local=True)`, `asdex.hessian(...)`): that "
                "one checks that it is called at that point. Or detect the global "
                "pattern."
            )
    return SparsityPattern.from_any(pattern, argument=f"`{caller}(pattern=...)`")


def _default_samples(args, input_shape, n: int):
    """A function of one vector of length `n` when no samples are given."""
    if not args and input_shape is None:
        return None, n
    return args, input_shape


# ---------------------------------------------------------------------------- colorings


def jacobian_coloring(
    f: Callable,
    *sample_args,
    mode: Literal["fwd", "rev", "bidirectional"] | None = None,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    holomorphic: bool = False,
    local: bool = False,
    **sample_kwargs,
) -> ColoredPattern:
    """Detect the Jacobian sparsity pattern of `f` and color it.

    This is [`asdex.jacobian_sparsity`][] followed by a coloring. The coloring
    decides which JVPs or VJPs a sparse Jacobian computes; see
    [`asdex.ColoredPattern`][] for the modes.

    **Arguments:**

    - `f`, `*sample_args`, `argnums`, `has_aux`, `input_shape`, `**sample_kwargs`:
        as for [`asdex.jacobian_sparsity`][].
    - `mode`: `"fwd"` (column coloring, JVPs), `"rev"` (row coloring, VJPs),
        `"bidirectional"` (some of both; for patterns with dense rows and dense
        columns), or `None` for whichever of `"fwd"` and `"rev"` needs fewer
        colors.
    - `order`: the vertex order of the greedy coloring: a name (`"natural"`,
        `"largest_first"`, `"smallest_last"`, `"incidence_degree"`,
        `"dynamic_largest_first"`, `"random"`), an
        [`asdex.coloring.AbstractOrder`][], a permutation, or a sequence of
        these to keep the best.
    - `holomorphic`: as for [`asdex.jacobian`][]; with complex inputs or outputs
        it decides which modes give JAX's Jacobian (`mode=None` picks one of
        them).
    - `local`: color the pattern at the sample point, which must be concrete
        (see [`asdex.jacobian_sparsity`][]). Derivatives built from such a
        coloring may only be called at that point; operators and solvers refuse
        it.

    **Returns:**

    An [`asdex.ColoredPattern`][]. Emits an [`asdex.DenseColoringWarning`][] if
    the coloring is no cheaper than dense differentiation.

    !!! Example

        ```python
        def f(x):
            return (x[1:] - x[:-1]) ** 2

        print(asdex.jacobian_coloring(f, input_shape=50))
        # ColoredPattern(49×50, nnz=98, sparsity=96.0%, JVP, 2 colors)
        #   2 JVPs (instead of 49 VJPs or 50 JVPs)
        # ...
        ```
    """
    caller = "asdex.jacobian_coloring"
    args = _samples(sample_args, input_shape, caller)
    traced = _trace_jacobian(f, args, sample_kwargs, argnums, has_aux, caller)
    mode = _complex_mode(traced, holomorphic, mode, caller)
    pattern = _jacobian_pattern(
        traced, f, args, sample_kwargs, argnums, has_aux, caller, local
    )
    coloring = _color_jacobian(pattern, mode, order, caller)
    warn_if_dense(coloring, caller)
    _mark_point(coloring, args, sample_kwargs, caller)
    # Remember the samples' constants, which solvers check the coloring against.
    coloring._samples = Layout.from_traced(
        traced, args, sample_kwargs, argnums, has_aux, caller
    )
    return coloring


def hessian_coloring(
    f: Callable,
    *sample_args,
    mode: Literal["star", "acyclic"] | None = None,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    local: bool = False,
    **sample_kwargs,
) -> ColoredPattern:
    """Detect the Hessian sparsity pattern of a scalar function `f` and color it.

    This is [`asdex.hessian_sparsity`][] followed by a symmetric coloring, which
    decides which Hessian-vector products a sparse Hessian computes.

    **Arguments:**

    - `f`, `*sample_args`, `argnums`, `has_aux`, `input_shape`, `**sample_kwargs`:
        as for [`asdex.hessian_sparsity`][]. `f` must return one real scalar.
    - `mode`: `"star"` (direct decompression: each entry read from one product),
        `"acyclic"` (decompression by substitution: usually fewer colors, but
        entries solved from differences, which lose accuracy where neighbouring
        entries differ by orders of magnitude), or `None`, the same as `"star"`.
    - `order`: the vertex order; see [`asdex.jacobian_coloring`][].
    - `local`: color the pattern at the sample point; see
        [`asdex.jacobian_coloring`][].

    **Returns:**

    An [`asdex.ColoredPattern`][] of mode `"star"` or `"acyclic"`. Emits an
    [`asdex.DenseColoringWarning`][] if it needs `n` colors.

    !!! Example

        ```python
        def f(x):
            return jnp.sum((x[1:] - x[:-1] ** 2) ** 2)

        asdex.hessian_coloring(f, input_shape=100).num_colors   # 3 (star)
        ```
    """
    caller = "asdex.hessian_coloring"
    args = _samples(sample_args, input_shape, caller)
    traced, _ = _trace_hessian(f, args, sample_kwargs, argnums, has_aux, caller)
    pattern = _hessian_pattern(
        traced, f, args, sample_kwargs, argnums, has_aux, caller, local
    )
    coloring = _color_hessian(pattern, mode, order, caller)
    warn_if_dense(coloring, caller)
    _mark_point(coloring, args, sample_kwargs, caller)
    # Only the samples' constants are checked later; outputs do not matter.
    coloring._samples = Layout.from_traced(
        traced, args, sample_kwargs, argnums, has_aux, caller
    )
    return coloring


# ---------------------------------------------------------------------------- Jacobians


def _jacobian(
    caller,
    f,
    args,
    kwargs,
    argnums,
    has_aux,
    coloring,
    output_format,
    chunk_size,
    with_value,
    holomorphic,
    traced=None,
) -> SparseJacobian:
    if traced is None:
        traced = _trace_jacobian(f, args, kwargs, argnums, has_aux, caller)
    _complex_mode(traced, holomorphic, coloring.mode, caller, "coloring")
    layout = Layout.from_traced(traced, args, kwargs, argnums, has_aux, caller)
    return SparseJacobian(
        f,
        coloring,
        layout,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
    )


def _detect_and_build_jacobian(
    caller,
    f,
    sample_args,
    argnums,
    has_aux,
    mode,
    output_format,
    chunk_size,
    input_shape,
    order,
    sample_kwargs,
    with_value,
    holomorphic,
    local,
) -> SparseJacobian:
    args = _samples(sample_args, input_shape, caller)
    traced = _trace_jacobian(f, args, sample_kwargs, argnums, has_aux, caller)
    mode = _complex_mode(traced, holomorphic, mode, caller)
    pattern = _jacobian_pattern(
        traced, f, args, sample_kwargs, argnums, has_aux, caller, local
    )
    coloring = _color_jacobian(pattern, mode, order, caller)
    warn_if_dense(coloring, caller, stacklevel=4)
    _mark_point(coloring, args, sample_kwargs, caller)
    return _jacobian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
        holomorphic,
        traced,
    )


def jacobian(
    f: Callable,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["fwd", "rev", "bidirectional"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    holomorphic: bool = False,
    local: bool = False,
    **sample_kwargs,
) -> SparseJacobian:
    """A function computing the sparse Jacobian of `f`, like `jax.jacobian(f)`.

    The sparsity pattern is detected once from the sample arguments (only their
    shapes and dtypes are used) and colored; each call then evaluates `f` once and
    computes one JVP or VJP per color, and reads the nonzeros back with one gather.

    **Arguments:**

    - `f`: the function. It may take and return PyTrees of arrays.
    - `*sample_args`: sample positional arguments: arrays, `jax.ShapeDtypeStruct`s,
        or PyTrees of them. Leaves that are not arrays (Python numbers, strings,
        callables) are constants: calls must pass the same values.
    - `argnums`: which positional argument(s) to differentiate, as in
        `jax.jacobian`.
    - `has_aux`: whether `f` returns a pair `(output, aux)`; calls then return
        `(J, aux)`.
    - `mode`: `"fwd"` (JVPs), `"rev"` (VJPs), `"bidirectional"`, or `None` for the
        cheaper of `"fwd"` and `"rev"`. See [`asdex.ColoredPattern`][].
    - `output_format`:
        - `"bcoo"` (default): a `jax.experimental.sparse.BCOO` of shape
          `out.shape + in.shape`, like `jax.jacobian`'s result; PyTree inputs and
          outputs give `jax.jacobian`'s nesting of per-block BCOOs. For one input
          and one output array its entries may come in the products' order, with
          padding; see [`asdex.SparseJacobian`][].
        - `"dense"`: dense arrays with the same shapes and nesting.
        - `"scipy_csr"`, `"scipy_csc"`, `"scipy_coo"`: a scipy sparse array of
          shape `(m, n)` in the flat layout of [`asdex.SparsityPattern`][]. These
          are built on the host, so they cannot be used under `jax.jit`,
          `jax.vmap` or `jax.grad`.
    - `chunk_size`: evaluate at most this many products at once (bounds the
        memory); `None` evaluates all at once.
    - `input_shape`: for a function of one array, its shape instead of a sample.
    - `order`: the vertex order of the coloring; see [`asdex.jacobian_coloring`][].
    - `holomorphic`: whether `f` is holomorphic, as in `jax.jacfwd`. With `True`,
        inputs and outputs must be complex and the result is the complex Jacobian
        `∂f/∂z`, the same in every mode. With `False` (the default), asdex gives
        what JAX gives: for real inputs and complex outputs `jax.jacfwd`'s
        Jacobian (by JVPs: `mode=None` picks `"fwd"`), for complex inputs and
        real outputs `jax.jacrev`'s (by VJPs), and complex inputs and outputs
        raise, as in JAX. See
        [complex numbers](../howto/jacobians.md#complex-numbers-holomorphic).
    - `local`: use the sparsity pattern at the sample arguments, which must be
        concrete, instead of the global one (see [`asdex.jacobian_sparsity`][]).
        It can need fewer products, but it holds at that point only: the
        returned function checks that every call is at that point (inside `jit`
        with `equinox.error_if`) and raises otherwise. For a new point, build a
        new one. See [Global and local patterns](../explanation/global_patterns.md).
    - `**sample_kwargs`: sample keyword arguments of `f`, never differentiated.

    **Returns:**

    An [`asdex.SparseJacobian`][]: an `equinox.Module` that is called like `f`
    and returns the Jacobian. It is jittable, `vmap`-able and differentiable; its
    `repr` is the coloring's picture. Emits an [`asdex.DenseColoringWarning`][] if
    the coloring is no cheaper than dense differentiation.

    **Raises:** `TypeError` or `ValueError` naming the argument for integer inputs,
    `argnums` out of range, `has_aux=True` with an `f` that returns no pair, or
    complex inputs and outputs without `holomorphic=True` (and a `mode` that cannot
    give JAX's complex Jacobian).
    Calls with other shapes or dtypes than the samples raise as well.

    !!! Example

        ```python
        def f(x):
            return (x[1:] - x[:-1]) ** 2

        jac_fn = asdex.jacobian(f, input_shape=50)
        print(jac_fn)
        # ColoredPattern(49×50, nnz=98, sparsity=96.0%, JVP, 2 colors)
        #   2 JVPs (instead of 49 VJPs or 50 JVPs)
        # ...
        J = jac_fn(jnp.arange(50.0))    # BCOO, shape (49, 50)
        ```
    """
    return _detect_and_build_jacobian(
        "asdex.jacobian",
        f,
        sample_args,
        argnums,
        has_aux,
        mode,
        output_format,
        chunk_size,
        input_shape,
        order,
        sample_kwargs,
        with_value=False,
        holomorphic=holomorphic,
        local=local,
    )


def value_and_jacobian(
    f: Callable,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["fwd", "rev", "bidirectional"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    holomorphic: bool = False,
    local: bool = False,
    **sample_kwargs,
) -> SparseJacobian:
    """Like [`asdex.jacobian`][], but calls return `(f(*args), J)`.

    `f` is evaluated once per call: its value comes out of the same
    `jax.linearize` or `jax.vjp` as the products. With `has_aux=True` calls return
    `((value, aux), J)`, like `jax.value_and_grad`.

    **Arguments:** as for [`asdex.jacobian`][].

    **Returns:** an [`asdex.SparseJacobian`][].

    !!! Example

        ```python
        vjac_fn = asdex.value_and_jacobian(f, input_shape=50)
        y, J = vjac_fn(x)
        ```
    """
    return _detect_and_build_jacobian(
        "asdex.value_and_jacobian",
        f,
        sample_args,
        argnums,
        has_aux,
        mode,
        output_format,
        chunk_size,
        input_shape,
        order,
        sample_kwargs,
        with_value=True,
        holomorphic=holomorphic,
        local=local,
    )


def jacobian_from_coloring(
    f: Callable,
    coloring: ColoredPattern,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    with_value: bool = False,
    holomorphic: bool = False,
    **sample_kwargs,
) -> SparseJacobian:
    """A sparse Jacobian of `f` that reuses a coloring, skipping detection.

    The coloring must be of `f`'s Jacobian pattern (or of a superset of it), for
    example from [`asdex.jacobian_coloring`][] on another run. It is not checked
    against `f`: use [`asdex.check_jacobian`][] to verify the result once.

    **Arguments:**

    - `f`: the function.
    - `coloring`: an [`asdex.ColoredPattern`][] of mode `"fwd"`, `"rev"` or
        `"bidirectional"`, of shape `(m, n)`.
    - `*sample_args`: sample arguments, as for [`asdex.jacobian`][]. Without them
        (and without `input_shape`), `f` is taken to be a function of one vector
        of length `n` and the default float dtype.
    - `with_value`: calls return `(f(*args), J)`, as for
        [`asdex.value_and_jacobian`][].
    - the other arguments: as for [`asdex.jacobian`][].

    **Returns:** an [`asdex.SparseJacobian`][].

    !!! Example

        ```python
        coloring = asdex.jacobian_coloring(f, input_shape=50)
        jac_fn = asdex.jacobian_from_coloring(f, coloring)
        ```
    """
    caller = "asdex.jacobian_from_coloring"
    if not isinstance(coloring, ColoredPattern):
        raise TypeError(
            f"`{caller}(coloring=...)` must be an `asdex.ColoredPattern` (from "
            "`asdex.jacobian_coloring`), not "
            f"{type(coloring).__name__}. For a pattern use "
            "`asdex.jacobian_from_pattern`."
        )
    args, input_shape = _default_samples(sample_args, input_shape, coloring.shape[1])
    args = _samples(args or (), input_shape, caller)
    warn_if_dense(coloring, caller)
    return _jacobian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
        holomorphic,
    )


def jacobian_from_pattern(
    f: Callable,
    pattern,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["fwd", "rev", "bidirectional"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    with_value: bool = False,
    holomorphic: bool = False,
    **sample_kwargs,
) -> SparseJacobian:
    """A sparse Jacobian of `f` for a sparsity pattern you already have.

    The pattern is colored, and detection is skipped: use it for a saved pattern
    ([`asdex.SparsityPattern.load`][]) or one known by construction. It must
    contain every nonzero of `f`'s Jacobian; it is not checked against `f` (use
    [`asdex.check_jacobian`][] once).

    **Arguments:**

    - `f`: the function.
    - `pattern`: an [`asdex.SparsityPattern`][], a scipy sparse matrix, a
        two-dimensional `BCOO`, or a dense two-dimensional array (its nonzeros),
        of shape `(m, n)`.
    - `*sample_args`: as for [`asdex.jacobian_from_coloring`][]; by default `f`
        is a function of one vector of length `n`.
    - `mode`, `order`: how to color; see [`asdex.jacobian_coloring`][].
    - the other arguments: as for [`asdex.jacobian_from_coloring`][].

    **Returns:** an [`asdex.SparseJacobian`][].

    !!! Example

        ```python
        pattern = scipy.sparse.diags([1, 1], [0, 1], shape=(49, 50), dtype=bool)
        jac_fn = asdex.jacobian_from_pattern(f, pattern)
        ```
    """
    caller = "asdex.jacobian_from_pattern"
    pattern = _as_pattern(pattern, caller)
    _check_mode(mode, _JACOBIAN_MODES, caller)
    args, input_shape = _default_samples(sample_args, input_shape, pattern.shape[1])
    args = _samples(args or (), input_shape, caller)
    traced = _trace_jacobian(f, args, sample_kwargs, argnums, has_aux, caller)
    mode = _complex_mode(traced, holomorphic, mode, caller)
    coloring = _color_jacobian(pattern, mode, order, caller)
    warn_if_dense(coloring, caller)
    return _jacobian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
        holomorphic,
        traced,
    )


# ---------------------------------------------------------------------------- Hessians


def _hessian(
    caller,
    f,
    args,
    kwargs,
    argnums,
    has_aux,
    coloring,
    output_format,
    chunk_size,
    with_value,
    traced=None,
) -> SparseHessian:
    if traced is None:
        traced = _trace_hessian(f, args, kwargs, argnums, has_aux, caller)
    traced, out_avals = traced
    layout = Layout.from_traced(
        traced, args, kwargs, argnums, has_aux, caller, out_avals=out_avals
    )
    return SparseHessian(
        f,
        coloring,
        layout,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
    )


def _detect_and_build_hessian(
    caller,
    f,
    sample_args,
    argnums,
    has_aux,
    mode,
    output_format,
    chunk_size,
    input_shape,
    order,
    sample_kwargs,
    with_value,
    local,
) -> SparseHessian:
    args = _samples(sample_args, input_shape, caller)
    traced = _trace_hessian(f, args, sample_kwargs, argnums, has_aux, caller)
    pattern = _hessian_pattern(
        traced[0], f, args, sample_kwargs, argnums, has_aux, caller, local
    )
    coloring = _color_hessian(pattern, mode, order, caller)
    warn_if_dense(coloring, caller, stacklevel=4)
    _mark_point(coloring, args, sample_kwargs, caller)
    return _hessian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
        traced,
    )


def hessian(
    f: Callable,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["star", "acyclic"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    local: bool = False,
    **sample_kwargs,
) -> SparseHessian:
    """A function computing the sparse Hessian of a scalar `f`, like `jax.hessian(f)`.

    The pattern is detected once (the Jacobian pattern of `jax.grad(f)`, made
    symmetric) and colored symmetrically; each call evaluates `f` and its gradient
    once and computes one Hessian-vector product (forward-over-reverse) per color.

    **Arguments:**

    - `f`: a function returning one real scalar (or `(scalar, aux)` with
        `has_aux=True`).
    - `mode`: `"star"` (direct decompression, exact per entry), `"acyclic"`
        (substitution; fewer colors, e.g. 2 instead of 3 for a tridiagonal
        Hessian, but rounding errors accumulate along the coloring's trees), or
        `None`, the same as `"star"`.
    - `output_format`: as for [`asdex.jacobian`][]; `"bcoo"` and `"dense"` have
        shape `in.shape + in.shape` and `jax.hessian`'s nesting for PyTree inputs.
    - `local`: use the Hessian's pattern at the sample point only; see
        [`asdex.jacobian`][].
    - the other arguments: as for [`asdex.jacobian`][].

    **Returns:**

    An [`asdex.SparseHessian`][]: an `equinox.Module` called like `f`, returning the
    Hessian (`(H, aux)` with `has_aux`). Jittable, `vmap`-able, differentiable;
    its `repr` is the coloring's picture. Emits an [`asdex.DenseColoringWarning`][]
    if the coloring needs `n` colors.

    **Raises:** `TypeError` if `f` does not return one real scalar or has complex
    inputs (as `jax.hessian` without `holomorphic=True`; split them into real and
    imaginary parts), and the errors of [`asdex.jacobian`][].

    !!! Example

        ```python
        def rosenbrock(x):
            return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

        hess_fn = asdex.hessian(rosenbrock, input_shape=1000)   # 3 HVPs (star)
        H = hess_fn(jnp.zeros(1000))                            # BCOO (1000, 1000)
        ```
    """
    return _detect_and_build_hessian(
        "asdex.hessian",
        f,
        sample_args,
        argnums,
        has_aux,
        mode,
        output_format,
        chunk_size,
        input_shape,
        order,
        sample_kwargs,
        with_value=False,
        local=local,
    )


def value_and_hessian(
    f: Callable,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["star", "acyclic"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    local: bool = False,
    **sample_kwargs,
) -> SparseHessian:
    """Like [`asdex.hessian`][], but calls return `(f(*args), H)`.

    `f` is evaluated once per call. With `has_aux=True` calls return
    `((value, aux), H)`.

    **Arguments:** as for [`asdex.hessian`][].

    **Returns:** an [`asdex.SparseHessian`][].
    """
    return _detect_and_build_hessian(
        "asdex.value_and_hessian",
        f,
        sample_args,
        argnums,
        has_aux,
        mode,
        output_format,
        chunk_size,
        input_shape,
        order,
        sample_kwargs,
        with_value=True,
        local=local,
    )


def hessian_from_coloring(
    f: Callable,
    coloring: ColoredPattern,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    with_value: bool = False,
    **sample_kwargs,
) -> SparseHessian:
    """A sparse Hessian of `f` that reuses a coloring, skipping detection.

    **Arguments:**

    - `f`: a function returning one real scalar.
    - `coloring`: an [`asdex.ColoredPattern`][] of mode `"star"` or `"acyclic"`
        (from [`asdex.hessian_coloring`][]), of shape `(n, n)`.
    - `*sample_args`: as for [`asdex.hessian`][]. Without them (and without
        `input_shape`), `f` is a function of one vector of length `n`.
    - `with_value`: calls return `(f(*args), H)`.
    - the other arguments: as for [`asdex.hessian`][].

    **Returns:** an [`asdex.SparseHessian`][].
    """
    caller = "asdex.hessian_from_coloring"
    if not isinstance(coloring, ColoredPattern):
        raise TypeError(
            f"`{caller}(coloring=...)` must be an `asdex.ColoredPattern` (from "
            f"`asdex.hessian_coloring`), not {type(coloring).__name__}. For a "
            "pattern use `asdex.hessian_from_pattern`."
        )
    args, input_shape = _default_samples(sample_args, input_shape, coloring.shape[1])
    args = _samples(args or (), input_shape, caller)
    warn_if_dense(coloring, caller)
    return _hessian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
    )


def hessian_from_pattern(
    f: Callable,
    pattern,
    *sample_args,
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    mode: Literal["star", "acyclic"] | None = None,
    output_format: OutputFormat = "bcoo",
    chunk_size: int | None = None,
    input_shape: int | tuple[int, ...] | None = None,
    order="natural",
    with_value: bool = False,
    **sample_kwargs,
) -> SparseHessian:
    """A sparse Hessian of `f` for a sparsity pattern you already have.

    The pattern is made symmetric (`pattern | pattern.T`, so a triangle suffices)
    and colored; detection is skipped. It must contain every nonzero of `f`'s
    Hessian; it is not checked against `f` (use [`asdex.check_hessian`][] once).

    **Arguments:**

    - `f`: a function returning one real scalar.
    - `pattern`: an [`asdex.SparsityPattern`][], scipy sparse matrix, `BCOO` or
        dense array of shape `(n, n)`.
    - `mode`, `order`: how to color; see [`asdex.hessian_coloring`][].
    - the other arguments: as for [`asdex.hessian_from_coloring`][].

    **Returns:** an [`asdex.SparseHessian`][].
    """
    caller = "asdex.hessian_from_pattern"
    pattern = _as_pattern(pattern, caller)
    if pattern.shape[0] != pattern.shape[1]:
        raise ValueError(
            f"`{caller}(pattern=...)` must be square, got shape {pattern.shape}."
        )
    coloring = _color_hessian(pattern | pattern.T, mode, order, caller)
    args, input_shape = _default_samples(sample_args, input_shape, pattern.shape[1])
    args = _samples(args or (), input_shape, caller)
    warn_if_dense(coloring, caller)
    return _hessian(
        caller,
        f,
        args,
        sample_kwargs,
        argnums,
        has_aux,
        coloring,
        output_format,
        chunk_size,
        with_value,
    )
