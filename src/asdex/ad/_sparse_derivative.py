"""The common interface of sparse Jacobians and Hessians: an `equinox.Module` to call."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float

from .._colored import ColoredPattern
from . import _cpu
from ._compressed import (
    Decompression,
    DecompressionPlan,
    Linear,
    jacobian_product,
    nonzeros_of,
    products_of,
)
from ._formats import (
    AbstractOutputFormat,
    check_output_format,
    make_format,
)
from ._layout import Layout, Samples, ravel_parts, samples_of
from ._programs import run


class AbstractSparseDerivative(eqx.Module):
    """A sparse derivative of a function, ready to evaluate at any point.

    Calling it with arguments like the samples it was built with computes the
    compressed products and decompresses them into the requested output format.
    It is an `equinox.Module` whose leaves are all arrays: the index arrays of the
    decompression and the array leaves of the function (its parameters, if it is
    itself a module). The coloring, the layout and the rest of the function are
    static.

    The work runs in an inner compiled program to which the index arrays are
    passed as arguments, so they are never folded into a compiled program as
    constants: a call compiles in a fraction of a second even at millions of
    nonzeros. (It behaves as `equinox.filter_jit` would, but the derivative is
    flattened once rather than at every call; see `ad/_programs.py`.) Under an
    outer transformation, pass the derivative as an argument too,
    `eqx.filter_jit(jac_fn)(x)` or `jax.jit(lambda j, x: j(x))(jac_fn, x)`.
    `jax.jit(jac_fn)` and closures over it work as well, but then JAX embeds the
    index arrays in the program as constants, which compiles far slower (0.7 s
    instead of 0.08 s at 10⁶ unknowns). Either way, inside the caller's
    transformation the seed matrices are constants of the program, built from the
    static coloring: XLA folds what the products compute from them alone, and the
    steady state is up to 9x faster, for a longer compile (see
    `ad/_compressed.py`'s `constant_seeds`).

    On CPU, a Jacobian call with concrete arguments, five or more products and
    at least 2¹⁷ inputs or outputs runs as several programs: one linearizes `f`
    (evaluating it once) and returns the residuals, then one program per product,
    then one that decompresses. XLA's CPU code for many products in one program is
    slower than that. Under `jit`, `vmap` or `grad`, on GPU, and for Hessians, a
    call is a single program.

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
    - `point`: for a derivative built with a local pattern (`local=True`), the
      argument leaves it holds at (`None` for leaves that are not arrays); every
      call is checked against them. `None` for a global pattern.
    """

    # Whether large calls on CPU may run one program per product (see
    # `dispatch_per_product`).
    dispatch_on_cpu: ClassVar[bool] = False

    fn_dynamic: eqx.AbstractVar[Callable]
    fn_static: eqx.AbstractVar[Callable]
    coloring: eqx.AbstractVar[ColoredPattern]
    output_format: eqx.AbstractVar[str]
    chunk_size: eqx.AbstractVar[int | None]
    with_value: eqx.AbstractVar[bool]
    layout: eqx.AbstractVar[Layout]
    decompression: eqx.AbstractVar[Decompression]
    format: eqx.AbstractVar[AbstractOutputFormat]
    point: eqx.AbstractVar[tuple | None]

    @property
    def fn(self) -> Callable:
        """The differentiated function."""
        return eqx.combine(self.fn_dynamic, self.fn_static)

    @property
    def samples(self) -> Samples:
        """The sample arguments it was built with, which calls are checked against."""
        return samples_of(self.layout)

    @abc.abstractmethod
    def linearize(self, g: Callable, primals: list) -> tuple[Linear, object, object]:
        """`(lin, value, aux)`: `g(*primals) = (value, aux)` and the `Linear` map
        whose products the coloring compresses (`f`'s, or its gradient's)."""

    @abc.abstractmethod
    def products_layout(self) -> Layout:
        """The layout the products are read in, and the result nested in: the
        derivative's `layout`, seen as its gradient's for a Hessian
        (`Layout.gradient`)."""

    def _set_fields(
        self,
        fn: Callable,
        coloring: ColoredPattern,
        layout: Layout,
        output_format: str,
        chunk_size: int | None,
        with_value: bool,
    ) -> None:
        """Fill the fields shared by every sparse derivative (from `__init__`, after
        the subclass has checked the coloring against the layout)."""
        samples = samples_of(layout)
        caller = samples.caller
        self.fn_dynamic, self.fn_static = eqx.partition(fn, eqx.is_array)
        self.coloring = coloring
        self.output_format = check_output_format(output_format, caller)
        self.chunk_size = check_chunk_size(chunk_size, caller)
        self.with_value = with_value
        self.layout = layout
        plan = DecompressionPlan.of(coloring)
        self.decompression = Decompression(plan)
        self.format = make_format(
            output_format, coloring.pattern, self.products_layout(), plan
        )
        self.point = coloring._point
        if self.point is not None and len(self.point) != len(samples.kinds):
            raise ValueError(
                f"`{caller}(coloring=...)`: the coloring is local, detected at "
                "arguments of another structure than these samples. Build the "
                "derivative from the same arguments the coloring was detected at."
            )

    def _check_point(self, leaves: list) -> list:
        """A derivative from a local pattern may only be called at its point."""
        if self.point is None:
            return leaves
        pairs = [(k, p) for k, p in enumerate(self.point) if p is not None]
        message = (
            f"This derivative was built by `{self.samples.caller}(..., local=True)` "
            "with the sparsity pattern at one point, which holds there only, but it "
            "was called at other arguments, where it can miss nonzeros. Build it "
            "again at the new point, or use the global pattern (`local=False`)."
        )
        values = [leaves[k] for k, _ in pairs] + [p for _, p in pairs]
        if not any(isinstance(v, jax.core.Tracer) for v in values):
            if not all(np.array_equal(leaves[k], p) for k, p in pairs):
                raise ValueError(message)
            return leaves
        differs = jnp.any(jnp.stack([jnp.any(leaves[k] != p) for k, p in pairs]))
        leaves = list(leaves)
        k = pairs[0][0]
        leaves[k] = eqx.error_if(leaves[k], differs, message)
        return leaves

    def __call__(self, *args, **kwargs):
        samples = self.samples
        leaves = self._check_point(samples.check_call(args, kwargs))
        if dispatch_per_product(self, leaves):
            parts, value, aux = _products_one_by_one(self, leaves)
            assembled = run(_assemble, self, parts)
        else:
            assembled, value, aux = run(_evaluate, self, leaves)
        fmt = self.format
        # `type(fmt).finish` spares equinox's bound-method wrapper on every call.
        derivative = type(fmt).finish(fmt, assembled)
        if self.with_value:
            return ((value, aux) if samples.has_aux else value), derivative
        return (derivative, aux) if samples.has_aux else derivative

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
        leaves = self._check_point(self.samples.check_call(args, kwargs))
        if dispatch_per_product(self, leaves):
            parts = _products_one_by_one(self, leaves)[0]
            return run(_decompress, self, parts)
        return run(_evaluate_nonzeros, self, leaves)

    def __repr__(self) -> str:
        return repr(self.coloring)

    # Hashing by identity lets `jax.jit(derivative)` work (JAX hashes the function it
    # compiles); equinox's default hashes the leaves, which are arrays.
    def __hash__(self) -> int:
        return id(self)


def _linearized(derivative: AbstractSparseDerivative, leaves: list):
    """`(lin, primals, value, aux)`: `f` evaluated once and linearized."""
    primals, others = derivative.samples.split_leaves(leaves)
    g = derivative.samples.function_of_primals(derivative.fn, others)
    lin, value, aux = derivative.linearize(g, primals)
    return lin, primals, value, aux


def _evaluate(derivative: AbstractSparseDerivative, leaves: list):
    lin, primals, value, aux = _linearized(derivative, leaves)
    dec = derivative.decompression
    layout = derivative.products_layout()
    if dec.sharded is not None:
        nonzeros = nonzeros_of(lin, primals, layout, dec, derivative.chunk_size)
        return derivative.format.from_nonzeros(nonzeros), value, aux
    flat = products_of(lin, primals, layout, dec, derivative.chunk_size)
    return derivative.format.assemble(flat, dec), value, aux


def _evaluate_nonzeros(derivative: AbstractSparseDerivative, leaves: list):
    lin, primals, _, _ = _linearized(derivative, leaves)
    layout = derivative.products_layout()
    dec = derivative.decompression
    return nonzeros_of(lin, primals, layout, dec, derivative.chunk_size)


def _sides(derivative: AbstractSparseDerivative) -> tuple[tuple[str, int], ...]:
    """`((side, count), ...)`: the kinds of product and how many of each, in the
    order of the concatenated products."""
    dec = derivative.decompression
    return (("fwd", dec.num_fwd), ("rev", dec.num_rev))


def dispatch_per_product(derivative: AbstractSparseDerivative, leaves: list) -> bool:
    """Whether to run the products as separate programs, one after the other.

    XLA's CPU code for many JVPs or VJPs in one program is far slower than the same
    products compiled one per program: the 12 JVPs of the 512² Brusselator take
    36 t_f as one program and 21 t_f as one program per product, measured side by
    side (a `vmap` over the seeds is slower still). So on CPU, a call with concrete
    arguments (not under `jit`, `vmap` or `grad`) with `_cpu.DISPATCH_FROM` or more
    products of `_cpu.DISPATCH_FROM_SIZE` or more elements linearizes `f` in one
    program, runs one program per product on the residuals, then one that
    assembles them. Smaller calls lose more to dispatching than they gain (at the
    128² Brusselator, 28 t_f against 17). Hessian-vector products need many more
    residuals each and gain nothing (`dispatch_on_cpu` is false for Hessians).
    Traced calls keep the single program, so the derivative stays jittable and
    differentiable; both paths compute the same products.
    """
    # Cheapest checks first: this runs on every call.
    if (
        not type(derivative).dispatch_on_cpu
        or derivative.decompression.sharded is not None
    ):
        return False
    if max(derivative.coloring.shape) < _cpu.DISPATCH_FROM_SIZE:
        return False
    dec = derivative.decompression
    if dec.num_fwd + dec.num_rev < _cpu.DISPATCH_FROM:
        return False
    for leaf in jtu.tree_leaves((derivative, leaves)):
        if isinstance(leaf, jax.core.Tracer):
            return False
        if isinstance(leaf, jax.Array) and any(
            d.platform != "cpu" for d in leaf.devices()
        ):
            return False
    return jax.default_backend() == "cpu"


def _products_one_by_one(derivative: AbstractSparseDerivative, leaves: list):
    """`(parts, value, aux)`: `f` linearized by one program, then each side's
    products, each by a program of its own that gets the residuals as arguments."""
    lin, value, aux = run(_linearize, derivative, leaves)
    parts = [
        [
            run(_product, derivative, lin, leaves, side, np.int32(k))
            for k in range(count)
        ]
        for side, count in _sides(derivative)
    ]
    return parts, value, aux


def _linearize(derivative, leaves):
    lin, _, value, aux = _linearized(derivative, leaves)
    return lin, value, aux


def _product(derivative, lin, leaves, side: str, k):
    # The product's leaves in their own shapes: flattened by the program that
    # reads them, where that is free (see `ravel_stacked`).
    primals = derivative.samples.split_leaves(leaves)[0]
    layout, dec = derivative.products_layout(), derivative.decompression
    return jacobian_product(lin, primals, layout, dec, side, k)


def _flat_products(parts: list) -> list[Array]:
    """Each product of `_products_one_by_one`'s `parts` as one flat array, in the
    order of the concatenated products."""
    return [ravel_parts(p) for side in parts for p in side]


def _assemble(derivative: AbstractSparseDerivative, parts: list):
    fmt = derivative.format
    products = _flat_products(parts)
    return type(fmt).assemble_parts(fmt, products, derivative.decompression)


def _decompress(derivative: AbstractSparseDerivative, parts: list):
    flat = ravel_parts(_flat_products(parts))
    return derivative.decompression.decompress(flat)


def check_chunk_size(chunk_size, caller: str) -> int | None:
    if chunk_size is None:
        return None
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(
            f"`{caller}(chunk_size={chunk_size!r})` must be a positive integer (the "
            "number of products evaluated at once), or None for all at once."
        )
    return int(chunk_size)
