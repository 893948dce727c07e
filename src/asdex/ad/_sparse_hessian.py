"""`SparseHessian`: the callable returned by `asdex.hessian`."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.tree_util as jtu

from .._colored import ColoredPattern, check_coloring
from .._trace import check_scalar_output
from ._compressed import Decompression, hessian_linearization
from ._formats import AbstractOutputFormat
from ._layout import Layout, samples_of
from ._sparse_derivative import AbstractSparseDerivative


class SparseHessian(AbstractSparseDerivative):
    """The sparse Hessian of a scalar function, as a callable `equinox.Module`.

    Returned by [`asdex.hessian`][], [`asdex.value_and_hessian`][],
    [`asdex.hessian_from_coloring`][] and [`asdex.hessian_from_pattern`][]. Call it
    with arguments of the same structure, shapes and dtypes as the samples:

    - `hess_fn(*args, **kwargs)` returns the Hessian (`(H, aux)` with `has_aux`),
    - a `value_and_hessian` one returns `(f(*args), H)` (`((f, aux), H)`).

    One call evaluates `f` and its gradient once, plus one Hessian-vector product
    (forward-over-reverse) per color. It works under `jax.jit`,
    `equinox.filter_jit`, `jax.vmap` and `jax.grad` (output formats `"bcoo"` and
    `"dense"`). Its `repr` is the coloring's picture.

    !!! Example

        ```python
        hess_fn = asdex.hessian(f, x)
        H = hess_fn(x)                                  # BCOO, shape x.shape * 2
        value, H = asdex.value_and_hessian(f, x)(x)
        ```
    """

    fn_dynamic: Callable
    fn_static: Callable = eqx.field(static=True)
    coloring: ColoredPattern = eqx.field(static=True)
    output_format: str = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    with_value: bool = eqx.field(static=True)
    layout: Layout = eqx.field(static=True)
    decompression: Decompression
    format: AbstractOutputFormat
    point: tuple | None

    def __init__(
        self,
        fn: Callable,
        coloring: ColoredPattern,
        layout: Layout,
        *,
        output_format: str = "bcoo",
        chunk_size: int | None = None,
        with_value: bool = False,
    ):
        samples = samples_of(layout)
        caller = samples.caller
        check_coloring(coloring, caller, hessian=True, local_ok=True)
        check_scalar_output(layout.out_avals, caller, has_aux=samples.has_aux)
        if coloring.shape != (layout.n, layout.n):
            raise ValueError(
                f"`{caller}`: the coloring is of a {coloring.shape[0]}×"
                f"{coloring.shape[1]} pattern, but `f` at these sample arguments "
                f"has {layout.n} differentiated inputs, so an {layout.n}×{layout.n} "
                "Hessian."
            )
        self._set_fields(fn, coloring, layout, output_format, chunk_size, with_value)

    def linearize(self, g, primals):
        lin, value, aux = hessian_linearization(_scalar(g), primals)
        return lin, jtu.tree_unflatten(self.layout.outputs.treedef, [value]), aux

    def products_layout(self):
        return self.layout.gradient


def _scalar(g):
    """`g` returning `(tree with one scalar leaf, aux)` as returning `(scalar, aux)`."""

    def scalar(*p):
        out, aux = g(*p)
        return jtu.tree_leaves(out)[0], aux

    return scalar
