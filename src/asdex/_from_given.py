"""Public entry points for sparse derivatives from a coloring or pattern you have.

`jacobian_from_coloring`, `jacobian_from_pattern`, `hessian_from_coloring` and
`hessian_from_pattern` skip detection; like `_api.py`'s entry points they are
thin fronts of `_build.py`'s builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ._api import OutputFormat
from ._build import HESSIAN, JACOBIAN, Request, given_pattern
from ._colored import ColoredPattern, check_coloring
from .ad._sparse_hessian import SparseHessian
from .ad._sparse_jacobian import SparseJacobian


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
    check_coloring(coloring, caller, hessian=False, local_ok=True)
    req = Request.of(
        caller,
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        n=coloring.shape[1],
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
    )
    return JACOBIAN.from_coloring(
        req,
        coloring,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
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
    pattern = given_pattern(pattern, caller)
    req = Request.of(
        caller,
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        n=pattern.shape[1],
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
    )
    return JACOBIAN.from_pattern(
        req,
        pattern,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
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
    check_coloring(coloring, caller, hessian=True, local_ok=True)
    req = Request.of(
        caller,
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        n=coloring.shape[1],
        argnums=argnums,
        has_aux=has_aux,
    )
    return HESSIAN.from_coloring(
        req,
        coloring,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
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
    pattern = given_pattern(pattern, caller)
    req = Request.of(
        caller,
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        n=pattern.shape[1],
        argnums=argnums,
        has_aux=has_aux,
    )
    return HESSIAN.from_pattern(
        req,
        pattern,
        mode,
        order,
        output_format=output_format,
        chunk_size=chunk_size,
        with_value=with_value,
    )
