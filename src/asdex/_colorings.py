"""Public entry points that detect and color: `jacobian_coloring`, `hessian_coloring`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ._build import HESSIAN, JACOBIAN, Request
from ._colored import ColoredPattern


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
    req = Request.of(
        "asdex.jacobian_coloring",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
        local=local,
    )
    coloring, tracing = JACOBIAN.coloring(req, mode, order)
    # Remember the samples' constants, which solvers check the coloring against.
    coloring._samples = req.layout(tracing.traced).samples
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
    req = Request.of(
        "asdex.hessian_coloring",
        f,
        sample_args,
        sample_kwargs,
        input_shape,
        argnums=argnums,
        has_aux=has_aux,
        local=local,
    )
    coloring, tracing = HESSIAN.coloring(req, mode, order)
    # Only the samples' constants are checked later; outputs do not matter.
    coloring._samples = req.layout(tracing.traced).samples
    return coloring
