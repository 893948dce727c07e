"""The one builder behind the public entry points: trace, detect, color, build.

Every entry point of `_api.py` and `_colorings.py` turns its arguments into a
`Request` and hands it to `JACOBIAN` or `HESSIAN`, the two kinds of derivative.
A kind knows how to trace `f` for its pattern, how to color, and which derivative
class it builds; the steps in between are the same for both.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from ._colored import ColoredPattern, warn_if_dense
from ._pattern import SparsityPattern
from ._trace import (
    Traced,
    check_scalar_output,
    concrete_point,
    is_array_leaf,
    sample_args,
    trace,
)
from .ad._complex import check_real_hessian, complex_mode
from .ad._layout import Layout
from .ad._sparse_hessian import SparseHessian
from .ad._sparse_jacobian import SparseJacobian
from .coloring import color_hessian, color_jacobian
from .detection._api import check_local, gradient_of, pattern_of, within


@dataclasses.dataclass(frozen=True)
class Request:
    """One call of an entry point: the function, its samples, and how it is
    differentiated. `caller` names the entry point in errors."""

    caller: str
    f: Callable
    args: tuple
    kwargs: dict[str, Any]
    argnums: int | tuple[int, ...] = 0
    has_aux: bool = False
    holomorphic: bool = False
    local: bool = False

    @classmethod
    def of(
        cls,
        caller: str,
        f: Callable,
        args: tuple,
        kwargs: dict,
        input_shape,
        n: int | None = None,
        **options,
    ) -> Request:
        """With `n`, a function of one vector of length `n` when no samples are
        given (for derivatives built from a coloring or pattern)."""
        if n is not None and not args and input_shape is None:
            input_shape = n
        return cls(caller, f, sample_args(args, input_shape, caller), kwargs, **options)

    def trace(self, **options) -> Traced:
        return trace(
            self.f,
            self.args,
            self.kwargs,
            self.argnums,
            self.has_aux,
            self.caller,
            **options,
        )

    def layout(self, traced: Traced, out_avals=None) -> Layout:
        return Layout.from_traced(
            traced,
            self.args,
            self.kwargs,
            self.argnums,
            self.has_aux,
            self.caller,
            out_avals=out_avals,
        )

    def mark_point(self, coloring: ColoredPattern) -> None:
        """Remember where a local coloring holds: the samples' array leaves, which
        sparse derivatives built from it check their calls against."""
        if not coloring.pattern.local:
            return
        leaves = jax.tree_util.tree_leaves((tuple(self.args), dict(self.kwargs)))
        # Python numbers given for differentiated scalars are values too.
        is_value = [is_array_leaf(x) or isinstance(x, float | complex) for x in leaves]
        values = [x for x, v in zip(leaves, is_value, strict=True) if v]
        arrays = iter(concrete_point(values, self.caller))
        coloring._point = tuple(next(arrays) if v else None for v in is_value)


@dataclasses.dataclass(frozen=True)
class Tracing:
    """What tracing `f` gave: the traced function (for a Hessian, its gradient)
    and, for a Hessian, `f`'s own output avals."""

    traced: Traced
    out_avals: tuple | None = None


class _Kind(abc.ABC):
    """A kind of derivative: Jacobian or Hessian."""

    modes: ClassVar[tuple[str | None, ...]]
    symmetric: ClassVar[bool]

    @abc.abstractmethod
    def tracing(self, req: Request, local: bool = False) -> Tracing:
        """`f` traced for its pattern (`local`: at the sample point)."""

    @abc.abstractmethod
    def pattern(self, req: Request, tracing: Tracing) -> SparsityPattern: ...

    @abc.abstractmethod
    def _color(self, pattern: SparsityPattern, mode, order) -> Any: ...

    @abc.abstractmethod
    def _derivative(self, f, coloring, layout, **options): ...

    def check_mode(self, mode, caller: str) -> None:
        if mode not in self.modes:
            raise ValueError(
                f"`{caller}(mode={mode!r})` must be one of "
                f"{', '.join(repr(m) for m in self.modes)}."
            )

    def mode(self, req: Request, tracing: Tracing, mode):
        """The mode to color with: `mode`, checked against complex inputs."""
        return mode

    def color(self, pattern, mode, order, caller: str) -> ColoredPattern:
        self.check_mode(mode, caller)
        return ColoredPattern(self._color(pattern, mode, order))

    def coloring(
        self, req: Request, mode, order, stacklevel: int = 4
    ) -> tuple[ColoredPattern, Tracing]:
        """Detect and color: `(coloring, tracing)`."""
        tracing = self.tracing(req)
        mode = self.mode(req, tracing, mode)
        coloring = self.color(self.pattern(req, tracing), mode, order, req.caller)
        warn_if_dense(coloring, req.caller, stacklevel=stacklevel)
        req.mark_point(coloring)
        return coloring, tracing

    def build(
        self,
        req: Request,
        coloring: ColoredPattern,
        tracing: Tracing | None = None,
        **options,
    ):
        """The derivative of `req.f` computed with `coloring`; `options` are the
        derivative class's keyword arguments (`output_format`, ...)."""
        if tracing is None:
            tracing = self.tracing(req)
        layout = req.layout(tracing.traced, tracing.out_avals)
        return self._derivative(req.f, coloring, layout, **options)

    def detect_and_build(self, req: Request, mode, order, **options):
        coloring, tracing = self.coloring(req, mode, order, stacklevel=5)
        return self.build(req, coloring, tracing, **options)

    def from_coloring(self, req: Request, coloring, **options):
        """`coloring` is checked by the caller (`check_coloring`), which reads its
        shape for the default samples."""
        warn_if_dense(coloring, req.caller, stacklevel=4)
        return self.build(req, coloring, **options)

    def given(self, pattern: SparsityPattern, caller: str) -> SparsityPattern:
        """A pattern given to `*_from_pattern`, checked (and for a Hessian, made
        symmetric)."""
        return pattern

    def from_pattern(self, req: Request, pattern, mode, order, **options):
        self.check_mode(mode, req.caller)
        pattern = self.given(pattern, req.caller)
        tracing = self.tracing(req)
        mode = self.mode(req, tracing, mode)
        coloring = self.color(pattern, mode, order, req.caller)
        warn_if_dense(coloring, req.caller, stacklevel=4)
        return self.build(req, coloring, tracing, **options)


class _Jacobian(_Kind):
    modes = (None, "fwd", "rev", "bidirectional")
    symmetric = False

    def tracing(self, req, local=False):
        return Tracing(req.trace(local=local))

    def mode(self, req, tracing, mode, argument="mode"):
        traced = tracing.traced
        return complex_mode(
            traced.in_leaves,
            traced.out_leaves,
            req.holomorphic,
            mode,
            req.caller,
            argument,
        )

    def pattern(self, req, tracing):
        pattern = pattern_of(tracing.traced)
        if check_local(req.local, req.caller):
            pattern = within(pattern, self.tracing(req, local=True).traced)
        return pattern

    def _color(self, pattern, mode, order):
        return color_jacobian(pattern, mode, order)

    def build(self, req, coloring, tracing=None, **options):
        if tracing is None:
            tracing = self.tracing(req)
        self.mode(req, tracing, coloring.mode, "coloring")
        return super().build(req, coloring, tracing, **options)

    def _derivative(self, f, coloring, layout, **options):
        return SparseJacobian(f, coloring, layout, **options)


class _Hessian(_Kind):
    modes = (None, "star", "acyclic")
    symmetric = True

    def tracing(self, req, local=False):
        """The gradient of `f` traced (for the pattern), checking that `f` is
        scalar."""
        store: dict = {}

        def transform(flat_fun, tracked):
            def checked(*dyn):
                outs = flat_fun(*dyn)
                store["out_avals"] = tuple(
                    jax.ShapeDtypeStruct(jnp.shape(o), jnp.result_type(o)) for o in outs
                )
                check_scalar_output(outs, req.caller, has_aux=req.has_aux)
                return outs

            return gradient_of(checked, tracked, req.caller)

        traced = req.trace(transform=transform, local=local)
        check_real_hessian(traced.in_leaves, req.caller)
        return Tracing(traced, store["out_avals"])

    def pattern(self, req, tracing):
        pattern = pattern_of(tracing.traced)
        pattern = pattern | pattern.T
        if check_local(req.local, req.caller):
            at_point = self.tracing(req, local=True).traced
            pattern = within(pattern, at_point, symmetric=True)
        return pattern

    def _color(self, pattern, mode, order):
        # Star (direct) by default: every entry read from one product, as exact as
        # `jax.hessian`. Acyclic only by name; see `asdex.coloring.color_hessian`.
        decompression = {None: "direct", "star": "direct", "acyclic": "substitution"}
        return color_hessian(pattern, decompression[mode], order)

    def given(self, pattern, caller):
        if pattern.shape[0] != pattern.shape[1]:
            raise ValueError(
                f"`{caller}(pattern=...)` must be square, got shape {pattern.shape}."
            )
        # A triangle suffices.
        return pattern | pattern.T

    def _derivative(self, f, coloring, layout, **options):
        return SparseHessian(f, coloring, layout, **options)


JACOBIAN = _Jacobian()
HESSIAN = _Hessian()


def given_pattern(pattern, caller: str) -> SparsityPattern:
    """A pattern given to a `*_from_pattern` entry point, which must be global."""
    return SparsityPattern.from_any(
        pattern, argument=f"`{caller}(pattern=...)`", global_only=True
    )
