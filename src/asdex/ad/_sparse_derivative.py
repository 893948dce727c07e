"""The common interface of sparse Jacobians and Hessians: an `equinox.Module` to call."""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, Float

from .._colored import ColoredPattern
from ._compressed import Decompression
from ._formats import AbstractOutputFormat
from ._layout import Layout


class AbstractSparseDerivative(eqx.Module):
    """A sparse derivative of a function, ready to evaluate at any point.

    Calling it with arguments like the samples it was built with computes the
    compressed products and decompresses them into the requested output format.
    It is an `equinox.Module` whose leaves are all arrays: the index arrays of the
    decompression and the array leaves of the function (its parameters, if it is
    itself a module). The coloring, the layout and the rest of the function are
    static.

    The work runs in an inner `equinox.filter_jit` to which the index arrays are
    passed as arguments, so they are never folded into a compiled program as
    constants: a call compiles in a fraction of a second even at millions of
    nonzeros. Under an outer transformation, pass the derivative as an argument
    too, `eqx.filter_jit(jac_fn)(x)` or `jax.jit(lambda j, x: j(x))(jac_fn, x)`.
    `jax.jit(jac_fn)` and closures over it work as well, but then JAX embeds the
    index arrays in the program as constants, which compiles far slower (0.7 s
    instead of 0.08 s at 10⁶ unknowns).

    Called outside `jit`, the BCOO result reuses the derivative's own index arrays.
    A jitted function that *returns* a BCOO copies them (JAX does not forward its
    inputs to its outputs), so inside `jit` prefer using the Jacobian (`J @ v`, a
    solve) over returning it, or return `J.data` alone.

    **Fields:**

    - `fn`: the differentiated function (a property: it is stored split into its
      array leaves, `fn_dynamic`, and the rest, `fn_static`).
    - `coloring`: the [`asdex.ColoredPattern`][]; also the `repr` of the derivative.
    - `output_format`: `"bcoo"`, `"dense"`, `"scipy_csr"`, `"scipy_csc"` or
      `"scipy_coo"`.
    - `chunk_size`: how many products to evaluate at once (`None`: all).
    - `with_value`: whether a call also returns the function's value.
    """

    fn_dynamic: eqx.AbstractVar[Callable]
    fn_static: eqx.AbstractVar[Callable]
    coloring: eqx.AbstractVar[ColoredPattern]
    output_format: eqx.AbstractVar[str]
    chunk_size: eqx.AbstractVar[int | None]
    with_value: eqx.AbstractVar[bool]
    layout: eqx.AbstractVar[Layout]
    decompression: eqx.AbstractVar[Decompression]
    format: eqx.AbstractVar[AbstractOutputFormat]

    @property
    def fn(self) -> Callable:
        """The differentiated function."""
        return eqx.combine(self.fn_dynamic, self.fn_static)

    @abc.abstractmethod
    def products(self, g: Callable, primals: list) -> tuple[Array, object, object]:
        """`(flat, value, aux)` at `primals`: the concatenated compressed products
        (see `Decompression`), and `g(*primals) = (value, aux)`."""

    def __call__(self, *args, **kwargs):
        layout = self.layout
        leaves = layout.check_call(args, kwargs)
        assembled, value, aux = _evaluate(self, leaves)
        fmt = self.format
        # `type(fmt).finish` spares equinox's bound-method wrapper on every call.
        derivative = type(fmt).finish(fmt, assembled)
        if self.with_value:
            return ((value, aux) if layout.has_aux else value), derivative
        return (derivative, aux) if layout.has_aux else derivative

    def nonzeros(self, *args, **kwargs) -> Float[Array, " nnz"]:
        """The values of the derivative's nonzeros at `args`, in the pattern's order.

        A flat `(nnz,)` array matching `self.coloring.pattern.rows` and `.cols`
        (row-major, in the flat layout), whatever the output format; jittable and
        differentiable. Together with the pattern, this is all a sparse solver
        needs.

        !!! Example

            ```python
            values = jac_fn.nonzeros(x)
            p = jac_fn.coloring.pattern
            J = scipy.sparse.csr_array((values, p.cols, p.indptr), shape=p.shape)
            ```
        """
        leaves = self.layout.check_call(args, kwargs)
        return _evaluate_nonzeros(self, leaves)

    def __repr__(self) -> str:
        return repr(self.coloring)

    # Hashing by identity lets `jax.jit(derivative)` work (JAX hashes the function it
    # compiles); equinox's default hashes the leaves, which are arrays.
    def __hash__(self) -> int:
        return id(self)


@eqx.filter_jit
def _evaluate(derivative: AbstractSparseDerivative, leaves: list):
    primals, others = derivative.layout.split_leaves(leaves)
    g = derivative.layout.function_of_primals(derivative.fn, others)
    flat, value, aux = derivative.products(g, primals)
    return derivative.format.assemble(flat, derivative.decompression), value, aux


@eqx.filter_jit
def _evaluate_nonzeros(derivative: AbstractSparseDerivative, leaves: list):
    primals, others = derivative.layout.split_leaves(leaves)
    g = derivative.layout.function_of_primals(derivative.fn, others)
    flat = derivative.products(g, primals)[0]
    return derivative.decompression.decompress(flat)
