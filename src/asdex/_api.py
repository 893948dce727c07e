"""Public entry points for sparse Jacobians and Hessians.

Each is a thin front of `_build.py`'s builder: its arguments become a `Request`,
which `JACOBIAN` or `HESSIAN` detects, colors and builds. Colorings alone are in
`_colorings.py`; derivatives from a coloring or pattern you have, in
`_from_given.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ._build import HESSIAN, JACOBIAN, Request
from .ad._sparse_hessian import SparseHessian
from .ad._sparse_jacobian import SparseJacobian

OutputFormat = Literal["bcoo", "dense", "scipy_csr", "scipy_csc", "scipy_coo"]


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
    req = Request.of(
        "asdex.jacobian",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
        local=local,
    )
    return JACOBIAN.detect_and_build(
        req,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=False,
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
    req = Request.of(
        "asdex.value_and_jacobian",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
        local=local,
    )
    return JACOBIAN.detect_and_build(
        req,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=True,
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
    req = Request.of(
        "asdex.hessian",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        local=local,
    )
    return HESSIAN.detect_and_build(
        req,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=False,
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
    req = Request.of(
        "asdex.value_and_hessian",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        local=local,
    )
    return HESSIAN.detect_and_build(
        req,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=True,
    )
