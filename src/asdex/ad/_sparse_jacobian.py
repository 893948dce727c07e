"""`SparseJacobian`: the callable returned by `asdex.jacobian`."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx

from .._colored import ColoredPattern, check_coloring
from ._compressed import Decompression, jacobian_linearization
from ._formats import AbstractOutputFormat
from ._layout import Layout, samples_of
from ._sparse_derivative import AbstractSparseDerivative


class SparseJacobian(AbstractSparseDerivative):
    """The sparse Jacobian of a function, as a callable `equinox.Module`.

    Returned by [`asdex.jacobian`][], [`asdex.value_and_jacobian`][],
    [`asdex.jacobian_from_coloring`][] and [`asdex.jacobian_from_pattern`][].
    Call it with arguments of the same structure, shapes and dtypes as the samples:

    - `jac_fn(*args, **kwargs)` returns the Jacobian (`(J, aux)` with `has_aux`),
    - a `value_and_jacobian` one returns `(f(*args), J)` (`((f, aux), J)`).

    One call evaluates `f` once, plus one JVP or VJP per color. It works under
    `jax.jit`, `equinox.filter_jit`, `jax.vmap` and `jax.grad` (output formats
    `"bcoo"` and `"dense"`). Its `repr` is the coloring's picture.

    With `output_format="bcoo"` and a single input and output array, the column,
    row and bidirectional modes return the compressed products themselves as the
    BCOO's data, with no gather: the entries come in color-major order
    (`indices_sorted=False`), and slots of the products that hold no nonzero are
    padding entries (value 0, out-of-bounds index), which every BCOO operation
    ignores. `J.sum_duplicates()` removes them; [`nonzeros`][asdex.SparseJacobian.nonzeros]
    gives the values in the pattern's order.

    !!! Example

        ```python
        jac_fn = asdex.jacobian(f, x)
        J = jac_fn(x)                                   # BCOO
        Js = jax.vmap(jac_fn)(xs)                       # batched BCOO
        y, J = asdex.value_and_jacobian(f, x)(x)
        ```
    """

    dispatch_on_cpu: ClassVar[bool] = True

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
        caller = samples_of(layout).caller
        check_coloring(coloring, caller, hessian=False, local_ok=True)
        if coloring.shape != (layout.m, layout.n):
            raise ValueError(
                f"`{caller}`: the coloring is of a {coloring.shape[0]}×"
                f"{coloring.shape[1]} pattern, but `f` at these sample arguments "
                f"has a {layout.m}×{layout.n} Jacobian ({layout.m} outputs, "
                f"{layout.n} differentiated inputs)."
            )
        self._set_fields(fn, coloring, layout, output_format, chunk_size, with_value)

    def linearize(self, g, primals):
        return jacobian_linearization(g, primals, self.decompression)

    def products_layout(self):
        return self.layout
